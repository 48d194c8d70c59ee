// The scheduled purge (docs/operations.md, "Retention"): audit records, ended leases' index rows and the hourly
// rollup older than RUNPASS_AUDIT_RETENTION (default 400 days); leak fingerprints of a lease 30 days after it
// ended. Deletes in bounded batches, so a first run on a large database spreads over several days.

import {
  DEFAULT_AUDIT_RETENTION_SECONDS,
  DEFAULT_MAX_LEASE_TTL_SECONDS,
  LEAK_FINGERPRINT_RETENTION_MS,
  MIN_AUDIT_RETENTION_SECONDS,
  PURGE_BATCH_ROWS,
  PURGE_MAX_BATCHES,
} from "../core/constants.ts";
import { parseDuration } from "../core/duration.ts";
import { ConfigError } from "../core/errors.ts";
import { D1AuditStore } from "./audit-store.ts";
import type { Env } from "./env.ts";

/** Parses RUNPASS_AUDIT_RETENTION (a duration such as "400d"); ConfigError for junk or less than a week. */
export function auditRetentionMs(text: string | undefined): number {
  if (text === undefined || text.trim() === "") return DEFAULT_AUDIT_RETENTION_SECONDS * 1000;
  const seconds = parseDuration(text.trim());
  if (seconds === undefined || seconds < MIN_AUDIT_RETENTION_SECONDS) {
    throw new ConfigError(
      `RUNPASS_AUDIT_RETENTION must be a duration of at least ${MIN_AUDIT_RETENTION_SECONDS / 86400}d, such as 400d`,
    );
  }
  return seconds * 1000;
}

/** Rows deleted per table by one purge. */
export interface PurgeCounts {
  audit_records: number;
  lease_index: number;
  leak_index: number;
  audit_rollup: number;
}

/** Runs `statement` (deleting at most PURGE_BATCH_ROWS rows) until it deletes fewer, or PURGE_MAX_BATCHES times. */
async function drain(db: D1Database, statement: string, ...binds: unknown[]): Promise<number> {
  let total = 0;
  for (let i = 0; i < PURGE_MAX_BATCHES; i++) {
    const result = await db
      .prepare(statement)
      .bind(...binds, PURGE_BATCH_ROWS)
      .run();
    const changes = result.meta.changes ?? 0;
    total += changes;
    if (changes < PURGE_BATCH_ROWS) break;
  }
  return total;
}

/**
 * Deletes what retention says is over at `now`. Leak fingerprints go 30 days after their lease ended (a lease
 * without an index row: 30 days after the longest lease could have ended); a secret version's stay while it does.
 */
export async function purgeExpired(
  db: D1Database,
  options: { now: number; retentionMs: number; maxLeaseTtlMs: number },
): Promise<PurgeCounts> {
  const cutoff = options.now - options.retentionMs;
  const leakCutoff = options.now - LEAK_FINGERPRINT_RETENTION_MS;
  return new D1AuditStore(db).read(async (d) => {
    const leak_index = await drain(
      d,
      `DELETE FROM leak_index WHERE (fp, owner) IN (
         SELECT l.fp, l.owner FROM leak_index l LEFT JOIN lease_index i ON i.lease_id = l.owner
         WHERE l.kind != 'secret' AND (COALESCE(i.ended_at, i.expires_at) < ?1 OR (i.lease_id IS NULL AND l.created_at < ?2))
         LIMIT ?3)`,
      leakCutoff,
      leakCutoff - options.maxLeaseTtlMs,
    );
    const audit_records = await drain(
      d,
      "DELETE FROM audit_records WHERE id IN (SELECT id FROM audit_records WHERE ts < ?1 LIMIT ?2)",
      cutoff,
    );
    const lease_index = await drain(
      d,
      "DELETE FROM lease_index WHERE lease_id IN (SELECT lease_id FROM lease_index WHERE COALESCE(ended_at, expires_at) < ?1 LIMIT ?2)",
      cutoff,
    );
    const audit_rollup = await drain(
      d,
      `DELETE FROM audit_rollup WHERE (hour, event, decision, policy, reason) IN (
         SELECT hour, event, decision, policy, reason FROM audit_rollup WHERE hour < ?1 LIMIT ?2)`,
      Math.floor(cutoff / 3600_000),
    );
    return { audit_records, lease_index, leak_index, audit_rollup };
  });
}

/** The cron trigger's work (wrangler.toml [triggers]): one purge, its counts as a log line; bad config purges nothing. */
export async function scheduledPurge(env: Env, now: number): Promise<PurgeCounts | undefined> {
  let retentionMs: number;
  try {
    retentionMs = auditRetentionMs(env.RUNPASS_AUDIT_RETENTION);
  } catch (e) {
    console.error(
      JSON.stringify({ type: "runpass.purge", error: e instanceof Error ? e.message : "config" }),
    );
    return undefined;
  }
  const lease = env.RUNPASS_MAX_LEASE_TTL ? parseDuration(env.RUNPASS_MAX_LEASE_TTL) : undefined;
  const counts = await purgeExpired(env.AUDIT_DB, {
    now,
    retentionMs,
    maxLeaseTtlMs: (lease ?? DEFAULT_MAX_LEASE_TTL_SECONDS) * 1000,
  });
  console.log(
    JSON.stringify({ type: "runpass.purge", retention_days: retentionMs / 86_400_000, deleted: counts }),
  );
  return counts;
}
