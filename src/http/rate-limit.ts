// Rate limits for route handlers (README: Rate limits). Four limits, each a fixed window per key:
// - failures: failed requests (400/401/413/415) per client address — checked first, in the isolate, before
//   any parsing, crypto or key lookup; charged after the decision. Only failures count, so a flood of
//   garbage tokens from one address locks out that address alone.
// - repository: verified requests per (issuer, repository/project) — charged only after the signature
//   verifies, so forged tokens naming a repository cannot spend its budget.
// - webhook: authenticated deliveries that end a run, per GitHub installation / GitLab project.
// - introspect: introspections of verified runpass tokens, per run.
// Counting: src/core/rate-limit.ts (in-isolate front) and src/adapters/rate-limiter.ts (one Durable Object
// per key, exact counts, one aggregated audit record per key and window for what was refused).

import type { Context } from "hono";
import { sha256 } from "../core/crypto.ts";
import { ConfigError, type ErrorCode, errorMessage, RunpassError } from "../core/errors.ts";
import type { VerifiedToken } from "../core/oidc/verify.ts";
import {
  clientBucket,
  type LimitDecision,
  type LimitStore,
  type LimitTarget,
  LocalLimiter,
  parseRateLimits,
  type RateLimitFields,
  type RateLimits,
  type RateRule,
} from "../core/rate-limit.ts";
import { countFailedAuth } from "./alerts.ts";
import type { Runtime } from "./runtime.ts";
import type { AppEnv } from "./types.ts";

/** Codes that count against the client's failure limit: the caller sent something that could never work. */
const FAILURE_CODES: ReadonlySet<ErrorCode> = new Set([
  "invalid_request",
  "invalid_token",
  "request_too_large",
  "unsupported_media_type",
  // A lease id that is forged, altered or not this deployment's, or a wrong revoke token.
  "not_found",
]);

interface LimiterState {
  local: LocalLimiter;
  limits: Map<string, RateLimits>;
}

/** Per app (one per isolate in production, one per test broker), like the rest of the Runtime. */
const states = new WeakMap<Runtime, LimiterState>();

function state(c: Context<AppEnv>): LimiterState {
  const rt = c.get("runtime");
  let s = states.get(rt);
  if (!s) {
    s = {
      local: new LocalLimiter(rt.clock, (e) =>
        console.error(
          JSON.stringify({ type: "runpass.rate_limit_error", error: errorMessage(e).slice(0, 200) }),
        ),
      ),
      limits: new Map(),
    };
    states.set(rt, s);
  }
  return s;
}

/** The limits of this env (parsed once per distinct RUNPASS_RATE_LIMITS; a bad value fails closed). */
function limits(c: Context<AppEnv>): RateLimits {
  const s = state(c);
  const raw = c.env.RUNPASS_RATE_LIMITS ?? "";
  let parsed = s.limits.get(raw);
  if (!parsed) {
    parsed = parseRateLimits(raw);
    if (s.limits.size > 8) s.limits.clear();
    s.limits.set(raw, parsed);
  }
  return parsed;
}

function store(c: Context<AppEnv>): LimitStore {
  const ns = c.env.RATE_LIMITER;
  if (!ns) {
    throw new ConfigError(
      "the RATE_LIMITER Durable Object binding is missing (class RateLimiter, see wrangler.toml)",
    );
  }
  return { hit: (name, report) => ns.get(ns.idFromName(name)).hit(report) };
}

function defer(c: Context<AppEnv>): (p: Promise<unknown>) => void {
  return (p) => c.executionCtx.waitUntil(p);
}

function tooMany(decision: { retryAfter: number }, what: string): RunpassError {
  return new RunpassError("rate_limited", `${what}; retry after ${decision.retryAfter} s`, {
    retryAfter: decision.retryAfter,
  });
}

/** The caller's address bucket (CF-Connecting-IP, set by Cloudflare's edge; IPv6 by /64). */
function clientTarget(c: Context<AppEnv>, rule: RateRule): LimitTarget {
  const address = clientBucket(c.req.header("cf-connecting-ip"));
  return {
    rule,
    key: address,
    // The object's name and the audit record carry a keyed digest, never the address itself.
    resolve: async () => {
      const digest = await c.get("runtime").context(c.env).hasher().digest(`client:${address}`);
      return { name: `${rule.name}:${digest}`, fields: { label: `client ${digest}` } };
    },
  };
}

/**
 * The 429 for a client already over its failure limit, or undefined. No I/O and nothing parsed. Every refusal
 * is counted (in the background) for the aggregated audit record.
 */
export function clientRefusal(c: Context<AppEnv>): RunpassError | undefined {
  const rule = limits(c).failures;
  if (!rule) return undefined;
  const decision = state(c).local.check(clientTarget(c, rule), store(c), defer(c));
  return decision.ok ? undefined : tooMany(decision, "too many failed requests from this client");
}

/**
 * Whether the client is over its failure limit, counting nothing. Such a client is not refused up front:
 * runner fleets share egress addresses, so a request that proves itself cheaply (a token that verifies
 * against cached keys, a lease id whose MAC checks out, the admin token) is still served; only its failures
 * become 429s, through {@link refuseOrCharge} (docs/security.md, "Shared addresses").
 */
export function clientBlocked(c: Context<AppEnv>): boolean {
  const rule = limits(c).failures;
  return rule !== undefined && state(c).local.isBlocked(clientTarget(c, rule));
}

/**
 * Decides a failed request: from a client that was over its failure limit it becomes the 429 (counted in the
 * limiter's aggregate record, no record of its own, returned for the caller to throw); otherwise the failure
 * is charged and undefined is returned, and the caller audits it as usual.
 */
export async function refuseOrCharge(
  c: Context<AppEnv>,
  blocked: boolean,
  failure: unknown,
): Promise<RunpassError | undefined> {
  if (blocked) {
    const refusal = clientRefusal(c);
    if (refusal) return refusal;
  }
  await chargeFailure(c, failure);
  return undefined;
}

/**
 * Counts a failed request against the client's failure limit, after the decision (the code, or what the
 * handler is about to throw; anything that is not a client failure is ignored). Never throws.
 */
export async function chargeFailure(c: Context<AppEnv>, failure: unknown): Promise<void> {
  const code =
    typeof failure === "string"
      ? failure
      : failure instanceof RunpassError && !(failure instanceof ConfigError)
        ? failure.code
        : undefined;
  if (!code || !FAILURE_CODES.has(code as ErrorCode)) return;
  if (code === "invalid_token") countFailedAuth(c);
  try {
    const rule = limits(c).failures;
    if (rule) await state(c).local.charge(clientTarget(c, rule), store(c));
  } catch (e) {
    console.error(JSON.stringify({ type: "runpass.rate_limit_error", error: errorMessage(e).slice(0, 200) }));
  }
}

async function take(
  c: Context<AppEnv>,
  rule: RateRule,
  name: string,
  fields: RateLimitFields,
): Promise<LimitDecision> {
  const target: LimitTarget = {
    rule,
    key: name,
    resolve: async () => ({ name: `${rule.name}:${name}`, fields }),
  };
  return state(c).local.take(target, store(c), defer(c));
}

/**
 * Counts one event towards an alert threshold (docs/leaks.md, Alerts), with no I/O on the request's path: the
 * in-isolate front batches the key's events into background reports to one counter object (`alert:<name>`), and
 * `reached` runs once, when the object's exact count reaches `burst.count` in its window. `resolve` may name
 * the object later (a digest), so the caller's path stays synchronous.
 */
export function countAlert(
  c: Context<AppEnv>,
  key: string,
  burst: { count: number; windowMs: number },
  resolve: () => Promise<{ name: string; label: string }>,
  reached: () => Promise<void>,
): void {
  const target: LimitTarget = {
    rule: { name: "alert", limit: burst.count, windowMs: burst.windowMs },
    key,
    resolve: async () => {
      const { name, label } = await resolve();
      return { name: `alert:${name}`, fields: { label } };
    },
  };
  state(c).local.count(target, store(c), defer(c), reached);
}

/**
 * The repository limit for the exchange pipeline (ExchangeDeps.rateLimit): charges a verified token to
 * its (issuer, repository/project) — or, for generic issuers, its subject — and throws 429 over it.
 */
export function repositoryLimit(c: Context<AppEnv>): ((token: VerifiedToken) => Promise<void>) | undefined {
  const rule = limits(c).repository;
  if (!rule) return undefined;
  return async (token) => {
    const id = token.identity;
    let name: string;
    let fields: RateLimitFields;
    if (id.repositoryId !== undefined) {
      name = `${id.issuer}:${id.repositoryId}`;
      fields =
        id.kind === "gitlab"
          ? { issuer: id.issuer, project_id: id.repositoryId, label: `project ${id.repositoryId}` }
          : { issuer: id.issuer, repository_id: id.repositoryId, label: `repository ${id.repositoryId}` };
    } else {
      const digest = (await sha256(id.subject)).slice("sha256:".length);
      name = `${id.issuer}:sub:${digest}`;
      fields = { issuer: id.issuer, subject: id.subject, label: "subject" };
    }
    const decision = await take(c, rule, name, fields);
    if (!decision.ok) throw tooMany(decision, "too many requests for this repository");
  };
}

/**
 * The webhook limit: one authenticated, run-ending delivery, keyed on what the signature proves — the derived
 * secret's scope, or for master deliveries the installation (GitHub) or project (GitLab) the master vouches for.
 */
export async function limitWebhook(
  c: Context<AppEnv>,
  issuer: string,
  source: { kind: string; id: number | string },
): Promise<void> {
  const rule = limits(c).webhook;
  if (!rule) return;
  const name = `${issuer}:${source.kind}:${source.id}`;
  const fields: RateLimitFields = {
    issuer,
    ...(source.kind === "repository" || source.kind === "github-repository"
      ? { repository_id: String(source.id) }
      : {}),
    ...(source.kind === "project" || source.kind === "gitlab-project"
      ? { project_id: String(source.id) }
      : {}),
    label: `${source.kind} ${source.id}`,
  };
  const decision = await take(c, rule, name, fields);
  if (!decision.ok) throw tooMany(decision, `too many webhook deliveries for this ${source.kind}`);
}

/**
 * The introspection limit for a token that verified, per run: keyed on what the token proves rather than on
 * the caller's address, so junk from a shared address cannot lock out a resource server's valid
 * introspections (junk is charged to the failure limit instead).
 */
export async function limitIntrospection(c: Context<AppEnv>, run: string): Promise<void> {
  const rule = limits(c).introspect;
  if (!rule) return;
  const digest = (await sha256(run)).slice("sha256:".length);
  const decision = await take(c, rule, `run:${digest}`, { label: `run ${run}` });
  if (!decision.ok) throw tooMany(decision, "too many introspection requests for this run");
}

/**
 * The leak-report limit, per reporter ("admin", "github"): a flood of reports costs a 429, not a D1 lookup per
 * value (docs/leaks.md). Throws 429 `rate_limited` over it.
 */
export async function limitLeaks(c: Context<AppEnv>, reporter: string): Promise<void> {
  const rule = limits(c).leak;
  if (!rule) return;
  const decision = await take(c, rule, `leak:${reporter}`, { label: `leak reports from ${reporter}` });
  if (!decision.ok) throw tooMany(decision, "too many leak reports");
}
