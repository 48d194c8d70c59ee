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

/** Compares two secrets in constant time (hashing first so lengths do not leak). */
export async function timingSafeEqualText(a: string, b: string): Promise<boolean> {
  const [ha, hb] = await Promise.all([
    crypto.subtle.digest("SHA-256", utf8(a)),
    crypto.subtle.digest("SHA-256", utf8(b)),
  ]);
  const x = new Uint8Array(ha);
  const y = new Uint8Array(hb);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= (x[i] as number) ^ (y[i] as number);
  return diff === 0;
}
