// Test CAs for the x509 grant, made per run with @peculiar/x509 (never committed): a root with an issuing
// intermediate, as RUNPASS_X509_CA takes them (PEM chain issuing CA first, PKCS#8 key). Works in Node and workerd.

import { x509 } from "../../src/core/x509/lib.ts";

export interface TestCa {
  /** The RUNPASS_X509_CA entry: the chain (issuing CA first) and the issuing CA's key. */
  entry: { certificate: string; key: string };
  /** The root, PEM. */
  root: string;
  /** The issuing CA, PEM. */
  issuing: string;
}

const ALGORITHMS = {
  ec: { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" },
  rsa: {
    name: "RSASSA-PKCS1-v1_5",
    modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash: "SHA-256",
  },
} as const;

function caExtensions(
  keyUsage = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
): x509.Extension[] {
  return [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(keyUsage, true),
  ];
}

/** A root and an issuing intermediate of `kind`, valid from an hour ago for `days`. */
export async function makeTestCa(name: string, kind: "ec" | "rsa" = "ec", days = 2): Promise<TestCa> {
  const alg = ALGORITHMS[kind];
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(Date.now() + days * 86400_000);
  const rootKeys = (await crypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${name} root`,
    keys: rootKeys,
    signingAlgorithm: alg,
    notBefore,
    notAfter,
    extensions: [...caExtensions(), await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey)],
  });
  const keys = (await crypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
  const issuing = await x509.X509CertificateGenerator.create({
    subject: `CN=${name} issuing`,
    issuer: root.subject,
    publicKey: keys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: alg,
    notBefore,
    notAfter,
    extensions: [
      ...caExtensions(),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const pkcs8 = (await crypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer;
  return {
    entry: {
      certificate: `${issuing.toString("pem")}\n${root.toString("pem")}\n`,
      key: x509.PemConverter.encode(pkcs8, "PRIVATE KEY"),
    },
    root: root.toString("pem"),
    issuing: issuing.toString("pem"),
  };
}

/** A P-256 key pair and a CSR for it, asking for names and usages the policy must override. */
export async function makeCsr(): Promise<{ csr: string; keys: CryptoKeyPair; privateKeyPem: string }> {
  const alg = ALGORITHMS.ec;
  const keys = (await crypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "CN=admin,O=Evil Corp",
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "evil.example" }]),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.codeSigning,
      ]),
      new x509.BasicConstraintsExtension(true),
    ],
  });
  const pkcs8 = (await crypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer;
  return { csr: csr.toString("pem"), keys, privateKeyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") };
}
