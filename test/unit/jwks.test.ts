// KeySetCache hygiene (docs/security.md, JWKS hygiene): caching, rotation, kid-miss cooldown, stale window, backoff, fault modes.

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { JWK } from "jose";
import { describe, expect, test } from "vitest";
import {
  JWKS_FAILURE_BACKOFF_MS,
  JWKS_FETCH_TIMEOUT_MS,
  JWKS_FRESH_MS,
  JWKS_STALE_WINDOW_MS,
  JWKS_UNKNOWN_KID_COOLDOWN_MS,
  MAX_JWKS_BYTES,
  MAX_JWKS_KEYS,
} from "../../src/core/constants.ts";
import type { IssuerConfig } from "../../src/core/oidc/issuers.ts";
import { KeySetCache } from "../../src/core/oidc/key-source.ts";
import { control, githubClaims } from "../support/claims.ts";
import {
  AUD,
  base,
  failureOf,
  type Harness,
  harness,
  hitsUnder,
  issuerConfig,
  issuerHits,
  issuerUrl,
  keyPair,
  ManualClock,
  mintAt,
  rewritingFetch,
  signLocally,
  successOf,
  uniqueName,
} from "./oidc-harness.ts";

/** Mints a fresh genuine token for `name` at the harness's current time (optionally with a given kid). */
async function genuine(h: Harness, name: string, kid?: string): Promise<string> {
  const claims = githubClaims(issuerUrl(name), AUD, {}, h.clock.now);
  return (await mintAt(name, claims, kid ? { kid } : {})).token;
}

/** A token claiming `name` with a kid the issuer has never published. */
async function forgedKid(h: Harness, name: string, kid = `${name}-forged-${crypto.randomUUID()}`) {
  const attacker = await keyPair("RS256");
  return signLocally(attacker.privateKey, githubClaims(issuerUrl(name), AUD, {}, h.clock.now), {
    alg: "RS256",
    kid,
  });
}

function jwksFetches(h: Harness): number {
  return h.fetches.filter((f) => f.kind === "jwks").length;
}

function discoveryFetches(h: Harness): number {
  return h.fetches.filter((f) => f.kind === "discovery").length;
}

/** A fresh github-kind issuer at the test server (created, mode ok) and a harness trusting it. */
async function setup(extra: Partial<IssuerConfig> = {}, options: Parameters<typeof harness>[1] = {}) {
  const name = uniqueName("k");
  await control(base, name, { mode: "ok" });
  const h = harness([issuerConfig(name, "github", extra)], options);
  return { name, h };
}

function expectUnavailable(result: Awaited<ReturnType<Harness["verify"]>>) {
  const error = failureOf(result);
  expect(error.code).toBe("temporarily_unavailable");
  expect(error.reason.code).toBe("keys_unavailable");
  expect(error.retryAfter).toBeGreaterThanOrEqual(1);
  expect(error.retryAfter).toBeLessThanOrEqual(JWKS_FAILURE_BACKOFF_MS / 1000);
  return error;
}

describe("caching", () => {
  test("the key set is fetched once and reused across verifications", async () => {
    const { name, h } = await setup();
    successOf(await h.verify(await genuine(h, name)));
    expect(h.fetches.map((f) => f.kind)).toEqual(["discovery", "jwks"]);
    for (let i = 0; i < 5; i++) {
      h.clock.advance(30_000);
      successOf(await h.verify(await genuine(h, name)));
    }
    expect(h.fetches.length).toBe(2);
    expect(await issuerHits(name)).toEqual({ discovery: 1, jwks: 1 });
  });

  test("concurrent first verifications share a single fetch", async () => {
    const { name, h } = await setup();
    const tokens = await Promise.all(Array.from({ length: 8 }, () => genuine(h, name)));
    const results = await Promise.all(tokens.map((t) => h.verify(t)));
    for (const r of results) successOf(r);
    expect(await issuerHits(name)).toEqual({ discovery: 1, jwks: 1 });
  });

  test("the key set is refetched once it is no longer fresh", async () => {
    const { name, h } = await setup();
    successOf(await h.verify(await genuine(h, name)));
    h.clock.advance(JWKS_FRESH_MS - 1);
    successOf(await h.verify(await genuine(h, name)));
    expect(jwksFetches(h)).toBe(1);
    h.clock.advance(1);
    successOf(await h.verify(await genuine(h, name)));
    expect(jwksFetches(h)).toBe(2);
    successOf(await h.verify(await genuine(h, name)));
    expect(jwksFetches(h)).toBe(2);
  });

  test("separate caches for two issuers never share fetches", async () => {
    const a = uniqueName("k");
    const b = uniqueName("k");
    const h = harness([issuerConfig(a), issuerConfig(b)]);
    successOf(await h.verify(await genuine(h, a)));
    successOf(await h.verify(await genuine(h, b)));
    successOf(await h.verify(await genuine(h, a)));
    successOf(await h.verify(await genuine(h, b)));
    expect(await issuerHits(a)).toEqual({ discovery: 1, jwks: 1 });
    expect(await issuerHits(b)).toEqual({ discovery: 1, jwks: 1 });
  });
});

describe("key rotation and unknown kids", () => {
  test("a token with a newly rotated kid triggers exactly one refetch and then verifies", async () => {
    const { name, h } = await setup();
    const oldToken = await genuine(h, name);
    successOf(await h.verify(oldToken));
    const kids = await control(base, name, { rotate: true });
    const newKid = kids[kids.length - 1] as string;
    h.clock.advance(JWKS_UNKNOWN_KID_COOLDOWN_MS);
    const before = await issuerHits(name);
    successOf(await h.verify(await genuine(h, name, newKid)));
    const after = await issuerHits(name);
    expect(after.jwks - before.jwks).toBe(1);
    expect(after.discovery - before.discovery).toBe(0);
    // Both keys are now cached: no further fetch for either.
    successOf(await h.verify(await genuine(h, name, newKid)));
    successOf(await h.verify(await genuine(h, name, `${name}-k1`)));
    expect(await issuerHits(name)).toEqual(after);
  });

  test("a key the issuer dropped stops verifying once the set is refetched", async () => {
    const { name, h } = await setup();
    const oldKid = `${name}-k1`;
    successOf(await h.verify(await genuine(h, name, oldKid)));
    const kids = await control(base, name, { rotate: true, dropOld: true });
    expect(kids).not.toContain(oldKid);
    h.clock.advance(JWKS_FRESH_MS);
    // A token from the old key minted before the drop (the issuer no longer has it to sign with).
    const attacker = await keyPair("RS256");
    const stale = await signLocally(
      attacker.privateKey,
      githubClaims(issuerUrl(name), AUD, {}, h.clock.now),
      {
        alg: "RS256",
        kid: oldKid,
      },
    );
    const error = failureOf(await h.verify(stale));
    expect(error.code).toBe("invalid_token");
    expect(error.reason.code).toBe("unknown_key");
    successOf(await h.verify(await genuine(h, name, kids[0])));
  });

  test("the first token seen with an unknown kid costs one key-set fetch, not two", async () => {
    const { name, h } = await setup();
    const error = failureOf(await h.verify(await forgedKid(h, name)));
    expect(error.code).toBe("invalid_token");
    expect(error.reason.code).toBe("unknown_key");
    expect(await issuerHits(name)).toEqual({ discovery: 1, jwks: 1 });
  });

  test("unknown kids refetch at most once per cooldown, and again after it", async () => {
    const { name, h } = await setup();
    successOf(await h.verify(await genuine(h, name)));
    expect(jwksFetches(h)).toBe(1);

    // Within the cooldown of the first fetch: no refetch at all.
    h.clock.advance(JWKS_UNKNOWN_KID_COOLDOWN_MS - 1);
    for (let i = 0; i < 5; i++)
      expect(failureOf(await h.verify(await forgedKid(h, name))).reason.code).toBe("unknown_key");
    expect(jwksFetches(h)).toBe(1);

    // Past it: the next unknown kid refetches once; the rest of the flood does not.
    h.clock.advance(1);
    for (let i = 0; i < 10; i++) {
      expect(failureOf(await h.verify(await forgedKid(h, name))).reason.code).toBe("unknown_key");
      h.clock.advance(1_000);
    }
    expect(jwksFetches(h)).toBe(2);

    // Genuine tokens keep verifying during the flood without fetches.
    successOf(await h.verify(await genuine(h, name)));
    expect(jwksFetches(h)).toBe(2);

    // After another full cooldown since that refetch: exactly one more.
    h.clock.advance(JWKS_UNKNOWN_KID_COOLDOWN_MS);
    for (let i = 0; i < 3; i++) failureOf(await h.verify(await forgedKid(h, name)));
    expect(jwksFetches(h)).toBe(3);
    expect((await issuerHits(name)).jwks).toBe(3);
    expect(discoveryFetches(h)).toBe(1);
  });

  test("concurrent tokens with unknown kids past the cooldown share one refetch", async () => {
    const { name, h } = await setup();
    successOf(await h.verify(await genuine(h, name)));
    h.clock.advance(JWKS_UNKNOWN_KID_COOLDOWN_MS);
    const forged = await Promise.all(Array.from({ length: 10 }, () => forgedKid(h, name)));
    const results = await Promise.all(forged.map((t) => h.verify(t)));
    for (const r of results) expect(failureOf(r).reason.code).toBe("unknown_key");
    expect((await issuerHits(name)).jwks).toBe(2);
  });
});

describe("issuer outages", () => {
  test("with a cached set, an unreachable issuer is ridden out for the stale window, then refused as unavailable", async () => {
    const { name, h } = await setup();
    const start = h.clock.now;
    successOf(await h.verify(await genuine(h, name)));
    await control(base, name, { mode: "down" });

    // Past freshness: the refetch fails, the stale set still verifies.
    h.clock.advance(JWKS_FRESH_MS);
    const before = (await issuerHits(name)).jwks;
    successOf(await h.verify(await genuine(h, name)));
    expect((await issuerHits(name)).jwks).toBe(before + 1);

    // Just inside the stale window (and past the failure backoff): still fine.
    h.clock.now = start + JWKS_FRESH_MS + JWKS_STALE_WINDOW_MS - 1;
    successOf(await h.verify(await genuine(h, name)));

    // Past the stale window: keys_unavailable, mapped to temporarily_unavailable with a retry hint.
    h.clock.now = start + JWKS_FRESH_MS + JWKS_STALE_WINDOW_MS;
    const error = expectUnavailable(await h.verify(await genuine(h, name)));
    expect(error.issuer?.name).toBe(name);
  });

  test("without a cached set, an unreachable issuer yields keys_unavailable with retryAfter", async () => {
    const { name, h } = await setup();
    await control(base, name, { mode: "down" });
    const error = expectUnavailable(await h.verify(await genuine(h, name)));
    expect(error.retryAfter).toBe(JWKS_FAILURE_BACKOFF_MS / 1000);
    expect(error.description).not.toMatch(/eyJ/);
  });

  test("after a failed fetch, retries within the backoff do not touch the network", async () => {
    const { name, h } = await setup();
    await control(base, name, { mode: "down" });
    expectUnavailable(await h.verify(await genuine(h, name)));
    const fetchesAfterFailure = h.fetches.length;
    const hitsAfterFailure = await issuerHits(name);

    await control(base, name, { mode: "ok" });
    h.clock.advance(5_000);
    const error = expectUnavailable(await h.verify(await genuine(h, name)));
    expect(error.retryAfter).toBe((JWKS_FAILURE_BACKOFF_MS - 5_000) / 1000);
    h.clock.advance(JWKS_FAILURE_BACKOFF_MS - 5_000 - 1);
    expectUnavailable(await h.verify(await genuine(h, name)));
    expect(h.fetches.length).toBe(fetchesAfterFailure);
    expect(await issuerHits(name)).toEqual(hitsAfterFailure);

    // Once the backoff is over, the recovered issuer is fetched and tokens verify.
    h.clock.advance(1);
    successOf(await h.verify(await genuine(h, name)));
    expect(h.fetches.length).toBeGreaterThan(fetchesAfterFailure);
  });

  test("a failing issuer does not put another issuer into backoff", async () => {
    const down = uniqueName("k");
    const up = uniqueName("k");
    await control(base, down, { mode: "down" });
    const h = harness([issuerConfig(down), issuerConfig(up)]);
    expectUnavailable(await h.verify(await genuine(h, down)));
    successOf(await h.verify(await genuine(h, up)));
  });
});

describe("bad answers are never cached", () => {
  const modes = [
    { mode: "html", failsAt: "discovery" },
    { mode: "redirect", failsAt: "discovery" },
    { mode: "wrong-issuer", failsAt: "discovery" },
    { mode: "empty", failsAt: "jwks" },
    { mode: "junk", failsAt: "jwks" },
    { mode: "huge", failsAt: "jwks" },
  ] as const;

  test.each(modes)("a $mode answer yields keys_unavailable and is not cached", async ({ mode, failsAt }) => {
    const { name, h } = await setup();
    const attackerBefore = await hitsUnder("/attacker/");
    await control(base, name, { mode });
    expectUnavailable(await h.verify(await genuine(h, name)));
    const afterFailure = await issuerHits(name);
    expect(afterFailure.discovery).toBe(1);
    expect(afterFailure.jwks).toBe(failsAt === "jwks" ? 1 : 0);

    // Recovery: once the backoff is over, the next call fetches again and succeeds.
    await control(base, name, { mode: "ok" });
    h.clock.advance(JWKS_FAILURE_BACKOFF_MS);
    successOf(await h.verify(await genuine(h, name)));
    const recovered = await issuerHits(name);
    expect(recovered.jwks).toBe(afterFailure.jwks + 1);
    if (mode === "redirect") expect(await hitsUnder("/attacker/")).toBe(attackerBefore);
  });

  test.each(modes.filter((m) => m.failsAt === "jwks"))(
    "a $mode answer to a refresh never replaces the good cached set",
    async ({ mode }) => {
      const { name, h } = await setup();
      successOf(await h.verify(await genuine(h, name)));
      await control(base, name, { mode });
      h.clock.advance(JWKS_FRESH_MS);
      const before = (await issuerHits(name)).jwks;
      successOf(await h.verify(await genuine(h, name)));
      expect((await issuerHits(name)).jwks).toBe(before + 1);
      // And it did not count as a success: after the backoff, the (still bad) issuer is asked again.
      h.clock.advance(JWKS_FAILURE_BACKOFF_MS);
      successOf(await h.verify(await genuine(h, name)));
      expect((await issuerHits(name)).jwks).toBe(before + 2);
    },
  );

  test("a redirect from the configured jwks_uri is not followed", async () => {
    const name = uniqueName("k");
    await control(base, name, { mode: "redirect" });
    const h = harness([issuerConfig(name, "github", { jwksUri: `${issuerUrl(name)}/jwks` })]);
    const attackerBefore = await hitsUnder("/attacker/");
    expectUnavailable(await h.verify(await genuine(h, name)));
    expect(await issuerHits(name)).toEqual({ discovery: 0, jwks: 1 });
    expect(await hitsUnder("/attacker/")).toBe(attackerBefore);
    expect(h.requested.every((u) => !u.includes("/attacker/"))).toBe(true);
  });

  test("a key set with more keys than the cap is refused", async () => {
    const { publicJwk } = await keyPair("RS256");
    const tooMany = rewritingFetch(
      () => ({
        keys: Array.from({ length: MAX_JWKS_KEYS + 1 }, (_, i) => ({ ...publicJwk, kid: `many-${i}` })),
      }),
      (url) => url.endsWith("/jwks"),
    );
    const { name, h } = await setup({}, { fetch: tooMany });
    expectUnavailable(await h.verify(await genuine(h, name)));
  });

  test("a key set of only encryption keys or unknown key types is refused", async () => {
    const realKeys: JWK[] = [];
    const unusable = rewritingFetch(
      (_url, body) => {
        realKeys.push(...(body as { keys: JWK[] }).keys);
        return {
          keys: [
            ...(body as { keys: JWK[] }).keys.map((k) => ({ ...k, use: "enc" })),
            { kty: "oct", k: "c2VjcmV0", kid: "hmac" },
          ],
        };
      },
      (url) => url.endsWith("/jwks"),
    );
    const { name, h } = await setup({}, { fetch: unusable });
    expectUnavailable(await h.verify(await genuine(h, name)));
    expect(realKeys.length).toBeGreaterThan(0);
  });

  test(
    "a slow issuer is cut off at the fetch time cap, whether it stalls the headers or trickles the body",
    async () => {
      // Slow headers: the test issuer's `slow` mode. Slow body: a local server that trickles a JWKS forever.
      const { name, h } = await setup();
      await control(base, name, { mode: "slow" });
      const trickle = createServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.write('{"keys":[');
        const timer = setInterval(() => res.write(" "), 100);
        res.on("close", () => clearInterval(timer));
      });
      await new Promise<void>((r) => trickle.listen(0, "127.0.0.1", () => r()));
      try {
        const port = (trickle.address() as AddressInfo).port;
        const trickler = issuerConfig("trickle", "generic", {
          url: `http://127.0.0.1:${port}/trickle`,
          jwksUri: `http://127.0.0.1:${port}/jwks`,
        });
        const t = harness([trickler], { clock: h.clock });
        const attacker = await keyPair("RS256");
        const trickleToken = await signLocally(
          attacker.privateKey,
          githubClaims(trickler.url, AUD, {}, h.clock.now),
          { alg: "RS256", kid: "k1" },
        );
        const slowToken = await genuine(h, name);

        const timed = async (run: () => ReturnType<Harness["verify"]>) => {
          const startedAt = performance.now();
          const result = await run();
          return { result, elapsed: performance.now() - startedAt };
        };
        const outcomes = await Promise.all([
          timed(() => h.verify(slowToken)),
          timed(() => t.verify(trickleToken)),
        ]);
        for (const { result, elapsed } of outcomes) {
          expectUnavailable(result);
          expect(elapsed).toBeGreaterThanOrEqual(JWKS_FETCH_TIMEOUT_MS - 100);
          expect(elapsed).toBeLessThan(JWKS_FETCH_TIMEOUT_MS + 1_500);
        }
      } finally {
        trickle.closeAllConnections();
        await new Promise<void>((r) => trickle.close(() => r()));
      }

      // The timed-out answer was not cached: once the issuer is fast again, keys are fetched and used.
      await control(base, name, { mode: "ok" });
      h.clock.advance(JWKS_FAILURE_BACKOFF_MS);
      successOf(await h.verify(await genuine(h, name)));
    },
    JWKS_FETCH_TIMEOUT_MS + 10_000,
  );

  test("a key set whose declared length exceeds the cap is refused without reading it", async () => {
    const { publicJwk } = await keyPair("RS256");
    const body = JSON.stringify({ keys: [{ ...publicJwk, kid: "k" }] });
    const oversized: typeof fetch = async (input, init) => {
      const url = String(input);
      if (!url.endsWith("/jwks")) return fetch(input, init);
      return new Response(body, {
        status: 200,
        headers: { "content-type": "application/json", "content-length": String(MAX_JWKS_BYTES + 1) },
      });
    };
    const { name, h } = await setup({}, { fetch: oversized });
    expectUnavailable(await h.verify(await genuine(h, name)));
  });

  test("a key set just under the size cap is accepted", async () => {
    const padded = rewritingFetch(
      (_url, json) => ({ ...(json as object), padding: "x".repeat(MAX_JWKS_BYTES - 4_096) }),
      (url) => url.endsWith("/jwks"),
    );
    const { name, h } = await setup({}, { fetch: padded });
    successOf(await h.verify(await genuine(h, name)));
  });
});

describe("where keys come from", () => {
  test("a discovered jwks_uri on another origin is refused and never fetched", async () => {
    const name = uniqueName("k");
    await control(base, name, { mode: "ok" });
    // Same server, but a different origin (localhost vs 127.0.0.1): would verify if the origin were not checked.
    const otherOrigin = rewritingFetch(
      (_url, body) => ({
        ...(body as Record<string, unknown>),
        jwks_uri: `${issuerUrl(name).replace("127.0.0.1", "localhost")}/jwks`,
      }),
      (url) => url.endsWith("/.well-known/openid-configuration"),
    );
    const h = harness([issuerConfig(name)], { fetch: otherOrigin });
    expectUnavailable(await h.verify(await genuine(h, name)));
    expect(h.fetches.map((f) => f.kind)).toEqual(["discovery"]);
    expect(await issuerHits(name)).toEqual({ discovery: 1, jwks: 0 });
  });

  test.each([
    ["a query string", (u: string) => `${u}/jwks?x=1`],
    ["credentials", (u: string) => `${u.replace("http://", "http://user:pass@")}/jwks`],
    ["a non-http scheme", (u: string) => `file:///etc/${u.length}`],
  ])("a discovered jwks_uri with %s is refused", async (_label, jwksUri) => {
    const name = uniqueName("k");
    await control(base, name, { mode: "ok" });
    const rewrite = rewritingFetch(
      (_url, body) => ({ ...(body as Record<string, unknown>), jwks_uri: jwksUri(issuerUrl(name)) }),
      (url) => url.endsWith("/.well-known/openid-configuration"),
    );
    const h = harness([issuerConfig(name)], { fetch: rewrite });
    expectUnavailable(await h.verify(await genuine(h, name)));
    expect(h.fetches.map((f) => f.kind)).toEqual(["discovery"]);
  });

  test("a plain-http discovered jwks_uri is refused outside dev mode", async () => {
    // Production rules (dev=false) forbid http; the discovery document is served by a stub over the same fetch.
    const requested: string[] = [];
    const stub: typeof fetch = async (input) => {
      const url = String(input);
      requested.push(url);
      return Response.json({ issuer: "https://ci.example.com", jwks_uri: "http://ci.example.com/jwks" });
    };
    const clock = new ManualClock();
    const cache = new KeySetCache({ clock: clock.fn, dev: false, fetch: stub });
    const result = await cache.getKey(
      {
        name: "ci",
        url: "https://ci.example.com",
        kind: "generic",
        maxTokenAge: 3600,
        algorithms: ["RS256"],
      },
      "k1",
      "RS256",
    );
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.reason).toBe("keys_unavailable");
    expect(requested).toEqual(["https://ci.example.com/.well-known/openid-configuration"]);
  });

  test("an explicit jwks_uri skips discovery", async () => {
    const name = uniqueName("k");
    await control(base, name, { mode: "ok" });
    const h = harness([issuerConfig(name, "github", { jwksUri: `${issuerUrl(name)}/jwks` })]);
    successOf(await h.verify(await genuine(h, name)));
    successOf(await h.verify(await genuine(h, name)));
    expect(h.fetches.map((f) => f.kind)).toEqual(["jwks"]);
    expect(await issuerHits(name)).toEqual({ discovery: 0, jwks: 1 });
  });

  test("an explicit jwks_uri may be on another origin (the documented way to allow it)", async () => {
    const name = uniqueName("k");
    await control(base, name, { mode: "ok" });
    const jwksUri = `${issuerUrl(name).replace("127.0.0.1", "localhost")}/jwks`;
    const h = harness([issuerConfig(name, "github", { jwksUri })]);
    successOf(await h.verify(await genuine(h, name)));
    expect(h.fetches).toEqual([{ kind: "jwks", url: jwksUri }]);
  });

  test("an issuer with a static key set (the dev issuer) is never fetched", async () => {
    const name = uniqueName("k");
    const { token, publicJwk } = await mintAt(name, githubClaims(issuerUrl(name), AUD));
    const h = harness([issuerConfig(name, "github", { jwks: { keys: [publicJwk] } })]);
    successOf(await h.verify(token));
    expect(h.fetches).toEqual([]);
    expect(h.requested).toEqual([]);
    expect(await issuerHits(name)).toEqual({ discovery: 0, jwks: 0 });
  });

  test("a token without kid verifies only against an unambiguous key set", async () => {
    const one = await keyPair("RS256");
    const two = await keyPair("RS256");
    const publish = (keys: JWK[]) =>
      rewritingFetch(
        () => ({ keys }),
        (url) => url.endsWith("/jwks"),
      );
    const single = await setup({}, { fetch: publish([{ ...one.publicJwk, alg: "RS256" }]) });
    const claims = (n: string) => githubClaims(issuerUrl(n), AUD, {}, single.h.clock.now);
    successOf(
      await single.h.verify(await signLocally(one.privateKey, claims(single.name), { alg: "RS256" })),
    );

    const double = await setup({}, { fetch: publish([one.publicJwk, two.publicJwk]) });
    const error = failureOf(
      await double.h.verify(await signLocally(one.privateKey, claims(double.name), { alg: "RS256" })),
    );
    expect(error.reason.code).toBe("unknown_key");
  });

  test("the discovery document must name the issuer exactly", async () => {
    const name = uniqueName("k");
    await control(base, name, { mode: "ok" });
    const trailingSlash = rewritingFetch(
      (_url, body) => ({ ...(body as Record<string, unknown>), issuer: `${issuerUrl(name)}/` }),
      (url) => url.endsWith("/.well-known/openid-configuration"),
    );
    const h = harness([issuerConfig(name)], { fetch: trailingSlash });
    expectUnavailable(await h.verify(await genuine(h, name)));
    expect(h.fetches.map((f) => f.kind)).toEqual(["discovery"]);
  });
});

describe("per-issuer isolation", () => {
  test("issuer A's key never verifies a token claiming issuer B, even under an identical kid", async () => {
    const a = uniqueName("k");
    const b = uniqueName("k");
    await control(base, a, { mode: "ok" });
    await control(base, b, { mode: "ok" });
    // Both issuers publish their (different) keys under the same kid.
    const sameKid = rewritingFetch(
      (_url, body) => ({ keys: (body as { keys: JWK[] }).keys.map((k) => ({ ...k, kid: "shared" })) }),
      (url) => url.endsWith("/jwks"),
    );
    const h = harness([issuerConfig(a), issuerConfig(b)], { fetch: sameKid });
    const mintFor = async (signer: string, iss: string) =>
      (
        await mintAt(signer, githubClaims(issuerUrl(iss), AUD, {}, h.clock.now), {
          header: { kid: "shared" },
        })
      ).token;

    successOf(await h.verify(await mintFor(a, a)));
    const crossed = failureOf(await h.verify(await mintFor(a, b)));
    expect(crossed.code).toBe("invalid_token");
    expect(crossed.reason.code).toBe("signature_invalid");
    expect(crossed.issuer?.name).toBe(b);
    // B's own key set was fetched for it; A's cached set was not consulted.
    expect(await issuerHits(b)).toEqual({ discovery: 1, jwks: 1 });
    successOf(await h.verify(await mintFor(b, b)));
    expect(failureOf(await h.verify(await mintFor(b, a))).reason.code).toBe("signature_invalid");
  });

  test("issuer A's kid is unknown to issuer B", async () => {
    const a = uniqueName("k");
    const b = uniqueName("k");
    await control(base, b, { mode: "ok" });
    const h = harness([issuerConfig(a), issuerConfig(b)]);
    successOf(await h.verify(await genuine(h, a)));
    const token = (await mintAt(a, githubClaims(issuerUrl(b), AUD, {}, h.clock.now))).token;
    const error = failureOf(await h.verify(token));
    expect(error.reason.code).toBe("unknown_key");
    expect(error.issuer?.name).toBe(b);
  });
});
