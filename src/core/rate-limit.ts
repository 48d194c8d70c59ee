// Rate limits without a round trip per request: fixed windows counted exactly by one limiter object per key
// (a Durable Object in the Worker, behind LimitStore), with an in-isolate count in front of it. Below a
// fraction of the limit an isolate admits on its own and reports in the background; near the limit every
// decision is the object's. Refusals are counted per window and reported too, so the object can write one
// aggregated audit record per key and window whose `count` is exactly the number refused.

import type { AuditRecord } from "./audit/record.ts";
import type { Clock } from "./clock.ts";
import {
  ALERT_COUNT_RETRIES,
  ALERT_COUNT_RETRY_MS,
  DEFAULT_RATE_LIMITS,
  LOCAL_CLIENT_ADDRESS,
  RATE_LIMIT_LOCAL_FRACTION,
  RATE_LIMIT_MAX_LOCAL_KEYS,
} from "./constants.ts";
import { parseDuration } from "./duration.ts";
import { ConfigError } from "./errors.ts";

export type RateLimitName = keyof typeof DEFAULT_RATE_LIMITS;
export const RATE_LIMIT_NAMES = Object.keys(DEFAULT_RATE_LIMITS) as RateLimitName[];

/** `limit` requests per fixed window of `windowMs` ("alert": an alert threshold, counted but never refusing). */
export interface RateRule {
  name: RateLimitName | "alert";
  limit: number;
  windowMs: number;
}

/** The limits in force; an absent entry is switched off. */
export type RateLimits = Partial<Record<RateLimitName, RateRule>>;

const RULE_TEXT = /^(\d{1,9})\s*\/\s*(\S+)$/;

/**
 * Parses RUNPASS_RATE_LIMITS: a JSON object naming any of the limits, each `"<n>/<duration>"` (`"60/1m"`),
 * a bare number (per minute) or `"off"`. Names left out keep their defaults. Throws a ConfigError naming
 * the variable for anything else (a typo must not silently switch a limit off).
 */
export function parseRateLimits(raw: string | undefined): RateLimits {
  const limits: RateLimits = {};
  for (const name of RATE_LIMIT_NAMES) {
    const d = DEFAULT_RATE_LIMITS[name];
    limits[name] = { name, limit: d.limit, windowMs: d.windowSeconds * 1000 };
  }
  if (raw === undefined || raw.trim() === "") return limits;
  const bad = (why: string) =>
    new ConfigError(
      `RUNPASS_RATE_LIMITS ${why}; expected JSON such as {"failures":"60/1m","repository":"300/1m","webhook":"600/1m","introspect":"600/1m"} ("off" disables one)`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw bad("is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw bad("is not an object");
  for (const [name, value] of Object.entries(parsed)) {
    if (!(RATE_LIMIT_NAMES as string[]).includes(name)) throw bad(`names an unknown limit "${name}"`);
    const key = name as RateLimitName;
    if (value === "off") {
      delete limits[key];
      continue;
    }
    let limit: number;
    let seconds: number | undefined = 60;
    if (typeof value === "number") {
      limit = value;
    } else if (typeof value === "string" && RULE_TEXT.test(value.trim())) {
      const [, n, duration] = RULE_TEXT.exec(value.trim()) as RegExpExecArray;
      limit = Number(n);
      seconds = parseDuration(duration as string);
    } else {
      throw bad(`has an invalid value for "${name}"`);
    }
    if (!Number.isInteger(limit) || limit < 1 || limit > 1e9 || seconds === undefined) {
      throw bad(`has an invalid value for "${name}"`);
    }
    limits[key] = { name: key, limit, windowMs: seconds * 1000 };
  }
  return limits;
}

/**
 * The bucket a client address falls in: IPv4 addresses as they are, IPv6 by /64 (one host usually owns a
 * whole /64, so per-address limits would be free to evade), IPv4-mapped IPv6 as IPv4, none → the local constant.
 */
export function clientBucket(address: string | undefined | null): string {
  const a = address?.trim().toLowerCase();
  if (!a) return LOCAL_CLIENT_ADDRESS;
  if (!a.includes(":")) return a.slice(0, 64);
  return ipv6Prefix(a) ?? a.slice(0, 64);
}

function ipv6Prefix(address: string): string | undefined {
  const halves = address.replace(/%.*$/, "").split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves[1] ? halves[1].split(":") : [];
  // An embedded IPv4 tail stands for the last two groups.
  const last = tail.length ? tail : head;
  let v4: string | undefined;
  if ((last[last.length - 1] ?? "").includes(".")) {
    v4 = last.pop() as string;
    if (!/^\d{1,3}(?:\.\d{1,3}){3}$/.test(v4)) return undefined;
    last.push("0", "0");
  }
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(missing).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  const n = groups.map((g) => Number.parseInt(g, 16));
  if (v4 !== undefined && n.slice(0, 5).every((x) => x === 0) && n[5] === 0xffff) return v4;
  return `${n
    .slice(0, 4)
    .map((x) => x.toString(16))
    .join(":")}::/64`;
}

/** Start of the fixed window `now` falls in. */
export function windowStart(now: number, windowMs: number): number {
  return Math.floor(now / windowMs) * windowMs;
}

/** Whole seconds for Retry-After (at least 1). */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** Identifying fields for the aggregated audit record of a key (never a raw client address). */
export type RateLimitFields = Pick<AuditRecord, "issuer" | "repository_id" | "project_id" | "subject"> & {
  /** Who was limited, for the record's detail: "client hmac-sha256:…", "repository 123", … */
  label: string;
};

/** What an isolate tells the limiter object (and, with `take`, asks of it). */
export interface LimitReport {
  /** The limit, or "alert" for the alert counters that only count (docs/leaks.md, Alerts). */
  rule: RateLimitName | "alert";
  limit: number;
  windowMs: number;
  /** The caller's clock (ms): the object keeps no time of its own for windows, so tests can move it. */
  now: number;
  /** Requests admitted (or failures counted) since the last report, in the window of `now`. */
  admitted: number;
  /** Requests refused since the last report, as [window start, count]. */
  refused: Array<[number, number]>;
  /** Decide one more request: admit it if the window is under the limit, else count it refused. */
  take: boolean;
  fields: RateLimitFields;
}

export interface LimitVerdict {
  /** The `take` request was admitted (true when nothing was taken). */
  allowed: boolean;
  /** Admitted in the object's current window, everything reported included. */
  count: number;
  /** Start of the object's current window. */
  window: number;
  /** The window is at its limit: refuse until it ends. */
  blocked: boolean;
  /** Until the window ends, from `now`. */
  retryAfterMs: number;
}

/** The authoritative counter (one Durable Object per key). */
export interface LimitStore {
  hit(name: string, report: LimitReport): Promise<LimitVerdict>;
}

/** One key under one rule. `resolve` names the limiter object and its audit fields (digests are computed once). */
export interface LimitTarget {
  rule: RateRule;
  key: string;
  resolve: () => Promise<{ name: string; fields: RateLimitFields }>;
}

export type LimitDecision = { ok: true } | { ok: false; retryAfter: number };

interface Bucket {
  rule: RateRule;
  window: number;
  /** Global count of the window as the object last reported it. */
  known: number;
  /** Admitted here, not yet reported. */
  admitted: number;
  /** Admitted here (or being decided by the object) in reports still on their way. */
  inflight: number;
  /** Refused here, not yet reported, by window start. */
  refused: Map<number, number>;
  blockedUntil: number;
  target?: Promise<{ name: string; fields: RateLimitFields }>;
  /** The background report that will carry deltas added now, if one is waiting. */
  queued?: Promise<void>;
  /** For counted events ({@link LocalLimiter.count}): what to do if the next report crosses the threshold. */
  reached?: () => Promise<void>;
  chain?: Promise<void>;
}

const OK: LimitDecision = { ok: true };

/** The in-isolate front of the limiter objects (one per isolate and app). */
export class LocalLimiter {
  readonly #clock: Clock;
  readonly #buckets = new Map<string, Bucket>();
  readonly #onError: (e: unknown) => void;

  constructor(clock: Clock, onError: (e: unknown) => void) {
    this.#clock = clock;
    this.#onError = onError;
  }

  /**
   * No I/O: refuses when this isolate already knows the key is over its limit (the refusal is counted and
   * reported in the background through `defer`). Never creates state for keys it has not seen.
   */
  check(target: LimitTarget, store: LimitStore, defer: (p: Promise<unknown>) => void): LimitDecision {
    const now = this.#clock();
    const b = this.#bucket(target, now, false);
    if (!b || now >= b.blockedUntil) return OK;
    return this.#refuse(b, target, store, defer, now);
  }

  /** Whether this isolate knows the key is over its limit; counts nothing and does no I/O. */
  isBlocked(target: LimitTarget): boolean {
    const now = this.#clock();
    const b = this.#bucket(target, now, false);
    return b !== undefined && now < b.blockedUntil;
  }

  /** Counts one event that already happened (a failed request) and waits for the object's count, so a key over its limit is blocked from the next request on. */
  async charge(target: LimitTarget, store: LimitStore): Promise<void> {
    const now = this.#clock();
    const b = this.#bucket(target, now, true) as Bucket;
    b.admitted += 1;
    try {
      await this.#report(b, target, store);
    } catch (e) {
      this.#onError(e);
      // The object is unreachable: block on what this isolate alone has seen.
      if (b.known + b.admitted + b.inflight >= b.rule.limit) b.blockedUntil = b.window + b.rule.windowMs;
    }
  }

  /**
   * Counts one event towards a threshold, deciding nothing (the alert counters, docs/leaks.md): no I/O on the
   * caller's path; the count is reported in the background, coalesced with the key's other events, and
   * `reached` runs once — after the report whose events carried the object's exact count to the threshold.
   */
  count(
    target: LimitTarget,
    store: LimitStore,
    defer: (p: Promise<unknown>) => void,
    reached: () => Promise<void>,
  ): void {
    const b = this.#bucket(target, this.#clock(), true) as Bucket;
    b.admitted += 1;
    // The latest event's action stands for the batch: any of them may be the one that reached the threshold.
    b.reached = reached;
    defer(this.#countReport(b, target, store));
  }

  /** Reports counted events, retrying a failed report with backoff: the events must not wait for a next one. */
  async #countReport(b: Bucket, target: LimitTarget, store: LimitStore): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#report(b, target, store);
        return;
      } catch (e) {
        this.#onError(e);
        if (attempt >= ALERT_COUNT_RETRIES || b.admitted === 0) return;
        await new Promise((r) => setTimeout(r, ALERT_COUNT_RETRY_MS * 2 ** attempt));
      }
    }
  }

  /** Admits or refuses one request: locally while the window is well under the limit, by the object near it. */
  async take(
    target: LimitTarget,
    store: LimitStore,
    defer: (p: Promise<unknown>) => void,
  ): Promise<LimitDecision> {
    const now = this.#clock();
    const b = this.#bucket(target, now, true) as Bucket;
    if (now < b.blockedUntil) return this.#refuse(b, target, store, defer, now);
    const estimate = b.known + b.admitted + b.inflight + 1;
    if (estimate <= b.rule.limit * RATE_LIMIT_LOCAL_FRACTION) {
      b.admitted += 1;
      defer(this.#report(b, target, store).catch(this.#onError));
      return OK;
    }
    let verdict: LimitVerdict;
    try {
      verdict = await this.#send(b, target, store, true);
    } catch (e) {
      this.#onError(e);
      // Fail open up to the limit on this isolate's own count: an unreachable limiter must not stop CI.
      if (estimate <= b.rule.limit) {
        b.admitted += 1;
        return OK;
      }
      b.blockedUntil = b.window + b.rule.windowMs;
      return this.#refuse(b, target, store, defer, now);
    }
    return verdict.allowed ? OK : { ok: false, retryAfter: retryAfterSeconds(verdict.retryAfterMs) };
  }

  #refuse(
    b: Bucket,
    target: LimitTarget,
    store: LimitStore,
    defer: (p: Promise<unknown>) => void,
    now: number,
  ): LimitDecision {
    b.refused.set(b.window, (b.refused.get(b.window) ?? 0) + 1);
    defer(this.#report(b, target, store).catch(this.#onError));
    return { ok: false, retryAfter: retryAfterSeconds(b.blockedUntil - now) };
  }

  #bucket(target: LimitTarget, now: number, create: boolean): Bucket | undefined {
    const { rule } = target;
    const id = `${rule.name}/${rule.limit}/${rule.windowMs}\n${target.key}`;
    const w = windowStart(now, rule.windowMs);
    let b = this.#buckets.get(id);
    if (!b) {
      if (!create) return undefined;
      if (this.#buckets.size >= RATE_LIMIT_MAX_LOCAL_KEYS) this.#evict(now);
      b = { rule, window: w, known: 0, admitted: 0, inflight: 0, refused: new Map(), blockedUntil: 0 };
      this.#buckets.set(id, b);
    }
    if (w > b.window) {
      // A new window: what was admitted in the old one no longer counts (refusals stay, keyed by window).
      b.window = w;
      b.known = 0;
      b.admitted = 0;
      b.inflight = 0;
    }
    return b;
  }

  /** Forgets buckets with nothing left to report: past windows first, then the oldest. */
  #evict(now: number): void {
    // Events not yet reported, or on their way (a failed report puts them back), keep their bucket.
    const idle = (b: Bucket) =>
      b.refused.size === 0 && b.queued === undefined && b.admitted === 0 && b.inflight === 0;
    for (const [id, b] of this.#buckets) {
      if (idle(b) && b.window + b.rule.windowMs <= now && b.blockedUntil <= now) this.#buckets.delete(id);
    }
    for (const [id, b] of this.#buckets) {
      if (this.#buckets.size < RATE_LIMIT_MAX_LOCAL_KEYS * 0.9) break;
      if (idle(b)) this.#buckets.delete(id);
    }
  }

  /** A background report carrying every delta added until it starts (at most one waiting per key). */
  #report(b: Bucket, target: LimitTarget, store: LimitStore): Promise<void> {
    if (b.queued) return b.queued;
    const p = (b.chain ?? Promise.resolve()).then(async () => {
      b.queued = undefined;
      if (b.admitted === 0 && b.refused.size === 0) return;
      await this.#send(b, target, store, false);
    });
    b.queued = p;
    b.chain = p.catch(() => undefined);
    return p;
  }

  /** Sends the deltas (and a `take`); on failure they go back, so refusals still add up at the next report. */
  async #send(b: Bucket, target: LimitTarget, store: LimitStore, take: boolean): Promise<LimitVerdict> {
    const window = b.window;
    const admitted = b.admitted;
    const refused = [...b.refused];
    const reached = b.reached;
    b.admitted = 0;
    b.refused.clear();
    b.reached = undefined;
    // Until the object answers, what is on its way still counts for local estimates (a take may be admitted).
    const pending = admitted + (take ? 1 : 0);
    b.inflight += pending;
    try {
      b.target ??= target.resolve().catch((e: unknown) => {
        b.target = undefined;
        throw e;
      });
      const { name, fields } = await b.target;
      const now = this.#clock();
      const { rule } = b;
      const v = await store.hit(name, {
        rule: rule.name,
        limit: rule.limit,
        windowMs: rule.windowMs,
        now,
        admitted,
        refused,
        take,
        fields,
      });
      if (v.window === b.window) b.known = Math.max(b.known, v.count);
      if (v.blocked) b.blockedUntil = Math.max(b.blockedUntil, now + v.retryAfterMs);
      // The object serializes reports, so exactly one report's events span the threshold in a window.
      if (reached && v.count >= rule.limit && v.count - admitted < rule.limit)
        await reached().catch(this.#onError);
      return v;
    } catch (e) {
      if (b.window === window) {
        b.admitted += admitted;
        b.reached ??= reached;
      }
      for (const [w, n] of refused) b.refused.set(w, (b.refused.get(w) ?? 0) + n);
      throw e;
    } finally {
      if (b.window === window) b.inflight -= pending;
    }
  }
}
