// Audit records written from the Worker (decisions that never reach a run ledger): a log line now, D1 in waitUntil.

import { type AuditRecord, auditLogLine } from "../core/audit/record.ts";
import type { AuditSink } from "../core/ledger.ts";
import { D1AuditStore } from "./audit-store.ts";

/** An AuditSink that mirrors each record to the log and inserts it into D1 without delaying the response. */
export function d1AuditSink(db: D1Database, waitUntil: (p: Promise<unknown>) => void): AuditSink {
  const store = new D1AuditStore(db);
  return {
    write(record: AuditRecord): void {
      console.log(auditLogLine(record));
      waitUntil(
        store.insert([record]).catch((e: unknown) => {
          console.error(
            JSON.stringify({
              type: "runpass.audit_write_failed",
              id: record.id,
              error: String(e).slice(0, 200),
            }),
          );
        }),
      );
    },
  };
}
