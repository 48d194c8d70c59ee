// Fuzzing the verifier front (verifyToken with a real KeySetCache over an in-memory issuer): whatever the
// bytes, it never throws, always answers a typed failure with a documented code, never fetches for anything
// but a trusted issuer's own URLs, and never accepts a token its issuer did not sign within the claim rules.

import fc from "fast-check";
import { exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import {
  CLOCK_SKEW_SECONDS,
  DEFAULT_MAX_TOKEN_AGE_SECONDS,
  MAX_TOKEN_BYTES,
} from "../../src/core/constants.ts";
import type { ReasonCode } from "../../src/core/errors.ts";
import type { IssuerConfig } from "../../src/core/oidc/issuers.ts";
import { KeySetCache } from "../../src/core/oidc/key-source.ts";
import { type TokenFailure, type VerifierOptions, verifyToken } from "../../src/core/oidc/verify.ts";

/** Frozen time (seconds): every generated time is relative to it. */
const NOW = 1_795_000_000;
const AUD = "https://runpass.test";
const ORIGIN = "https://issuer.fuzz.test";
const GH = `${ORIGIN}/gh`;
const GEN = `${ORIGIN}/gen`;
/** Trusted, but its key set cannot be fetched (temporarily_unavailable). */
const DOWN = `${ORIGIN}/down`;
/** Served by the in-memory issuer with real keys, but on no allow-list: never to be fetched. */
const OTHER = `${ORIGIN}/other`;

type Alg = "RS256" | "PS256" | "ES256" | "EdDSA";
const ALGS: Alg[] = ["RS256", "PS256", "ES256", "EdDSA"];

const ISSUERS: IssuerConfig[] = [
  {
    name: "gh",
    url: GH,
    kind: "github",
    maxTokenAge: DEFAULT_MAX_TOKEN_AGE_SECONDS.github,
    algorithms: ["RS256"],
  },
  {
    name: "gen",
    url: GEN,
    kind: "generic",
    maxTokenAge: DEFAULT_MAX_TOKEN_AGE_SECONDS.generic,
    algorithms: ALGS,
  },
  {
    name: "down",
    url: DOWN,
    kind: "github",
    maxTokenAge: DEFAULT_MAX_TOKEN_AGE_SECONDS.github,
    algorithms: ["RS256"],
  },
];
const BY_URL = new Map(ISSUERS.map((i) => [i.url, i]));

/** Every URL the verifier may ever fetch: the trusted issuers' own discovery and JWKS. */
const ALLOWED_FETCHES = new Set(
  ISSUERS.flatMap((i) => [`${i.url}/.well-known/openid-configuration`, `${i.url}/jwks`]),
);

/** The reason codes verifyToken may answer with, and the wire code each maps to. */
const TOKEN_REASONS: Partial<Record<ReasonCode, TokenFailure["code"]>> = {
  token_missing: "invalid_token",
  token_too_large: "request_too_large",
  malformed: "invalid_token",
  issuer_untrusted: "invalid_token",
  audience_invalid: "invalid_token",
  alg_not_allowed: "invalid_token",
  forbidden_header: "invalid_token",
  unknown_key: "invalid_token",
  keys_unavailable: "temporarily_unavailable",
  signature_invalid: "invalid_token",
  claim_missing: "invalid_token",
  expired: "invalid_token",
  not_yet_valid: "invalid_token",
  token_too_old: "invalid_token",
};

/** WebCrypto parameters for signing with each algorithm (ECDSA and Ed25519 output is already JOSE's raw form). */
const SIGN_PARAMS: Record<Alg, Parameters<typeof crypto.subtle.sign>[0]> = {
  RS256: { name: "RSASSA-PKCS1-v1_5" },
  PS256: { name: "RSA-PSS", saltLength: 32 },
  ES256: { name: "ECDSA", hash: "SHA-256" },
  EdDSA: { name: "Ed25519" },
};

/** Issuer keys by issuer URL and algorithm (the KeySetCache sees only the public halves). */
const issuerKeys = new Map<string, Partial<Record<Alg, { kid: string; key: CryptoKey }>>>();
/** Keys of nobody trusted, for forged signatures (used under the issuers' real kids). */
const attackerKeys: Partial<Record<Alg, CryptoKey>> = {};
const served = new Map<string, unknown>();
const requested: string[] = [];

const memoryFetch: typeof fetch = async (input) => {
  const url = String(input instanceof Request ? input.url : input);
  requested.push(url);
  if (url.startsWith(`${DOWN}/`)) throw new TypeError("fetch failed: connection refused");
  const body = served.get(url);
  if (body === undefined) return new Response('{"error":"not found"}', { status: 404 });
  return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
};

async function keyPair(alg: Alg): Promise<{ privateKey: CryptoKey; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, publicJwk: await exportJWK(publicKey) };
}

/** Publishes an issuer at `url` with keys for `algs` (an RSA key serves RS256 and PS256, published without alg). */
async function publish(url: string, prefix: string, algs: Alg[]): Promise<void> {
  const keys: Partial<Record<Alg, { kid: string; key: CryptoKey }>> = {};
  const jwks: JWK[] = [];
  if (algs.includes("RS256")) {
    const rsa = await keyPair("RS256");
    const kid = `${prefix}-rsa`;
    keys.RS256 = { kid, key: rsa.privateKey };
    if (algs.includes("PS256")) {
      const pss = await importJWK({ ...(await exportJWK(rsa.privateKey)), alg: "PS256" }, "PS256");
      keys.PS256 = { kid, key: pss as CryptoKey };
      jwks.push({ ...rsa.publicJwk, kid, use: "sig" });
    } else {
      jwks.push({ ...rsa.publicJwk, kid, alg: "RS256", use: "sig" });
    }
  }
  for (const alg of ["ES256", "EdDSA"] as const) {
    if (!algs.includes(alg)) continue;
    const pair = await keyPair(alg);
    const kid = `${prefix}-${alg.toLowerCase()}`;
    keys[alg] = { kid, key: pair.privateKey };
    jwks.push({ ...pair.publicJwk, kid, alg, use: "sig" });
  }
  issuerKeys.set(url, keys);
  served.set(`${url}/.well-known/openid-configuration`, { issuer: url, jwks_uri: `${url}/jwks` });
  served.set(`${url}/jwks`, { keys: jwks });
}

let cache: KeySetCache;
let options: VerifierOptions;

beforeAll(async () => {
  await publish(GH, "gh", ["RS256"]);
  await publish(GEN, "gen", ALGS);
  await publish(OTHER, "other", ["RS256"]);
  const rsa = await keyPair("RS256");
  attackerKeys.RS256 = rsa.privateKey;
  attackerKeys.PS256 = (await importJWK(
    { ...(await exportJWK(rsa.privateKey)), alg: "PS256" },
    "PS256",
  )) as CryptoKey;
  attackerKeys.ES256 = (await keyPair("ES256")).privateKey;
  attackerKeys.EdDSA = (await keyPair("EdDSA")).privateKey;
  cache = new KeySetCache({ clock: () => NOW * 1000, dev: false, fetch: memoryFetch });
  options = { issuers: BY_URL, keys: cache, audiences: new Set([AUD]), clock: () => NOW * 1000 };
});

const b64 = (data: string | Uint8Array): string => Buffer.from(data).toString("base64url");

async function sign(alg: Alg, key: CryptoKey, input: string): Promise<string> {
  return b64(
    new Uint8Array(await crypto.subtle.sign(SIGN_PARAMS[alg], key, new TextEncoder().encode(input))),
  );
}

/** Verifies, turning a throw into a test failure that names the input class (never the full token). */
async function verify(token: string) {
  try {
    return await verifyToken(token, options);
  } catch (e) {
    throw new Error(`verifyToken threw on a ${token.length}-char input: ${String(e)}`);
  }
}

/** A failure must be typed: a documented wire code consistent with its reason, a description, no echo. */
function expectTypedFailure(error: TokenFailure, token: string): void {
  const expected = TOKEN_REASONS[error.reason.code];
  expect(expected, `undocumented reason ${error.reason.code}`).toBeDefined();
  expect(error.code).toBe(expected);
  expect(typeof error.description).toBe("string");
  expect(error.description.length).toBeGreaterThan(0);
  if (token.length >= 16) expect(error.description).not.toContain(token);
  if (error.code === "temporarily_unavailable") expect(error.retryAfter).toBeGreaterThan(0);
  else expect(error.retryAfter).toBeUndefined();
}

function expectOnlyAllowedFetches(): void {
  const stray = requested.filter((u) => !ALLOWED_FETCHES.has(u));
  expect(stray).toEqual([]);
}

// ---------------------------------------------------------------------------------------------------------
// Arbitraries

const ABSENT = Symbol("absent");

/** `arb` most of the time, the claim left out otherwise. */
function maybe<T>(
  arb: fc.Arbitrary<T>,
  absentWeight = 1,
  presentWeight = 5,
): fc.Arbitrary<T | typeof ABSENT> {
  return fc.oneof(
    { arbitrary: arb, weight: presentWeight },
    { arbitrary: fc.constant(ABSENT), weight: absentWeight },
  );
}

function strip(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== ABSENT));
}

/** Any JSON value of any type, including the awkward ones. */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom("", " ", "0", "-1", "1e3", "null", "true", "[]", "{}", "__proto__"),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 2 }),
  fc.constantFrom(2 ** 53, -(2 ** 53), 1e300, -1e300, 0.5, -0),
);

/** Times near the frozen clock, exactly at the skew and age boundaries, and of the wrong type. */
const timeValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.integer({ min: -4000, max: 4000 }).map((d) => NOW + d), weight: 4 },
  {
    arbitrary: fc
      .constantFrom(
        -CLOCK_SKEW_SECONDS,
        -CLOCK_SKEW_SECONDS - 1,
        -CLOCK_SKEW_SECONDS + 1,
        CLOCK_SKEW_SECONDS,
        CLOCK_SKEW_SECONDS + 1,
        -(DEFAULT_MAX_TOKEN_AGE_SECONDS.github + CLOCK_SKEW_SECONDS),
        -(DEFAULT_MAX_TOKEN_AGE_SECONDS.github + CLOCK_SKEW_SECONDS + 1),
        -(DEFAULT_MAX_TOKEN_AGE_SECONDS.generic + CLOCK_SKEW_SECONDS),
        -(DEFAULT_MAX_TOKEN_AGE_SECONDS.generic + CLOCK_SKEW_SECONDS + 1),
        0,
      )
      .map((d) => NOW + d),
    weight: 3,
  },
  { arbitrary: fc.double({ min: NOW - 100, max: NOW + 100, noNaN: true }), weight: 1 },
  { arbitrary: fc.integer({ min: NOW - 100, max: NOW + 100 }).map(String), weight: 1 },
  { arbitrary: anyValue, weight: 1 },
);

const issValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.constantFrom(GH, GEN), weight: 6 },
  {
    arbitrary: fc.constantFrom(
      DOWN,
      OTHER,
      `${GH}/`,
      GH.toUpperCase(),
      `${GH} `,
      ` ${GH}`,
      GH.replace("https", "http"),
      `${GH}\u0000`,
      "https://token.actions.githubusercontent.com",
    ),
    weight: 2,
  },
  { arbitrary: anyValue, weight: 1 },
);

/** A payload with every registered claim present, absent, well-typed or of a random type, plus CI claims and junk. */
const payloadArb = fc
  .record({
    iss: maybe(issValue),
    sub: maybe(fc.oneof(fc.constant("repo:acme/api:ref:refs/heads/main"), anyValue)),
    aud: maybe(
      fc.oneof(
        { arbitrary: fc.constant(AUD), weight: 5 },
        { arbitrary: fc.constantFrom([AUD], [AUD, AUD], `${AUD}/`, "https://other.test", ""), weight: 1 },
        { arbitrary: anyValue, weight: 1 },
      ),
    ),
    exp: maybe(timeValue),
    iat: maybe(timeValue),
    nbf: maybe(timeValue),
    jti: maybe(
      fc.oneof(
        { arbitrary: fc.uuid(), weight: 5 },
        { arbitrary: fc.constantFrom("", "x".repeat(256), "x".repeat(257)), weight: 1 },
        { arbitrary: anyValue, weight: 1 },
      ),
    ),
    repository_id: maybe(fc.oneof(fc.constant("519345000"), anyValue)),
    run_id: maybe(fc.oneof(fc.integer({ min: 1 }).map(String), anyValue)),
    run_attempt: maybe(fc.oneof(fc.constant("1"), anyValue)),
    repository_owner_id: maybe(fc.oneof(fc.constant("1342004"), anyValue)),
    project_id: maybe(anyValue, 3),
    pipeline_id: maybe(anyValue, 3),
    extra: maybe(
      fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
      3,
    ),
  })
  .map(({ extra, ...claims }) => ({
    ...(extra === ABSENT ? {} : (extra as Record<string, unknown>)),
    ...strip(claims),
  }));

type SignerKind = "issuer" | "attacker" | "empty" | "random" | "none";

const headerArb = fc
  .record({
    alg: maybe(
      fc.oneof(
        { arbitrary: fc.constantFrom<Alg>(...ALGS), weight: 8 },
        {
          arbitrary: fc.constantFrom(
            "none",
            "None",
            "HS256",
            "RS384",
            "ES512",
            "RS256 ",
            "rs256",
            "",
            "Ed25519",
          ),
          weight: 2,
        },
        { arbitrary: anyValue, weight: 1 },
      ),
      1,
      25,
    ),
    kid: maybe(
      fc.oneof(
        { arbitrary: fc.constantFrom("gh-rsa", "gen-rsa", "gen-es256", "gen-eddsa", "other-rsa"), weight: 3 },
        { arbitrary: anyValue, weight: 1 },
      ),
    ),
    typ: maybe(fc.oneof(fc.constantFrom("JWT", "at+jwt", "JOSE"), anyValue)),
    crit: maybe(fc.oneof(fc.constantFrom(["b64"], ["exp"], [], ["b64", "b64"]), anyValue), 12),
    b64: maybe(fc.boolean(), 12),
    jku: maybe(fc.constantFrom(`${ORIGIN}/attacker/jwks`, `${GH}/jwks`), 20),
    x5u: maybe(fc.constant(`${ORIGIN}/attacker/x5u`), 30),
    jwk: maybe(fc.constant({ kty: "RSA", n: "AQAB", e: "AQAB" }), 30),
    x5c: maybe(fc.constant(["MIIB"]), 30),
  })
  .map(strip);

interface Generated {
  token: string;
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  payloadText: string;
  signer: SignerKind;
  /** Whether the signature was made with a key the claimed issuer publishes, for the header's algorithm. */
  signedByIssuer: boolean;
}

/** Builds a compact token: the header and payload as JSON, signed as `signer` says. */
async function build(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  signer: SignerKind,
  randomSig: Uint8Array,
): Promise<Generated> {
  const payloadText = JSON.stringify(payload);
  const input = `${b64(JSON.stringify(header))}.${b64(payloadText)}`;
  const alg = (ALGS as unknown[]).includes(header.alg) ? (header.alg as Alg) : "RS256";
  const keys = typeof payload.iss === "string" ? issuerKeys.get(payload.iss) : undefined;
  let signature = "";
  let signedByIssuer = false;
  if (signer === "issuer") {
    const own = keys?.[alg];
    if (own) {
      signature = await sign(alg, own.key, input);
      signedByIssuer = alg === header.alg;
    } else {
      // No key of that kind at that issuer: sign with GitHub's key anyway, under the wrong name.
      signature = await sign("RS256", issuerKeys.get(GH)?.RS256?.key as CryptoKey, input);
    }
  } else if (signer === "attacker") {
    signature = await sign(alg, attackerKeys[alg] as CryptoKey, input);
  } else if (signer === "random") {
    signature = b64(randomSig);
  }
  const token = signer === "none" ? `${input}.` : `${input}.${signature}`;
  return { token, header, payload, payloadText, signer, signedByIssuer };
}

const signerArb = fc.constantFrom<SignerKind>(
  "issuer",
  "issuer",
  "issuer",
  "issuer",
  "issuer",
  "attacker",
  "empty",
  "random",
  "none",
);

/** A token its issuer would sign and runpass accept; the structured fuzz starts here and breaks a few fields. */
const validBase = fc
  .record({
    issuer: fc.constantFrom(GH, GEN),
    alg: fc.constantFrom<Alg>(...ALGS),
    withKid: fc.boolean(),
    iat: fc.integer({ min: -600, max: 0 }),
    exp: fc.integer({ min: 1, max: 7200 }),
    jti: fc.uuid(),
  })
  .map(({ issuer, alg, withKid, iat, exp, jti }) => {
    const a: Alg = issuer === GH ? "RS256" : alg;
    const kid = issuerKeys.get(issuer)?.[a]?.kid as string;
    return {
      header: { alg: a, typ: "JWT", ...(withKid ? { kid } : {}) } as Record<string, unknown>,
      payload: {
        iss: issuer,
        sub: "repo:acme/api:ref:refs/heads/main",
        aud: AUD,
        iat: NOW + iat,
        nbf: NOW + iat,
        exp: NOW + exp,
        jti,
        repository_id: "519345000",
        run_id: "4242",
        run_attempt: "1",
      } as Record<string, unknown>,
    };
  });

const HEADER_FIELDS = ["alg", "kid", "typ", "crit", "b64", "jku", "x5u", "jwk", "x5c"];
const PAYLOAD_FIELDS = [
  "iss",
  "sub",
  "aud",
  "exp",
  "iat",
  "nbf",
  "jti",
  "repository_id",
  "run_id",
  "run_attempt",
];

/** Copies `fields` from `random` onto `base` (deleting those `random` lacks), plus `random`'s other keys when asked. */
function override(
  base: Record<string, unknown>,
  random: Record<string, unknown>,
  fields: string[],
  junk: boolean,
): Record<string, unknown> {
  const out = { ...base };
  for (const f of fields) {
    if (f in random) out[f] = random[f];
    else delete out[f];
  }
  if (junk) for (const [k, v] of Object.entries(random)) if (!(k in out)) out[k] = v;
  return out;
}

const brokenBase = fc
  .tuple(
    validBase,
    headerArb,
    payloadArb,
    fc.subarray(HEADER_FIELDS, { maxLength: 3 }),
    fc.subarray(PAYLOAD_FIELDS, { maxLength: 3 }),
    fc.boolean(),
    signerArb,
    fc.uint8Array({ minLength: 0, maxLength: 300 }),
  )
  .map(([base, header, payload, headerFields, payloadFields, junk, signer, sig]) => ({
    header: override(base.header, header, headerFields, false),
    payload: override(base.payload, payload, payloadFields, junk),
    signer,
    sig,
  }));

/** Mostly a valid token with a few fields broken; sometimes every field random. */
const structuredToken = fc.oneof(
  { arbitrary: brokenBase, weight: 3 },
  {
    arbitrary: fc
      .tuple(headerArb, payloadArb, signerArb, fc.uint8Array({ maxLength: 300 }))
      .map(([header, payload, signer, sig]) => ({ header, payload, signer, sig })),
    weight: 1,
  },
);

/** Independent statement of the claim rules (docs/security.md, Verification before everything) for a token that verified. */
function claimsAcceptable(issuer: IssuerConfig, claims: Record<string, unknown>): string | undefined {
  const int = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v);
  if (claims.iss !== issuer.url) return "iss";
  if (typeof claims.sub !== "string" || claims.sub.length === 0) return "sub";
  if (claims.aud !== AUD) return "aud";
  if (!int(claims.exp) || !int(claims.iat)) return "exp/iat type";
  if (claims.nbf !== undefined && !int(claims.nbf)) return "nbf type";
  if (
    claims.jti !== undefined &&
    (typeof claims.jti !== "string" || claims.jti.length < 1 || claims.jti.length > 256)
  )
    return "jti type";
  if (issuer.kind !== "generic" && (claims.jti === undefined || claims.nbf === undefined))
    return "jti/nbf required";
  const exp = claims.exp as number;
  const iat = claims.iat as number;
  if (!(exp > NOW - CLOCK_SKEW_SECONDS)) return "expired";
  if (!(iat <= NOW + CLOCK_SKEW_SECONDS)) return "iat future";
  if (claims.nbf !== undefined && !((claims.nbf as number) <= NOW + CLOCK_SKEW_SECONDS)) return "nbf future";
  if (!(exp > iat)) return "exp <= iat";
  if (!(NOW - iat <= issuer.maxTokenAge + CLOCK_SKEW_SECONDS)) return "too old";
  return undefined;
}

/** A verification result is sound: a typed failure, or a success only for what the issuer signed within the rules. */
function expectSound(result: Awaited<ReturnType<typeof verifyToken>>, g: Generated): void {
  if (!result.ok) {
    expectTypedFailure(result.error, g.token);
    return;
  }
  expect(g.signer).toBe("issuer");
  expect(g.signedByIssuer).toBe(true);
  const issuer = result.value.issuer;
  expect(g.payload.iss).toBe(issuer.url);
  expect(issuer.algorithms).toContain(g.header.alg);
  for (const h of ["jku", "x5u", "jwk", "x5c"]) expect(g.header).not.toHaveProperty(h);
  // An unencoded payload (RFC 7797, b64 false named in crit) can never be a JSON claims set; a b64 outside
  // crit is ignored, so the payload was base64url as usual.
  if (Array.isArray(g.header.crit) && g.header.crit.includes("b64")) expect(g.header.b64).not.toBe(false);
  expect(claimsAcceptable(issuer, g.payload)).toBeUndefined();
  // What comes back is exactly what was signed.
  expect(JSON.stringify(result.value.claims)).toBe(JSON.stringify(JSON.parse(g.payloadText)));
}

// ---------------------------------------------------------------------------------------------------------

describe("verifier fuzz: unstructured input", () => {
  it("random strings and bytes are refused with a typed failure, never a throw, never a fetch", async () => {
    const before = requested.length;
    const input = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: "binary", maxLength: 200 }),
      fc.string({ unit: "grapheme", maxLength: 100 }),
      fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b).toString("latin1")),
      fc.stringMatching(/^[A-Za-z0-9_.=+/ -]{0,120}$/),
    );
    await fc.assert(
      fc.asyncProperty(input, async (token) => {
        const result = await verify(token);
        expect(result.ok).toBe(false);
        if (!result.ok) {
          expectTypedFailure(result.error, token);
          expect(result.error.code).not.toBe("temporarily_unavailable");
        }
      }),
      { numRuns: 1500 },
    );
    expect(requested.length).toBe(before);
  });

  it("three random base64url segments are refused as invalid_token without any fetch", async () => {
    const before = requested.length;
    const segment = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map(b64),
      fc.stringMatching(/^[A-Za-z0-9_-]{0,80}$/),
    );
    await fc.assert(
      fc.asyncProperty(segment, segment, segment, async (h, p, s) => {
        const token = `${h}.${p}.${s}`;
        const result = await verify(token);
        expect(result.ok).toBe(false);
        if (!result.ok) {
          expectTypedFailure(result.error, token);
          expect(result.error.code).toBe("invalid_token");
        }
      }),
      { numRuns: 1500 },
    );
    // Random bytes essentially never decode to a header and a payload naming a trusted issuer.
    expect(requested.length).toBe(before);
  });

  it("random JSON headers and payloads, base64url-encoded into three parts, are refused and fetch nothing", async () => {
    const before = requested.length;
    const json = fc.jsonValue({ maxDepth: 3 });
    await fc.assert(
      fc.asyncProperty(json, json, fc.uint8Array({ maxLength: 300 }), async (h, p, s) => {
        const token = `${b64(JSON.stringify(h) ?? "")}.${b64(JSON.stringify(p) ?? "")}.${b64(s)}`;
        const result = await verify(token);
        expect(result.ok).toBe(false);
        if (!result.ok) expectTypedFailure(result.error, token);
      }),
      { numRuns: 1500 },
    );
    expect(requested.length).toBe(before);
  });

  it("the 16 KiB cap is counted in UTF-8 bytes, right at the boundary, before anything else", async () => {
    const before = requested.length;
    const chars = fc.constantFrom("a", ".", "é", "😀", "\u0000", "-");
    const near = fc
      .tuple(fc.integer({ min: MAX_TOKEN_BYTES - 40, max: MAX_TOKEN_BYTES + 40 }), chars, chars)
      .map(([n, fill, tail]) => {
        // Mostly ASCII, with a multi-byte tail that pushes the byte count across the cap.
        const body = fill.repeat(Math.max(0, Math.floor(n / Buffer.byteLength(fill)) - 4));
        return body + tail.repeat(4);
      });
    await fc.assert(
      fc.asyncProperty(near, async (token) => {
        const result = await verify(token);
        expect(result.ok).toBe(false);
        if (result.ok) return;
        expectTypedFailure(result.error, token);
        const tooLarge = Buffer.byteLength(token, "utf8") > MAX_TOKEN_BYTES;
        expect(result.error.code === "request_too_large").toBe(tooLarge);
      }),
      { numRuns: 300 },
    );
    expect(requested.length).toBe(before);
  });
});

describe("verifier fuzz: real-looking tokens", () => {
  it("random headers (alg, kid, crit, typ, jku …) and randomly typed claims: sound results, allowed fetches only", async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(structuredToken, async ({ header, payload, signer, sig }) => {
        const g = await build(header, payload, signer, sig);
        const result = await verify(g.token);
        expectSound(result, g);
        if (result.ok) accepted++;
      }),
      { numRuns: 1500 },
    );
    expectOnlyAllowedFetches();
    // The generator must reach acceptance sometimes, or the soundness checks above prove nothing.
    expect(accepted).toBeGreaterThan(0);
  });

  it("with a clean header signed by the issuer, a token verifies exactly when its claims follow the rules", async () => {
    const cleanHeader = fc
      .record({ issuer: fc.constantFrom(GH, GEN), alg: fc.constantFrom<Alg>(...ALGS), withKid: fc.boolean() })
      .map(({ issuer, alg, withKid }) => {
        const a: Alg = issuer === GH ? "RS256" : alg;
        const kid = issuerKeys.get(issuer)?.[a]?.kid as string;
        return { issuer, alg: a, header: { alg: a, typ: "JWT", ...(withKid ? { kid } : {}) } };
      });
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(cleanHeader, payloadArb, async ({ issuer, alg, header }, claims) => {
        const payload = { ...claims, iss: issuer };
        const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(payload))}`;
        const key = issuerKeys.get(issuer)?.[alg]?.key as CryptoKey;
        const token = `${input}.${await sign(alg, key, input)}`;
        const result = await verify(token);
        const config = BY_URL.get(issuer) as IssuerConfig;
        const problem = claimsAcceptable(config, payload);
        if (result.ok) {
          accepted++;
          expect(problem).toBeUndefined();
        } else {
          refused++;
          expectTypedFailure(result.error, token);
          expect(problem, `refused ${result.error.reason.code} but the oracle accepts`).toBeDefined();
        }
      }),
      { numRuns: 1500 },
    );
    expect(accepted).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    expectOnlyAllowedFetches();
  });

  it("a token for a trusted issuer whose keys cannot be fetched is temporarily_unavailable with Retry-After, never ok", async () => {
    await fc.assert(
      fc.asyncProperty(
        payloadArb,
        fc.constantFrom<SignerKind>("issuer", "attacker", "random"),
        async (claims, signer) => {
          const g = await build(
            { alg: "RS256", kid: "down-rsa" },
            { ...claims, iss: DOWN },
            signer,
            new Uint8Array(256),
          );
          const result = await verify(g.token);
          expect(result.ok).toBe(false);
          if (!result.ok) {
            expectTypedFailure(result.error, g.token);
            expect(["temporarily_unavailable", "invalid_token"]).toContain(result.error.code);
          }
        },
      ),
      { numRuns: 200 },
    );
    expectOnlyAllowedFetches();
  });

  it("bit flips anywhere in a genuine token are never accepted unless they leave its signed content intact", async () => {
    const key = issuerKeys.get(GH)?.RS256;
    const claims = {
      iss: GH,
      sub: "repo:acme/api:ref:refs/heads/main",
      aud: AUD,
      iat: NOW,
      nbf: NOW,
      exp: NOW + 300,
      jti: "fuzz-jti",
      repository_id: "519345000",
    };
    const input = `${b64(JSON.stringify({ alg: "RS256", kid: key?.kid, typ: "JWT" }))}.${b64(JSON.stringify(claims))}`;
    const genuine = `${input}.${await sign("RS256", key?.key as CryptoKey, input)}`;
    const original = await verify(genuine);
    expect(original.ok).toBe(true);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: genuine.length - 1 }),
        fc.integer({ min: 0, max: 127 }),
        async (index, code) => {
          const mutated = genuine.slice(0, index) + String.fromCharCode(code) + genuine.slice(index + 1);
          fc.pre(mutated !== genuine);
          const result = await verify(mutated);
          if (!result.ok) {
            expectTypedFailure(result.error, mutated);
            return;
          }
          // Only the signature segment's unused trailing bits can change without changing what was signed.
          expect(mutated.slice(0, mutated.lastIndexOf("."))).toBe(input);
          expect(index).toBe(genuine.length - 1);
          expect(result.value.claims).toEqual(claims);
        },
      ),
      { numRuns: 1500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// Single-use identity of tokens without jti (generic issuers, docs/security.md, Single use). A signature has several valid
// encodings: base64url's unused trailing bits, and for ECDSA both s and n − s verify. A single-use id taken
// over the whole token string would let one token be exchanged once per encoding.

/** Order of the P-256 group. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

function flipEcdsaS(signature: string): string {
  const raw = Buffer.from(signature, "base64url");
  const s = BigInt(`0x${raw.subarray(32).toString("hex")}`);
  const flipped = Buffer.from((P256_N - s).toString(16).padStart(64, "0"), "hex");
  return b64(Buffer.concat([raw.subarray(0, 32), flipped]));
}

describe("single-use ids of tokens without jti are not malleable", () => {
  const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

  it.each(["RS256", "PS256", "ES256", "EdDSA"] as const)(
    "every encoding of a generic %s token's signature that verifies yields the same single-use id",
    async (alg) => {
      const own = issuerKeys.get(GEN)?.[alg];
      const claims = { iss: GEN, sub: "project:acme", aud: AUD, iat: NOW, exp: NOW + 300 };
      const input = `${b64(JSON.stringify({ alg, kid: own?.kid }))}.${b64(JSON.stringify(claims))}`;
      const signature = await sign(alg, own?.key as CryptoKey, input);
      const first = await verify(`${input}.${signature}`);
      if (!first.ok) throw new Error(`genuine token refused: ${first.error.reason.code}`);
      const variants = [...B64URL].map((c) => `${input}.${signature.slice(0, -1)}${c}`);
      if (alg === "ES256") variants.push(`${input}.${flipEcdsaS(signature)}`);
      let verified = 0;
      for (const variant of variants) {
        const result = await verify(variant);
        if (!result.ok) continue;
        verified++;
        expect(result.value.singleUseId).toBe(first.value.singleUseId);
      }
      // The malleability is real (so the assertion above is not vacuous): 16 encodings of the last character.
      expect(verified).toBeGreaterThan(1);
    },
  );
});
