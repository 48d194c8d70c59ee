// Rows written are what Cloudflare bills SQLite storage by (D1 and Durable Objects alike; every index entry is a
// row): the layouts keep an exchange's durable writes to what the invariants need (docs/benchmarks.md, Cost per
// million exchanges). Counted with SQLite's own figures: D1's meta.rows_written and a cursor's rowsWritten.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { D1AuditStore } from "../../src/adapters/audit-store.ts";
import { RUN_LEDGER_SCHEMA } from "../../src/adapters/run-ledger-schema.ts";
import { applySchema } from "../../src/adapters/sqlite-schema.ts";
import type { AuditRecord } from "../../src/core/audit/record.ts";

/** A D1 binding that adds up meta.rows_written of every batch (the audit store writes only in batches). */
function countingD1(db: D1Database): { db: D1Database; written: () => number; reset: () => void } {
  let written = 0;
  const wrapped = {
    prepare: (query: string) => db.prepare(query),
    batch: async (statements: D1PreparedStatement[]) => {
      const results = await db.batch(statements);
      for (const r of results) written += r.meta.rows_written;
      return results;
    },
  } as unknown as D1Database;
  return {
    db: wrapped,
    written: () => written,
    reset: () => {
      written = 0;
    },
  };
}

/** An allowed GitHub exchange's record: a repository, no project (GitLab's), a token digest, a lease. */
function githubAllow(n: number): AuditRecord {
  const ts = new Date(Date.UTC(2026, 10, 1, 0, 0, n)).toISOString();
  return {
    id: `aud_cost_${n}`,
    ts,
    request_id: `req_cost_${n}`,
    event: "exchange",
    decision: "allow",
    reasons: [],
    policy: "deploy",
    run: `github:cost:1:${n}:1`,
    repository_id: "519345000",
    issuer: "https://token.actions.githubusercontent.com",
    token_id: `hmac-sha256:${"a".repeat(60)}${String(n).padStart(4, "0")}`,
    lease_id: `lease_cost_${n}`,
    lease_expires_at: new Date(Date.UTC(2026, 10, 1, 1, 0, n)).toISOString(),
    grants: [],
    count: 1,
    // A token + github exchange returns three credential values: the token, the installation token and the
    // revoke token; each leaves one keyed fingerprint row in the leak index (docs/leaks.md).
    fingerprints: (["token", "github", "revoke_token"] as const).map((kind) => ({
      kind,
      fp: `hmac-sha256:${kind}:${n}`,
    })),
  } as AuditRecord;
}

describe("storage rows written per exchange", () => {
  // 14 for the record, its indexes and the lease index entry, 1 for the console's hourly rollup (docs/console.md)
  // and 1 per credential value for the leak index (docs/leaks.md): 3 for a token + github exchange.
  it("a GitHub exchange's audit record, lease index entry, rollup and leak fingerprints write at most 18 D1 rows", async () => {
    const d1 = countingD1(env.AUDIT_DB);
    const store = new D1AuditStore(d1.db);
    await store.insert([githubAllow(1)]); // creates the schema
    d1.reset();
    await store.insert([githubAllow(2)]);
    expect(d1.written()).toBeLessThanOrEqual(18);
  });

  it("a run's shipment indexes every record, lease and fingerprint, and a re-shipped batch doubles nothing", async () => {
    const store = new D1AuditStore(env.AUDIT_DB);
    // A large shipment, with a lease ending in the same shipment as its exchange.
    const records = Array.from({ length: 20 }, (_, i) => githubAllow(200 + i));
    const ended = {
      ...githubAllow(300),
      id: "aud_cost_end_219",
      event: "lease_end",
      lease_id: "lease_cost_219",
      end_reason: "run_completed",
      fingerprints: undefined,
    } as AuditRecord;
    await store.insert([...records, ended]);
    const count = async (query: string) => (await env.AUDIT_DB.prepare(query).first<{ n: number }>())?.n ?? 0;
    expect(
      await count(
        "SELECT COUNT(*) AS n FROM audit_records WHERE id LIKE 'aud_cost_2__' OR id = 'aud_cost_end_219'",
      ),
    ).toBe(21);
    expect(await count("SELECT COUNT(*) AS n FROM lease_index WHERE lease_id LIKE 'lease_cost_2__'")).toBe(
      20,
    );
    expect(await count("SELECT COUNT(*) AS n FROM leak_index WHERE owner LIKE 'lease_cost_2__'")).toBe(60);
    expect(
      await count(
        "SELECT COUNT(*) AS n FROM lease_index WHERE lease_id = 'lease_cost_219' AND end_reason = 'run_completed'",
      ),
    ).toBe(1);
    const stored = await env.AUDIT_DB.prepare(
      "SELECT record FROM audit_records WHERE id = 'aud_cost_207'",
    ).first<{
      record: string;
    }>();
    expect(JSON.parse(stored?.record ?? "{}")).toMatchObject({
      lease_id: "lease_cost_207",
      run: "github:cost:1:207:1",
    });
    // The outbox may ship a batch twice (a retry after a lost answer): nothing doubles.
    await store.insert(records);
    expect(await count("SELECT COUNT(*) AS n FROM leak_index WHERE owner LIKE 'lease_cost_2__'")).toBe(60);
    expect(await count("SELECT COUNT(*) AS n FROM audit_records WHERE id LIKE 'aud_cost_2__'")).toBe(20);
  });

  it("audit and lease queries by project and repository still use an index, not a scan", async () => {
    await new D1AuditStore(env.AUDIT_DB).insert([githubAllow(3)]);
    const plan = async (query: string) =>
      (await env.AUDIT_DB.prepare(`EXPLAIN QUERY PLAN ${query}`).bind("x").all<{ detail: string }>()).results
        .map((r) => r.detail)
        .join("; ");
    for (const query of [
      "SELECT id FROM audit_records WHERE project_id = ? ORDER BY ts DESC, id DESC LIMIT 10",
      "SELECT id FROM audit_records WHERE repository_id = ? ORDER BY ts DESC, id DESC LIMIT 10",
      "SELECT DISTINCT run FROM lease_index WHERE project_id = ? AND ended_at IS NULL",
      "SELECT DISTINCT run FROM lease_index WHERE repository_id = ? AND ended_at IS NULL",
    ]) {
      expect(await plan(query), query).toMatch(/USING (COVERING )?INDEX/);
    }
  });

  it("marking a token used and storing a lease write one row each in the run's object", async () => {
    const stub = env.RUN_LEDGER.get(env.RUN_LEDGER.idFromName("storage-cost-rows"));
    const rows = await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      const used = sql.exec("INSERT INTO used_tokens (id, expires_at) VALUES ('jti-cost', 1)");
      used.toArray();
      const lease = sql.exec(
        "INSERT INTO leases (id, revoke_hash, policy, created_at, expires_at, grants) VALUES ('l-cost', 'h', 'p', 1, 2, '[]')",
      );
      lease.toArray();
      return { used: used.rowsWritten, lease: lease.rowsWritten };
    });
    expect(rows).toEqual({ used: 1, lease: 1 });
  });

  it("a new run's object gets its whole layout without a column migration", async () => {
    const stub = env.RUN_LEDGER.get(env.RUN_LEDGER.idFromName("storage-cost-layout"));
    const statements = await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      for (const { name } of sql
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
        )
        .toArray()) {
        sql.exec(`DROP TABLE ${name}`);
      }
      const seen: string[] = [];
      const recording = {
        exec: (query: string, ...bindings: unknown[]) => {
          seen.push(query);
          return sql.exec(query, ...bindings);
        },
      } as unknown as SqlStorage;
      applySchema(recording, RUN_LEDGER_SCHEMA);
      return seen;
    });
    expect(statements.filter((s) => s.startsWith("ALTER TABLE"))).toEqual([]);
  });
});
