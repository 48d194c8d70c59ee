// Leases: ids that name their run, why leases end, and the per-grant record a lease keeps for revocation.

import { deriveHmacKey, equalText, hmac, randomId } from "./crypto.ts";
import { base64url, utf8 } from "./encoding.ts";
import type { ExchangeInputs } from "./grants/module.ts";
import type { GrantName } from "./policy/types.ts";
import { decodeUtf8 } from "./read-capped.ts";

/** Why a lease ended (audit records and the lease list carry it). */
export type LeaseEndReason =
  | "expired"
  | "run_completed"
  | "revoked_by_client"
  | "admin_revoke"
  /** A leak report named one of the run's credentials (docs/leaks.md). */
  | "leak_reported";

/** What a lease remembers about one issued credential. */
export interface LeaseGrant {
  type: GrantName;
  /** `hmac-sha256:` digest of the credential's identifier. */
  id: string;
  expires_at: string;
  /** Opaque handle a grant's revoker needs to recall it upstream (never the credential in clear). */
  revocation?: string;
  /**
   * The key material the credential certifies (an OpenSSH public key, a CSR): renewal passes it back to the grant
   * so it re-signs the same key (docs/grants.md). Public by nature, but kept out of audit records (size).
   */
  inputs?: ExchangeInputs;
  /** Secrets: which secret and version was delivered, and under which name (id digests `secret:<path>@<version>`, never the value). */
  path?: string;
  version?: number;
  name?: string;
}

/** What renewal passes back to the grants: the key material the lease's latest credentials certify. */
export function renewalInputs(grants: readonly LeaseGrant[]): ExchangeInputs {
  return Object.assign({}, ...grants.map((g) => g.inputs ?? {})) as ExchangeInputs;
}

/**
 * Renewal spacing (docs/security.md, "Renewal is bounded"): half the shortest lifetime among the credentials
 * issued at `issuedAt` (secrets are not re-minted, so they do not count), or half the rest of the lease.
 */
export function renewalIntervalMs(
  grants: readonly LeaseGrant[],
  issuedAt: number,
  leaseExpiresAt: number,
): number {
  const lifetimes = grants
    .filter((g) => g.type !== "secrets")
    .map((g) => Date.parse(g.expires_at) - issuedAt)
    .filter((ms) => Number.isFinite(ms) && ms > 0);
  const shortest = lifetimes.length > 0 ? Math.min(...lifetimes) : leaseExpiresAt - issuedAt;
  return Math.max(1000, Math.floor(shortest / 2));
}

// `lse_<base64url(run key)>.<random>[.<mac>]`: the mac (HMAC-SHA256 truncated to 128 bits, under a key derived
// from RUNPASS_AUDIT_KEY with its own label) was added later; ids without one are legacy (docs/security.md,
// "Forged lease ids touch nothing").
const LEASE_ID = /^lse_([A-Za-z0-9_-]{1,1024})\.([A-Za-z0-9_-]{16,64})(?:\.([A-Za-z0-9_-]{22}))?$/;

/** The HKDF label of the lease-id MAC key: never reused for anything else. */
export const LEASE_ID_KEY_LABEL = "runpass/lease-id-mac/v1";

/** Mints lease ids that carry their run key and a MAC, and opens only ids this deployment minted. */
export class LeaseIds {
  readonly #key: Promise<CryptoKey>;

  constructor(auditKey: string) {
    this.#key = deriveHmacKey(auditKey, LEASE_ID_KEY_LABEL);
  }

  /** A new lease id for a lease of `runKey`. */
  async mint(runKey: string): Promise<string> {
    const body = `lse_${base64url(utf8(runKey))}.${randomId("r").slice(2)}`;
    return `${body}.${await this.#mac(body)}`;
  }

  /**
   * The run key of an id this deployment minted; undefined for anything else (malformed, forged, altered, or
   * minted before ids carried a MAC), decided before any storage is addressed.
   */
  async open(id: string): Promise<string | undefined> {
    const m = LEASE_ID.exec(id);
    const mac = m?.[3];
    if (!m || !mac) return undefined;
    const body = id.slice(0, id.length - mac.length - 1);
    if (!equalText(mac, await this.#mac(body))) return undefined;
    return decodeRunKey(m[1] as string);
  }

  async #mac(body: string): Promise<string> {
    return base64url((await hmac(await this.#key, body)).slice(0, 16));
  }
}

/**
 * The run key inside a lease id, without checking its MAC: only for ids that arrive inside a token runpass
 * signed (introspection), whose signature already vouches for them. Undefined when malformed.
 */
export function runKeyOfSignedLeaseId(id: string): string | undefined {
  const m = LEASE_ID.exec(id);
  return m ? decodeRunKey(m[1] as string) : undefined;
}

function decodeRunKey(encoded: string): string | undefined {
  try {
    const b64 = encoded.replace(/-/g, "+").replace(/_/g, "/");
    const text = decodeUtf8(
      Uint8Array.from(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")), (ch) => ch.charCodeAt(0)),
    );
    return /^(github|gitlab|token):/.test(text) ? text : undefined;
  } catch {
    return undefined;
  }
}
