// The exchange client shared by the GitHub Action and `runpass exchange`: POST /v1/exchange with retries inside a
// time budget, one OIDC token refresh on 409 token_replayed, typed errors classified for exit codes, and the
// post-step revoke. Dependency-free and runtime-neutral: only fetch, AbortSignal and timers (no node: imports).
// Nothing here ever puts a token, credential or secret value into an error, a message or a log line.

import type { Reason as BrokerReason } from "../core/errors.ts";
// Type-only: the wire shapes are the broker's own types, and nothing of the core is bundled.
import type { ExchangeResponse as BrokerExchangeResponse } from "../core/exchange.ts";
import type { Credentials, ExchangeInputs } from "../core/grants/issue.ts";
import { BrokerUrlError, checkBrokerUrl } from "./broker-url.ts";

/** One failed check, as the broker reports it (docs/api.md, Redaction: only the policy's owner sees them). */
export type Reason = BrokerReason;

/** The credentials block of a successful exchange: only the grants the policy has (and the request named). */
export type ExchangeCredentials = Credentials;

/** A successful `POST /v1/exchange` body. */
export type ExchangeResponse = BrokerExchangeResponse;

/**
 * How a failure should end the caller: `denied` (401, 403, 409 after the one token refresh), `usage` (400, 404,
 * 413, 415 and other 4xx: the request itself is wrong), `unavailable` (5xx, 429, network errors, an unreadable
 * answer, no OIDC token — after the retry budget where retrying applies).
 */
export type FailureKind = "denied" | "usage" | "unavailable";

/** A failed exchange. `status` is absent when no HTTP answer arrived (network error, timeout, no token). */
export class ExchangeError extends Error {
  readonly kind: FailureKind;
  readonly status: number | undefined;
  /**
   * The broker's `error` code, or a client-side one: `network_error`, `invalid_response`, `token_unavailable`,
   * `insecure_url` / `invalid_url` (refused before anything was sent).
   */
  readonly code: string;
  readonly description: string;
  readonly requestId: string | undefined;
  readonly reasons: Reason[];
  /** The broker's `retryable` flag (502 `upstream_error`), when it sent one. */
  readonly retryable: boolean | undefined;
  /** Seconds from the last `Retry-After` header, when there was one. */
  readonly retryAfter: number | undefined;
  /** How many HTTP attempts were made. */
  readonly attempts: number;

  constructor(init: {
    kind: FailureKind;
    status?: number;
    code: string;
    description: string;
    requestId?: string;
    reasons?: Reason[];
    retryable?: boolean;
    retryAfter?: number;
    attempts: number;
  }) {
    super(`${init.code}: ${init.description}`);
    this.name = "ExchangeError";
    this.kind = init.kind;
    this.status = init.status;
    this.code = init.code;
    this.description = init.description;
    this.requestId = init.requestId;
    this.reasons = init.reasons ?? [];
    this.retryable = init.retryable;
    this.retryAfter = init.retryAfter;
    this.attempts = init.attempts;
  }
}

export type ExchangeResult =
  | { ok: true; response: ExchangeResponse; requestId: string | undefined; attempts: number }
  | { ok: false; error: ExchangeError };

type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface ExchangeOptions {
  /** The broker's base URL (a trailing slash is fine). */
  url: string;
  policy: string;
  /** A subset of the policy's grants; all of them when absent. */
  grants?: string[];
  /** A shorter lease, e.g. "15m". */
  ttl?: string;
  /** Public key material for certificate grants (`csr`, `ssh_public_key`): sent whatever the policy (docs/api.md). */
  inputs?: ExchangeInputs;
  /** Returns the CI platform's OIDC token; called once, and once more after a 409 token_replayed. */
  getToken: () => Promise<string>;
  fetch?: FetchLike;
  sleep?: (ms: number) => Promise<void>;
  /** Total time for retries, ms (default 60 s). No new attempt starts, and no wait is begun, past it. */
  budgetMs?: number;
  /** Cap on one HTTP attempt, ms (default 30 s). */
  attemptTimeoutMs?: number;
  /** For tests: the clock (default Date.now) and the jitter source in [0, 1) (default Math.random). */
  now?: () => number;
  random?: () => number;
  userAgent?: string;
}

export const DEFAULT_BUDGET_MS = 60_000;
const DEFAULT_ATTEMPT_TIMEOUT_MS = 30_000;
const BACKOFF_BASE_MS = 1_000;
const BACKOFF_CAP_MS = 15_000;
const DEFAULT_USER_AGENT = "runpass-client/1";

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The broker URL with any trailing slashes removed: also the default OIDC audience (RUNPASS_AUDIENCE). */
export function brokerBase(url: string): string {
  return url.replace(/\/+$/, "");
}

/** Exponential backoff with equal jitter: attempt 1 waits 0.5–1 s, then 1–2 s, 2–4 s … up to 7.5–15 s. */
export function backoffDelay(retry: number, random: () => number): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, retry - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** `Retry-After` as seconds (delta-seconds or an HTTP date); undefined when absent or unparseable. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text);
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

function classify(status: number): FailureKind {
  if (status === 401 || status === 403 || status === 409) return "denied";
  if (status === 429 || status >= 500) return "unavailable";
  return "usage";
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function asReasons(v: unknown): Reason[] {
  if (!Array.isArray(v)) return [];
  return v.filter((r): r is Reason => isObject(r) && typeof r.code === "string");
}

/** Reads an error answer without trusting it: the documented JSON shape, or just the status. */
async function errorFromResponse(res: Response, attempts: number, now: number): Promise<ExchangeError> {
  let body: unknown;
  try {
    body = JSON.parse(await res.text());
  } catch {
    body = undefined;
  }
  const b = isObject(body) ? body : {};
  const headerId = res.headers.get("x-request-id") ?? undefined;
  const retryAfter = parseRetryAfter(res.headers.get("retry-after"), now);
  return new ExchangeError({
    kind: classify(res.status),
    status: res.status,
    code: typeof b.error === "string" ? b.error : `http_${res.status}`,
    description:
      typeof b.error_description === "string"
        ? b.error_description
        : `the broker answered HTTP ${res.status} without a runpass error body`,
    ...(typeof b.request_id === "string"
      ? { requestId: b.request_id }
      : headerId
        ? { requestId: headerId }
        : {}),
    reasons: asReasons(b.reasons),
    ...(typeof b.retryable === "boolean" ? { retryable: b.retryable } : {}),
    ...(retryAfter !== undefined ? { retryAfter } : {}),
    attempts,
  });
}

function validResponse(v: unknown): v is ExchangeResponse {
  if (!isObject(v) || !isObject(v.lease) || !isObject(v.credentials)) return false;
  const l = v.lease;
  return (
    typeof l.id === "string" &&
    typeof l.revoke_token === "string" &&
    typeof l.expires_at === "string" &&
    typeof l.run === "string"
  );
}

/** A network-level failure, named by its cause code when there is one (ECONNREFUSED, timeout …). */
function networkDescription(base: string, err: unknown): string {
  let detail = "network error";
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const code = isObject(cause) && typeof cause.code === "string" ? cause.code : undefined;
    if (err.name === "TimeoutError" || err.name === "AbortError") detail = "timed out";
    else if (code) detail = code;
    else if (/^[\w .:-]{1,80}$/.test(err.message)) detail = err.message;
  }
  return `could not reach the broker at ${base} (${detail})`;
}

/**
 * Exchanges the CI platform's OIDC token for the policy's credentials.
 * Retries 5xx (unless the body says `retryable: false`), 429 and network errors with jittered exponential
 * backoff, honouring `Retry-After`, within `budgetMs`; a `Retry-After` past the budget ends it at once.
 * 409 token_replayed: one fresh token from `getToken`, one more try. 400/401/403/404/413/415: no retry.
 * A broker URL that is neither https nor http to a loopback host is refused (`usage`) before the token is
 * fetched; redirects are never followed. Never throws for HTTP or network failures: they come back as `{ ok: false, error }`.
 */
export async function exchange(options: ExchangeOptions): Promise<ExchangeResult> {
  const doFetch: FetchLike = options.fetch ?? ((input, init) => fetch(input, init));
  const sleep = options.sleep ?? defaultSleep;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const budget = options.budgetMs ?? DEFAULT_BUDGET_MS;
  const attemptTimeout = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
  let base: string;
  try {
    // Before the token is even fetched: it must never travel in clear text, whoever the caller is.
    base = checkBrokerUrl(options.url);
  } catch (e) {
    if (!(e instanceof BrokerUrlError)) throw e;
    return {
      ok: false,
      error: new ExchangeError({ kind: "usage", code: e.code, description: e.message, attempts: 0 }),
    };
  }
  const endpoint = `${base}/v1/exchange`;
  const body = JSON.stringify({
    policy: options.policy,
    ...(options.grants?.length ? { grants: options.grants } : {}),
    ...(options.ttl ? { ttl: options.ttl } : {}),
    ...options.inputs,
  });
  const deadline = now() + budget;

  let attempts = 0;
  let refreshed = false;
  let retries = 0;
  let token = "";
  const fetchToken = async (): Promise<ExchangeError | undefined> => {
    try {
      token = await options.getToken();
      if (!token) throw new Error("empty token");
      return undefined;
    } catch (e) {
      const why = e instanceof Error && /^[^\n]{1,200}$/.test(e.message) ? `: ${e.message}` : "";
      return new ExchangeError({
        kind: "unavailable",
        code: "token_unavailable",
        description: `could not obtain the CI platform's OIDC token${why}`,
        attempts,
      });
    }
  };
  const tokenError = await fetchToken();
  if (tokenError) return { ok: false, error: tokenError };

  for (;;) {
    attempts++;
    let failure: ExchangeError;
    try {
      const res = await doFetch(endpoint, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          accept: "application/json",
          "user-agent": options.userAgent ?? DEFAULT_USER_AGENT,
        },
        body,
        redirect: "error",
        signal: AbortSignal.timeout(attemptTimeout),
      });
      if (res.status === 200) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(await res.text());
        } catch {
          parsed = undefined;
        }
        const requestId = res.headers.get("x-request-id") ?? undefined;
        if (validResponse(parsed)) return { ok: true, response: parsed, requestId, attempts };
        // Credentials may have been issued; retrying would mint a second lease, so stop here.
        return {
          ok: false,
          error: new ExchangeError({
            kind: "unavailable",
            status: 200,
            code: "invalid_response",
            description: "the broker's answer is not an exchange response (is the URL a runpass broker?)",
            ...(requestId ? { requestId } : {}),
            attempts,
          }),
        };
      }
      failure = await errorFromResponse(res, attempts, now());
    } catch (e) {
      failure = new ExchangeError({
        kind: "unavailable",
        code: "network_error",
        description: networkDescription(base, e),
        attempts,
      });
    }

    if (failure.status === 409 && failure.code === "token_replayed" && !refreshed) {
      // The token was used already (e.g. an earlier attempt succeeded but its answer was lost): one fresh token.
      refreshed = true;
      const again = await fetchToken();
      if (again) return { ok: false, error: again };
      continue;
    }
    const transient =
      failure.status === undefined ||
      failure.status === 429 ||
      (failure.status >= 500 && failure.retryable !== false);
    if (!transient) return { ok: false, error: failure };

    retries++;
    const wait =
      failure.retryAfter !== undefined
        ? Math.max(failure.retryAfter * 1000, backoffDelay(retries, random) / 4)
        : backoffDelay(retries, random);
    if (now() + wait > deadline) return { ok: false, error: failure };
    await sleep(wait);
  }
}

/** One reason for humans: `claim_mismatch ref (expected refs/heads/main)`. */
export function formatReason(r: Reason): string {
  const parts: string[] = [r.code];
  if (r.claim) parts.push(r.claim);
  if (r.grant) parts.push(r.grant);
  if (r.rule !== undefined)
    parts.push(`deny[${r.rule}]${r.claims?.length ? ` (${r.claims.join(", ")})` : ""}`);
  if (r.expected?.length) {
    const values = r.expected.map((v) => String(v));
    parts.push(values.length === 1 ? `(expected ${values[0]})` : `(expected one of ${values.join(", ")})`);
  }
  return parts.join(" ");
}

/** Reasons for humans, `; `-separated. */
export function formatReasons(reasons: Reason[]): string {
  return reasons.map(formatReason).join("; ");
}

/**
 * One line for logs: `denied: claim_mismatch ref (expected refs/heads/main) — request_id req_…`, or without
 * reasons `denied: access_denied (access denied: …) — request_id req_…`.
 */
export function formatExchangeError(e: ExchangeError): string {
  const what = e.reasons.length
    ? formatReasons(e.reasons)
    : `${e.code} (${e.description.replace(/\s+/g, " ")})`;
  const tries = e.kind === "unavailable" && e.attempts > 1 ? ` after ${e.attempts} attempts` : "";
  const id = e.requestId ? ` — request_id ${e.requestId}` : "";
  return `${e.kind}: ${what}${tries}${id}`;
}

export interface RevokeOptions {
  url: string;
  leaseId: string;
  revokeToken: string;
  fetch?: FetchLike;
  sleep?: (ms: number) => Promise<void>;
  /** Cap on each attempt, ms (default 5 s); a network error or 5xx is tried once more. */
  timeoutMs?: number;
  userAgent?: string;
}

export type RevokeResult =
  | { ok: true; status: number }
  | { ok: false; status?: number; code: string; description: string; requestId?: string };

/**
 * Ends a lease: `DELETE /v1/leases/{id}` with its revoke token (https only, or http to a loopback host; no
 * redirects). 204 (idempotent) is success. Never throws; a
 * failure is reported, not raised, because the run's end and the lease TTL end the lease anyway.
 */
export async function revoke(options: RevokeOptions): Promise<RevokeResult> {
  try {
    const doFetch: FetchLike = options.fetch ?? ((input, init) => fetch(input, init));
    const sleep = options.sleep ?? defaultSleep;
    let base: string;
    try {
      base = checkBrokerUrl(options.url);
    } catch (e) {
      if (e instanceof BrokerUrlError) return { ok: false, code: e.code, description: e.message };
      throw e;
    }
    const endpoint = `${base}/v1/leases/${encodeURIComponent(options.leaseId)}`;
    let last: RevokeResult = { ok: false, code: "network_error", description: "not attempted" };
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        const res = await doFetch(endpoint, {
          method: "DELETE",
          headers: {
            authorization: `Bearer ${options.revokeToken}`,
            "user-agent": options.userAgent ?? DEFAULT_USER_AGENT,
          },
          redirect: "error",
          signal: AbortSignal.timeout(options.timeoutMs ?? 5_000),
        });
        if (res.status === 204 || res.status === 200) {
          await res.body?.cancel();
          return { ok: true, status: res.status };
        }
        const error = await errorFromResponse(res, attempt, Date.now());
        last = {
          ok: false,
          status: res.status,
          code: error.code,
          description: error.description,
          ...(error.requestId ? { requestId: error.requestId } : {}),
        };
        if (res.status < 500) return last;
      } catch (e) {
        last = { ok: false, code: "network_error", description: networkDescription(base, e) };
      }
      if (attempt < 2) await sleep(500);
    }
    return last;
  } catch {
    return { ok: false, code: "client_error", description: "the revoke request could not be made" };
  }
}
