// The audit outbox a Durable Object keeps in its own SQLite storage: records are written in the same
// transaction as the state they describe (so none is lost), mirrored to Workers Logs, and shipped to D1
// later. Shared by the run ledger and the rate limiter.

import { type AuditRecord, auditLogLine } from "../core/audit/record.ts";
import { AUDIT_SHIP_BATCH } from "../core/constants.ts";
import { D1AuditStore } from "./audit-store.ts";

/** How long after a failed shipment to D1 an object tries again (its alarm). */
export const OUTBOX_RETRY_MS = 10_000;

/** The outbox table, for the schema of each object that keeps one. */
export const OUTBOX_TABLE =
  "CREATE TABLE IF NOT EXISTS audit_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL);";

/** Stores a record for shipping and mirrors it to the log. Call inside the transaction that decided it. */
export function enqueueAudit(sql: SqlStorage, record: AuditRecord): void {
  sql.exec("INSERT INTO audit_outbox (record) VALUES (?)", JSON.stringify(record));
  console.log(auditLogLine(record));
}

/** Whether anything waits to be shipped. */
export function outboxPending(sql: SqlStorage): boolean {
  return sql.exec("SELECT 1 FROM audit_outbox LIMIT 1").toArray().length > 0;
}

/** Ships the outbox to D1 in batches, deleting each batch once D1 has it (inserts are idempotent). Throws if D1 fails. */
export async function shipOutbox(sql: SqlStorage, db: D1Database): Promise<void> {
  const store = new D1AuditStore(db);
  for (;;) {
    const rows = sql
      .exec<{ seq: number; record: string }>(
        "SELECT seq, record FROM audit_outbox ORDER BY seq LIMIT ?",
        AUDIT_SHIP_BATCH,
      )
      .toArray();
    if (rows.length === 0) return;
    await store.insert(rows.map((r) => JSON.parse(r.record) as AuditRecord));
    sql.exec("DELETE FROM audit_outbox WHERE seq <= ?", (rows[rows.length - 1] as { seq: number }).seq);
  }
}
