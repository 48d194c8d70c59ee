// Leases: ids that name their run, why leases end, and the per-grant record a lease keeps for revocation.

import { randomId } from "./crypto.ts";
import { base64url, utf8 } from "./encoding.ts";
import type { GrantName } from "./policy/types.ts";
import { decodeUtf8 } from "./read-capped.ts";

/** Why a lease ended (audit records and the lease list carry it). */
export type LeaseEndReason = "expired" | "run_completed" | "revoked_by_client" | "admin_revoke";

/** What a lease remembers about one issued credential. */
export interface LeaseGrant {
  type: GrantName;
  /** `hmac-sha256:` digest of the credential's identifier. */
  id: string;
  expires_at: string;
  /** Opaque handle a grant's revoker needs to recall it upstream (never the credential in clear). */
  revocation?: string;
  /** Secrets: which secret and version was delivered, and under which name (id digests `secret:<path>@<version>`, never the value). */
  path?: string;
  version?: number;
  name?: string;
}

const LEASE_ID = /^lse_([A-Za-z0-9_-]{1,1024})\.([A-Za-z0-9_-]{16,64})$/;

/** Lease ids carry their run key so `DELETE /v1/leases/{id}` finds the run's ledger without a lookup table. */
export function leaseIdFor(runKey: string): string {
  return `lse_${base64url(utf8(runKey))}.${randomId("r").slice(2)}`;
}

/** The run key inside a lease id, or undefined when the id is not one runpass could have made. */
export function runKeyOfLeaseId(id: string): string | undefined {
  const m = LEASE_ID.exec(id);
  if (!m) return undefined;
  try {
    const b64 = (m[1] as string).replace(/-/g, "+").replace(/_/g, "/");
    const text = decodeUtf8(
      Uint8Array.from(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")), (ch) => ch.charCodeAt(0)),
    );
    return /^(github|gitlab|token):/.test(text) ? text : undefined;
  } catch {
    return undefined;
  }
}
