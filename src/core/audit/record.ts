// Audit records: one per decision, identifiers as keyed digests, never a token, credential or secret value.

import type { AuditHasher } from "../crypto.ts";
import { randomId } from "../crypto.ts";
import type { ErrorCode, Reason } from "../errors.ts";
import type { LeaseFingerprint } from "../leaks/fingerprint.ts";
import type { LeaseEndReason, LeaseGrant } from "../lease.ts";
import type { VerifiedToken } from "../oidc/verify.ts";

/** What the record is about: a decision on a token, a lease ending, a webhook, an admin or client action. */
export type AuditEvent =
  | "exchange"
  | "explain"
  | "lease_end"
  | "revocation"
  | "webhook"
  | "lease_delete"
  | "renew"
  | "admin_revoke"
  | "admin"
  | "secret_admin"
  | "introspect"
  /** One aggregated record per rate-limit key and window; `count` = requests refused (429) in it. */
  | "rate_limit"
  /** A leak report and each step it caused (docs/leaks.md). */
  | "leak"
  /** An alert raised, delivered or given up on (docs/leaks.md, Alerts). */
  | "alert";

/** One issued credential, by digest (the lease's view of a grant, minus any revocation handle). */
export type AuditGrant = Omit<LeaseGrant, "revocation" | "inputs">;

/** A lease's grants as audit records carry them: without revocation handles or key material. */
export function auditGrants(grants: readonly LeaseGrant[]): AuditGrant[] {
  return grants.map(({ revocation: _r, inputs: _i, ...g }) => g);
}

export interface AuditRecord {
  id: string;
  /** ISO 8601. */
  ts: string;
  request_id: string;
  event: AuditEvent;
  decision: "allow" | "deny";
  error?: ErrorCode;
  /** The full trace of failed checks (expected values are policy data, never token values). */
  reasons: Reason[];
  policy?: string;
  policy_version?: string;
  /** Absent on records the run ledger writes on its own (alarms), which no policy set decided. */
  policy_set_version?: string;
  issuer?: string;
  run?: string;
  lease_id?: string;
  lease_expires_at?: string;
  end_reason?: LeaseEndReason;
  /** Webhook delivery id (GitHub X-GitHub-Delivery, GitLab X-Gitlab-Event-UUID). */
  delivery?: string;
  /** Operator-facing detail (e.g. why an upstream revocation failed); never a credential. */
  detail?: string;
  /**
   * Revocation records: where the credential's upstream revocation stands after this attempt — `pending` (failed,
   * another attempt is scheduled), `done` (revoked, or nothing to revoke), `failed` (given up).
   */
  upstream_revoke?: "pending" | "done" | "failed";
  subject?: string;
  owner_id?: string;
  owner?: string;
  repository_id?: string;
  project_id?: string;
  repository?: string;
  ref?: string;
  /** `hmac-sha256:` digest of the token's single-use id. */
  token_id?: string;
  /** The CI workflow or pipeline definition that ran (GitHub `workflow_ref`, GitLab `ci_config_ref_uri`). */
  workflow?: string;
  /** The CI user who started the run (GitHub `actor`, GitLab `user_login`). */
  triggered_by?: string;
  /** Who performed an admin action: the Cloudflare Access email, or `admin-token` (docs/console.md). */
  actor?: string;
  grants?: AuditGrant[];
  /**
   * Leak fingerprints of the credential values this exchange or renewal returned (keyed digests, never values);
   * the audit store indexes them for leak reports (docs/leaks.md).
   */
  fingerprints?: LeaseFingerprint[];
  /** Records aggregated under floods carry how many decisions they stand for. */
  count: number;
}

export interface AuditBase {
  requestId: string;
  event: AuditEvent;
  policySetVersion: string;
  now: number;
  policy?: { name: string; version: string };
}

/** Builds a record for `token` (which may be unverified/absent for early denials). */
export async function auditRecord(
  base: AuditBase,
  hasher: AuditHasher,
  decision: { decision: "allow" | "deny"; error?: ErrorCode; reasons: Reason[] },
  token?: VerifiedToken,
): Promise<AuditRecord> {
  const record: AuditRecord = {
    id: randomId("aud"),
    ts: new Date(base.now).toISOString(),
    request_id: base.requestId,
    event: base.event,
    decision: decision.decision,
    ...(decision.error ? { error: decision.error } : {}),
    reasons: decision.reasons,
    ...(base.policy ? { policy: base.policy.name, policy_version: base.policy.version } : {}),
    policy_set_version: base.policySetVersion,
    count: 1,
  };
  if (token) {
    const id = token.identity;
    record.issuer = id.issuer;
    if (id.runKey) record.run = id.runKey;
    record.subject = id.subject;
    if (id.ownerId !== undefined) record.owner_id = id.ownerId;
    if (id.ownerName !== undefined) record.owner = id.ownerName;
    if (id.repositoryId !== undefined) {
      if (id.kind === "gitlab") record.project_id = id.repositoryId;
      else record.repository_id = id.repositoryId;
    }
    if (id.repositoryName !== undefined) record.repository = id.repositoryName;
    if (id.ref !== undefined) record.ref = id.ref;
    // Who and what started the run, for the compliance report (docs/console.md); claims are verified by now.
    const claims = token.claims;
    const workflow = claims.workflow_ref ?? claims.ci_config_ref_uri;
    if (typeof workflow === "string") record.workflow = workflow.slice(0, 512);
    const starter = claims.actor ?? claims.user_login;
    if (typeof starter === "string") record.triggered_by = starter.slice(0, 128);
    // The raw jti, so an admin can find a token's records with /v1/admin/audit-hash { value: jti }.
    record.token_id = await hasher.digest(token.standard.jti ?? token.singleUseId);
  }
  return record;
}

/** The record a refused commit leaves instead of the allow record it would have written. */
export function refusedRecord(
  allow: AuditRecord,
  reason: "replayed" | "run_ended" | "already_delivered",
): AuditRecord {
  const { lease_id: _lease, grants: _grants, ...rest } = allow;
  return {
    ...rest,
    id: `${allow.id}-refused`,
    decision: "deny",
    error: reason === "replayed" ? "token_replayed" : "access_denied",
    reasons: [{ code: reason === "already_delivered" ? "secrets_already_delivered" : reason }],
  };
}

/** One JSON line for Workers Logs (SIEM-friendly); records never hold secrets, so they can be logged whole. */
export function auditLogLine(record: AuditRecord): string {
  return JSON.stringify({ type: "runpass.audit", ...record });
}
