// The run ledger's SQLite layout (src/adapters/run-ledger.ts): every table, and every column added to one since
// it first shipped, in one place. A new column goes into its CREATE TABLE (new objects get it there, with no
// ALTER TABLE to pay for) and onto the end of `added` (objects created before get it from there).
// Tables keyed by text are WITHOUT ROWID: the key is the table, so each insert writes one row (a billed row
// written, docs/benchmarks.md), not a row plus a key index entry. Objects created before keep their tables.

import { OUTBOX_TABLE } from "./audit-outbox.ts";
import type { SqliteSchema } from "./sqlite-schema.ts";

/** Tables and column migrations of one run's Durable Object. */
export const RUN_LEDGER_SCHEMA: SqliteSchema = {
  statements: [
    "CREATE TABLE IF NOT EXISTS used_tokens (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;",
    `CREATE TABLE IF NOT EXISTS leases (
      id TEXT PRIMARY KEY, revoke_hash TEXT NOT NULL, policy TEXT NOT NULL,
      created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
      ended_at INTEGER, end_reason TEXT, grants TEXT NOT NULL,
      subject TEXT, scope TEXT, renew_interval_ms INTEGER, renew_after INTEGER,
      rules_checked INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;`,
    "CREATE TABLE IF NOT EXISTS run_state (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;",
    "CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;",
    "CREATE TABLE IF NOT EXISTS once_deliveries (policy TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;",
    `CREATE TABLE IF NOT EXISTS pending_revocations (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, lease_id TEXT NOT NULL, grant_json TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL
    );`,
    OUTBOX_TABLE,
  ],
  // Objects created before leases remembered these columns.
  added: [
    { table: "leases", name: "subject", type: "TEXT" },
    { table: "leases", name: "scope", type: "TEXT" },
    { table: "leases", name: "renew_interval_ms", type: "INTEGER" },
    { table: "leases", name: "renew_after", type: "INTEGER" },
    { table: "leases", name: "rules_checked", type: "INTEGER NOT NULL DEFAULT 0" },
  ],
};
