// /console: the web console (docs/console.md). Server-rendered pages, strict CSP, no external assets, no script;
// reads through D1 (audit records, lease index, rollup) and the secret store's metadata, acts through the same
// revocation path as the admin API, and records every action with its actor.

import type { Context, Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { Child } from "hono/jsx";
import * as z from "zod/mini";
import { alertHub } from "../adapters/alert-hub.ts";
import { AuditStats } from "../adapters/audit-stats.ts";
import { D1AuditStore } from "../adapters/audit-store.ts";
import type { SecretMeta } from "../adapters/secret-store.ts";
import { shardStub, shardsFor } from "../adapters/secrets-client.ts";
import { CONSOLE_PAGE_SIZE, MAX_REPORT_ISSUANCES } from "../core/constants.ts";
import { equalText, randomId, timingSafeEqualText } from "../core/crypto.ts";
import { ConfigError, RunpassError } from "../core/errors.ts";
import { type ExplainResponse, explain } from "../core/exchange.ts";
import type { CompiledPolicy } from "../core/policy/compile.ts";
import type { Finding } from "../core/policy/lint.ts";
import { REQUIRED_PINS } from "../core/policy/load.ts";
import { RUN_KEY, revokeRun } from "../http/admin.ts";
import { auditSink, requestRecord } from "../http/audit.ts";
import { exchangeDeps } from "../http/exchange.ts";
import { chargeFailure, clientBlocked } from "../http/rate-limit.ts";
import type { AppEnv } from "../http/types.ts";
import { CONSOLE_CSS } from "./assets.ts";
import {
  adminToken,
  cookieOptions,
  csrfToken,
  endSession,
  preCookieName,
  readForm,
  refuseViewer,
  requireCsrf,
  requireViewer,
  startSession,
  viewerOf,
} from "./auth.ts";
import { Alerts, type ConsoleAlert } from "./pages/alerts.tsx";
import { Audit, type AuditFilters } from "./pages/audit.tsx";
import { Overview } from "./pages/overview.tsx";
import { Policies, PolicyPage, type PolicyView } from "./pages/policies.tsx";
import { Report } from "./pages/report.tsx";
import { EndRunConfirm, type RunFilters, RunPage, Runs, summarizeRuns } from "./pages/runs.tsx";
import { Secrets, secretViews } from "./pages/secrets.tsx";
import { Refused, SignIn } from "./pages/sign-in.tsx";
import { buildReport, reportCsv } from "./report.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The console's response headers: nothing runs but our own files, nothing frames us, nothing is cached or leaked. */
const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
};

/** What the console needs beyond the Worker's env: the policy set's lint findings (computed at build time). */
export interface ConsoleOptions {
  lint?: readonly Finding[];
  /** The alert store's recent alerts, when this build has one. */
  alerts?: (c: Context<AppEnv>) => Promise<ConsoleAlert[] | undefined>;
}

function html(c: Context, page: Child, status = 200): Response {
  return c.html(`<!doctype html>${String(page)}`, status as 200, { "cache-control": "no-store" });
}

/** A page for a refusal or failure (the JSON error shape is for API clients; a browser gets a page). */
function refusedPage(c: Context<AppEnv>, error: RunpassError): Response {
  const title =
    error.code === "rate_limited"
      ? "Too many attempts"
      : error.code === "invalid_token"
        ? "Not signed in"
        : error.code === "access_denied"
          ? "Refused"
          : error.code === "not_found"
            ? "Not found"
            : error instanceof ConfigError
              ? "The console is not configured"
              : "Something went wrong";
  const res = html(
    c,
    <Refused title={title} message={error.message} requestId={c.get("requestId")} />,
    error.status,
  );
  if (error.retryAfter !== undefined) res.headers.set("retry-after", String(error.retryAfter));
  return res;
}

/** Audits a console action with its actor. */
async function auditAction(
  c: Context<AppEnv>,
  event: "admin" | "admin_revoke",
  detail: string,
  fields: { run?: string; policy?: string } = {},
): Promise<void> {
  auditSink(c).write(
    await requestRecord(
      c,
      event,
      { decision: "allow", reasons: [] },
      { ...fields, actor: viewerOf(c).actor, detail },
    ),
  );
}

const NUMERIC = z.optional(z.string().check(z.regex(/^[0-9]{1,20}$/)));
const NAME = z.optional(z.string().check(z.minLength(1), z.maxLength(128)));
const RunsQuery = z.object({
  repository_id: NUMERIC,
  project_id: NUMERIC,
  policy: NAME,
  state: z.optional(z.enum(["active", "ended"])),
  before: z.optional(z.string().check(z.regex(/^[0-9]{1,15}\.[A-Za-z0-9_.-]{1,200}$/))),
});
const AuditQuery = z.object({
  run: z.optional(z.string().check(z.regex(RUN_KEY))),
  repository_id: NUMERIC,
  project_id: NUMERIC,
  policy: NAME,
  decision: z.optional(z.enum(["allow", "deny"])),
  event: z.optional(z.string().check(z.regex(/^[a-z_]{1,32}$/))),
  from: z.optional(z.string().check(z.maxLength(32))),
  to: z.optional(z.string().check(z.maxLength(32))),
  cursor: z.optional(z.string().check(z.maxLength(200))),
});
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** Query parameters with empty values dropped (an empty filter field means "any"). */
function cleanQuery(c: Context): Record<string, string> {
  return Object.fromEntries(Object.entries(c.req.query()).filter(([, v]) => v !== ""));
}

function parseQuery<T>(c: Context, schema: z.ZodMiniType<T>): T {
  const parsed = schema.safeParse(cleanQuery(c));
  if (!parsed.success)
    throw new RunpassError("invalid_request", "a filter value is not valid; check the form");
  return parsed.data;
}

/** A datetime-local value (UTC) or ISO timestamp → ms. */
function parseTime(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(text) ? text : `${text}Z`);
  if (Number.isNaN(ms)) throw new RunpassError("invalid_request", `"${name}" is not a date and time`);
  return ms;
}

function queryString(params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, v);
  return q.toString();
}

/** Whether a policy pins an immutable id exactly (the loader refuses policies that do not; the report checks). */
function pinned(p: CompiledPolicy): boolean {
  return REQUIRED_PINS[p.issuer.kind].some((claim) =>
    p.def.allow[claim]?.every((v) => typeof v === "string" && !/[*?]/.test(v)),
  );
}

/** The alert hub's most recent alerts (docs/leaks.md), or undefined when this Worker has no ALERTS binding. */
async function hubAlerts(c: Context<AppEnv>): Promise<ConsoleAlert[] | undefined> {
  if (!c.env.ALERTS) return undefined;
  const alerts = await alertHub(c.env).list(CONSOLE_PAGE_SIZE);
  return alerts.map((a) => ({
    id: a.id,
    at: Date.parse(a.at),
    kind: a.alert,
    severity: a.severity,
    summary: a.summary,
    delivery: a.delivery,
    ...(a.delivered_at ? { deliveredAt: Date.parse(a.delivered_at) } : {}),
  }));
}

async function allSecrets(c: Context<AppEnv>): Promise<SecretMeta[]> {
  const shards = await shardsFor(c.env, "");
  const lists = await Promise.all(shards.map((s) => shardStub(c.env, s).list("")));
  return (lists.flat() as SecretMeta[]).sort((a, b) => a.path.localeCompare(b.path));
}

/** Secret path → names of the bundled policies that deliver it. */
function deliveringPolicies(policies: Iterable<CompiledPolicy>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of policies) {
    for (const entry of Object.values(p.def.grants.secrets ?? {})) {
      const list = out.get(entry.path) ?? [];
      if (!list.includes(p.def.name)) list.push(p.def.name);
      out.set(entry.path, list);
    }
  }
  return out;
}

/** Registers /console and its pages. */
export function consoleRoutes(app: Hono<AppEnv>, options: ConsoleOptions = {}): void {
  const lint = options.lint ?? [];
  const findingsOf = (name: string) =>
    lint.filter((f) => f.file.replace(/^.*[\\/]/, "").replace(/\.yaml$/, "") === name);
  const alertsOf = async (c: Context<AppEnv>) => (options.alerts ?? hubAlerts)(c);

  app.use("/console", secured);
  app.use("/console/*", secured);

  app.get("/console/assets/console.css", (c) =>
    c.body(CONSOLE_CSS, 200, {
      "content-type": "text/css; charset=utf-8",
      "cache-control": "public, max-age=300",
    }),
  );

  app.get("/console/sign-in", async (c) => {
    if (c.env.RUNPASS_ACCESS_TEAM_DOMAIN || c.env.RUNPASS_ACCESS_AUD) return c.redirect("/console", 303);
    adminToken(c);
    const pre = randomId("pre", 24);
    setCookie(c, preCookieName(c), pre, cookieOptions(c, 600));
    const next = safeNext(c.req.query("next"));
    return html(c, <SignIn csrf={await csrfToken(c, `signin\0${pre}`)} next={next} />);
  });

  app.post("/console/sign-in", async (c) => {
    if (c.env.RUNPASS_ACCESS_TEAM_DOMAIN || c.env.RUNPASS_ACCESS_AUD) return c.redirect("/console", 303);
    const expected = adminToken(c);
    // Blocked-or-not first, then a bounded read: an unauthenticated form is never parsed without limits.
    const blocked = clientBlocked(c);
    const form = await readForm(c);
    const field = (name: string) => form.get(name) ?? "";
    const next = safeNext(field("next"));
    const pre = getCookie(c, preCookieName(c)) ?? "";
    const freshForm = async (error: string, status: number) => {
      const fresh = randomId("pre", 24);
      setCookie(c, preCookieName(c), fresh, cookieOptions(c, 600));
      return html(
        c,
        <SignIn csrf={await csrfToken(c, `signin\0${fresh}`)} next={next} error={error} />,
        status,
      );
    };
    if (!pre || !equalText(field("csrf"), await csrfToken(c, `signin\0${pre}`))) {
      const error = new RunpassError("access_denied", "the sign-in form expired; try again", {
        reasons: [{ code: "csrf_token_invalid" }],
      });
      const refusal = await refuseViewer(c, blocked, error, "console sign-in: csrf token invalid");
      if (refusal.code === "rate_limited") return refusedPage(c, refusal);
      return freshForm("The sign-in form expired. Try again.", 403);
    }
    const token = field("token");
    if (!token || token.length > 1024 || !(await timingSafeEqualText(token, expected))) {
      const error = new RunpassError("invalid_token", "the console sign-in requires the admin token", {
        reasons: [{ code: token ? "admin_token_invalid" : "token_missing" }],
      });
      const refusal = await refuseViewer(c, blocked, error, "console sign-in");
      if (refusal.code === "rate_limited") return refusedPage(c, refusal);
      return freshForm("That is not the admin token.", 401);
    }
    const name = field("name")
      .replace(/[^\w.@+ -]/g, "")
      .slice(0, 64)
      .trim();
    const actor = name ? `admin-token:${name}` : "admin-token";
    await startSession(c, actor);
    deleteCookie(c, preCookieName(c), { path: "/", secure: cookieOptions(c, 0).secure });
    auditSink(c).write(
      await requestRecord(
        c,
        "admin",
        { decision: "allow", reasons: [] },
        { actor, detail: "console sign-in" },
      ),
    );
    return c.redirect(next, 303);
  });

  const viewer = requireViewer(refusedPage);
  const csrf = requireCsrf();
  const mount = (path: string) => {
    app.use(path, viewer, csrf);
  };
  for (const path of [
    "/console",
    "/console/sign-out",
    "/console/runs",
    "/console/runs/*",
    "/console/audit",
    "/console/policies",
    "/console/policies/*",
    "/console/explain",
    "/console/secrets",
    "/console/alerts",
    "/console/reports/*",
  ]) {
    mount(path);
  }

  app.post("/console/sign-out", async (c) => {
    await auditAction(c, "admin", "console sign-out");
    await endSession(c);
    return c.redirect("/console/sign-in", 303);
  });

  app.get("/console", async (c) => {
    const now = c.get("runtime").clock();
    const stats = new AuditStats(c.env.AUDIT_DB);
    const [live, day, month, denials, alerts] = await Promise.all([
      stats.liveLeases(
        [...c.get("runtime").policies.issuersByUrl.values()].map((i) => i.name),
        now,
        10,
      ),
      stats.series(now, 1, 24),
      stats.series(now, 24, 30),
      stats.topDenials(now - 30 * DAY, now + HOUR, 8),
      alertsOf(c),
    ]);
    return html(c, <Overview viewer={viewerOf(c)} data={{ live, day, month, denials, alerts }} />);
  });

  app.get("/console/runs", async (c) => {
    const q = parseQuery(c, RunsQuery);
    const now = c.get("runtime").clock();
    const { state, before, ...filter } = q;
    const store = new D1AuditStore(c.env.AUDIT_DB);
    // Leases newest first, folded into runs; a page is CONSOLE_PAGE_SIZE × 4 leases (a run may span two pages).
    const page = await store.leases({
      ...filter,
      active: state === "active",
      now,
      limit: CONSOLE_PAGE_SIZE * 4,
      ...(before ? { cursor: pageCursor(before) } : {}),
    });
    let runs = summarizeRuns(page.leases, now);
    if (state === "ended") runs = runs.filter((r) => r.active === 0);
    const filters: RunFilters = { ...filter, ...(state ? { state } : {}) };
    const next = page.next
      ? `/console/runs?${queryString({ ...filter, state, before: `${page.next.ts}.${page.next.id}` })}`
      : undefined;
    return html(c, <Runs viewer={viewerOf(c)} runs={runs} filters={filters} next={next} />);
  });

  app.get("/console/runs/:run{.+}/end", async (c) => {
    const run = checkedRun(c.req.param("run"));
    const now = c.get("runtime").clock();
    const { leases } = await new D1AuditStore(c.env.AUDIT_DB).leases({ run, active: true, now, limit: 1000 });
    return html(c, <EndRunConfirm viewer={viewerOf(c)} run={run} active={leases.length} />);
  });

  app.post("/console/runs/:run{.+}/end", async (c) => {
    const run = checkedRun(c.req.param("run"));
    const ended = await revokeRun(c, run, { actor: viewerOf(c).actor });
    const flash = `Run ended: ${ended} lease${ended === 1 ? "" : "s"} ended.`;
    return c.redirect(
      `/console/runs/${encodeURIComponent(run)}?ended=${ended}&msg=${encodeURIComponent(flash)}`,
      303,
    );
  });

  app.get("/console/runs/:run{.+}", async (c) => {
    const run = checkedRun(c.req.param("run"));
    const now = c.get("runtime").clock();
    const store = new D1AuditStore(c.env.AUDIT_DB);
    const [leases, trail] = await Promise.all([
      store.leases({ run, now, limit: 200 }),
      store.query({ run, limit: 200 }),
    ]);
    const ended = c.req.query("ended");
    const flash =
      ended !== undefined && /^[0-9]{1,6}$/.test(ended)
        ? `Run ended: ${ended} lease${ended === "1" ? "" : "s"} ended.`
        : undefined;
    return html(
      c,
      <RunPage
        viewer={viewerOf(c)}
        run={run}
        leases={leases.leases}
        trail={trail.records}
        now={now}
        {...(flash ? { flash } : {})}
      />,
    );
  });

  app.get("/console/audit", async (c) => {
    const q = parseQuery(c, AuditQuery);
    const since = parseTime(q.from, "from");
    const until = parseTime(q.to, "to");
    let cursor: { ts: number; id: string } | undefined;
    if (q.cursor) {
      const m = /^([0-9]{1,15})\.([A-Za-z0-9_-]{1,80})$/.exec(q.cursor);
      if (!m) throw new RunpassError("invalid_request", "that page link is not one the console made");
      cursor = { ts: Number(m[1]), id: m[2] as string };
    }
    const page = await new D1AuditStore(c.env.AUDIT_DB).query({
      ...(q.run ? { run: q.run } : {}),
      ...(q.repository_id ? { repository_id: q.repository_id } : {}),
      ...(q.project_id ? { project_id: q.project_id } : {}),
      ...(q.policy ? { policy: q.policy } : {}),
      ...(q.decision ? { decision: q.decision } : {}),
      ...(q.event ? { event: q.event } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
      ...(cursor ? { cursor } : {}),
      limit: CONSOLE_PAGE_SIZE,
    });
    const { cursor: _c, ...filters } = q;
    const next = page.next
      ? `/console/audit?${queryString({ ...filters, cursor: `${page.next.ts}.${page.next.id}` })}`
      : undefined;
    return html(
      c,
      <Audit viewer={viewerOf(c)} filters={filters as AuditFilters} records={page.records} next={next} />,
    );
  });

  const policyViews = async (c: Context<AppEnv>, policies: CompiledPolicy[]): Promise<PolicyView[]> => {
    const now = c.get("runtime").clock();
    const stats = new AuditStats(c.env.AUDIT_DB);
    const [month, year] = await Promise.all([
      stats.policyUsage(now - 30 * DAY, now + HOUR),
      stats.policyUsage(now - 365 * DAY, now + HOUR),
    ]);
    return policies.map((policy) => ({
      policy,
      usage: month.get(policy.def.name),
      lastIssued: year.get(policy.def.name)?.lastIssued ?? null,
      findings: findingsOf(policy.def.name),
      pinned: pinned(policy),
    }));
  };

  const policiesPage = async (c: Context<AppEnv>, explained?: { policy: string; answer: ExplainAnswer }) => {
    const set = c.get("runtime").policies;
    const views = await policyViews(c, [...set.policies.values()]);
    return html(
      c,
      <Policies
        viewer={viewerOf(c)}
        views={views}
        stored={set.policies.size === 0 ? (c.get("runtime").bundle.store?.count ?? 0) : undefined}
        {...(explained ? { answer: explained.answer, selected: explained.policy } : {})}
      />,
    );
  };

  app.get("/console/policies", (c) => policiesPage(c));

  app.get("/console/policies/:name", async (c) => {
    const policy = await c.get("runtime").policies.lookup(c.req.param("name"));
    if (!policy) throw new RunpassError("not_found", "no policy by that name");
    const [view] = await policyViews(c, [policy]);
    return html(c, <PolicyPage viewer={viewerOf(c)} view={view as PolicyView} />);
  });

  app.post("/console/explain", async (c) => {
    const form = await readForm(c);
    const policy = (form.get("policy") ?? "").slice(0, 128);
    const token = (form.get("token") ?? "").trim();
    const answer = await explainToken(c, policy, token);
    await auditAction(
      c,
      "admin",
      `console explain: ${"decision" in answer ? answer.decision : answer.error}`,
      {
        policy,
      },
    );
    return policiesPage(c, { policy, answer });
  });

  app.get("/console/secrets", async (c) => {
    const now = c.get("runtime").clock();
    const [metas, delivered] = await Promise.all([
      allSecrets(c),
      new AuditStats(c.env.AUDIT_DB).lastDelivered(now - 90 * DAY),
    ]);
    const views = secretViews(
      metas,
      delivered,
      deliveringPolicies(c.get("runtime").policies.policies.values()),
      now,
    );
    return html(c, <Secrets viewer={viewerOf(c)} views={views} now={now} />);
  });

  app.get("/console/alerts", async (c) =>
    html(c, <Alerts viewer={viewerOf(c)} alerts={await alertsOf(c)} />),
  );

  app.get("/console/reports/:file{compliance(\\.csv|\\.json)?}", async (c) => {
    const file = c.req.param("file");
    const now = c.get("runtime").clock();
    const today = new Date(now).toISOString().slice(0, 10);
    const monthAgo = new Date(now - 30 * DAY).toISOString().slice(0, 10);
    const fromText = c.req.query("from") || monthAgo;
    const toText = c.req.query("to") || today;
    if (!DATE.test(fromText) || !DATE.test(toText)) {
      throw new RunpassError("invalid_request", '"from" and "to" are dates: YYYY-MM-DD');
    }
    const from = Date.parse(`${fromText}T00:00:00Z`);
    const to = Date.parse(`${toText}T00:00:00Z`) + DAY;
    if (Number.isNaN(from) || Number.isNaN(to) || to <= from) {
      throw new RunpassError("invalid_request", '"to" must be on or after "from"');
    }
    const stats = new AuditStats(c.env.AUDIT_DB);
    const rt = c.get("runtime");
    const [rows, denials, alerts, metas] = await Promise.all([
      stats.reportRecords(from, to, MAX_REPORT_ISSUANCES + 1),
      stats.topDenials(from, to, 1000),
      alertsOf(c),
      allSecrets(c),
    ]);
    if (rows.length > MAX_REPORT_ISSUANCES) {
      throw new RunpassError(
        "invalid_request",
        `this period holds more than ${MAX_REPORT_ISSUANCES} records; choose a shorter period (reports are never cut short)`,
      );
    }
    const bundled = [...rt.policies.policies.values()];
    const report = buildReport({
      from,
      to,
      now,
      actor: viewerOf(c).actor,
      policySetVersion: rt.policies.version,
      rows,
      denials,
      alerts,
      unpinned: bundled.filter((p) => !pinned(p)).map((p) => p.def.name),
      findings: lint.filter((f) => f.severity === "warning" || f.severity === "error"),
      secrets: secretViews(metas, new Map(), new Map(), now),
    });
    const name = `runpass-compliance-${fromText}-to-${toText}`;
    if (file === "compliance.json") {
      await auditAction(c, "admin", `compliance report ${fromText}..${toText} json`);
      return c.body(JSON.stringify(report, null, 2), 200, {
        "content-type": "application/json",
        "content-disposition": `attachment; filename="${name}.json"`,
        "cache-control": "no-store",
      });
    }
    if (file === "compliance.csv") {
      await auditAction(c, "admin", `compliance report ${fromText}..${toText} csv`);
      return c.body(reportCsv(report), 200, {
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": `attachment; filename="${name}.csv"`,
        "cache-control": "no-store",
      });
    }
    return html(
      c,
      <Report
        viewer={viewerOf(c)}
        report={report}
        query={queryString({ from: fromText, to: toText })}
        from={fromText}
        to={toText}
      />,
    );
  });

  app.all("/console/*", () => {
    throw new RunpassError("not_found", "no such console page");
  });
}

type ExplainAnswer = ExplainResponse | { error: string; error_description: string };

/** The answer POST /v1/explain gives for this token and policy (audited as `explain`; nothing consumed or issued). */
async function explainToken(c: Context<AppEnv>, policy: string, token: string): Promise<ExplainAnswer> {
  try {
    if (!policy) throw new RunpassError("invalid_request", "choose a policy");
    const deps = await exchangeDeps(c, "explain");
    const answer = await explain({ requestId: c.get("requestId"), token, policy, inputs: {} }, deps);
    await chargeFailure(c, answer.error);
    return answer;
  } catch (e) {
    if (!(e instanceof RunpassError) || e instanceof ConfigError) throw e;
    await chargeFailure(c, e);
    return { error: e.code, error_description: e.message };
  }
}

/** A `<ms>.<id>` page link the console made (runs by lease, audit by record). */
function pageCursor(text: string): { ts: number; id: string } {
  const dot = text.indexOf(".");
  return { ts: Number(text.slice(0, dot)), id: text.slice(dot + 1) };
}

function checkedRun(raw: string | undefined): string {
  const run = raw ?? "";
  if (!RUN_KEY.test(run)) throw new RunpassError("not_found", "no such run");
  return run;
}

/** Where to go after sign-in: a console path only, never another origin (`//host`, `/\host`). */
function safeNext(text: string | undefined): string {
  return text && /^\/console(\/[A-Za-z0-9._~%:@!$&'()*+,;=/?-]*)?$/.test(text) && !text.includes("//")
    ? text
    : "/console";
}

/** Security headers on every console response, and console errors as pages (Hono's onError answers JSON). */
async function secured(c: Context<AppEnv>, next: () => Promise<void>): Promise<void> {
  await next();
  if (c.error instanceof RunpassError) c.res = refusedPage(c, c.error);
  else if (c.error)
    c.res = refusedPage(c, new RunpassError("server_error", "internal error; the request id is in the logs"));
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(k, v);
}
