// Alert delivery (docs/leaks.md, Alerts): one Durable Object keeps every alert raised, deduplicates them per key
// within a window, and delivers each to RUNPASS_ALERT_WEBHOOK from its alarm, retrying with backoff, so a
// receiver that is down for minutes loses nothing. Every alert and its delivery outcome is audited (`alert`).

import { DurableObject } from "cloudflare:workers";
import { type AlertInput, type AlertPayload, alertPayload, alertSignature } from "../core/alerts/alert.ts";
import type { AuditRecord } from "../core/audit/record.ts";
import {
  ALERT_BACKOFF_MAX_MS,
  ALERT_BACKOFF_MS,
  ALERT_DELIVERY_TIMEOUT_MS,
  ALERT_MAX_ATTEMPTS,
  ALERT_RETENTION_MS,
} from "../core/constants.ts";
import { randomId } from "../core/crypto.ts";
import { enqueueAudit, OUTBOX_RETRY_MS, OUTBOX_TABLE, outboxPending, shipOutbox } from "./audit-outbox.ts";
import type { Env } from "./env.ts";
import { applySchema, type SqliteSchema } from "./sqlite-schema.ts";

/** Where alerts go, as the raising Worker is configured (the secret signs; it is never listed or audited). */
export interface AlertTarget {
  url?: string;
  secret?: string;
  /** Why the target is unusable (a bad URL): alerts are kept and listed, not delivered. */
  problem?: string;
}

export type DeliveryState = "pending" | "delivered" | "failed" | "not_configured";

/** One alert as GET /v1/admin/alerts lists it. */
export interface AlertView extends AlertPayload {
  id: string;
  key: string;
  delivery: DeliveryState;
  attempts: number;
  /** Raised again with the same key within the dedupe window (not delivered again). */
  duplicates: number;
  delivered_at: string | null;
  last_error: string | null;
}

type AlertRow = {
  id: string;
  key: string;
  body: string;
  at: number;
  state: DeliveryState;
  attempts: number;
  next_at: number | null;
  delivered_at: number | null;
  last_error: string | null;
  duplicates: number;
  dedupe_until: number;
};

const ALERT_HUB_SCHEMA: SqliteSchema = {
  statements: [
    `CREATE TABLE IF NOT EXISTS alerts (
      id TEXT PRIMARY KEY, key TEXT NOT NULL, body TEXT NOT NULL, at INTEGER NOT NULL, state TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER, delivered_at INTEGER, last_error TEXT,
      duplicates INTEGER NOT NULL DEFAULT 0, dedupe_until INTEGER NOT NULL
    ) WITHOUT ROWID;`,
    "CREATE INDEX IF NOT EXISTS alerts_by_key ON alerts (key, dedupe_until);",
    "CREATE INDEX IF NOT EXISTS alerts_by_at ON alerts (at DESC);",
    "CREATE INDEX IF NOT EXISTS alerts_due ON alerts (next_at) WHERE state = 'pending';",
    "CREATE TABLE IF NOT EXISTS target (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;",
    OUTBOX_TABLE,
  ],
  added: [],
};

/** The alert hub's one object. */
export function alertHub(env: Env): DurableObjectStub<AlertHub> {
  return env.ALERTS.get(env.ALERTS.idFromName("alerts"));
}

export class AlertHub extends DurableObject<Env> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    applySchema(this.#sql, ALERT_HUB_SCHEMA);
  }

  /**
   * Records an alert and queues its delivery, unless one with the same key was raised within the dedupe window
   * (then that one counts a duplicate). Durable before it returns. `now` is the Worker's clock.
   */
  async raise(
    input: AlertInput,
    target: AlertTarget,
    dedupeMs: number,
    now: number,
  ): Promise<{ id: string; duplicate: boolean }> {
    const result = this.ctx.storage.transactionSync(() => {
      // The latest target wins: deliveries the alarm retries later use the configuration of the last raise.
      this.#sql.exec("INSERT OR REPLACE INTO target (k, v) VALUES ('target', ?)", JSON.stringify(target));
      const live = this.#sql
        .exec<{ id: string }>(
          "SELECT id FROM alerts WHERE key = ? AND dedupe_until > ? ORDER BY at DESC LIMIT 1",
          input.key,
          now,
        )
        .toArray()[0];
      if (live) {
        this.#sql.exec("UPDATE alerts SET duplicates = duplicates + 1 WHERE id = ?", live.id);
        return { id: live.id, duplicate: true };
      }
      const id = randomId("alr", 12);
      const payload = alertPayload(input, now);
      const configured = target.url !== undefined && target.problem === undefined;
      this.#sql.exec(
        "INSERT INTO alerts (id, key, body, at, state, next_at, last_error, dedupe_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        id,
        input.key,
        JSON.stringify(payload),
        now,
        configured ? "pending" : "not_configured",
        configured ? now : null,
        target.problem ?? null,
        now + dedupeMs,
      );
      this.#audit(id, payload, "allow", `raised: ${payload.summary}`, now);
      return { id, duplicate: false };
    });
    if (!result.duplicate) await this.#armAt(Date.now());
    return result;
  }

  /** Alerts newest first. */
  async list(limit: number): Promise<AlertView[]> {
    return this.#sql
      .exec<AlertRow>("SELECT * FROM alerts ORDER BY at DESC, id DESC LIMIT ?", limit)
      .toArray()
      .map((row) => ({
        id: row.id,
        key: row.key,
        ...(JSON.parse(row.body) as AlertPayload),
        delivery: row.state,
        attempts: row.attempts,
        duplicates: row.duplicates,
        delivered_at: row.delivered_at === null ? null : new Date(row.delivered_at).toISOString(),
        last_error: row.last_error,
      }));
  }

  /** Delivers what is due, ships the audit outbox, forgets old alerts, and re-arms. */
  override async alarm(): Promise<void> {
    await this.deliverDue(Date.now());
  }

  /** Delivers every pending alert due at `now` (the alarm's time; tests pass a later one to skip the backoff). */
  async deliverDue(now: number): Promise<{ delivered: number; failed: number }> {
    const due = this.#sql
      .exec<AlertRow>(
        "SELECT * FROM alerts WHERE state = 'pending' AND next_at <= ? ORDER BY next_at LIMIT 50",
        now,
      )
      .toArray();
    const target = this.#target();
    let delivered = 0;
    let failed = 0;
    for (const row of due) {
      const error = await this.#post(target, row.body, now);
      const attempts = row.attempts + 1;
      const payload = JSON.parse(row.body) as AlertPayload;
      if (error === undefined) {
        delivered++;
        this.ctx.storage.transactionSync(() => {
          this.#sql.exec(
            "UPDATE alerts SET state = 'delivered', attempts = ?, next_at = NULL, delivered_at = ?, last_error = NULL WHERE id = ?",
            attempts,
            now,
            row.id,
          );
          this.#audit(row.id, payload, "allow", `delivered after ${attempts} attempt(s)`, now);
        });
      } else if (attempts >= ALERT_MAX_ATTEMPTS) {
        failed++;
        this.ctx.storage.transactionSync(() => {
          this.#sql.exec(
            "UPDATE alerts SET state = 'failed', attempts = ?, next_at = NULL, last_error = ? WHERE id = ?",
            attempts,
            error,
            row.id,
          );
          this.#audit(row.id, payload, "deny", `gave up after ${attempts} attempts: ${error}`, now);
        });
      } else {
        failed++;
        const backoff = Math.min(ALERT_BACKOFF_MAX_MS, ALERT_BACKOFF_MS * 2 ** (attempts - 1));
        this.#sql.exec(
          "UPDATE alerts SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?",
          attempts,
          now + backoff,
          error,
          row.id,
        );
      }
    }
    let shipRetry: number | null = null;
    try {
      await shipOutbox(this.#sql, this.env.AUDIT_DB);
    } catch {
      shipRetry = now + OUTBOX_RETRY_MS;
    }
    this.#sql.exec("DELETE FROM alerts WHERE at < ? AND state != 'pending'", now - ALERT_RETENTION_MS);
    const next = this.#sql
      .exec<{ v: number | null }>("SELECT MIN(next_at) AS v FROM alerts WHERE state = 'pending'")
      .one().v;
    const at = [next, shipRetry, outboxPending(this.#sql) ? now + OUTBOX_RETRY_MS : null].filter(
      (t): t is number => typeof t === "number",
    );
    if (at.length > 0) await this.ctx.storage.setAlarm(Math.max(Date.now(), Math.min(...at)));
    return { delivered, failed };
  }

  /** POSTs one signed body; the error text (status or network failure) or undefined on 2xx. */
  async #post(target: AlertTarget, body: string, now: number): Promise<string | undefined> {
    if (!target.url || target.problem) return target.problem ?? "RUNPASS_ALERT_WEBHOOK is not set";
    try {
      const headers: Record<string, string> = {
        "content-type": "application/json",
        "user-agent": "runpass-alerts",
      };
      if (target.secret) {
        const timestamp = Math.floor(now / 1000);
        headers["x-runpass-timestamp"] = String(timestamp);
        headers["x-runpass-signature"] = await alertSignature(target.secret, body, timestamp);
      }
      const res = await fetch(target.url, {
        method: "POST",
        headers,
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(ALERT_DELIVERY_TIMEOUT_MS),
      });
      await res.body?.cancel();
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (e) {
      // Never the error's own text: a fetch failure may quote the URL, and a Slack webhook URL is a credential
      // (this string reaches audit details and the alerts list).
      const timedOut = e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError");
      return timedOut ? "delivery timed out" : "delivery failed (network error)";
    }
  }

  #target(): AlertTarget {
    const row = this.#sql.exec<{ v: string }>("SELECT v FROM target WHERE k = 'target'").toArray()[0];
    return row ? (JSON.parse(row.v) as AlertTarget) : {};
  }

  #audit(id: string, payload: AlertPayload, decision: "allow" | "deny", what: string, now: number): void {
    const d = payload.details;
    const text = (k: string) => (typeof d[k] === "string" ? (d[k] as string) : undefined);
    const record: AuditRecord = {
      id: randomId("aud"),
      ts: new Date(now).toISOString(),
      request_id: payload.request_ids[0] ?? id,
      event: "alert",
      decision,
      reasons: [],
      ...(text("run") ? { run: text("run") as string } : {}),
      ...(text("policy") ? { policy: text("policy") as string } : {}),
      ...(text("lease") ? { lease_id: text("lease") as string } : {}),
      detail: `${payload.alert} ${id} ${what}`.slice(0, 500),
      count: 1,
    };
    enqueueAudit(this.#sql, record);
  }

  async #armAt(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }
}
