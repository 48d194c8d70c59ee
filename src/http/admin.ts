// /v1/admin/*: bearer RUNPASS_ADMIN_TOKEN (compared in constant time); audit queries and audit-hash.

import type { Hono, MiddlewareHandler } from "hono";
import * as z from "zod/mini";
import { D1AuditStore } from "../adapters/audit-store.ts";
import type { Env } from "../adapters/env.ts";
import { MAX_AUDIT_PAGE } from "../constants.ts";
import { timingSafeEqualText } from "../core/crypto.ts";
import { base64url, utf8 } from "../core/encoding.ts";
import { ConfigError, RunpassError } from "../errors.ts";
import { bearer, describeIssue, jsonBody } from "./request.ts";
import { NO_STORE } from "./respond.ts";
import type { AppEnv } from "./types.ts";

/** Requires `Authorization: Bearer <RUNPASS_ADMIN_TOKEN>`; missing config fails closed. */
export function requireAdmin(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const expected = (c.env as Env).RUNPASS_ADMIN_TOKEN;
    if (!expected || expected.length < 16) {
      throw new ConfigError(
        "RUNPASS_ADMIN_TOKEN is not set (or shorter than 16 characters); the admin API is closed",
      );
    }
    const given = bearer(c, 1024);
    if (!given || !(await timingSafeEqualText(given, expected))) {
      throw new RunpassError(
        "invalid_token",
        "the admin API requires `Authorization: Bearer <RUNPASS_ADMIN_TOKEN>`",
      );
    }
    await next();
  };
}

const AuditQuerySchema = z.strictObject({
  run: z.optional(z.string()),
  repository_id: z.optional(z.string()),
  project_id: z.optional(z.string()),
  policy: z.optional(z.string()),
  decision: z.optional(z.enum(["allow", "deny"])),
  event: z.optional(z.string()),
  token_id: z.optional(z.string()),
  lease_id: z.optional(z.string()),
  credential: z.optional(z.string()),
  since: z.optional(z.string()),
  limit: z.optional(z.string()),
  cursor: z.optional(z.string()),
});

function decodeCursor(text: string): { ts: number; id: string } {
  try {
    const json = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    const v = JSON.parse(json) as { ts?: unknown; id?: unknown };
    if (typeof v.ts === "number" && typeof v.id === "string") return { ts: v.ts, id: v.id };
  } catch {
    // fall through
  }
  throw new RunpassError("invalid_request", '"cursor" is not a cursor this API returned');
}

/** Registers the admin routes. */
export function adminRoutes(app: Hono<AppEnv>): void {
  app.use("/v1/admin/*", requireAdmin());

  app.get("/v1/admin/audit", async (c) => {
    const parsed = AuditQuerySchema.safeParse(c.req.query());
    if (!parsed.success) throw new RunpassError("invalid_request", describeIssue(parsed.error.issues));
    const q = parsed.data;
    let since: number | undefined;
    if (q.since !== undefined) {
      since = Date.parse(q.since);
      if (Number.isNaN(since))
        throw new RunpassError("invalid_request", '"since" must be an ISO 8601 timestamp');
    }
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_PAGE) {
      throw new RunpassError("invalid_request", `"limit" must be an integer from 1 to ${MAX_AUDIT_PAGE}`);
    }
    const page = await new D1AuditStore(c.env.AUDIT_DB).query({
      ...(q.run !== undefined ? { run: q.run } : {}),
      ...(q.repository_id !== undefined ? { repository_id: q.repository_id } : {}),
      ...(q.project_id !== undefined ? { project_id: q.project_id } : {}),
      ...(q.policy !== undefined ? { policy: q.policy } : {}),
      ...(q.decision !== undefined ? { decision: q.decision } : {}),
      ...(q.event !== undefined ? { event: q.event } : {}),
      ...(q.token_id !== undefined ? { token_id: q.token_id } : {}),
      ...(q.lease_id !== undefined ? { lease_id: q.lease_id } : {}),
      ...(q.credential !== undefined ? { credential: q.credential } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(q.cursor !== undefined ? { cursor: decodeCursor(q.cursor) } : {}),
      limit,
    });
    return c.json(
      {
        records: page.records,
        ...(page.next ? { next_cursor: base64url(utf8(JSON.stringify(page.next))) } : {}),
      },
      200,
      NO_STORE,
    );
  });

  app.post("/v1/admin/audit-hash", async (c) => {
    const body = await jsonBody(
      c,
      z.strictObject({ value: z.string().check(z.minLength(1), z.maxLength(65536)) }),
    );
    const digest = await c.get("runtime").context(c.env).hasher().digest(body.value);
    return c.json({ digest }, 200, NO_STORE);
  });
}
