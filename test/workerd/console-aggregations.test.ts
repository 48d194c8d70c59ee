// The console's aggregations over real D1 (docs/console.md, "Aggregations"): the hourly rollup counts each inserted
// record exactly once (re-shipped records are ignored, aggregated records count their `count`), the migration
// backfills a database that predates the rollup, the queries bucket and rank correctly, and with a year of
// records the overview's queries read the rollup and the lease index by issuer, never the records (EXPLAIN QUERY PLAN).
// Each test works in its own far-future hours and policy names, so the shared database's other rows do not matter.

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { AuditStats } from "../../src/adapters/audit-stats.ts";
import { D1AuditStore } from "../../src/adapters/audit-store.ts";
import type { AuditRecord } from "../../src/core/audit/record.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A UTC-day-aligned start in 2031+ that no other test uses. */
function freshDay(): number {
  return Date.UTC(2031, 0, 1) + Math.floor(Math.random() * 50_000) * DAY;
}

function record(ts: number, fields: Partial<AuditRecord>): AuditRecord {
  return {
    id: `aud_${crypto.randomUUID()}`,
    ts: new Date(ts).toISOString(),
    request_id: "req_test",
    event: "exchange",
    decision: "allow",
    reasons: [],
    count: 1,
    ...fields,
  };
}

async function plan(sql: string, ...args: unknown[]): Promise<string> {
  const rows = await env.AUDIT_DB.prepare(`EXPLAIN QUERY PLAN ${sql}`)
    .bind(...args)
    .all<{ detail: string }>();
  return rows.results.map((r) => r.detail).join(" | ");
}

describe("the audit rollup", () => {
  it("counts each inserted record once (re-shipping changes nothing; aggregated records count their count) and buckets, ranks and sums correctly", async () => {
    const day = freshDay();
    const p = `agg-${crypto.randomUUID().slice(0, 8)}`;
    const store = new D1AuditStore(env.AUDIT_DB);
    const records = [
      record(day + 1 * HOUR + 5, { policy: p }),
      record(day + 1 * HOUR + 6, { policy: p }),
      record(day + 3 * HOUR, { policy: p }),
      record(day + 3 * HOUR + 1, {
        policy: p,
        decision: "deny",
        error: "access_denied",
        reasons: [{ code: "claim_mismatch", claim: "ref" }],
      }),
      record(day + 3 * HOUR + 2, {
        policy: p,
        decision: "deny",
        error: "access_denied",
        reasons: [{ code: "claim_mismatch", claim: "ref" }],
      }),
      record(day + 5 * HOUR, { policy: p, decision: "deny", error: "invalid_token", reasons: [] }),
      // A flood aggregated into one record stands for 7 denials.
      record(day + 5 * HOUR + 1, {
        policy: p,
        decision: "deny",
        error: "access_denied",
        reasons: [{ code: "denied_by" }],
        count: 7,
      }),
      // Another event: not an exchange, not in the charts.
      record(day + 5 * HOUR + 2, { policy: p, event: "explain" }),
      // Next day: in the 30-day chart, not in this day's hours.
      record(day + 26 * HOUR, { policy: p }),
    ];
    await store.insert(records);
    await store.insert(records.slice(0, 4)); // the outbox re-ships after a lost acknowledgement

    const stats = new AuditStats(env.AUDIT_DB);
    const hours = await stats.series(day + 23 * HOUR + 59 * 60_000, 1, 24);
    expect(hours).toHaveLength(24);
    expect(hours[0]?.start).toBe(day);
    expect(hours.map((b) => [b.allow, b.deny])).toEqual(
      Array.from({ length: 24 }, (_, h) => (h === 1 ? [2, 0] : h === 3 ? [1, 2] : h === 5 ? [0, 8] : [0, 0])),
    );
    const days = await stats.series(day + 36 * HOUR, 24, 30);
    expect(days[28]).toEqual({ start: day, allow: 3, deny: 10 });
    expect(days[29]).toEqual({ start: day + DAY, allow: 1, deny: 0 });

    expect(await stats.topDenials(day, day + DAY, 10)).toEqual([
      { reason: "denied_by", count: 7 },
      { reason: "claim_mismatch:ref", count: 2 },
      { reason: "invalid_token", count: 1 },
    ]);
    const usage = (await stats.policyUsage(day, day + 2 * DAY)).get(p);
    expect(usage).toEqual({ policy: p, issuances: 4, denials: 10, lastIssued: day + 26 * HOUR });
  });

  it("the migration counts the records of a database that predates the rollup, once", async () => {
    const day = freshDay();
    const p = `mig-${crypto.randomUUID().slice(0, 8)}`;
    const store = new D1AuditStore(env.AUDIT_DB);
    await store.insert([record(day, { policy: "warm-up" })]); // the schema exists
    // An older database: no trigger, no rollup, no migration mark; records written meanwhile.
    await env.AUDIT_DB.batch([
      env.AUDIT_DB.prepare("DROP TRIGGER audit_rollup_feed"),
      env.AUDIT_DB.prepare("DROP TABLE audit_rollup"),
      env.AUDIT_DB.prepare("DROP TABLE audit_migrations"),
    ]);
    await env.AUDIT_DB.prepare(
      "INSERT INTO audit_records (id, ts, event, decision, policy, count, record) VALUES (?, ?, 'exchange', 'allow', ?, 3, '{}'), (?, ?, 'exchange', 'allow', ?, 1, '{}')",
    )
      .bind(`old-${p}-1`, day + HOUR, p, `old-${p}-2`, day + HOUR + 1, p)
      .run();
    const stats = new AuditStats(env.AUDIT_DB);
    // The first read finds no rollup, re-applies the schema: backfill, mark, trigger, in one batch.
    expect((await stats.policyUsage(day, day + DAY)).get(p)?.issuances).toBe(4);
    // From now on the trigger counts new records.
    await store.insert([record(day + 2 * HOUR, { policy: p })]);
    expect((await stats.policyUsage(day, day + DAY)).get(p)?.issuances).toBe(5);
  });
});

describe("a year of audit records", () => {
  it("the overview's queries read the rollup and the lease index by issuer, never the records", async () => {
    const perDay = 250;
    const days = 365;
    const end = freshDay();
    const start = end - days * DAY;
    const tag = crypto.randomUUID().slice(0, 8);
    const t0 = Date.now();
    // 91,250 records, 10 % denials, 5 policies, evenly spread; one statement so the seeding is quick.
    await env.AUDIT_DB.prepare(
      `INSERT INTO audit_records (id, ts, event, decision, policy, run, repository_id, count, record)
       WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
       SELECT 'yr-' || ? || '-' || i, ? + i * ?, 'exchange', CASE WHEN i % 10 = 0 THEN 'deny' ELSE 'allow' END,
              'yr-' || ? || '-' || (i % 5), 'github:gh:1:' || i || ':1', '1', 1,
              CASE WHEN i % 10 = 0
                THEN json_object('error', 'access_denied', 'reasons', json_array(json_object('code', 'claim_mismatch', 'claim', 'ref')))
                ELSE json_object('reasons', json_array()) END
       FROM n`,
    )
      .bind(days * perDay - 1, tag, start, Math.floor(DAY / perDay), tag)
      .run();
    const seeded = Date.now() - t0;
    const stats = new AuditStats(env.AUDIT_DB);
    const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
      const s = Date.now();
      const v = await f();
      return [v, Date.now() - s];
    };
    const [month, monthMs] = await timed(() => stats.series(end - 1, 24, 30));
    const [day, dayMs] = await timed(() => stats.series(end - 1, 1, 24));
    const [reasons, reasonsMs] = await timed(() => stats.topDenials(end - 30 * DAY, end, 8));
    const [usage, usageMs] = await timed(() => stats.policyUsage(end - 365 * DAY, end));
    const [, liveMs] = await timed(() => stats.liveLeases(["gh", "gl"], end, 10));
    // The same 30-day count straight from the records, for comparison.
    const [, rawMs] = await timed(() =>
      env.AUDIT_DB.prepare(
        "SELECT decision, SUM(count) FROM audit_records WHERE ts >= ? AND ts < ? AND event = 'exchange' GROUP BY decision",
      )
        .bind(end - 30 * DAY, end)
        .all(),
    );
    const rollupRows = await env.AUDIT_DB.prepare(
      "SELECT COUNT(*) AS n FROM audit_rollup WHERE hour >= ? AND hour < ? AND policy LIKE ?",
    )
      .bind(start / HOUR, end / HOUR, `yr-${tag}-%`)
      .first<{ n: number }>();
    const sum = (k: "allow" | "deny") => month.reduce((n, b) => n + b[k], 0);
    expect(sum("allow") + sum("deny")).toBeGreaterThanOrEqual(30 * perDay - perDay);
    expect(day.reduce((n, b) => n + b.allow + b.deny, 0)).toBeGreaterThan(0);
    expect(reasons[0]?.reason).toBe("claim_mismatch:ref");
    expect([...usage.keys()].filter((k) => k.startsWith(`yr-${tag}-`))).toHaveLength(5);

    const hour = Math.floor((end - 30 * DAY) / HOUR);
    const seriesPlan = await plan(
      "SELECT hour / CAST(? AS INTEGER) AS b, decision, SUM(n) FROM audit_rollup WHERE hour >= ? AND hour < ? AND event = 'exchange' GROUP BY b, decision",
      24,
      hour,
      hour + 720,
    );
    expect(seriesPlan).toMatch(/SEARCH audit_rollup USING PRIMARY KEY \(hour>\? AND hour<\?\)/);
    expect(seriesPlan).not.toMatch(/audit_records/);
    const livePlan = await plan(
      "SELECT COUNT(*) FROM lease_index WHERE issuer IN (?, ?) AND ended_at IS NULL AND expires_at > ?",
      "gh",
      "gl",
      end,
    );
    expect(livePlan).toMatch(
      /USING (COVERING )?INDEX lease_active_issuer \(issuer=\? AND ended_at=\? AND expires_at>\?\)/,
    );
    console.log(
      JSON.stringify({
        records: days * perDay,
        rollup_rows: rollupRows?.n,
        seed_ms: seeded,
        series_30d_ms: monthMs,
        series_24h_ms: dayMs,
        top_denials_ms: reasonsMs,
        policy_usage_365d_ms: usageMs,
        live_leases_ms: liveMs,
        raw_30d_count_ms: rawMs,
        series_plan: seriesPlan,
        live_plan: livePlan,
      }),
    );
  }, 120_000);
});
