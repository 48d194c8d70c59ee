// Per-issuer key sets: discovery, JWKS fetch with size/time caps, caching, kid-miss cooldown and a bounded stale window.

import { importJWK, type JWK } from "jose";
import type { Clock } from "../clock.ts";
import {
  JWKS_FAILURE_BACKOFF_MS,
  JWKS_FETCH_TIMEOUT_MS,
  JWKS_FRESH_MS,
  JWKS_STALE_WINDOW_MS,
  JWKS_UNKNOWN_KID_COOLDOWN_MS,
  MAX_JWKS_BYTES,
  MAX_JWKS_KEYS,
} from "../constants.ts";
import { decodeUtf8, readCapped } from "../read-capped.ts";
import { err, ok, type Result } from "../result.ts";
import { checkIssuerUrl, discoveryUrl, type IssuerConfig } from "./issuers.ts";

/** Why no key could be produced: the token names a key the issuer does not have, or the issuer's keys cannot be had. */
export type KeyFailure =
  | { reason: "unknown_key" }
  | { reason: "keys_unavailable"; retryAfter: number; detail: string };

/** Finds the verification key for a token header. One implementation per deployment; tests may use a static one. */
export interface KeySource {
  /**
   * With `noKidRefetch`, a `kid` the cached set lacks is unknown at once, never a reason to refetch: a set is
   * fetched only when none is cached or it is due anyway, which no request can make happen more often.
   */
  getKey(
    issuer: IssuerConfig,
    kid: string | undefined,
    alg: string,
    noKidRefetch?: boolean,
  ): Promise<Result<CryptoKey, KeyFailure>>;
}

/** The same key source, never refetching for an unknown `kid`: for callers that must not cause an extra fetch. */
export function withoutKidRefetch(source: KeySource): KeySource {
  return { getKey: (issuer, kid, alg) => source.getKey(issuer, kid, alg, true) };
}

/**
 * An issuer's key set as one isolate's cache holds it: `static` (configured keys, nothing fetched),
 * `not_fetched` (no token from it verified here yet), `fresh`, `stale` (past JWKS_FRESH_MS but still used while
 * refreshes fail), `unusable` (no set, or too old, after a failure).
 */
export interface KeySetState {
  state: "static" | "not_fetched" | "fresh" | "stale" | "unusable";
  keys?: number;
  fetched_at?: string;
  last_failure_at?: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

export interface KeySetCacheOptions {
  fetch?: typeof fetch;
  clock: Clock;
  /** Allows plain-http loopback key URLs (RUNPASS_DEV=1 only). */
  dev: boolean;
  /** Called for every outbound fetch (metrics, tests). */
  onFetch?: (kind: "discovery" | "jwks", url: string) => void;
}

interface CachedSet {
  keys: JWK[];
  fetchedAt: number;
}

interface Entry {
  good?: CachedSet;
  jwksUri?: string;
  lastAttempt?: number;
  lastFailure?: number;
  inflight?: Promise<void>;
  imported: Map<string, Promise<CryptoKey | undefined>>;
}

class KeyFetchError extends Error {
  override name = "KeyFetchError";
}

const KTY_FOR_ALG: Record<string, string> = { RS: "RSA", PS: "RSA", ES: "EC", Ed: "OKP" };

/**
 * Caches each issuer's key set in isolate memory. Keys are only ever fetched from the issuer's own
 * configured or discovered URL; never from token headers.
 */
export class KeySetCache implements KeySource {
  readonly #entries = new Map<string, Entry>();
  readonly #fetch: typeof fetch;
  readonly #clock: Clock;
  readonly #dev: boolean;
  readonly #onFetch: KeySetCacheOptions["onFetch"];

  constructor(options: KeySetCacheOptions) {
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#clock = options.clock;
    this.#dev = options.dev;
    this.#onFetch = options.onFetch;
  }

  /** Returns the key for `kid`/`alg` from `issuer`'s key set, fetching only when the cache says so. */
  async getKey(
    issuer: IssuerConfig,
    kid: string | undefined,
    alg: string,
    noKidRefetch = false,
  ): Promise<Result<CryptoKey, KeyFailure>> {
    const entry = this.#entry(issuer.url);
    if (issuer.jwks) {
      const key = await this.#select(entry, issuer.jwks.keys, kid, alg);
      return key ? ok(key) : err({ reason: "unknown_key" });
    }
    const now = this.#clock();
    let refreshed = false;
    if (!entry.good || now - entry.good.fetchedAt >= JWKS_FRESH_MS) {
      if (!this.#inBackoff(entry, now)) {
        await this.#refresh(issuer, entry, now);
        refreshed = true;
      }
    }
    const usable = entry.good && now - entry.good.fetchedAt < JWKS_FRESH_MS + JWKS_STALE_WINDOW_MS;
    if (!usable || !entry.good) {
      const retryAfter = Math.max(
        1,
        Math.ceil((JWKS_FAILURE_BACKOFF_MS - (now - (entry.lastFailure ?? now))) / 1000),
      );
      return err({
        reason: "keys_unavailable",
        retryAfter,
        detail: `no usable keys for issuer ${issuer.name}`,
      });
    }
    let key = await this.#select(entry, entry.good.keys, kid, alg);
    if (key) return ok(key);
    const cooled = entry.lastAttempt === undefined || now - entry.lastAttempt >= JWKS_UNKNOWN_KID_COOLDOWN_MS;
    if (!noKidRefetch && !refreshed && cooled && !this.#inBackoff(entry, now)) {
      await this.#refresh(issuer, entry, now);
      if (entry.good) key = await this.#select(entry, entry.good.keys, kid, alg);
      if (key) return ok(key);
    }
    return err({ reason: "unknown_key" });
  }

  /** What this isolate holds for `issuer` (GET /v1/admin/status); never fetches. */
  state(issuer: IssuerConfig): KeySetState {
    if (issuer.jwks) return { state: "static", keys: issuer.jwks.keys.length };
    const entry = this.#entries.get(issuer.url);
    const failed = entry?.lastFailure !== undefined ? { last_failure_at: iso(entry.lastFailure) } : {};
    if (!entry?.good) return { state: failed.last_failure_at ? "unusable" : "not_fetched", ...failed };
    const age = this.#clock() - entry.good.fetchedAt;
    const state =
      age < JWKS_FRESH_MS ? "fresh" : age < JWKS_FRESH_MS + JWKS_STALE_WINDOW_MS ? "stale" : "unusable";
    return { state, keys: entry.good.keys.length, fetched_at: iso(entry.good.fetchedAt), ...failed };
  }

  #entry(url: string): Entry {
    let entry = this.#entries.get(url);
    if (!entry) {
      entry = { imported: new Map() };
      this.#entries.set(url, entry);
    }
    return entry;
  }

  #inBackoff(entry: Entry, now: number): boolean {
    return entry.lastFailure !== undefined && now - entry.lastFailure < JWKS_FAILURE_BACKOFF_MS;
  }

  /** One refresh at a time per issuer; concurrent callers share it. */
  async #refresh(issuer: IssuerConfig, entry: Entry, now: number): Promise<void> {
    if (!entry.inflight) {
      entry.inflight = (async () => {
        entry.lastAttempt = now;
        try {
          const uri = issuer.jwksUri ?? entry.jwksUri ?? (await this.#discover(issuer));
          entry.jwksUri = issuer.jwksUri ? undefined : uri;
          const keys = await this.#fetchKeys(uri);
          entry.good = { keys, fetchedAt: now };
          entry.imported.clear();
          entry.lastFailure = undefined;
        } catch {
          // A junk or failed answer is never cached; the previous good set (if any) stays for the stale window.
          entry.lastFailure = now;
          entry.jwksUri = undefined;
        } finally {
          entry.inflight = undefined;
        }
      })();
    }
    await entry.inflight;
  }

  async #discover(issuer: IssuerConfig): Promise<string> {
    const url = discoveryUrl(issuer.url);
    this.#onFetch?.("discovery", url);
    const doc = await this.#fetchJson(url);
    if (!isObject(doc) || doc.issuer !== issuer.url || typeof doc.jwks_uri !== "string") {
      throw new KeyFetchError("discovery document does not describe this issuer");
    }
    const problem = checkIssuerUrl(doc.jwks_uri, this.#dev);
    if (problem) throw new KeyFetchError(problem);
    if (new URL(doc.jwks_uri).origin !== new URL(issuer.url).origin) {
      throw new KeyFetchError(
        "discovered jwks_uri is on another origin; configure jwks_uri explicitly to allow it",
      );
    }
    return doc.jwks_uri;
  }

  async #fetchKeys(url: string): Promise<JWK[]> {
    this.#onFetch?.("jwks", url);
    const doc = await this.#fetchJson(url);
    if (!isObject(doc) || !Array.isArray(doc.keys)) throw new KeyFetchError("not a JWKS");
    if (doc.keys.length > MAX_JWKS_KEYS) throw new KeyFetchError("too many keys");
    const keys = doc.keys.filter(
      (k): k is JWK =>
        isObject(k) &&
        typeof k.kty === "string" &&
        ["RSA", "EC", "OKP"].includes(k.kty) &&
        (k.use === undefined || k.use === "sig") &&
        (k.kid === undefined || typeof k.kid === "string"),
    );
    if (keys.length === 0) throw new KeyFetchError("key set has no usable signing keys");
    return keys;
  }

  /** GET with no redirects, a time cap covering headers and body, and a byte cap checked while reading. */
  #fetchJson(url: string): Promise<unknown> {
    return fetchJsonCapped(this.#fetch, url, {
      maxBytes: MAX_JWKS_BYTES,
      timeoutMs: JWKS_FETCH_TIMEOUT_MS,
      accept: "application/json, application/jwk-set+json",
    });
  }

  async #select(
    entry: Entry,
    keys: JWK[],
    kid: string | undefined,
    alg: string,
  ): Promise<CryptoKey | undefined> {
    const kty = KTY_FOR_ALG[alg.slice(0, 2)];
    const candidates = keys.filter(
      (k) => (kid === undefined || k.kid === kid) && (k.alg === undefined || k.alg === alg) && k.kty === kty,
    );
    // Without a kid, only an unambiguous key set may be used.
    if (candidates.length === 0 || (kid === undefined && candidates.length !== 1)) return undefined;
    const jwk = candidates[0] as JWK;
    const cacheKey = `${jwk.kid ?? ""}|${alg}|${jwk.n ?? jwk.x ?? ""}`;
    let imported = entry.imported.get(cacheKey);
    if (!imported) {
      imported = importJWK({ ...jwk, ext: false }, alg).then(
        (k) => (k instanceof Uint8Array ? undefined : k),
        () => undefined,
      );
      entry.imported.set(cacheKey, imported);
    }
    return imported;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * GETs a JSON document the way key sets are fetched: no redirects, a time cap covering headers and body, and a
 * byte cap checked while reading (also used for GitHub's secret-scanning keys, docs/leaks.md). Throws
 * KeyFetchError for a non-200 answer or an oversized one.
 */
export async function fetchJsonCapped(
  fetchFn: typeof fetch,
  url: string,
  limits: { maxBytes: number; timeoutMs: number; accept: string },
): Promise<unknown> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), limits.timeoutMs);
  try {
    const res = await fetchFn(url, {
      redirect: "manual",
      signal: controller.signal,
      headers: { accept: limits.accept, "user-agent": "runpass" },
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new KeyFetchError(`HTTP ${res.status}`);
    }
    const declared = Number(res.headers.get("content-length") ?? "0");
    if (declared > limits.maxBytes) {
      await res.body?.cancel();
      throw new KeyFetchError("response too large");
    }
    const text = decodeUtf8(await readCapped(res.body, limits.maxBytes));
    return JSON.parse(text);
  } finally {
    clearTimeout(timer);
  }
}
