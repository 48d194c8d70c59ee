// Every key and secret a deployment needs, in the formats the Worker reads (docs/deploy.md, "The secrets file"):
// WebCrypto and jose only (plus @peculiar/x509 for the CA certificate), so the workerd tests run the same code.

import { exportJWK, generateKeyPair, type JWK } from "jose";
import { base64url } from "../core/encoding.ts";

/** The optional engines `runpass init --with` adds keys for. */
export const OPTIONAL_ENGINES = ["ssh", "x509"] as const;
export type OptionalEngine = (typeof OPTIONAL_ENGINES)[number];

/** The deployment's secrets: setting name → value, exactly what `wrangler secret bulk` uploads. */
export type DeploymentSecrets = Record<string, string>;

/** How long a generated X.509 issuing CA is valid: long enough to outlive several rotations of everything else. */
const X509_CA_VALIDITY_DAYS = 5 * 365;

/** Random bytes as base64url. */
export function randomSecret(bytes = 32): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function standardBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** A key id naming what the key is and when it was made, e.g. `es256-20261202-k3x9`, so rotations sort and read. */
export function keyId(prefix: string, now: Date): string {
  const day = now.toISOString().slice(0, 10).replace(/-/g, "");
  return `${prefix}-${day}-${randomSecret(3)}`;
}

/** A private signing JWK for RUNPASS_SIGNING_KEYS. */
export async function newSigningKey(alg: "ES256" | "RS256", now: Date): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === "RS256" ? { modulusLength: 3072 } : {}),
  });
  return { ...(await exportJWK(privateKey)), kid: keyId(alg.toLowerCase(), now), alg, use: "sig" };
}

/** One RUNPASS_MASTER_KEYS entry: 32 random bytes, standard base64. */
export function newMasterKey(): string {
  return standardBase64(crypto.getRandomValues(new Uint8Array(32)));
}

/** A private Ed25519 JWK for RUNPASS_SSH_CA_KEYS. */
export async function newSshCaKey(now: Date): Promise<JWK> {
  const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  return { ...(await exportJWK(privateKey)), kid: keyId("ssh-ca", now) };
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = standardBase64(new Uint8Array(der)).replace(/.{64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b64.replace(/\n$/, "")}\n-----END ${label}-----\n`;
}

/**
 * A self-signed ECDSA P-256 issuing CA for RUNPASS_X509_CA: `{ certificate, key }` (PEM certificate, PKCS#8 PEM
 * key). CA:TRUE with path length 0 (it issues leaf certificates only), keyCertSign and cRLSign.
 */
export async function newX509Ca(
  now: Date,
  name = "runpass CI issuing CA",
): Promise<{ certificate: string; key: string }> {
  // Loaded on demand: every `runpass` command imports this module, few make a CA. reflect-metadata first.
  await import("reflect-metadata");
  const x509 = await import("@peculiar/x509");
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = (await crypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
  const notBefore = new Date(now.getTime() - 60_000);
  const notAfter = new Date(now.getTime() + X509_CA_VALIDITY_DAYS * 86_400_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) =>
      b.toString(16).padStart(2, "0"),
    )
      .join("")
      .replace(/^[89a-f]/, "1"),
    name: `CN=${name}, O=runpass`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certificate: cert.toString("pem").replace(/\r\n/g, "\n").replace(/\n?$/, "\n"),
    key: pem("PRIVATE KEY", (await crypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer),
  };
}

/** Options of {@link generateSecrets}. */
export interface GenerateOptions {
  with?: readonly OptionalEngine[];
  now?: Date;
}

/**
 * Generates every secret a deployment needs. RUNPASS_SIGNING_KEYS holds an ES256 key (first: it signs) and an
 * RS256 key (clouds that accept only RS256 assertions, gcp and azure, use it).
 */
export async function generateSecrets(options: GenerateOptions = {}): Promise<DeploymentSecrets> {
  const now = options.now ?? new Date();
  const masterKid = keyId("m", now);
  const secrets: DeploymentSecrets = {
    RUNPASS_SIGNING_KEYS: JSON.stringify([
      await newSigningKey("ES256", now),
      await newSigningKey("RS256", now),
    ]),
    RUNPASS_AUDIT_KEY: randomSecret(32),
    RUNPASS_ADMIN_TOKEN: `rpa_${randomSecret(32)}`,
    RUNPASS_MASTER_KEYS: JSON.stringify({ active: masterKid, keys: { [masterKid]: newMasterKey() } }),
    GITHUB_WEBHOOK_SECRET: randomSecret(32),
    GITLAB_WEBHOOK_TOKEN: randomSecret(32),
    RUNPASS_ALERT_SECRET: randomSecret(32),
  };
  if (options.with?.includes("ssh")) secrets.RUNPASS_SSH_CA_KEYS = JSON.stringify([await newSshCaKey(now)]);
  if (options.with?.includes("x509")) secrets.RUNPASS_X509_CA = JSON.stringify(await newX509Ca(now));
  return secrets;
}
