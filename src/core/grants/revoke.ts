// Revocation hooks: each grant type may register a revoker that recalls its credential upstream when the
// lease ends (webhook, DELETE, alarm or admin). Grants without one simply expire with the lease.

import type { LeaseGrant } from "../lease.ts";
import type { GrantName } from "../policy/types.ts";

export interface RevocationResult {
  status: "revoked" | "not_revocable" | "failed";
  /** Worth another attempt later (network, 5xx, rate limit). */
  retryable: boolean;
  /** Operator-facing detail for the audit record (never a credential). */
  detail?: string;
}

/** Recalls one credential. Must be idempotent: a retried revocation of a revoked credential succeeds. */
export interface GrantRevoker {
  revoke(grant: LeaseGrant, leaseId: string): Promise<RevocationResult>;
}

/** One revoker per grant name: a new grant cannot be forgotten here (not being revocable is an answer too). */
export type Revokers = Record<GrantName, GrantRevoker>;

/**
 * runpass-signed tokens cannot be recalled once handed out; ending the lease lists them as revoked, so
 * `/v1/introspect` answers `active: false` from then on.
 */
export const tokenRevoker: GrantRevoker = {
  async revoke() {
    return { status: "revoked", retryable: false };
  },
};

/** Runs the revoker for `grant`, turning a throw into a retryable failure. */
export async function revokeGrant(
  revokers: Revokers,
  grant: LeaseGrant,
  leaseId: string,
): Promise<RevocationResult> {
  const revoker = revokers[grant.type];
  try {
    return await revoker.revoke(grant, leaseId);
  } catch {
    return { status: "failed", retryable: true, detail: "the revoker failed unexpectedly" };
  }
}
