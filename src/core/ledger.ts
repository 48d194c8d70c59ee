// The run ledger as the core sees it: a strongly consistent store per run key (a Durable Object in the Worker).

import type { AuditRecord } from "./audit/record.ts";
import type { ExchangeInputs } from "./grants/module.ts";
import type { LeaseEndReason, LeaseGrant } from "./lease.ts";
import type { GrantName } from "./policy/types.ts";

export interface LeaseInput {
  id: string;
  /** sha256 of the revoke token; the token itself is never stored. */
  revokeHash: string;
  policy: string;
  createdAt: number;
  expiresAt: number;
  grants: LeaseGrant[];
  /** The verified identity the lease was issued to (claims are policy data, not secrets), for renewal. */
  subject: LeaseSubject;
}

export interface LeaseSubject {
  /** Issuer name (from the bundle). */
  issuer: string;
  claims: Record<string, unknown>;
  sub: string;
}

/** What renewal needs from a live lease. */
export interface RenewableLease {
  policy: string;
  /** ms since the epoch. */
  expires_at: number;
  subject: LeaseSubject;
  grant_types: GrantName[];
  /** Key material the lease's credentials certify, for renewal to re-sign (LeaseGrant.inputs). */
  inputs: ExchangeInputs;
}

export interface CommitInput {
  /** sha256 of the token's single-use id. */
  singleUse: string;
  /** When the single-use record may be forgotten (token exp + skew), ms. */
  singleUseExpiresAt: number;
  lease: LeaseInput;
  /** The allow record; durable before commit returns. */
  audit: AuditRecord;
  /** A deliver_once policy: refuse (and remember) a second delivery of its secrets to this run. */
  deliverOnce?: string;
  /**
   * Count this run's leases created at or after this time (ms), this one included, into the outcome's `recent`:
   * the per-run issuance alert counts on the run's own object instead of a counter object (docs/leaks.md).
   */
  countSince?: number;
}

export type CommitOutcome =
  | { ok: true; recent?: number }
  | { ok: false; reason: "replayed" | "run_ended" | "already_delivered" };

/** Who asked for leases to end, for the audit records the ledger writes. */
export interface EndContext {
  /** The run key (the object's name), remembered for records the alarm writes later. */
  run: string;
  requestId: string;
  policySetVersion: string;
  reason: LeaseEndReason;
}

/** The outcome of ending a whole run (webhook or admin). */
export interface EndRunOutcome {
  /** The delivery id was seen before: nothing changed. */
  duplicate: boolean;
  /** The run had already ended before this call. */
  alreadyEnded: boolean;
  /** Leases this call ended. */
  ended: number;
  /** A scoped delivery named a run whose verified claims lie outside its scope: nothing changed. */
  outOfScope?: boolean;
}

export type EndLeaseOutcome = "ended" | "already_ended" | "not_found";

/** One lease as the ledger reports it (never the revoke token or revocation handles). */
export interface LeaseView {
  id: string;
  policy: string;
  created_at: number;
  expires_at: number;
  ended_at: number | null;
  end_reason: LeaseEndReason | null;
}

export interface Ledger {
  /** Atomically consumes the token and records the lease and its audit record, or refuses (and records the refusal). */
  commit(runKey: string, input: CommitInput): Promise<CommitOutcome>;
  /** Read-only view for explain. */
  peek(
    runKey: string,
    singleUse: string,
    deliverOnce?: string,
  ): Promise<{ replayed: boolean; runEnded: boolean; delivered?: boolean }>;
}

/** Where records of decisions that never reach a run ledger go (bad input, invalid tokens, policy denials, explain). */
export interface AuditSink {
  write(record: AuditRecord): void;
}
