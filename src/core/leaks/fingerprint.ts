// Leak fingerprints (docs/leaks.md): a keyed HMAC of every credential value runpass hands out, so a leaked string
// can be traced to its lease or secret version without runpass ever keeping the value.

import { deriveHmacKey, hmac } from "../crypto.ts";
import { base64url } from "../encoding.ts";
import { type Credentials, grantModule, MINT_ORDER } from "../grants/registry.ts";
import type { GrantName } from "../policy/types.ts";

/** The HKDF label of the fingerprint key: never reused for anything else (docs/leaks.md, Fingerprints). */
export const LEAK_FINGERPRINT_KEY_LABEL = "runpass/leak-fingerprint/v1";

/** What a fingerprint was taken of: a grant's credential, the lease's revoke token, or a secret version. */
export type LeakKind = Exclude<GrantName, "secrets"> | "revoke_token" | "secret";

/** One fingerprinted value of a lease: its kind and digest, and for upstream credentials the id to search logs for. */
export interface LeaseFingerprint {
  kind: LeakKind;
  fp: string;
  /**
   * The upstream's identifier of the credential (the AWS access key id), sealed to the lease: clients mask it
   * like any credential value, so audit records and logs carry it only encrypted; a leak match opens it.
   */
  ref?: string;
}

/** Keyed fingerprints under a key derived from RUNPASS_AUDIT_KEY with its own label. */
export class Fingerprinter {
  readonly #key: Promise<CryptoKey>;

  constructor(auditKey: string) {
    this.#key = deriveHmacKey(auditKey, LEAK_FINGERPRINT_KEY_LABEL);
  }

  /** `lfp:<base64url HMAC-SHA256>` of a value (surrounding whitespace is not part of a credential). */
  async digest(value: string): Promise<string> {
    return `lfp:${base64url(await hmac(await this.#key, value.trim()))}`;
  }
}

/**
 * Fingerprints of every credential value an exchange or renewal returns, from each grant module's own
 * `secretValues` (so a new grant is covered without a list here), plus the revoke token when given. Secret
 * bundles are left out: their versions are fingerprinted when written, and a leaked secret is quarantined,
 * not traced to one run.
 */
export async function credentialFingerprints(
  fingerprinter: Fingerprinter,
  credentials: Credentials,
  revokeToken?: string,
  sealRef?: (ref: string) => Promise<string>,
): Promise<LeaseFingerprint[]> {
  const out: LeaseFingerprint[] = [];
  for (const name of MINT_ORDER) {
    const credential = credentials[name];
    if (credential === undefined || name === "secrets") continue;
    const module = grantModule(name);
    const typed = credential as Parameters<typeof module.secretValues>[0];
    const id = module.upstreamId?.(typed);
    const ref = id !== undefined && sealRef ? await sealRef(id) : undefined;
    for (const value of new Set(module.secretValues(typed))) {
      if (!value) continue;
      out.push({
        kind: name as LeakKind,
        fp: await fingerprinter.digest(value),
        ...(ref !== undefined ? { ref } : {}),
      });
    }
  }
  if (revokeToken !== undefined) {
    out.push({ kind: "revoke_token", fp: await fingerprinter.digest(revokeToken) });
  }
  return out;
}
