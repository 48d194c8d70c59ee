// Durable Object storage layouts are data (src/adapters/*-schema.ts, src/adapters/sqlite-schema.ts): a run
// object an older version created, whose leases table predates the later columns, is brought up to date when
// the layout is applied, and applying it again changes nothing.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { RUN_LEDGER_SCHEMA } from "../../src/adapters/run-ledger-schema.ts";
import { applySchema } from "../../src/adapters/sqlite-schema.ts";

const columns = (sql: SqlStorage, table: string) =>
  sql
    .exec<{ name: string }>(`PRAGMA table_info(${table})`)
    .toArray()
    .map((c) => c.name);

describe("run ledger storage layout", () => {
  it("adds every later lease column to an object created before them, keeping its rows", async () => {
    const stub = env.RUN_LEDGER.get(env.RUN_LEDGER.idFromName("schema-migration-run"));
    const after = await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      // The leases table as the first release created it, with one lease in it.
      sql.exec("DROP TABLE leases");
      sql.exec(
        `CREATE TABLE leases (id TEXT PRIMARY KEY, revoke_hash TEXT NOT NULL, policy TEXT NOT NULL,
          created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, ended_at INTEGER, end_reason TEXT,
          grants TEXT NOT NULL)`,
      );
      sql.exec(
        "INSERT INTO leases (id, revoke_hash, policy, created_at, expires_at, grants) VALUES ('l1', 'h', 'p', 1, 2, '{}')",
      );
      applySchema(sql, RUN_LEDGER_SCHEMA);
      applySchema(sql, RUN_LEDGER_SCHEMA);
      return {
        columns: columns(sql, "leases"),
        row: sql
          .exec<{ id: string; rules_checked: number }>("SELECT id, rules_checked FROM leases")
          .toArray(),
      };
    });
    for (const { name } of RUN_LEDGER_SCHEMA.added) expect(after.columns).toContain(name);
    expect(after.row).toEqual([{ id: "l1", rules_checked: 0 }]);
  });
});
