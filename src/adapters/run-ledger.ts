// The per-run ledger (docs/architecture.md, State and The run lifecycle): used token ids, leases, the run's state, webhook deliveries, pending
// upstream revocations and an audit outbox, in one Durable Object per run.

import { DurableObject } from "cloudflare:workers";
import { type AuditRecord, auditGrants, refusedRecord } from "../core/audit/record.ts";
import { REVOCATION_BACKOFF_MS, REVOCATION_MAX_ATTEMPTS, RUN_ENDED_RETENTION_MS } from "../core/constants.ts";
import { equalText, randomId } from "../core/crypto.ts";
import { revokeGrant } from "../core/grants/revoke.ts";
import { type LeaseEndReason, type LeaseGrant, renewalInputs, renewalIntervalMs } from "../core/lease.ts";
import type {
  CommitInput,
  CommitOutcome,
  EndContext,
  EndLeaseOutcome,
  EndRunOutcome,
  LeaseSubject,
  LeaseView,
  RenewableLease,
} from "../core/ledger.ts";
import { ruleMatches } from "../core/revocation-rules.ts";
import { enqueueAudit, OUTBOX_RETRY_MS, outboxPending, shipOutbox } from "./audit-outbox.ts";
import type { Env } from "./env.ts";
import { revocationRegistry } from "./revocation-registry.ts";
import { revokersFor } from "./revokers.ts";
import { RUN_LEDGER_SCHEMA } from "./run-ledger-schema.ts";
import { applySchema } from "./sqlite-schema.ts";

type LeaseRow = {
  id: string;
  revoke_hash: string;
  policy: string;
  created_at: number;
  expires_at: number;
  ended_at: number | null;
  end_reason: LeaseEndReason | null;
  grants: string;
  subject: string | null;
  /** JSON {issuer, repository_id?, project_id?}: what the lease index records (revocation rules match it). */
  scope: string | null;
  renew_interval_ms: number | null;
  /** Earliest next renewal (ms, the Worker's clock). */
  renew_after: number | null;
  /** 1 once the lease was shipped to the lease index and the revocation rules were consulted after that. */
  rules_checked: number;
};

/** The scope of a delivery signed with a derived webhook secret: the run's verified claims must lie inside it. */
export interface WebhookScope {
  issuer: string;
  /** The claim that names the scope: repository_owner_id, repository_id, project_id or namespace_id. */
  claim: string;
  value: string;
}

/** The webhook record a run-ending delivery leaves (valid signature; duplicate or not). */
export interface WebhookAudit {
  /** Deduplicates redeliveries when present. */
  delivery?: string;
  record: AuditRecord;
}

/**
 * One instance per CI run (or per token, for tokens that name no run). Single-threaded and strongly
 * consistent, so "has this jti been used?", "has the run ended?" and "issue it" cannot race.
 */
export class RunLedger extends DurableObject<Env> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    applySchema(this.#sql, RUN_LEDGER_SCHEMA);
  }

  /**
   * Atomically: refuse if the run ended or the token was used; otherwise mark the token used, store the
   * lease and the audit record. A refusal writes its own deny record. Durable before the caller sees the result.
   */
  async commit(input: CommitInput): Promise<CommitOutcome> {
    const outcome = this.ctx.storage.transactionSync((): CommitOutcome => {
      if (this.#runEnded()) {
        this.#enqueue(refusedRecord(input.audit, "run_ended"));
        return { ok: false, reason: "run_ended" };
      }
      const used = this.#sql.exec("SELECT 1 FROM used_tokens WHERE id = ?", input.singleUse).toArray();
      if (used.length > 0) {
        this.#enqueue(refusedRecord(input.audit, "replayed"));
        return { ok: false, reason: "replayed" };
      }
      if (input.deliverOnce !== undefined) {
        if (this.#delivered(input.deliverOnce)) {
          this.#enqueue(refusedRecord(input.audit, "already_delivered"));
          return { ok: false, reason: "already_delivered" };
        }
        this.#sql.exec(
          "INSERT INTO once_deliveries (policy, at) VALUES (?, ?)",
          input.deliverOnce,
          Date.now(),
        );
      }
      this.#sql.exec(
        "INSERT INTO used_tokens (id, expires_at) VALUES (?, ?)",
        input.singleUse,
        input.singleUseExpiresAt,
      );
      this.#remember(input.audit.run);
      const l = input.lease;
      const interval = renewalIntervalMs(l.grants, l.createdAt, l.expiresAt);
      const { audit } = input;
      const scope = {
        issuer: l.subject.issuer,
        ...(audit.repository_id !== undefined ? { repository_id: audit.repository_id } : {}),
        ...(audit.project_id !== undefined ? { project_id: audit.project_id } : {}),
      };
      this.#sql.exec(
        "INSERT INTO leases (id, revoke_hash, policy, created_at, expires_at, grants, subject, scope, renew_interval_ms, renew_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        l.id,
        l.revokeHash,
        l.policy,
        l.createdAt,
        l.expiresAt,
        JSON.stringify(l.grants),
        JSON.stringify(l.subject),
        JSON.stringify(scope),
        interval,
        l.createdAt + interval,
      );
      this.#enqueue(input.audit);
      if (input.countSince === undefined) return { ok: true };
      const recent = this.#sql
        .exec<{ n: number }>("SELECT COUNT(*) AS n FROM leases WHERE created_at >= ?", input.countSince)
        .one().n;
      return { ok: true, recent };
    });
    await this.#armAt(Date.now());
    return outcome;
  }

  /** Read-only: would this token be refused as replayed, or because the run ended? (for explain) */
  async peek(
    singleUse: string,
    deliverOnce?: string,
  ): Promise<{ replayed: boolean; runEnded: boolean; delivered?: boolean }> {
    const used = this.#sql.exec("SELECT 1 FROM used_tokens WHERE id = ?", singleUse).toArray();
    return {
      replayed: used.length > 0,
      runEnded: this.#runEnded(),
      ...(deliverOnce !== undefined ? { delivered: this.#delivered(deliverOnce) } : {}),
    };
  }

  #delivered(policy: string): boolean {
    return this.#sql.exec("SELECT 1 FROM once_deliveries WHERE policy = ?", policy).toArray().length > 0;
  }

  /** This run's leases, oldest first (admin, introspection and tests). */
  async leases(): Promise<LeaseView[]> {
    return this.#sql.exec<LeaseRow>("SELECT * FROM leases ORDER BY created_at, id").toArray().map(leaseView);
  }

  /** One lease, or null, after ending it if an emergency revocation rule the index could not yet apply names it. */
  async lease(id: string): Promise<LeaseView | null> {
    await this.#applyRules(id);
    const row = this.#sql.exec<LeaseRow>("SELECT * FROM leases WHERE id = ?", id).toArray()[0];
    return row ? leaseView(row) : null;
  }

  /**
   * A live lease's renewal view, after the revoke token checks out (constant time). At most one renewal per
   * half the shortest credential lifetime: the slot is taken here, atomically, so concurrent renewals cannot
   * both mint (`now` is the Worker's clock).
   */
  async renewable(
    id: string,
    revokeHash: string,
    now: number,
  ): Promise<RenewableLease | "not_found" | "ended" | { retryAfterMs: number }> {
    const found = this.#sql.exec<LeaseRow>("SELECT * FROM leases WHERE id = ?", id).toArray()[0];
    if (!found || !equalText(found.revoke_hash, revokeHash)) return "not_found";
    await this.#applyRules(id);
    const row = this.#sql.exec<LeaseRow>("SELECT * FROM leases WHERE id = ?", id).toArray()[0];
    if (!row || row.ended_at !== null || row.expires_at <= Date.now() || this.#runEnded() || !row.subject)
      return "ended";
    const grants = JSON.parse(row.grants) as LeaseGrant[];
    const interval = row.renew_interval_ms ?? renewalIntervalMs(grants, row.created_at, row.expires_at);
    const after = row.renew_after ?? row.created_at + interval;
    if (now < after) return { retryAfterMs: after - now };
    this.#sql.exec("UPDATE leases SET renew_after = ? WHERE id = ?", now + interval, id);
    return {
      policy: row.policy,
      expires_at: row.expires_at,
      subject: JSON.parse(row.subject) as LeaseSubject,
      grant_types: [...new Set(grants.map((g) => g.type))],
      inputs: renewalInputs(grants),
    };
  }

  /**
   * Adds renewed credentials to a lease, atomically with its audit record, only while the lease and the run
   * are live (a webhook may have ended the run while the credentials were minted: then the caller recalls them).
   */
  async addGrants(id: string, grants: LeaseGrant[], audit: AuditRecord, now: number): Promise<boolean> {
    const ok = this.ctx.storage.transactionSync(() => {
      const row = this.#sql.exec<LeaseRow>("SELECT * FROM leases WHERE id = ?", id).toArray()[0];
      if (!row || row.ended_at !== null || row.expires_at <= Date.now() || this.#runEnded()) return false;
      const all = [...(JSON.parse(row.grants) as LeaseGrant[]), ...grants];
      const interval = renewalIntervalMs(grants, now, row.expires_at);
      this.#sql.exec(
        "UPDATE leases SET grants = ?, renew_interval_ms = ?, renew_after = ? WHERE id = ?",
        JSON.stringify(all),
        interval,
        now + interval,
        id,
      );
      this.#enqueue(audit);
      return true;
    });
    await this.#armAt(Date.now());
    return ok;
  }

  /** Whether the run has ended (webhook or admin revoke by run). */
  async ended(): Promise<boolean> {
    return this.#runEnded();
  }

  /**
   * Ends the run: every active lease ends, revocations are queued, and the run is marked ended so no
   * later exchange can succeed. A delivery id seen before changes nothing (and is recorded as a duplicate).
   */
  async endRun(ctx: EndContext, webhook?: WebhookAudit, scope?: WebhookScope): Promise<EndRunOutcome> {
    const now = Date.now();
    const outcome = this.ctx.storage.transactionSync((): EndRunOutcome => {
      // A delivery signed with a scoped secret ends only a run whose verified claims lie inside that scope.
      if (scope && !this.#inScope(scope)) {
        if (webhook) {
          this.#enqueue({ ...webhook.record, decision: "deny", reasons: [{ code: "out_of_scope" }] });
        }
        return { duplicate: false, alreadyEnded: this.#runEnded(), ended: 0, outOfScope: true };
      }
      this.#remember(ctx.run);
      if (webhook?.delivery !== undefined) {
        const seen = this.#sql.exec("SELECT 1 FROM deliveries WHERE id = ?", webhook.delivery).toArray();
        if (seen.length > 0) {
          this.#enqueue({
            ...webhook.record,
            decision: "deny",
            reasons: [{ code: "duplicate_delivery" }],
          });
          return { duplicate: true, alreadyEnded: this.#runEnded(), ended: 0 };
        }
        this.#sql.exec("INSERT INTO deliveries (id, at) VALUES (?, ?)", webhook.delivery, now);
      }
      if (webhook) this.#enqueue(webhook.record);
      const alreadyEnded = this.#runEnded();
      if (!alreadyEnded) {
        this.#sql.exec(
          "INSERT INTO run_state (k, v) VALUES ('ended', ?)",
          JSON.stringify({ at: now, reason: ctx.reason }),
        );
        this.#sql.exec(
          "INSERT OR REPLACE INTO run_state (k, v) VALUES ('purge_at', ?)",
          String(now + RUN_ENDED_RETENTION_MS),
        );
      }
      const ended = this.#endWhere("ended_at IS NULL", [], ctx, now);
      return { duplicate: false, alreadyEnded, ended };
    });
    await this.#armAt(now);
    return outcome;
  }

  /**
   * Ends one lease. With a revoke hash (the client's DELETE) the hash must match, compared in constant
   * time; a mismatch answers exactly like a lease that does not exist.
   */
  async endLease(id: string, ctx: EndContext, revokeHash?: string): Promise<EndLeaseOutcome> {
    const now = Date.now();
    const row = this.#sql.exec<LeaseRow>("SELECT * FROM leases WHERE id = ?", id).toArray()[0];
    if (!row) return "not_found";
    if (revokeHash !== undefined && !equalText(row.revoke_hash, revokeHash)) return "not_found";
    if (row.ended_at !== null) return "already_ended";
    this.ctx.storage.transactionSync(() => this.#endWhere("id = ? AND ended_at IS NULL", [id], ctx, now));
    await this.#armAt(now);
    return "ended";
  }

  /** Ends the active leases of this run (optionally only one policy's) without ending the run. */
  async endLeases(ctx: EndContext, policy?: string): Promise<number> {
    const now = Date.now();
    const ended = this.ctx.storage.transactionSync(() =>
      policy === undefined
        ? this.#endWhere("ended_at IS NULL", [], ctx, now)
        : this.#endWhere("ended_at IS NULL AND policy = ?", [policy], ctx, now),
    );
    if (ended > 0) await this.#armAt(now);
    return ended;
  }

  /**
   * Expires due leases, runs queued revocations, forgets expired token ids, ships the audit outbox,
   * deletes the whole object once an ended run's retention has passed, and re-arms itself.
   */
  override async alarm(): Promise<void> {
    const now = Date.now();
    this.ctx.storage.transactionSync(() =>
      this.#endWhere(
        "ended_at IS NULL AND expires_at <= ?",
        [now],
        { run: this.#runKey(), requestId: randomId("alarm", 12), policySetVersion: "", reason: "expired" },
        now,
      ),
    );
    this.#sql.exec("DELETE FROM used_tokens WHERE expires_at <= ?", now);
    await this.#runRevocations(now);
    let shipRetry: number | undefined;
    let rulesRetry: number | null = null;
    try {
      await this.#ship();
      try {
        // Shipped leases are in the lease index now; a revoke that searched it earlier left a rule behind.
        await this.#applyRules();
      } catch {
        rulesRetry = now + OUTBOX_RETRY_MS;
      }
    } catch {
      shipRetry = now + OUTBOX_RETRY_MS;
    }
    const pendingOutbox = outboxPending(this.#sql);
    const pendingRevocations = this.#scalar("SELECT COUNT(*) AS v FROM pending_revocations") ?? 0;
    const purgeAt = this.#purgeAt();
    if (purgeAt !== undefined && now >= purgeAt && !pendingOutbox && pendingRevocations === 0) {
      // An ended run past its retention: nothing left to protect, so nothing is kept.
      await this.ctx.storage.deleteAll();
      return;
    }
    const next = [
      this.#scalar("SELECT MIN(expires_at) AS v FROM leases WHERE ended_at IS NULL"),
      this.#scalar("SELECT MIN(expires_at) AS v FROM used_tokens"),
      this.#scalar("SELECT MIN(next_at) AS v FROM pending_revocations"),
      pendingOutbox ? (shipRetry ?? now) : null,
      rulesRetry,
      purgeAt ?? null,
    ].filter((t): t is number => typeof t === "number");
    if (next.length > 0) await this.ctx.storage.setAlarm(Math.max(now, Math.min(...next)));
  }

  /**
   * Ends active leases that an emergency revocation rule names but the lease index may not have shown when
   * the rule was made (docs/security.md, "Emergency revoke is complete"). Only leases not yet confirmed as
   * indexed ask the registry; after the outbox shipped them they are marked, since a later revoke finds them
   * through the index. With `id`, only that lease is considered.
   */
  async #applyRules(id?: string): Promise<void> {
    const unchecked = (): LeaseRow[] =>
      this.#sql
        .exec<LeaseRow>(
          `SELECT * FROM leases WHERE ended_at IS NULL AND rules_checked = 0${id !== undefined ? " AND id = ?" : ""}`,
          ...(id !== undefined ? [id] : []),
        )
        .toArray();
    const rows = unchecked();
    if (rows.length === 0) return;
    const oldest = Math.min(...rows.map((r) => r.created_at));
    const rules = await revocationRegistry(this.env).since(oldest);
    const shipped = !outboxPending(this.#sql);
    this.ctx.storage.transactionSync(() => {
      const now = Date.now();
      for (const row of unchecked()) {
        const target = { ...leaseScope(row), policy: row.policy, created_at: row.created_at };
        if (rules.some((rule) => ruleMatches(rule, target))) {
          this.#endWhere(
            "id = ? AND ended_at IS NULL",
            [row.id],
            {
              run: this.#runKey(),
              requestId: randomId("rule", 12),
              policySetVersion: "",
              reason: "admin_revoke",
            },
            now,
          );
        } else if (shipped && id === undefined) {
          this.#sql.exec("UPDATE leases SET rules_checked = 1 WHERE id = ?", row.id);
        }
      }
    });
  }

  /** Whether the run's leases carry verified claims inside `scope` (no lease: nothing proves it is). */
  #inScope(scope: WebhookScope): boolean {
    const rows = this.#sql.exec<{ subject: string | null }>("SELECT subject FROM leases").toArray();
    const subjects = rows
      .filter((r) => r.subject !== null)
      .map((r) => JSON.parse(r.subject as string) as LeaseSubject);
    return (
      subjects.length > 0 &&
      subjects.every((s) => s.issuer === scope.issuer && s.claims[scope.claim] === scope.value)
    );
  }

  /** Ends matching active leases: audit record per lease, revocations queued. Call inside a transaction. */
  #endWhere(where: string, args: unknown[], ctx: EndContext, now: number): number {
    const rows = this.#sql.exec<LeaseRow>(`SELECT * FROM leases WHERE ${where}`, ...args).toArray();
    for (const row of rows) {
      this.#sql.exec(
        "UPDATE leases SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
        now,
        ctx.reason,
        row.id,
      );
      const grants = JSON.parse(row.grants) as LeaseGrant[];
      for (const grant of grants) {
        this.#sql.exec(
          "INSERT INTO pending_revocations (lease_id, grant_json, next_at) VALUES (?, ?, ?)",
          row.id,
          JSON.stringify(grant),
          now,
        );
      }
      this.#enqueue({
        id: randomId("aud"),
        ts: new Date(now).toISOString(),
        request_id: ctx.requestId,
        event: "lease_end",
        decision: "allow",
        reasons: [],
        policy: row.policy,
        ...(ctx.policySetVersion ? { policy_set_version: ctx.policySetVersion } : {}),
        run: ctx.run,
        lease_id: row.id,
        end_reason: ctx.reason,
        grants: auditGrants(grants),
        count: 1,
      });
    }
    return rows.length;
  }

  async #runRevocations(now: number): Promise<void> {
    const due = this.#sql
      .exec<{ seq: number; lease_id: string; grant_json: string; attempts: number }>(
        "SELECT seq, lease_id, grant_json, attempts FROM pending_revocations WHERE next_at <= ? ORDER BY seq LIMIT 50",
        now,
      )
      .toArray();
    if (due.length === 0) return;
    const revokers = revokersFor(this.env);
    for (const item of due) {
      const grant = JSON.parse(item.grant_json) as LeaseGrant;
      const result = await revokeGrant(revokers, grant, item.lease_id);
      const attempts = item.attempts + 1;
      const giveUp = !result.retryable || attempts >= REVOCATION_MAX_ATTEMPTS;
      const retrying = result.status === "failed" && !giveUp;
      if (retrying) {
        // Kept in this object's storage: a Worker restart between attempts loses nothing.
        this.#sql.exec(
          "UPDATE pending_revocations SET attempts = ?, next_at = ? WHERE seq = ?",
          attempts,
          now + REVOCATION_BACKOFF_MS * 2 ** (attempts - 1),
          item.seq,
        );
      } else this.#sql.exec("DELETE FROM pending_revocations WHERE seq = ?", item.seq);
      this.#enqueue({
        id: randomId("aud"),
        ts: new Date(now).toISOString(),
        request_id: randomId("rev", 12),
        event: "revocation",
        decision: result.status === "failed" ? "deny" : "allow",
        ...(result.status === "failed" ? { error: "upstream_error" as const } : {}),
        reasons: [],
        run: this.#runKey(),
        lease_id: item.lease_id,
        grants: [{ type: grant.type, id: grant.id, expires_at: grant.expires_at }],
        // Every attempt is audited; the lease listing shows the latest one's state (docs/api.md, leases).
        upstream_revoke: retrying ? "pending" : result.status === "failed" ? "failed" : "done",
        detail: `${result.status}${retrying ? ` (attempt ${attempts} of ${REVOCATION_MAX_ATTEMPTS}, retrying)` : ""}${result.detail ? `: ${result.detail}` : ""}`,
        count: 1,
      });
    }
  }

  #remember(run: string | undefined): void {
    if (run) this.#sql.exec("INSERT OR IGNORE INTO run_state (k, v) VALUES ('run', ?)", run);
  }

  #runKey(): string {
    const row = this.#sql.exec<{ v: string }>("SELECT v FROM run_state WHERE k = 'run'").toArray()[0];
    return row?.v ?? this.ctx.id.toString();
  }

  #runEnded(): boolean {
    return this.#sql.exec("SELECT 1 FROM run_state WHERE k = 'ended'").toArray().length > 0;
  }

  #purgeAt(): number | undefined {
    const row = this.#sql.exec<{ v: string }>("SELECT v FROM run_state WHERE k = 'purge_at'").toArray()[0];
    return row ? Number(row.v) : undefined;
  }

  #enqueue(record: AuditRecord): void {
    enqueueAudit(this.#sql, record);
  }

  #scalar(sql: string): number | null {
    const row = this.#sql.exec<{ v: number | null }>(sql).toArray()[0];
    return row?.v ?? null;
  }

  #ship(): Promise<void> {
    return shipOutbox(this.#sql, this.env.AUDIT_DB);
  }

  async #armAt(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }
}

/** What the lease index records about a lease (older rows: from its subject's claims). */
function leaseScope(row: LeaseRow): { issuer: string; repository_id?: string; project_id?: string } {
  if (row.scope)
    return JSON.parse(row.scope) as { issuer: string; repository_id?: string; project_id?: string };
  const subject = row.subject ? (JSON.parse(row.subject) as LeaseSubject) : undefined;
  const claim = (name: string) => {
    const v = subject?.claims[name];
    return typeof v === "string" ? { [name]: v } : {};
  };
  return { issuer: subject?.issuer ?? "", ...claim("repository_id"), ...claim("project_id") };
}

function leaseView(row: LeaseRow): LeaseView {
  return {
    id: row.id,
    policy: row.policy,
    created_at: row.created_at,
    expires_at: row.expires_at,
    ended_at: row.ended_at,
    end_reason: row.end_reason,
  };
}
