// The core's Ledger interface over the RunLedger Durable Object namespace: one object per run key.

import type { AuditRecord } from "../core/audit/record.ts";
import type { LeaseGrant } from "../core/lease.ts";
import type {
  CommitInput,
  CommitOutcome,
  EndContext,
  EndLeaseOutcome,
  EndRunOutcome,
  LeaseView,
  Ledger,
  RenewableLease,
} from "../core/ledger.ts";
import type { RunLedger, WebhookAudit, WebhookScope } from "./run-ledger.ts";

export class DurableLedger implements Ledger {
  readonly ns: DurableObjectNamespace<RunLedger>;

  constructor(ns: DurableObjectNamespace<RunLedger>) {
    this.ns = ns;
  }

  #stub(runKey: string): DurableObjectStub<RunLedger> {
    return this.ns.get(this.ns.idFromName(runKey));
  }

  async commit(runKey: string, input: CommitInput): Promise<CommitOutcome> {
    return (await this.#stub(runKey).commit(input)) as CommitOutcome;
  }

  async peek(
    runKey: string,
    singleUse: string,
    deliverOnce?: string,
  ): Promise<{ replayed: boolean; runEnded: boolean; delivered?: boolean }> {
    return await this.#stub(runKey).peek(singleUse, deliverOnce);
  }

  /** Ends a whole run (webhook or admin revoke by run). */
  async endRun(ctx: EndContext, webhook?: WebhookAudit, scope?: WebhookScope): Promise<EndRunOutcome> {
    return (await this.#stub(ctx.run).endRun(ctx, webhook, scope)) as EndRunOutcome;
  }

  /** Ends one lease; with `revokeHash`, only if it matches the lease's. */
  async endLease(leaseId: string, ctx: EndContext, revokeHash?: string): Promise<EndLeaseOutcome> {
    return (await this.#stub(ctx.run).endLease(leaseId, ctx, revokeHash)) as EndLeaseOutcome;
  }

  /** Ends a run's active leases (optionally one policy's) without ending the run. */
  async endLeases(ctx: EndContext, policy?: string): Promise<number> {
    return await this.#stub(ctx.run).endLeases(ctx, policy);
  }

  async renewable(
    runKey: string,
    leaseId: string,
    revokeHash: string,
    now: number,
  ): Promise<RenewableLease | "not_found" | "ended" | { retryAfterMs: number }> {
    return (await this.#stub(runKey).renewable(leaseId, revokeHash, now)) as
      | RenewableLease
      | "not_found"
      | "ended"
      | { retryAfterMs: number };
  }

  async addGrants(
    runKey: string,
    leaseId: string,
    grants: LeaseGrant[],
    audit: AuditRecord,
    now: number,
  ): Promise<boolean> {
    return await this.#stub(runKey).addGrants(leaseId, grants, audit, now);
  }

  async lease(runKey: string, leaseId: string): Promise<LeaseView | null> {
    return (await this.#stub(runKey).lease(leaseId)) as LeaseView | null;
  }
}
