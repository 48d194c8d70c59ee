// Hashes, HMAC digests, random identifiers and constant-time comparison on WebCrypto.

import { base64url, hex, utf8 } from "./encoding.ts";

/** `sha256:<hex>` of a string. */
export async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", utf8(text));
  return `sha256:${hex(new Uint8Array(digest))}`;
}

/** A random identifier with a readable prefix: `prefix_<22 base64url chars>` (128 bits). */
export function randomId(prefix: string, bytes = 16): string {
  return `${prefix}_${base64url(crypto.getRandomValues(new Uint8Array(bytes)))}`;
}

/** Keyed digests for audit records (`hmac-sha256:<base64url>`), so identifiers are searchable but not readable. */
export class AuditHasher {
  readonly #key: Promise<CryptoKey>;

  constructor(secret: string) {
    this.#key = crypto.subtle.importKey("raw", utf8(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]);
  }

  /** The digest audit records show for `value`. */
  async digest(value: string): Promise<string> {
    const mac = await crypto.subtle.sign("HMAC", await this.#key, utf8(value));
    return `hmac-sha256:${base64url(new Uint8Array(mac))}`;
  }
}

/**
 * An HMAC-SHA256 key derived (HKDF-SHA256) from `secret` under its own `label`: one configured secret can
 * then key unrelated purposes without a value computed for one being usable, or computable, for another.
 */
export async function deriveHmacKey(secret: string, label: string): Promise<CryptoKey> {
  const ikm = await crypto.subtle.importKey("raw", utf8(secret), "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: utf8(label) },
    ikm,
    { name: "HMAC", hash: "SHA-256", length: 256 },
    false,
    ["sign"],
  );
}

/** HMAC-SHA256 of `text` under `key`, raw bytes. */
export async function hmac(key: CryptoKey, text: string | Uint8Array): Promise<Uint8Array> {
  // Bytes here come from request bodies and encoders, never from a SharedArrayBuffer; the standard lib's
  // BufferSource says so only for ArrayBuffer-backed views.
  const data = typeof text === "string" ? utf8(text) : (text as Uint8Array<ArrayBuffer>);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, data));
}

/** Compares two byte strings without an early exit (lengths are not secret here). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/**
 * Compares two strings of public length (hex digests, MACs, hashes of tokens) without an early exit: the one
 * constant-time comparison for text whose length is not secret. Secrets of secret length use
 * timingSafeEqualText.
 */
export function equalText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Compares two secrets in constant time (hashing first so lengths do not leak). */
export async function timingSafeEqualText(a: string, b: string): Promise<boolean> {
  const [ha, hb] = await Promise.all([
    crypto.subtle.digest("SHA-256", utf8(a)),
    crypto.subtle.digest("SHA-256", utf8(b)),
  ]);
  return equalBytes(new Uint8Array(ha), new Uint8Array(hb));
}
