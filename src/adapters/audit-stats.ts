// The console's aggregations over D1 (docs/console.md, "Aggregations"): counts come from the hourly rollup
// (audit_rollup), live leases from the lease index by issuer, so each query reads hours or live rows, never a
// year of records.

import type { AuditRecord } from "../core/audit/record.ts";
import { D1AuditStore, type LeaseIndexRow } from "./audit-store.ts";

const HOUR_MS = 3_600_000;

/** Issuances and denials in one bucket of a chart. */
export interface Bucket {
  /** Start of the bucket (ms). */
  start: number;
  allow: number;
  deny: number;
}

/** Counts per reason key (`claim_mismatch:ref`, `invalid_token` …). */
export interface ReasonCount {
  reason: string;
  count: number;
}

/** Use of one policy in a period. */
export interface PolicyUsage {
  policy: string;
  issuances: number;
  denials: number;
  /** Start of the last hour with an issuance (ms), or null. */
  lastIssued: number | null;
}

/** Read-only aggregate queries for the console. */
export class AuditStats {
  readonly #store: D1AuditStore;

  constructor(db: D1Database) {
    this.#store = new D1AuditStore(db);
  }

  /**
   * Exchange decisions in `count` buckets of `bucketHours` hours ending with the one holding `now` (UTC-aligned),
   * oldest first; empty buckets are zeros.
   */
  async series(now: number, bucketHours: number, count: number): Promise<Bucket[]> {
    const bucketMs = bucketHours * HOUR_MS;
    const firstStart = (Math.floor(now / bucketMs) - (count - 1)) * bucketMs;
    // D1 binds JavaScript numbers as REAL: the divisor is cast so buckets are whole numbers.
    const rows = await this.#store.read((db) =>
      db
        .prepare(
          `SELECT hour / CAST(? AS INTEGER) AS b, decision, SUM(n) AS n FROM audit_rollup
           WHERE hour >= ? AND hour < ? AND event = 'exchange' GROUP BY b, decision`,
        )
        .bind(bucketHours, firstStart / HOUR_MS, firstStart / HOUR_MS + count * bucketHours)
        .all<{ b: number; decision: string; n: number }>(),
    );
    const buckets: Bucket[] = Array.from({ length: count }, (_, i) => ({
      start: firstStart + i * bucketMs,
      allow: 0,
      deny: 0,
    }));
    for (const r of rows.results) {
      const bucket = buckets[r.b - firstStart / bucketMs];
      if (!bucket) continue;
      if (r.decision === "allow") bucket.allow += r.n;
      else bucket.deny += r.n;
    }
    return buckets;
  }

  /** The most frequent reasons exchanges were denied in [from, to) (hour precision), most frequent first. */
  async topDenials(from: number, to: number, limit: number): Promise<ReasonCount[]> {
    const rows = await this.#store.read((db) =>
      db
        .prepare(
          `SELECT reason, SUM(n) AS count FROM audit_rollup
           WHERE hour >= ? AND hour < ? AND event = 'exchange' AND decision = 'deny'
           GROUP BY reason ORDER BY count DESC, reason LIMIT ?`,
        )
        .bind(Math.floor(from / HOUR_MS), Math.ceil(to / HOUR_MS), limit)
        .all<ReasonCount>(),
    );
    return rows.results;
  }

  /** Issuances, denials and the last issuance of every policy with any exchange in [from, to). */
  async policyUsage(from: number, to: number): Promise<Map<string, PolicyUsage>> {
    const rows = await this.#store.read((db) =>
      db
        .prepare(
          `SELECT policy, SUM(CASE WHEN decision = 'allow' THEN n ELSE 0 END) AS issuances,
                  SUM(CASE WHEN decision = 'deny' THEN n ELSE 0 END) AS denials,
                  MAX(CASE WHEN decision = 'allow' THEN hour END) AS last_hour
           FROM audit_rollup WHERE hour >= ? AND hour < ? AND event = 'exchange' AND policy != ''
           GROUP BY policy`,
        )
        .bind(Math.floor(from / HOUR_MS), Math.ceil(to / HOUR_MS))
        .all<{ policy: string; issuances: number; denials: number; last_hour: number | null }>(),
    );
    return new Map(
      rows.results.map((r) => [
        r.policy,
        {
          policy: r.policy,
          issuances: r.issuances,
          denials: r.denials,
          lastIssued: r.last_hour === null ? null : r.last_hour * HOUR_MS,
        },
      ]),
    );
  }

  /**
   * When each secret path was last delivered at or after `since` (exchange records name the path of each secret
   * grant). Reads the records of that window through audit_by_ts: keep the window short (the console uses 90 d).
   */
  async lastDelivered(since: number): Promise<Map<string, number>> {
    const rows = await this.#store.read((db) =>
      db
        .prepare(
          `SELECT json_extract(g.value, '$.path') AS path, MAX(a.ts) AS ts
           FROM audit_records a, json_each(a.record, '$.grants') g
           WHERE a.ts >= ? AND a.event = 'exchange' AND a.decision = 'allow'
             AND json_extract(g.value, '$.type') = 'secrets' GROUP BY path`,
        )
        .bind(since)
        .all<{ path: string | null; ts: number }>(),
    );
    return new Map(rows.results.flatMap((r) => (r.path ? [[r.path, r.ts] as const] : [])));
  }

  /**
   * What a compliance report lists for [from, to), oldest first: every issuance with how its lease ended (from the
   * lease index), admin actions, revocations and upstream revocation outcomes. One range scan of audit_by_ts.
   */
  async reportRecords(
    from: number,
    to: number,
    limit: number,
  ): Promise<Array<{ record: AuditRecord; ended_at: number | null; end_reason: string | null }>> {
    const rows = await this.#store.read((db) =>
      db
        .prepare(
          `SELECT a.record AS record, l.ended_at AS ended_at, l.end_reason AS end_reason
           FROM audit_records a LEFT JOIN lease_index l ON a.event = 'exchange' AND l.lease_id = a.lease_id
           WHERE a.ts >= ? AND a.ts < ?
             AND ((a.event = 'exchange' AND a.decision = 'allow')
               OR a.event IN ('admin', 'admin_revoke', 'secret_admin', 'revocation'))
           ORDER BY a.ts, a.id LIMIT ?`,
        )
        .bind(from, to, limit)
        .all<{ record: string; ended_at: number | null; end_reason: string | null }>(),
    );
    return rows.results.map((r) => ({
      record: JSON.parse(r.record) as AuditRecord,
      ended_at: r.ended_at,
      end_reason: r.end_reason,
    }));
  }

  /**
   * Live leases (not ended, not expired), newest first, with the runs holding them. Read per issuer through
   * lease_active_issuer (issuer, ended_at, expires_at): only live rows are visited, whatever a year left behind.
   */
  async liveLeases(
    issuers: readonly string[],
    now: number,
    limit: number,
  ): Promise<{ leases: LeaseIndexRow[]; total: number; runs: number }> {
    if (issuers.length === 0) return { leases: [], total: 0, runs: 0 };
    const marks = issuers.map(() => "?").join(", ");
    const where = `issuer IN (${marks}) AND ended_at IS NULL AND expires_at > ?`;
    const [rows, counts] = await this.#store.read((db) =>
      Promise.all([
        db
          .prepare(`SELECT * FROM lease_index WHERE ${where} ORDER BY created_at DESC LIMIT ?`)
          .bind(...issuers, now, limit)
          .all<LeaseIndexRow>(),
        db
          .prepare(`SELECT COUNT(*) AS total, COUNT(DISTINCT run) AS runs FROM lease_index WHERE ${where}`)
          .bind(...issuers, now)
          .first<{ total: number; runs: number }>(),
      ]),
    );
    return { leases: rows.results, total: counts?.total ?? 0, runs: counts?.runs ?? 0 };
  }
}
