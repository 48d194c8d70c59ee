// Audit helpers for route handlers: a sink per request, and one record for a refused request.

import type { Context } from "hono";
import { d1AuditSink } from "../adapters/audit-sink.ts";
import { type AuditEvent, type AuditRecord, auditRecord } from "../core/audit/record.ts";
import type { RunpassError } from "../core/errors.ts";
import type { AuditSink } from "../core/ledger.ts";
import type { AppEnv } from "./types.ts";

/** The request's audit sink (log line now, D1 in waitUntil). */
export function auditSink(c: Context<AppEnv>): AuditSink {
  return d1AuditSink(c.env.AUDIT_DB, (p) => c.executionCtx.waitUntil(p));
}

/** A base record for this request (allow or deny), before any token is known. */
export async function requestRecord(
  c: Context<AppEnv>,
  event: AuditEvent,
  decision: Pick<AuditRecord, "decision" | "error" | "reasons">,
  fields: Partial<AuditRecord> = {},
): Promise<AuditRecord> {
  const rt = c.get("runtime");
  const hasher = rt.context(c.env).hasher();
  const record = await auditRecord(
    { requestId: c.get("requestId"), event, policySetVersion: rt.policies.version, now: rt.clock() },
    hasher,
    {
      decision: decision.decision,
      reasons: decision.reasons,
      ...(decision.error ? { error: decision.error } : {}),
    },
  );
  // An admin request made through Cloudflare Access names its person (fields may still say otherwise).
  const actor = c.get("adminActor");
  return { ...record, ...(actor ? { actor } : {}), ...fields };
}

/** Records a refused request (bad input, bad signature …) and returns the error for rethrowing. */
export async function auditRefusal(
  c: Context<AppEnv>,
  event: AuditEvent,
  error: RunpassError,
  fields: Partial<AuditRecord> = {},
): Promise<RunpassError> {
  const record = await requestRecord(
    c,
    event,
    { decision: "deny", error: error.code, reasons: error.reasons },
    fields,
  );
  auditSink(c).write(record);
  return error;
}
