// The X.509 certificate authorities of RUNPASS_X509_CA (docs/grants.md, "x509"): one `{certificate, key}` or a list
// for rotation — the first issues, every chain is served, and each CA signs the CRL for its own certificates.

import * as z from "zod/mini";
import { hex } from "../encoding.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import { x509 } from "./lib.ts";

/** WebCrypto algorithm parameters as the CA uses them (import and signing). */
export interface CaAlgorithm {
  name: string;
  hash?: string;
  namedCurve?: string;
}

/** One CA: its issuing certificate, the chain served with it, and its private key. */
export interface X509Ca {
  /** Hex of the first 8 bytes of the SHA-256 of the issuing certificate's public key: names the CA in CRL URLs. */
  id: string;
  certificate: x509.X509Certificate;
  /** Issuing CA first, then its issuers (as configured). */
  chain: x509.X509Certificate[];
  /** The chain as one PEM string. */
  chainPem: string;
  key: CryptoKey;
  signingAlgorithm: CaAlgorithm;
  /** Hex subject key identifier: the issued certificates' and the CRL's authority key identifier. */
  keyIdentifier: string;
}

const CaEntrySchema = z.strictObject({ certificate: z.string(), key: z.string() });
const CaConfigSchema = z.union([CaEntrySchema, z.array(CaEntrySchema).check(z.minLength(1))]);

const EC_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

/** The import and signing parameters for a CA whose certificate carries `publicKey`; undefined when unsupported. */
function algorithmsFor(publicKey: x509.PublicKey): { importAs: CaAlgorithm; sign: CaAlgorithm } | undefined {
  const alg = publicKey.algorithm as CaAlgorithm;
  if (alg.name === "ECDSA" && alg.namedCurve === "P-256")
    return { importAs: EC_P256, sign: { name: "ECDSA", hash: "SHA-256" } };
  if (alg.name === "RSASSA-PKCS1-v1_5" || alg.name === "RSA-PSS" || alg.name === "RSA-OAEP") {
    const importAs = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
    return { importAs, sign: importAs };
  }
  return undefined;
}

function pemBody(pem: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(x509.PemConverter.decodeFirst(pem));
}

async function loadEntry(entry: z.infer<typeof CaEntrySchema>, at: string): Promise<X509Ca> {
  let chain: x509.X509Certificate[];
  try {
    chain = x509.PemConverter.decode(entry.certificate).map((der) => new x509.X509Certificate(der));
  } catch (e) {
    throw new ConfigError(
      `RUNPASS_X509_CA${at}.certificate is not a PEM certificate chain (${errorMessage(e)})`,
    );
  }
  const certificate = chain[0];
  if (!certificate) throw new ConfigError(`RUNPASS_X509_CA${at}.certificate holds no certificate`);
  const constraints = certificate.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) {
    throw new ConfigError(
      `RUNPASS_X509_CA${at}.certificate: the first certificate must be the issuing CA (basicConstraints CA:TRUE)`,
    );
  }
  const usage = certificate.getExtension(x509.KeyUsagesExtension);
  if (
    usage &&
    (!(usage.usages & x509.KeyUsageFlags.keyCertSign) || !(usage.usages & x509.KeyUsageFlags.cRLSign))
  ) {
    throw new ConfigError(
      `RUNPASS_X509_CA${at}.certificate: the issuing CA's keyUsage must allow keyCertSign and cRLSign`,
    );
  }
  const algorithms = algorithmsFor(certificate.publicKey);
  if (!algorithms) {
    throw new ConfigError(`RUNPASS_X509_CA${at}: the CA key must be ECDSA P-256 or RSA`);
  }
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey("pkcs8", pemBody(entry.key), algorithms.importAs, false, ["sign"]);
  } catch {
    // Never echo the key or the crypto library's message about it.
    throw new ConfigError(
      `RUNPASS_X509_CA${at}.key is not a PKCS#8 PEM private key of the certificate's algorithm`,
    );
  }
  // The key must be the certificate's: a probe signature verified with the certificate's public key.
  const probe = new Uint8Array(32);
  crypto.getRandomValues(probe);
  const signature = await crypto.subtle.sign(algorithms.sign, key, probe);
  const publicKey = await certificate.publicKey.export(algorithms.importAs, ["verify"]);
  if (!(await crypto.subtle.verify(algorithms.sign, publicKey, signature, probe))) {
    throw new ConfigError(`RUNPASS_X509_CA${at}.key does not belong to the first certificate of the chain`);
  }
  const spkiHash = new Uint8Array(await crypto.subtle.digest("SHA-256", certificate.publicKey.rawData));
  const ski = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  const keyIdentifier = ski?.keyId ?? hex(new Uint8Array(await certificate.publicKey.getThumbprint("SHA-1")));
  return {
    id: hex(spkiHash.slice(0, 8)),
    certificate,
    chain,
    chainPem: `${chain.map((c) => c.toString("pem")).join("\n")}\n`,
    key,
    signingAlgorithm: algorithms.sign,
    keyIdentifier,
  };
}

/** The configured CAs; the first issues. */
export class X509Authority {
  readonly cas: readonly [X509Ca, ...X509Ca[]];

  constructor(cas: readonly [X509Ca, ...X509Ca[]]) {
    this.cas = cas;
  }

  /** The CA that issues new certificates. */
  get issuing(): X509Ca {
    return this.cas[0];
  }

  /** The CA with this id, if configured. */
  byId(id: string): X509Ca | undefined {
    return this.cas.find((ca) => ca.id === id);
  }

  /** Every CA's chain, issuing CA first: what relying parties put in their trust store. */
  chainsPem(): string {
    return this.cas.map((ca) => ca.chainPem).join("");
  }

  /** Parses RUNPASS_X509_CA. Throws ConfigError naming what to fix (never echoing key material). */
  static async fromConfig(text: string | undefined): Promise<X509Authority> {
    if (!text) {
      throw new ConfigError(
        'RUNPASS_X509_CA is not set: the x509 grant needs a CA ({"certificate": "<PEM chain>", "key": "<PKCS#8 PEM>"}, docs/grants.md)',
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ConfigError("RUNPASS_X509_CA is not JSON");
    }
    const parsed = CaConfigSchema.safeParse(json);
    if (!parsed.success) {
      throw new ConfigError(
        'RUNPASS_X509_CA must be {"certificate": "<PEM chain, issuing CA first>", "key": "<PKCS#8 PEM>"} or a non-empty array of those',
      );
    }
    const entries = Array.isArray(parsed.data) ? parsed.data : [parsed.data];
    const cas = await Promise.all(
      entries.map((e, i) => loadEntry(e, Array.isArray(parsed.data) ? `[${i}]` : "")),
    );
    const ids = new Set(cas.map((c) => c.id));
    if (ids.size !== cas.length) throw new ConfigError("RUNPASS_X509_CA lists the same CA key twice");
    return new X509Authority(cas as [X509Ca, ...X509Ca[]]);
  }
}
