// Sealed revocation handles: what a revoker needs later (e.g. a GitHub token, to DELETE it at lease end) is
// stored in the run ledger only encrypted (AES-256-GCM, key derived from RUNPASS_AUDIT_KEY, bound to the lease).

import { base64url, utf8 } from "../encoding.ts";

const INFO = utf8("runpass/revocation-handle/v1");

function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "="));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** Encrypts and decrypts revocation handles; a handle opens only for the lease it was sealed for. */
export class Sealer {
  readonly #key: Promise<CryptoKey>;

  constructor(secret: string) {
    this.#key = (async () => {
      const base = await crypto.subtle.importKey("raw", utf8(secret), "HKDF", false, ["deriveKey"]);
      return crypto.subtle.deriveKey(
        { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: INFO },
        base,
        { name: "AES-GCM", length: 256 },
        false,
        ["encrypt", "decrypt"],
      );
    })();
  }

  /** `v1.<iv>.<ciphertext>` of `plaintext`, authenticated with `leaseId`. */
  async seal(plaintext: string, leaseId: string): Promise<string> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: utf8(leaseId) },
      await this.#key,
      utf8(plaintext),
    );
    return `v1.${base64url(iv)}.${base64url(new Uint8Array(ct))}`;
  }

  /** The plaintext, or undefined when the handle is malformed, tampered with or sealed for another lease. */
  async open(handle: string, leaseId: string): Promise<string | undefined> {
    const [v, iv, ct] = handle.split(".");
    if (v !== "v1" || !iv || !ct) return undefined;
    try {
      const pt = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: fromBase64url(iv), additionalData: utf8(leaseId) },
        await this.#key,
        fromBase64url(ct),
      );
      return new TextDecoder().decode(pt);
    } catch {
      return undefined;
    }
  }
}
