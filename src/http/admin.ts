// /v1/admin/*: bearer RUNPASS_ADMIN_TOKEN (compared in constant time); audit queries and audit-hash.

import type { Context, Hono, MiddlewareHandler } from "hono";
import * as z from "zod/mini";
import { D1AuditStore, type LeaseFilter } from "../adapters/audit-store.ts";
import { accessTeam, verifyAccessJwt } from "../adapters/cloudflare-access.ts";
import type { Env } from "../adapters/env.ts";
import { DurableLedger } from "../adapters/ledger-client.ts";
import { revocationRegistry } from "../adapters/revocation-registry.ts";
import { adminAccessConfig } from "../console/auth.ts";
import type { AuditRecord } from "../core/audit/record.ts";
import { ADMIN_REVOKE_CONCURRENCY, MAX_AUDIT_PAGE } from "../core/constants.ts";
import { timingSafeEqualText } from "../core/crypto.ts";
import { base64url, utf8 } from "../core/encoding.ts";
import { ConfigError, RunpassError } from "../core/errors.ts";
import type { RevocationRuleKind } from "../core/revocation-rules.ts";
import { raiseAlert } from "./alerts.ts";
import { auditRefusal, auditSink, requestRecord } from "./audit.ts";
import { connectionRoutes } from "./connections.ts";
import { clientBlocked, refuseOrCharge } from "./rate-limit.ts";
import { bearer, describeIssue, jsonBody } from "./request.ts";
import { NO_STORE } from "./respond.ts";
import { secretRoutes } from "./secrets.ts";
import { secretBackupRoutes } from "./secrets-backup.ts";
import { statusRoutes } from "./status.ts";
import type { AppEnv } from "./types.ts";

/**
 * Requires `Authorization: Bearer <RUNPASS_ADMIN_TOKEN>`, or — when RUNPASS_ACCESS_TEAM_DOMAIN and
 * RUNPASS_ADMIN_ACCESS_AUD are set — a valid Cloudflare Access token for that audience in `Cf-Access-Jwt-Assertion`;
 * missing config fails closed. The console's audience (RUNPASS_ACCESS_AUD) is never an admin credential.
 */
export function requireAdmin(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const expected = (c.env as Env).RUNPASS_ADMIN_TOKEN;
    if (!expected || expected.length < 16) {
      throw new ConfigError(
        "RUNPASS_ADMIN_TOKEN is not set (or shorter than 16 characters); the admin API is closed",
      );
    }
    // The right token always gets in; failures count against the client's failure limit, and past it they
    // are refused with 429 and audited only in the limiter's aggregate record (guessing stays slow and quiet).
    const blocked = clientBlocked(c);
    // A person through Cloudflare Access instead of the shared token, when the admin API has its own Access
    // application: the verified email becomes the actor of every audit record this request writes
    // (docs/deploy.md, "Admin access").
    // Read only for a request that carries an assertion: a misconfigured admin audience closes Access sign-in
    // but not the admin token, so `runpass doctor` can still read the problem from status.
    const assertion = c.req.header("cf-access-jwt-assertion");
    const access = assertion !== undefined ? adminAccessConfig(c) : undefined;
    if (access && assertion !== undefined) {
      const rt = c.get("runtime");
      try {
        const team = accessTeam(access.team, (c.env as Env).RUNPASS_DEV === "1");
        const who = await verifyAccessJwt(assertion, team, access.aud, rt.clock());
        c.set("adminActor", who.actor);
      } catch (e) {
        if (!(e instanceof RunpassError) || e instanceof ConfigError) throw e;
        const refusal = await refuseOrCharge(c, blocked, e);
        if (refusal) throw refusal;
        throw await auditRefusal(c, "admin", e, { detail: `${c.req.method} ${c.req.path}` });
      }
      await next();
      return;
    }
    let given: string | undefined;
    try {
      given = bearer(c, 1024);
    } catch {
      given = undefined;
    }
    if (!given || !(await timingSafeEqualText(given, expected))) {
      const error = new RunpassError(
        "invalid_token",
        "the admin API requires `Authorization: Bearer <RUNPASS_ADMIN_TOKEN>`",
        { reasons: [{ code: given ? "admin_token_invalid" : "token_missing" }] },
      );
      const refusal = await refuseOrCharge(c, blocked, error);
      if (refusal) throw refusal;
      throw await auditRefusal(c, "admin", error, { detail: `${c.req.method} ${c.req.path}` });
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

/** Rules outlive the longest lease by this much (clock differences between isolates and objects). */
const RULE_MARGIN_MS = 60 * 60 * 1000;

/** A run key as the ledger names runs (docs/architecture.md, State). */
export const RUN_KEY = /^(github|gitlab|token):[^\s]{1,900}$/;

/**
 * Ends a run and every lease it holds (admin revoke by run), audited as `admin_revoke` with `fields` (the console
 * adds its actor). Returns how many leases ended.
 */
export async function revokeRun(
  c: Context<AppEnv>,
  run: string,
  fields: Partial<AuditRecord> = {},
): Promise<number> {
  const rt = c.get("runtime");
  const { ended } = await new DurableLedger(c.env.RUN_LEDGER).endRun({
    requestId: c.get("requestId"),
    policySetVersion: rt.policies.version,
    reason: "admin_revoke",
    run,
  });
  auditSink(c).write(
    await requestRecord(
      c,
      "admin_revoke",
      { decision: "allow", reasons: [] },
      { run, ...fields, detail: `ended ${ended} leases in 1 runs` },
    ),
  );
  await raiseAlert(c, {
    alert: "admin_revoke",
    key: `admin_revoke:${c.get("requestId")}`,
    summary: `emergency revoke of run ${run}: ${ended} leases ended`,
    details: { run, ended_leases: ended },
    request_ids: [c.get("requestId")],
  });
  return ended;
}

const RevokeSchema = z.strictObject({
  run: z.optional(z.string().check(z.regex(RUN_KEY))),
  policy: z.optional(z.string().check(z.minLength(1), z.maxLength(128))),
  repository_id: z.optional(z.string().check(z.regex(/^[0-9]{1,20}$/))),
  project_id: z.optional(z.string().check(z.regex(/^[0-9]{1,20}$/))),
  issuer: z.optional(z.string().check(z.minLength(1), z.maxLength(128))),
});

const LeasesQuerySchema = z.strictObject({
  active: z.optional(z.enum(["0", "1", "true", "false"])),
  run: z.optional(z.string()),
  policy: z.optional(z.string()),
  repository_id: z.optional(z.string()),
  project_id: z.optional(z.string()),
  issuer: z.optional(z.string()),
  limit: z.optional(z.string()),
  cursor: z.optional(z.string()),
});

function parseLimit(text: string | undefined): number {
  const limit = text === undefined ? 100 : Number(text);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_PAGE) {
    throw new RunpassError("invalid_request", `"limit" must be an integer from 1 to ${MAX_AUDIT_PAGE}`);
  }
  return limit;
}

function encodeCursor(next: { ts: number; id: string }): string {
  return base64url(utf8(JSON.stringify(next)));
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  });
  await Promise.all(workers);
  return out;
}

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
  secretRoutes(app);
  connectionRoutes(app);
  statusRoutes(app);
  secretBackupRoutes(app);

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
    const limit = parseLimit(q.limit);
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
        ...(page.next ? { next_cursor: encodeCursor(page.next) } : {}),
      },
      200,
      NO_STORE,
    );
  });

  app.post("/v1/admin/revoke", async (c) => {
    const body = await jsonBody(c, RevokeSchema);
    const keys = Object.keys(body) as Array<keyof typeof body>;
    if (keys.length !== 1) {
      throw new RunpassError(
        "invalid_request",
        "name exactly one of run, policy, repository_id, project_id, issuer",
      );
    }
    if (body.run !== undefined) {
      // Revoking a run also ends the run: no later exchange for it succeeds.
      return c.json({ ended_leases: await revokeRun(c, body.run), runs: 1 }, 200, NO_STORE);
    }
    const rt = c.get("runtime");
    const ledger = new DurableLedger(c.env.RUN_LEDGER);
    const base = {
      requestId: c.get("requestId"),
      policySetVersion: rt.policies.version,
      reason: "admin_revoke" as const,
    };
    const filter = body as LeaseFilter;
    // The rule first, durably: a lease the index does not show yet is ended by its run's object on that
    // object's next action (docs/security.md, "Emergency revoke is complete").
    const [kind, value] = Object.entries(filter)[0] as [RevocationRuleKind, string];
    const now = rt.clock();
    const keepUntil = now + rt.context(c.env).config.maxLeaseTtl * 1000 + RULE_MARGIN_MS;
    await revocationRegistry(c.env).add({ kind, value, before: now }, keepUntil);
    const found = await new D1AuditStore(c.env.AUDIT_DB).activeRuns(filter, rt.clock());
    const counts = await mapLimited(found, ADMIN_REVOKE_CONCURRENCY, (run) =>
      ledger.endLeases({ ...base, run }, body.policy),
    );
    const ended = counts.reduce((a, b) => a + b, 0);
    const runs = found.length;
    auditSink(c).write(
      await requestRecord(
        c,
        "admin_revoke",
        { decision: "allow", reasons: [] },
        { ...body, detail: `ended ${ended} leases in ${runs} runs` },
      ),
    );
    await raiseAlert(c, {
      alert: "admin_revoke",
      key: `admin_revoke:${c.get("requestId")}`,
      summary: `emergency revoke by ${kind} ${value}: ${ended} leases ended in ${runs} runs`,
      details: { [kind]: value, ended_leases: ended, runs },
      request_ids: [c.get("requestId")],
    });
    return c.json({ ended_leases: ended, runs }, 200, NO_STORE);
  });

  app.get("/v1/admin/leases", async (c) => {
    const parsed = LeasesQuerySchema.safeParse(c.req.query());
    if (!parsed.success) throw new RunpassError("invalid_request", describeIssue(parsed.error.issues));
    const { active, limit, cursor, ...filter } = parsed.data;
    const now = c.get("runtime").clock();
    const page = await new D1AuditStore(c.env.AUDIT_DB).leases({
      ...filter,
      active: active === "1" || active === "true",
      now,
      limit: parseLimit(limit),
      ...(cursor !== undefined ? { cursor: decodeCursor(cursor) } : {}),
    });
    // Ended leases say where each credential's upstream revocation stands (docs/api.md, leases).
    const ended = page.leases
      .filter((l) => l.ended_at !== null || l.expires_at <= now)
      .map((l) => l.lease_id);
    const revocations = await new D1AuditStore(c.env.AUDIT_DB).revocationStates(ended);
    return c.json(
      {
        leases: page.leases.map((l) => ({
          id: l.lease_id,
          run: l.run,
          policy: l.policy,
          issuer: l.issuer,
          ...(l.repository_id !== null ? { repository_id: l.repository_id } : {}),
          ...(l.project_id !== null ? { project_id: l.project_id } : {}),
          created_at: new Date(l.created_at).toISOString(),
          expires_at: new Date(l.expires_at).toISOString(),
          ended_at: l.ended_at === null ? null : new Date(l.ended_at).toISOString(),
          end_reason: l.end_reason ?? (l.expires_at <= now ? "expired" : null),
          active: l.ended_at === null && l.expires_at > now,
          ...(revocations.has(l.lease_id)
            ? {
                upstream_revoke: revocations
                  .get(l.lease_id)
                  ?.map((g) => ({ type: g.type, id: g.id, upstream_revoke: g.status })),
              }
            : {}),
        })),
        ...(page.next ? { next_cursor: encodeCursor(page.next) } : {}),
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
