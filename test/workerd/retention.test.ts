// Retention (docs/operations.md, "Retention"): the daily cron trigger deletes audit records, ended leases' index
// rows and rollup hours older than RUNPASS_AUDIT_RETENTION, and a lease's leak fingerprints 30 days after it ended;
// everything younger, every active lease and every secret version's fingerprint stays. A bad setting purges nothing.

import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { D1AuditStore } from "../../src/adapters/audit-store.ts";
import { auditRetentionMs } from "../../src/adapters/retention.ts";
import worker from "../../src/index.ts";

const DAY = 86_400_000;
const NOW = Date.parse("2026-12-02T03:17:00Z");

async function seed(tag: string) {
  const db = env.AUDIT_DB;
  await new D1AuditStore(db).read(async () => undefined);
  const record = (id: string, ageDays: number) =>
    db
      .prepare(
        "INSERT INTO audit_records (id, ts, event, decision, policy, count, record) VALUES (?, ?, 'introspect', 'allow', ?, 1, '{}')",
      )
      .bind(`${tag}-${id}`, NOW - ageDays * DAY, tag);
  const lease = (id: string, createdDaysAgo: number, endedDaysAgo: number | null, expiresInDays: number) =>
    db
      .prepare(
        "INSERT INTO lease_index (lease_id, run, policy, created_at, expires_at, ended_at) VALUES (?, 'github:x:1:2:1', ?, ?, ?, ?)",
      )
      .bind(
        `${tag}-${id}`,
        tag,
        NOW - createdDaysAgo * DAY,
        NOW + expiresInDays * DAY,
        endedDaysAgo === null ? null : NOW - endedDaysAgo * DAY,
      );
  const fp = (owner: string, kind: string, createdDaysAgo: number) =>
    db
      .prepare("INSERT INTO leak_index (fp, owner, kind, created_at) VALUES (?, ?, ?, ?)")
      .bind(
        `fp-${tag}-${owner}`,
        owner.startsWith("secret:") ? owner : `${tag}-${owner}`,
        kind,
        NOW - createdDaysAgo * DAY,
      );
  await db.batch([
    record("ancient", 401),
    record("recent", 399),
    lease("old-ended", 402, 401, -401),
    lease("old-expired", 410, null, -405),
    lease("recent-ended", 40, 31, -30),
    lease("fresh-ended", 11, 10, 1),
    lease("active", 0, null, 1),
    fp("recent-ended", "token", 40),
    fp("fresh-ended", "token", 11),
    fp("orphan-old", "aws", 60),
    fp("orphan-new", "aws", 1),
    fp(`secret:${tag}/k@1`, "secret", 900),
  ]);
  const ids = async (sql: string) =>
    (await db.prepare(sql).bind(`${tag}%`).all<{ id: string }>()).results
      .map((r) => r.id.slice(tag.length + 1))
      .sort();
  return {
    records: () => ids("SELECT id FROM audit_records WHERE id LIKE ?"),
    leases: () => ids("SELECT lease_id AS id FROM lease_index WHERE lease_id LIKE ?"),
    fingerprints: async () =>
      (
        await db
          .prepare("SELECT owner FROM leak_index WHERE fp LIKE ?")
          .bind(`fp-${tag}-%`)
          .all<{ owner: string }>()
      ).results
        .map((r) => r.owner)
        .sort(),
  };
}

async function runCron(extra: Record<string, string> = {}) {
  const ctx = createExecutionContext();
  await worker.scheduled(
    createScheduledController({ scheduledTime: NOW, cron: "17 3 * * *" }),
    { ...env, ...extra } as never,
    ctx,
  );
  await waitOnExecutionContext(ctx);
}

describe("retention", () => {
  it("the cron trigger deletes what is past retention and keeps the rest", async () => {
    const tag = `r${crypto.randomUUID().slice(0, 8)}`;
    const s = await seed(tag);
    await runCron();
    expect(await s.records()).toEqual(["recent"]);
    expect(await s.leases()).toEqual(["active", "fresh-ended", "recent-ended"]);
    // The fingerprints of the lease that ended 31 days ago and of the old orphan are gone.
    expect(await s.fingerprints()).toEqual(
      [`${tag}-fresh-ended`, `${tag}-orphan-new`, `secret:${tag}/k@1`].sort(),
    );
  });

  it("RUNPASS_AUDIT_RETENTION moves the cutoff; a value under a week or junk purges nothing", async () => {
    const tag = `r${crypto.randomUUID().slice(0, 8)}`;
    const s = await seed(tag);
    for (const bad of ["1h", "banana", "3d"]) {
      await runCron({ RUNPASS_AUDIT_RETENTION: bad });
      expect(await s.records()).toEqual(["ancient", "recent"]);
    }
    await runCron({ RUNPASS_AUDIT_RETENTION: "30d" });
    expect(await s.records()).toEqual([]);
    expect(await s.leases()).toEqual(["active", "fresh-ended"]);
  });

  it("parses the setting", () => {
    expect(auditRetentionMs(undefined)).toBe(400 * DAY);
    expect(auditRetentionMs("90d")).toBe(90 * DAY);
    expect(() => auditRetentionMs("6d")).toThrow(/RUNPASS_AUDIT_RETENTION/);
  });
});
