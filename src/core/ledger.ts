// The run ledger as the core sees it: a strongly consistent store per run key (a Durable Object in the Worker).

import type { AuditGrant, AuditRecord } from "./audit/record.ts";

export interface LeaseInput {
  id: string;
  /** sha256 of the revoke token; the token itself is never stored. */
  revokeHash: string;
  policy: string;
  createdAt: number;
  expiresAt: number;
  grants: AuditGrant[];
}

export interface CommitInput {
  /** sha256 of the token's single-use id. */
  singleUse: string;
  /** When the single-use record may be forgotten (token exp + skew), ms. */
  singleUseExpiresAt: number;
  lease: LeaseInput;
  /** The allow record; durable before commit returns. */
  audit: AuditRecord;
}

export type CommitOutcome = { ok: true } | { ok: false; reason: "replayed" | "run_ended" };

export interface Ledger {
  /** Atomically consumes the token and records the lease and its audit record, or refuses (and records the refusal). */
  commit(runKey: string, input: CommitInput): Promise<CommitOutcome>;
  /** Read-only view for explain. */
  peek(runKey: string, singleUse: string): Promise<{ replayed: boolean; runEnded: boolean }>;
}

/** Where records of decisions that never reach a run ledger go (bad input, invalid tokens, policy denials, explain). */
export interface AuditSink {
  write(record: AuditRecord): void;
}
