// The authoritative rate-limit counter: one SQLite-backed Durable Object per limit key (a client address
// digest, a repository, a webhook installation). Fixed windows on the caller's clock; refused requests are
// aggregated into ONE audit record per key and window (`count` = how many were refused), written when the
// window rolls or by the alarm after it ends, and shipped to D1 through an outbox.

import { DurableObject } from "cloudflare:workers";
import type { AuditRecord } from "../core/audit/record.ts";
import { RATE_LIMIT_ALARM_GRACE_MS } from "../core/constants.ts";
import { randomId } from "../core/crypto.ts";
import {
  type LimitReport,
  type LimitVerdict,
  type RateLimitFields,
  windowStart,
} from "../core/rate-limit.ts";
import { enqueueAudit, OUTBOX_RETRY_MS, OUTBOX_TABLE, outboxPending, shipOutbox } from "./audit-outbox.ts";
import type { Env } from "./env.ts";
import { applySchema, type SqliteSchema } from "./sqlite-schema.ts";

type WindowRow = { start: number; admitted: number; refused: number; recorded: number };

/** What the object remembers about its key, for records the alarm writes. */
interface Meta {
  rule: LimitReport["rule"];
  limit: number;
  windowMs: number;
  fields: RateLimitFields;
}

/** Counts per window, the rule's settings, and the audit outbox. */
const RATE_LIMITER_SCHEMA: SqliteSchema = {
  statements: [
    `CREATE TABLE IF NOT EXISTS windows (
      start INTEGER PRIMARY KEY, admitted INTEGER NOT NULL DEFAULT 0,
      refused INTEGER NOT NULL DEFAULT 0, recorded INTEGER NOT NULL DEFAULT 0
    );`,
    "CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v TEXT NOT NULL);",
    OUTBOX_TABLE,
  ],
  added: [],
};

export class RateLimiter extends DurableObject<Env> {
  readonly #sql: SqlStorage;
  #meta: string | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    applySchema(this.#sql, RATE_LIMITER_SCHEMA);
  }

  /**
   * Adds what the caller admitted and refused since its last report and, with `take`, decides one more
   * request. A report for a window after the current one rolls the window: refusals of past windows become
   * their aggregated audit records.
   */
  async hit(report: LimitReport): Promise<LimitVerdict> {
    const verdict = this.ctx.storage.transactionSync((): LimitVerdict => {
      this.#remember(report);
      const latest = this.#sql.exec<{ v: number | null }>("SELECT MAX(start) AS v FROM windows").one().v;
      // A caller whose clock lags counts into the current window rather than reopening an old one.
      const current = Math.max(windowStart(report.now, report.windowMs), latest ?? 0);
      this.#sql.exec("INSERT OR IGNORE INTO windows (start) VALUES (?)", current);
      for (const [start, n] of report.refused) {
        if (!(n > 0)) continue;
        const w = Math.min(start, current);
        this.#sql.exec("INSERT OR IGNORE INTO windows (start) VALUES (?)", w);
        this.#sql.exec("UPDATE windows SET refused = refused + ? WHERE start = ?", n, w);
      }
      if (report.admitted > 0) {
        this.#sql.exec(
          "UPDATE windows SET admitted = admitted + ? WHERE start = ?",
          report.admitted,
          current,
        );
      }
      let allowed = true;
      if (report.take) {
        const row = this.#row(current);
        allowed = row.admitted < report.limit;
        this.#sql.exec(
          allowed
            ? "UPDATE windows SET admitted = admitted + 1 WHERE start = ?"
            : "UPDATE windows SET refused = refused + 1 WHERE start = ?",
          current,
        );
      }
      this.#record(current, report.now, true);
      this.#sql.exec("INSERT OR REPLACE INTO state (k, v) VALUES ('seen', ?)", String(Date.now()));
      const row = this.#row(current);
      return {
        allowed,
        count: row.admitted,
        window: current,
        blocked: row.admitted >= report.limit,
        retryAfterMs: current + report.windowMs - report.now,
      };
    });
    await this.#shipNow();
    // The alarm records this window's refusals after it ends (real time), if no later report rolls it first.
    await this.#armAt(Date.now() + Math.max(0, verdict.retryAfterMs) + RATE_LIMIT_ALARM_GRACE_MS);
    return verdict;
  }

  /**
   * Records every refusal not yet recorded (the window has ended in real time), ships the outbox, and
   * deletes the object's storage once it has been idle for a whole window with nothing left to ship.
   */
  override async alarm(): Promise<void> {
    const now = Date.now();
    this.ctx.storage.transactionSync(() => this.#record(Number.MAX_SAFE_INTEGER, now, false));
    let retry = false;
    try {
      await this.#ship();
    } catch {
      retry = true;
    }
    const meta = this.#loadMeta();
    const seen = Number(
      this.#sql.exec<{ v: string }>("SELECT v FROM state WHERE k = 'seen'").toArray()[0]?.v ?? 0,
    );
    const idleAfter = seen + (meta?.windowMs ?? 0) + RATE_LIMIT_ALARM_GRACE_MS;
    if (retry) {
      await this.ctx.storage.setAlarm(now + OUTBOX_RETRY_MS);
    } else if (now >= idleAfter) {
      await this.ctx.storage.deleteAll();
      this.#meta = undefined;
    } else {
      await this.ctx.storage.setAlarm(idleAfter);
    }
  }

  #row(start: number): WindowRow {
    return this.#sql.exec<WindowRow>("SELECT * FROM windows WHERE start = ?", start).one();
  }

  /** Aggregates unrecorded refusals of windows before `before` into audit records (one per window); `drop` forgets those windows. */
  #record(before: number, now: number, drop: boolean): void {
    const meta = this.#loadMeta();
    const rows = this.#sql
      .exec<WindowRow>("SELECT * FROM windows WHERE start < ? AND refused > recorded ORDER BY start", before)
      .toArray();
    for (const row of rows) {
      if (meta) this.#enqueue(aggregate(meta, row, row.refused - row.recorded, now));
      this.#sql.exec("UPDATE windows SET recorded = refused WHERE start = ?", row.start);
    }
    if (drop) this.#sql.exec("DELETE FROM windows WHERE start < ?", before);
  }

  #remember(report: LimitReport): void {
    const meta = JSON.stringify({
      rule: report.rule,
      limit: report.limit,
      windowMs: report.windowMs,
      fields: report.fields,
    } satisfies Meta);
    if (meta === this.#meta) return;
    this.#sql.exec("INSERT OR REPLACE INTO state (k, v) VALUES ('meta', ?)", meta);
    this.#meta = meta;
  }

  #loadMeta(): Meta | undefined {
    this.#meta ??= this.#sql.exec<{ v: string }>("SELECT v FROM state WHERE k = 'meta'").toArray()[0]?.v;
    return this.#meta ? (JSON.parse(this.#meta) as Meta) : undefined;
  }

  #enqueue(record: AuditRecord): void {
    enqueueAudit(this.#sql, record);
  }

  /** Ships pending records now (a rolled window); on failure the alarm retries. */
  async #shipNow(): Promise<void> {
    if (!outboxPending(this.#sql)) return;
    try {
      await this.#ship();
    } catch {
      await this.#armAt(Date.now() + OUTBOX_RETRY_MS);
    }
  }

  #ship(): Promise<void> {
    return shipOutbox(this.#sql, this.env.AUDIT_DB);
  }

  async #armAt(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }
}

/** The one record a window's refusals leave. */
function aggregate(meta: Meta, row: WindowRow, count: number, now: number): AuditRecord {
  const end = row.start + meta.windowMs;
  const { label, ...fields } = meta.fields;
  return {
    id: randomId("aud"),
    ts: new Date(Math.min(end, now)).toISOString(),
    request_id: randomId("rl", 12),
    event: "rate_limit",
    decision: "deny",
    error: "rate_limited",
    reasons: [],
    ...fields,
    detail: `${meta.rule} limit (${meta.limit} per ${meta.windowMs / 1000} s) for ${label}: ${count} requests refused in the window ${new Date(row.start).toISOString()} – ${new Date(end).toISOString()}`,
    count,
  };
}
