// The per-run ledger (DESIGN §5): used token ids, leases, the run's state and an audit outbox, in one Durable Object per run.

import { DurableObject } from "cloudflare:workers";
import { AUDIT_SHIP_BATCH } from "../constants.ts";
import { type AuditRecord, auditLogLine, refusedRecord } from "../core/audit/record.ts";
import type { CommitInput, CommitOutcome } from "../core/ledger.ts";
import { D1AuditStore } from "./audit-store.ts";
import type { Env } from "./env.ts";

/** Retry delay for shipping the audit outbox to D1 after a failure. */
const SHIP_RETRY_MS = 10_000;

/**
 * One instance per CI run (or per token, for tokens that name no run). Single-threaded and strongly
 * consistent, so "has this jti been used?" and "issue it" cannot race.
 */
export class RunLedger extends DurableObject<Env> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`
      CREATE TABLE IF NOT EXISTS used_tokens (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS leases (
        id TEXT PRIMARY KEY, revoke_hash TEXT NOT NULL, policy TEXT NOT NULL,
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        ended_at INTEGER, end_reason TEXT, grants TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS run_state (k TEXT PRIMARY KEY, v TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS audit_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL);
    `);
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
      this.#sql.exec(
        "INSERT INTO used_tokens (id, expires_at) VALUES (?, ?)",
        input.singleUse,
        input.singleUseExpiresAt,
      );
      const l = input.lease;
      this.#sql.exec(
        "INSERT INTO leases (id, revoke_hash, policy, created_at, expires_at, grants) VALUES (?, ?, ?, ?, ?, ?)",
        l.id,
        l.revokeHash,
        l.policy,
        l.createdAt,
        l.expiresAt,
        JSON.stringify(l.grants),
      );
      this.#enqueue(input.audit);
      return { ok: true };
    });
    await this.#scheduleAt(Date.now());
    return outcome;
  }

  /** Read-only: would this token be refused as replayed, or because the run ended? (for explain) */
  async peek(singleUse: string): Promise<{ replayed: boolean; runEnded: boolean }> {
    const used = this.#sql.exec("SELECT 1 FROM used_tokens WHERE id = ?", singleUse).toArray();
    return { replayed: used.length > 0, runEnded: this.#runEnded() };
  }

  /** Active leases of this run (admin and tests). */
  async leases(): Promise<
    Array<{ id: string; policy: string; expires_at: number; ended_at: number | null }>
  > {
    return this.#sql
      .exec<{ id: string; policy: string; expires_at: number; ended_at: number | null }>(
        "SELECT id, policy, expires_at, ended_at FROM leases ORDER BY created_at",
      )
      .toArray();
  }

  /** Expires due leases, forgets expired token ids, ships the audit outbox, and re-arms itself. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    this.#sql.exec(
      "UPDATE leases SET ended_at = ?, end_reason = 'expired' WHERE ended_at IS NULL AND expires_at <= ?",
      now,
      now,
    );
    this.#sql.exec("DELETE FROM used_tokens WHERE expires_at <= ?", now);
    let shipRetry: number | undefined;
    try {
      await this.#ship();
    } catch {
      shipRetry = now + SHIP_RETRY_MS;
    }
    const next = [
      this.#scalar("SELECT MIN(expires_at) AS v FROM leases WHERE ended_at IS NULL"),
      this.#scalar("SELECT MIN(expires_at) AS v FROM used_tokens"),
      this.#scalar("SELECT COUNT(*) AS v FROM audit_outbox") ? (shipRetry ?? now) : null,
    ].filter((t): t is number => typeof t === "number");
    if (next.length > 0) await this.ctx.storage.setAlarm(Math.min(...next));
  }

  #runEnded(): boolean {
    return this.#sql.exec("SELECT 1 FROM run_state WHERE k = 'ended'").toArray().length > 0;
  }

  #enqueue(record: AuditRecord): void {
    this.#sql.exec("INSERT INTO audit_outbox (record) VALUES (?)", JSON.stringify(record));
    console.log(auditLogLine(record));
  }

  #scalar(sql: string): number | null {
    const row = this.#sql.exec<{ v: number | null }>(sql).toArray()[0];
    return row?.v ?? null;
  }

  async #ship(): Promise<void> {
    const store = new D1AuditStore(this.env.AUDIT_DB);
    for (;;) {
      const rows = this.#sql
        .exec<{ seq: number; record: string }>(
          "SELECT seq, record FROM audit_outbox ORDER BY seq LIMIT ?",
          AUDIT_SHIP_BATCH,
        )
        .toArray();
      if (rows.length === 0) return;
      await store.insert(rows.map((r) => JSON.parse(r.record) as AuditRecord));
      this.#sql.exec(
        "DELETE FROM audit_outbox WHERE seq <= ?",
        (rows[rows.length - 1] as { seq: number }).seq,
      );
    }
  }

  async #scheduleAt(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }
}
