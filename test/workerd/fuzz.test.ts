// Fuzzing POST /v1/exchange inside workerd: random Authorization headers, bodies and media types never cause a
// 5xx or a credential, and always answer a documented error code with its documented status; tokens the issuer
// really signed, with randomly broken claims, get credentials only when the policy truly matches.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { STATUS } from "../../src/core/errors.ts";
import {
  BROKER_URL,
  githubPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  type TestBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { githubClaims, mint } from "../support/claims.ts";

/** Error codes POST /v1/exchange documents for requests that carry no valid token (docs/api.md, Errors). */
const DOCUMENTED = [
  "invalid_request",
  "invalid_token",
  "access_denied",
  "token_replayed",
  "request_too_large",
  "unsupported_media_type",
  "rate_limited",
  "temporarily_unavailable",
];

const b64 = (data: string | Uint8Array): string => {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

/** Characters a header value may carry: printable ASCII and tab (workerd re-encodes anything else as UTF-8). */
const headerChar = fc
  .oneof(
    { arbitrary: fc.integer({ min: 0x20, max: 0x7e }), weight: 20 },
    { arbitrary: fc.constant(0x09), weight: 1 },
  )
  .map((c) => String.fromCharCode(c));
const headerString = (maxLength: number) => fc.string({ unit: headerChar, maxLength });

const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 2 }),
);

let gh: string;
let iss: string;
let broker: TestBroker;
/** A genuine token, already exchanged once (so any variant of it that still verifies must be a replay). */
let consumed: string;

beforeAll(async () => {
  gh = uniqueIssuer();
  iss = `${ISSUER_BASE}/${gh}`;
  broker = await makeBroker({ policies: { "api-deploy": githubPolicy(gh) }, issuers: issuersYaml(gh) });
  consumed = await mint(ISSUER_BASE, gh, githubClaims(iss, BROKER_URL));
  expect((await broker.exchange(consumed, { policy: "api-deploy" })).status).toBe(200);
});

interface Probe {
  authorization: string | undefined;
  contentType: string | undefined;
  body: string;
}

const threeSegments = fc
  .tuple(
    fc.uint8Array({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 300 }),
    fc.uint8Array({ maxLength: 300 }),
  )
  .map((parts) => parts.map(b64).join("."));

/** Header and claims that name the trusted issuer (so verification goes as far as its keys), unsigned. */
const forgedForTrustedIssuer = fc
  .record({
    alg: fc.constantFrom("RS256", "HS256", "none", "ES256"),
    kid: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 8 })),
    claims: fc.dictionary(fc.constantFrom("sub", "aud", "exp", "iat", "nbf", "jti", "ref"), anyValue),
    signature: fc.uint8Array({ maxLength: 260 }),
  })
  .map(({ alg, kid, claims, signature }) => {
    // Without a kid of its own, the issuer's real one (read when generated, after setup).
    const header = { alg, kid: kid ?? `${gh}-k1`, typ: "JWT" };
    return `${b64(JSON.stringify(header))}.${b64(JSON.stringify({ ...claims, iss }))}.${b64(signature)}`;
  });

/** The consumed genuine token with one character replaced. */
const mutatedGenuine = fc.tuple(fc.nat(), fc.integer({ min: 0x21, max: 0x7e })).map(([i, c]) => {
  const at = i % consumed.length;
  return consumed.slice(0, at) + String.fromCharCode(c) + consumed.slice(at + 1);
});

const authorization: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.constant(undefined),
  headerString(60),
  headerString(200).map((t) => `Bearer ${t}`),
  threeSegments.map((t) => `Bearer ${t}`),
  forgedForTrustedIssuer.map((t) => `Bearer ${t}`),
  mutatedGenuine.map((t) => `Bearer ${t}`),
  fc.constantFrom("Bearer", "Bearer ", "bearer  a.b.c", "Basic dXNlcjpwYXNz", "Bearer a b", "Token x.y.z"),
  fc.integer({ min: 16_370, max: 16_400 }).map((n) => `Bearer ${"a".repeat(n)}`),
);

const requestBody = fc
  .record(
    {
      policy: fc.oneof(fc.constantFrom("api-deploy", "nope", "", "API-DEPLOY"), anyValue),
      grants: fc.oneof(
        fc.array(fc.constantFrom("token", "aws", "github", "secrets", "bogus"), { maxLength: 5 }),
        anyValue,
      ),
      ttl: fc.oneof(fc.constantFrom("15m", "1s", "0s", "-1m", "1y", "10", "1h30m"), anyValue),
      bogus: anyValue,
    },
    { requiredKeys: [] },
  )
  .map((b) => JSON.stringify(b));

/** Bodies that pass validation, so the token itself gets judged. */
const validBody = fc
  .record(
    {
      policy: fc.constantFrom("api-deploy", "nope"),
      grants: fc.subarray(["token", "aws", "github", "secrets"], { minLength: 1 }),
      ttl: fc.constantFrom("15m", "1h", "30s"),
    },
    { requiredKeys: ["policy"] },
  )
  .map((b) => JSON.stringify(b));

const body: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: validBody, weight: 8 },
  { arbitrary: requestBody, weight: 4 },
  { arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), weight: 2 },
  { arbitrary: fc.string({ maxLength: 80 }), weight: 2 },
  {
    arbitrary: fc.constantFrom('{"policy":"api-deploy"', "", "null", "[]", '{"policy":"api-deploy"}x'),
    weight: 1,
  },
  {
    arbitrary: fc.integer({ min: 65_500, max: 70_000 }).map((n) => JSON.stringify({ policy: "x".repeat(n) })),
    weight: 1,
  },
);

const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { arbitrary: fc.constant("application/json"), weight: 6 },
  {
    arbitrary: fc.constantFrom(
      undefined,
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
      "text/plain",
      "application/x-www-form-urlencoded",
      "",
      "application/jsonx",
    ),
    weight: 2,
  },
);

const probe: fc.Arbitrary<Probe> = fc.record({ authorization, contentType, body });

let clients = 0;
/**
 * A fresh client address per request. The failure limit (60 failed requests per address per minute) would
 * otherwise answer every probe after the 60th with 429 before anything is parsed, and the fuzz would test
 * nothing else.
 */
function clientAddress(): string {
  clients++;
  return `10.${(clients >> 16) & 255}.${(clients >> 8) & 255}.${clients & 255}`;
}

async function send(p: Probe): Promise<Response> {
  const headers: Record<string, string> = { "cf-connecting-ip": clientAddress() };
  if (p.authorization !== undefined) headers.authorization = p.authorization;
  if (p.contentType !== undefined) headers["content-type"] = p.contentType;
  return broker.fetch("/v1/exchange", { method: "POST", headers, body: p.body });
}

describe("POST /v1/exchange fuzz", () => {
  it("random bearers, bodies and media types: never a 5xx, never credentials, always a documented code and status", async () => {
    await fc.assert(
      fc.asyncProperty(probe, async (p) => {
        const res = await send(p);
        const text = await res.text();
        expect(res.status, text).toBeLessThan(500);
        expect(res.status).not.toBe(200);
        const parsed = JSON.parse(text) as { error?: string; credentials?: unknown; lease?: unknown };
        expect(DOCUMENTED).toContain(parsed.error);
        expect(res.status).toBe(STATUS[parsed.error as keyof typeof STATUS]);
        expect(parsed.credentials).toBeUndefined();
        expect(parsed.lease).toBeUndefined();
        expect(res.headers.get("x-request-id")).toBeTruthy();
        if (parsed.error === "invalid_token") expect(res.headers.get("www-authenticate")).toContain("Bearer");
      }),
      { numRuns: 200 },
    );
  });

  it("tokens the issuer really signed, with randomly broken claims: credentials only when the policy truly matches", async () => {
    // A frozen broker clock makes the time claims exact.
    const now = Math.floor(Date.now() / 1000);
    const frozen = await makeBroker({
      policies: { "api-deploy": githubPolicy(gh) },
      issuers: issuersYaml(gh),
      clock: () => now * 1000,
    });
    const near: Record<string, fc.Arbitrary<unknown>> = {
      repository_owner_id: fc.constantFrom(
        "1342004",
        "1342005",
        1342004,
        " 1342004",
        ["1342004"],
        "13420040",
      ),
      repository_id: fc.constantFrom("519345000", "519345001", 519345000, "0519345000", "519345000 "),
      ref: fc.constantFrom(
        "refs/heads/main",
        "refs/heads/main-evil",
        "refs/heads/Main",
        "refs/tags/main",
        "",
      ),
      event_name: fc.constantFrom("push", "workflow_dispatch", "pull_request_target", "PUSH", ["push"]),
      aud: fc.constantFrom(BROKER_URL, `${BROKER_URL}/`, [BROKER_URL], "https://deploy.acme.dev", ""),
      sub: fc.constantFrom("repo:acme/api:ref:refs/heads/main", "", 7),
      run_id: fc.constantFrom("1", "abc", "1:2", 5, "99999999999999999999999", "-1"),
      run_attempt: fc.constantFrom("1", "2", "0", 1, "1:1"),
      iat: fc.integer({ min: -700, max: 70 }).map((d) => now + d),
      nbf: fc.integer({ min: -700, max: 70 }).map((d) => now + d),
      exp: fc.integer({ min: -70, max: 3600 }).map((d) => now + d),
      jti: fc.oneof(fc.uuid(), fc.constantFrom("", "x".repeat(300)), fc.integer()),
    };
    const perturbation = fc
      .subarray(Object.keys(near), { maxLength: 4 })
      .chain((keys) =>
        fc.record(
          Object.fromEntries(
            keys.map((k) => [
              k,
              fc.oneof(
                { arbitrary: near[k] as fc.Arbitrary<unknown>, weight: 4 },
                { arbitrary: anyValue, weight: 1 },
              ),
            ]),
          ),
        ),
      );
    let issued = 0;
    await fc.assert(
      fc.asyncProperty(perturbation, async (overrides) => {
        const claims = githubClaims(iss, BROKER_URL, overrides, now * 1000) as Record<string, unknown>;
        const token = await mint(ISSUER_BASE, gh, claims);
        const res = await frozen.fetch("/v1/exchange", {
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${token}`,
            "cf-connecting-ip": clientAddress(),
          },
          body: JSON.stringify({ policy: "api-deploy" }),
        });
        const parsed = (await res.json()) as { error?: string; credentials?: { token?: { token: string } } };
        expect(res.status).toBeLessThan(500);
        expect([200, 401, 403, 409]).toContain(res.status);
        if (res.status !== 200) {
          expect(parsed.credentials).toBeUndefined();
          expect(res.status).toBe(STATUS[parsed.error as keyof typeof STATUS]);
          return;
        }
        issued++;
        expect(parsed.credentials?.token?.token).toBeTruthy();
        // Issued: every pinned claim holds exactly, and the token's own rules held.
        expect(claims.repository_owner_id).toBe("1342004");
        expect(claims.repository_id).toBe("519345000");
        expect(claims.ref).toBe("refs/heads/main");
        expect(["push", "workflow_dispatch"]).toContain(claims.event_name);
        expect(claims.aud).toBe(BROKER_URL);
        expect(typeof claims.sub === "string" && claims.sub.length > 0).toBe(true);
        expect(typeof claims.jti === "string" && claims.jti.length > 0 && claims.jti.length <= 256).toBe(
          true,
        );
        const [iat, nbf, exp] = [claims.iat, claims.nbf, claims.exp] as number[];
        expect(iat).toBeLessThanOrEqual(now + 60);
        expect(nbf).toBeLessThanOrEqual(now + 60);
        expect(exp).toBeGreaterThan(now - 60);
        expect(exp).toBeGreaterThan(iat as number);
        expect(now - (iat as number)).toBeLessThanOrEqual(660);
      }),
      { numRuns: 80 },
    );
    // Unperturbed and harmlessly perturbed tokens must get through, or the checks above prove nothing.
    expect(issued).toBeGreaterThan(0);
  });
});

describe("found by fuzzing", () => {
  it("re-encodings of a used jti-less token's signature are refused as replays, never exchanged again", async () => {
    // A generic issuer (CircleCI-like) sends no jti; runpass makes the token single-use by a SHA-256. The last
    // base64url character of an RS256 signature carries 4 unused bits, so 16 strings verify as the same token.
    const gen = uniqueIssuer("gen");
    const generic = await makeBroker({
      policies: {
        "ci-deploy": `issuer: ${gen}
allow:
  sub: "project:acme/api"
grants:
  token: { audience: "https://deploy.acme.dev", ttl: 10m }
`,
      },
      issuers: issuersYaml(`${gen}:generic`),
    });
    const now = Math.floor(Date.now() / 1000);
    const token = await mint(ISSUER_BASE, gen, {
      iss: `${ISSUER_BASE}/${gen}`,
      sub: "project:acme/api",
      aud: BROKER_URL,
      iat: now,
      exp: now + 300,
    });
    expect((await generic.exchange(token, { policy: "ci-deploy" })).status).toBe(200);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const statuses = await Promise.all(
      [...alphabet]
        .map((c) => `${token.slice(0, -1)}${c}`)
        .filter((v) => v !== token)
        .map(async (v) => (await generic.exchange(v, { policy: "ci-deploy" })).status),
    );
    expect(statuses.filter((s) => s === 200)).toEqual([]);
    // The 15 other encodings verify (so they are the same token) and are replays; the rest fail the signature.
    expect(statuses.filter((s) => s === 409)).toHaveLength(15);
    expect(statuses.filter((s) => s !== 409).every((s) => s === 401)).toBe(true);
  });
});
