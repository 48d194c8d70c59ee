// Shared setup for the OIDC unit tests: a real KeySetCache against the local test issuer, a frozen clock,
// fetch recording, and helpers to mint tokens (at the issuer, or locally with attacker keys).

import { createHash } from "node:crypto";
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { inject } from "vitest";
import { DEFAULT_MAX_TOKEN_AGE_SECONDS } from "../../src/core/constants.ts";
import type { IssuerConfig, IssuerKind } from "../../src/core/oidc/issuers.ts";
import { KeySetCache } from "../../src/core/oidc/key-source.ts";
import { verifyToken } from "../../src/core/oidc/verify.ts";
import { hits } from "../support/claims.ts";

export const base = inject("issuerBase");

/** The audience runpass accepts in these tests. */
export const AUD = "https://runpass.test";

/** A fresh issuer name, so fault modes and counters of one test never touch another. */
export function uniqueName(prefix = "v"): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

export function issuerUrl(name: string): string {
  return `${base}/${name}`;
}

/** An allow-list entry for test issuer `name`, shaped like the policy loader builds it. */
export function issuerConfig(
  name: string,
  kind: IssuerKind = "github",
  extra: Partial<IssuerConfig> = {},
): IssuerConfig {
  return {
    name,
    url: issuerUrl(name),
    kind,
    maxTokenAge: DEFAULT_MAX_TOKEN_AGE_SECONDS[kind],
    algorithms: kind === "generic" ? ["RS256", "ES256"] : ["RS256"],
    ...extra,
  };
}

/** A settable clock (milliseconds), starting at the real time so the test issuer's tokens line up. */
export class ManualClock {
  now = Date.now();
  readonly fn = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
  /** Current time in seconds, as JWT claims use it. */
  get seconds(): number {
    return Math.floor(this.now / 1000);
  }
}

export interface FetchRecord {
  kind: "discovery" | "jwks";
  url: string;
}

export interface Harness {
  clock: ManualClock;
  cache: KeySetCache;
  /** Every outbound fetch the cache announced (onFetch). */
  fetches: FetchRecord[];
  /** Every URL the cache actually passed to fetch. */
  requested: string[];
  verify: (token: string) => ReturnType<typeof verifyToken>;
}

/** A verifier with a real KeySetCache over HTTP; `fetch` may wrap the real one to rewrite answers. */
export function harness(
  issuers: IssuerConfig[],
  options: { fetch?: typeof fetch; audiences?: string[]; clock?: ManualClock } = {},
): Harness {
  const clock = options.clock ?? new ManualClock();
  const fetches: FetchRecord[] = [];
  const requested: string[] = [];
  const inner = options.fetch ?? ((input, init) => fetch(input, init));
  const recordingFetch: typeof fetch = (input, init) => {
    requested.push(String(input instanceof Request ? input.url : input));
    return inner(input, init);
  };
  const cache = new KeySetCache({
    clock: clock.fn,
    dev: true,
    fetch: recordingFetch,
    onFetch: (kind, url) => fetches.push({ kind, url }),
  });
  const map = new Map(issuers.map((i) => [i.url, i]));
  const audiences = new Set(options.audiences ?? [AUD]);
  return {
    clock,
    cache,
    fetches,
    requested,
    verify: (token) => verifyToken(token, { issuers: map, keys: cache, audiences, clock: clock.fn }),
  };
}

/** Mints a token at the test issuer; returns it with the public JWK of the signing key. */
export async function mintAt(
  name: string,
  claims: JWTPayload,
  options: { header?: Record<string, unknown>; kid?: string } = {},
): Promise<{ token: string; publicJwk: JWK }> {
  const res = await fetch(`${base}/${name}/__mint`, {
    method: "POST",
    body: JSON.stringify({ claims, ...options }),
  });
  if (!res.ok) throw new Error(`mint failed: ${res.status}`);
  return (await res.json()) as { token: string; publicJwk: JWK };
}

/** Signs `claims` locally with a key of our own (an attacker, or a key we publish through a fetch wrapper). */
export async function signLocally(
  privateKey: CryptoKey,
  claims: JWTPayload,
  header: Record<string, unknown> & { alg: string },
): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(header).sign(privateKey);
}

export async function keyPair(
  alg: string,
): Promise<{ privateKey: CryptoKey; publicKey: CryptoKey; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, publicKey, publicJwk: await exportJWK(publicKey) };
}

/** Server-side hit counts for one test issuer's discovery and JWKS routes. */
export async function issuerHits(name: string): Promise<{ discovery: number; jwks: number }> {
  const all = await hits(base);
  return {
    discovery: all[`/${name}/.well-known/openid-configuration`] ?? 0,
    jwks: all[`/${name}/jwks`] ?? 0,
  };
}

/** Server-side hits on every path under `prefix`. */
export async function hitsUnder(prefix: string): Promise<number> {
  const all = await hits(base);
  return Object.entries(all)
    .filter(([path]) => path.startsWith(prefix))
    .reduce((sum, [, n]) => sum + n, 0);
}

/** `sha:` single-use id runpass derives for a token without jti: the SHA-256 of its signed part (header.payload). */
export function shaSingleUseId(token: string): string {
  const signed = token.slice(0, token.lastIndexOf("."));
  return `sha:sha256:${createHash("sha256").update(signed, "utf8").digest("hex")}`;
}

/** A fetch that serves `rewrite(url, json)` for matching URLs and passes everything else through. */
export function rewritingFetch(
  rewrite: (url: string, body: unknown) => unknown | undefined,
  matches: (url: string) => boolean,
): typeof fetch {
  return async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    const res = await fetch(input, init);
    if (!matches(url) || res.status !== 200) return res;
    const body = rewrite(url, await res.json());
    return new Response(JSON.stringify(body), {
      status: 200,
      headers: { "content-type": "application/json" },
    });
  };
}

/** Unwraps a failed verification, failing the test with a readable message when it unexpectedly succeeded. */
export function failureOf(result: Awaited<ReturnType<typeof verifyToken>>) {
  if (result.ok) throw new Error("expected verification to fail, but it succeeded");
  return result.error;
}

/** Unwraps a successful verification, failing the test with the reason (never the token) otherwise. */
export function successOf(result: Awaited<ReturnType<typeof verifyToken>>) {
  if (!result.ok)
    throw new Error(`expected verification to succeed, got ${JSON.stringify(result.error.reason)}`);
  return result.value;
}
