// Short-lived X.509 client certificates (docs/grants.md, "x509"): reading a runner's PKCS#10 request (its signature
// verified, then only its public key used), generating a P-256 pair when the runner sent none, and signing a
// clientAuth-only certificate whose every name comes from the policy.

import type * as X509 from "@peculiar/x509";
import { X509_RSA_MIN_BITS, X509_SERIAL_BYTES } from "../constants.ts";
import { hex } from "../encoding.ts";
import { err, ok, type Result } from "../result.ts";
import type { X509Ca } from "./ca.ts";

/**
 * The X.509 library, loaded on first use: the CLI's policy tools load the grant registry (and so this module) but
 * never sign anything, and the library is most of their start-up time otherwise.
 */
async function library(): Promise<typeof X509> {
  return (await import("./lib.ts")).x509;
}

const P256_SIGNING = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** What a certificate request was refused for (said to the caller as-is: it names no secret). */
export type CsrProblem = string;

/** Whether a runner's public key is one runpass certifies: ECDSA P-256/P-384, RSA ≥ 3072 bits, or Ed25519. */
function keyProblem(key: X509.PublicKey): string | undefined {
  const alg = key.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  if (alg.name === "ECDSA") {
    return alg.namedCurve === "P-256" || alg.namedCurve === "P-384"
      ? undefined
      : `ECDSA keys must be on P-256 or P-384, not ${alg.namedCurve ?? "an unnamed curve"}`;
  }
  if (alg.name === "Ed25519") return undefined;
  if (alg.name === "RSASSA-PKCS1-v1_5" || alg.name === "RSA-PSS") {
    return (alg.modulusLength ?? 0) >= X509_RSA_MIN_BITS
      ? undefined
      : `RSA keys must have at least ${X509_RSA_MIN_BITS} bits`;
  }
  return `keys of type ${alg.name} are not accepted (ECDSA P-256/P-384, RSA ≥ 3072 bits, Ed25519)`;
}

/**
 * The public key of a PKCS#10 request in PEM, once its self-signature verifies. Its subject, attributes and
 * requested extensions are ignored: the policy decides every name and usage.
 */
export async function csrPublicKey(pem: string): Promise<Result<X509.PublicKey, CsrProblem>> {
  const x509 = await library();
  let request: X509.Pkcs10CertificateRequest;
  try {
    const blocks = x509.PemConverter.decodeWithHeaders(pem);
    const block = blocks[0];
    if (blocks.length !== 1 || !block || !/^(NEW )?CERTIFICATE REQUEST$/.test(block.type)) {
      return err('csr must be one PEM block "CERTIFICATE REQUEST" (PKCS#10)');
    }
    request = new x509.Pkcs10CertificateRequest(block.rawData);
  } catch {
    return err("csr is not a PKCS#10 certificate request");
  }
  const problem = keyProblem(request.publicKey);
  if (problem) return err(`csr: ${problem}`);
  let valid = false;
  try {
    valid = await request.verify();
  } catch {
    valid = false;
  }
  if (!valid) return err("csr: its signature does not verify with its own public key");
  return ok(request.publicKey);
}

/** A key pair runpass generated for a runner that sent no request: the private key as PKCS#8 PEM, and a CSR for renewal. */
export interface GeneratedKey {
  publicKey: X509.PublicKey;
  privateKeyPem: string;
  /** A request signed with the new key: what the lease keeps so renewal re-signs the same key. */
  csrPem: string;
}

/** Generates an ECDSA P-256 pair (and a CSR of it: the form every kept key has). */
export async function generateKey(): Promise<GeneratedKey> {
  const x509 = await library();
  const keys = (await crypto.subtle.generateKey(P256_SIGNING, true, ["sign", "verify"])) as CryptoKeyPair;
  const pkcs8 = (await crypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: P256_SIGNING });
  return {
    publicKey: csr.publicKey,
    privateKeyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY"),
    csrPem: csr.toString("pem"),
  };
}

/** A random serial: positive and X509_SERIAL_BYTES long in DER (first byte 0x01–0x7f), as lowercase hex. */
export function randomSerial(): string {
  const bytes = new Uint8Array(X509_SERIAL_BYTES);
  crypto.getRandomValues(bytes);
  bytes[0] = ((bytes[0] as number) % 0x7f) + 1;
  return hex(bytes);
}

/** What a client certificate says; every name comes from the policy. */
export interface ClientCertificateSpec {
  publicKey: X509.PublicKey;
  commonName: string;
  uris: readonly string[];
  dnsNames: readonly string[];
  serial: string;
  /** Seconds since the epoch. */
  notBefore: number;
  notAfter: number;
  /** Where relying parties fetch the CA's CRL. */
  crlUrl: string;
}

/** Signs a clientAuth-only end-entity certificate with `ca`. */
export async function signClientCertificate(
  ca: X509Ca,
  spec: ClientCertificateSpec,
): Promise<X509.X509Certificate> {
  const x509 = await library();
  const names: X509.JsonGeneralNames = [
    ...spec.uris.map((value) => ({ type: "url" as const, value })),
    ...spec.dnsNames.map((value) => ({ type: "dns" as const, value })),
  ];
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    // A TLS client only signs (CertificateVerify), whatever its key type.
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
    await x509.SubjectKeyIdentifierExtension.create(spec.publicKey),
    new x509.AuthorityKeyIdentifierExtension(ca.keyIdentifier),
    new x509.CRLDistributionPointsExtension([spec.crlUrl]),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  return x509.X509CertificateGenerator.create({
    serialNumber: spec.serial,
    subject: [{ CN: [spec.commonName] }],
    issuer: ca.certificate.subjectName,
    notBefore: new Date(spec.notBefore * 1000),
    notAfter: new Date(spec.notAfter * 1000),
    publicKey: spec.publicKey,
    signingKey: ca.key,
    signingAlgorithm: ca.signingAlgorithm,
    extensions,
  });
}
