// verifyToken against a real KeySetCache and the local test issuer (docs/security.md, Verification before everything): every attack gets its own test.

import { exportSPKI, importJWK, type JWK, SignJWT, UnsecuredJWT } from "jose";
import { describe, expect, test } from "vitest";
import {
  CLOCK_SKEW_SECONDS,
  DEFAULT_MAX_TOKEN_AGE_SECONDS,
  MAX_TOKEN_BYTES,
} from "../../src/core/constants.ts";
import { PRESET_ISSUERS } from "../../src/core/oidc/issuers.ts";
import { ACME, control, githubClaims, gitlabClaims } from "../support/claims.ts";
import {
  AUD,
  base,
  failureOf,
  harness,
  hitsUnder,
  issuerConfig,
  issuerHits,
  issuerUrl,
  keyPair,
  mintAt,
  rewritingFetch,
  shaSingleUseId,
  signLocally,
  successOf,
  uniqueName,
} from "./oidc-harness.ts";

/** A GitHub-kind issuer, its harness, and a genuine token verified once (so keys are cached and the setup is proven). */
async function githubSetup() {
  const name = uniqueName();
  const h = harness([issuerConfig(name, "github")]);
  const claims = githubClaims(issuerUrl(name), AUD, {}, h.clock.now);
  const { token, publicJwk } = await mintAt(name, claims);
  successOf(await h.verify(token));
  return { name, h, claims, publicJwk, kid: publicJwk.kid as string };
}

describe("signature and header attacks", () => {
  test.each(["none", "None", "NONE"])("an unsigned token (alg %s) is refused", async (alg) => {
    const { name, h, claims } = await githubSetup();
    const unsigned = new UnsecuredJWT(claims).encode();
    const [, payload] = unsigned.split(".");
    const header = Buffer.from(JSON.stringify({ alg, typ: "JWT" })).toString("base64url");
    const result = failureOf(await h.verify(`${header}.${payload}.`));
    expect(result.code).toBe("invalid_token");
    expect(result.reason.code).toBe("alg_not_allowed");
    expect(result.issuer?.name).toBe(name);
  });

  test("HS256 signed with the issuer's public key as the HMAC secret is refused", async () => {
    const { h, claims, publicJwk, kid } = await githubSetup();
    const pem = await exportSPKI((await importJWK(publicJwk, "RS256")) as CryptoKey);
    const secrets = [
      new TextEncoder().encode(pem),
      new TextEncoder().encode(JSON.stringify(publicJwk)),
      new TextEncoder().encode(publicJwk.n as string),
    ];
    for (const secret of secrets) {
      const forged = await new SignJWT(claims).setProtectedHeader({ alg: "HS256", kid }).sign(secret);
      const error = failureOf(await h.verify(forged));
      expect(error.code).toBe("invalid_token");
      expect(error.reason.code).toBe("alg_not_allowed");
    }
  });

  test("HS256 is refused even for an issuer misconfigured to list it: no published key is an HMAC key", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name, "generic", { algorithms: ["RS256", "HS256"] })]);
    const genuine = await mintAt(name, githubClaims(issuerUrl(name), AUD, {}, h.clock.now));
    successOf(await h.verify(genuine.token));
    const pem = await exportSPKI((await importJWK(genuine.publicJwk, "RS256")) as CryptoKey);
    const forged = await new SignJWT(githubClaims(issuerUrl(name), AUD, {}, h.clock.now))
      .setProtectedHeader({ alg: "HS256", kid: genuine.publicJwk.kid as string })
      .sign(new TextEncoder().encode(pem));
    const error = failureOf(await h.verify(forged));
    expect(error.code).toBe("invalid_token");
    expect(error.reason.code).toBe("unknown_key");
  });

  test("a token signed with an attacker's RSA key under the issuer's real kid fails the signature check", async () => {
    const { h, claims, kid } = await githubSetup();
    const attacker = await keyPair("RS256");
    const forged = await signLocally(attacker.privateKey, claims, { alg: "RS256", kid, typ: "JWT" });
    const error = failureOf(await h.verify(forged));
    expect(error.code).toBe("invalid_token");
    expect(error.reason.code).toBe("signature_invalid");
  });

  test("a genuine token whose payload was altered after signing fails the signature check", async () => {
    const { name, h } = await githubSetup();
    const { token } = await mintAt(name, githubClaims(issuerUrl(name), AUD, {}, h.clock.now));
    const [header, , signature] = token.split(".");
    const altered = Buffer.from(
      JSON.stringify(githubClaims(issuerUrl(name), AUD, { repository_id: "1" }, h.clock.now)),
    ).toString("base64url");
    const error = failureOf(await h.verify(`${header}.${altered}.${signature}`));
    expect(error.reason.code).toBe("signature_invalid");
  });

  describe.each(["jku", "x5u", "jwk", "x5c"] as const)("the %s header", (param) => {
    async function attackerHeader(attackPath: string, jwk: JWK): Promise<Record<string, unknown>> {
      const url = `${base}${attackPath}/keys.json`;
      switch (param) {
        case "jku":
          return { jku: url };
        case "x5u":
          return { x5u: url };
        case "jwk":
          return { jwk };
        case "x5c":
          return { x5c: [Buffer.from(`${url} not a certificate`).toString("base64")] };
      }
    }

    test("on an attacker-signed token is refused and the attacker's URL is never fetched", async () => {
      const { h, claims, kid } = await githubSetup();
      const attacker = await keyPair("RS256");
      const attackPath = `/attacker/${uniqueName("hdr")}`;
      const forged = await signLocally(attacker.privateKey, claims, {
        alg: "RS256",
        kid,
        ...(await attackerHeader(attackPath, { ...attacker.publicJwk, kid })),
      });
      const before = h.fetches.length;
      const error = failureOf(await h.verify(forged));
      expect(error.code).toBe("invalid_token");
      expect(error.reason.code).toBe("forbidden_header");
      expect(h.fetches.length).toBe(before);
      expect(h.requested.filter((u) => u.includes("/attacker/"))).toEqual([]);
      expect(await hitsUnder(attackPath)).toBe(0);
    });

    test("is refused even on a token the issuer itself signed", async () => {
      const { name, h } = await githubSetup();
      const attacker = await keyPair("RS256");
      const attackPath = `/attacker/${uniqueName("hdr")}`;
      const { token } = await mintAt(name, githubClaims(issuerUrl(name), AUD, {}, h.clock.now), {
        header: await attackerHeader(attackPath, attacker.publicJwk),
      });
      const error = failureOf(await h.verify(token));
      expect(error.code).toBe("invalid_token");
      expect(error.reason.code).toBe("forbidden_header");
      expect(await hitsUnder(attackPath)).toBe(0);
    });
  });

  test("a non-string kid is refused as malformed without any fetch", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name)]);
    const { token } = await mintAt(name, githubClaims(issuerUrl(name), AUD, {}, h.clock.now), {
      header: { kid: 42 },
    });
    const error = failureOf(await h.verify(token));
    expect(error.reason.code).toBe("malformed");
    expect(h.fetches).toEqual([]);
  });
});

describe("algorithms", () => {
  test("github- and gitlab-kind issuers refuse an ES256 token even from a key the issuer publishes", async () => {
    const ec = await keyPair("ES256");
    const ecJwk = { ...ec.publicJwk, kid: "ec-1", alg: "ES256", use: "sig" };
    const gh = uniqueName();
    const gl = uniqueName();
    const generic = uniqueName();
    // All three issuers publish the EC key next to their RSA key.
    const addEcKey = rewritingFetch(
      (_url, body) => ({ keys: [...(body as { keys: JWK[] }).keys, ecJwk] }),
      (url) => url.endsWith("/jwks"),
    );
    const h = harness(
      [issuerConfig(gh, "github"), issuerConfig(gl, "gitlab"), issuerConfig(generic, "generic")],
      { fetch: addEcKey },
    );
    for (const [name, claims] of [
      [gh, githubClaims(issuerUrl(gh), AUD, {}, h.clock.now)],
      [gl, gitlabClaims(issuerUrl(gl), AUD, {}, h.clock.now)],
    ] as const) {
      // Warm the cache with a genuine RS256 token so the EC key is known to be published.
      successOf(await h.verify((await mintAt(name, claims)).token));
      const es = await signLocally(
        ec.privateKey,
        { ...claims, jti: crypto.randomUUID() },
        {
          alg: "ES256",
          kid: "ec-1",
        },
      );
      const error = failureOf(await h.verify(es));
      expect(error.code).toBe("invalid_token");
      expect(error.reason.code).toBe("alg_not_allowed");
    }
    // Control: the same key and algorithm verify for a generic issuer that allows ES256.
    await control(base, generic, { mode: "ok" });
    const es = await signLocally(ec.privateKey, githubClaims(issuerUrl(generic), AUD, {}, h.clock.now), {
      alg: "ES256",
      kid: "ec-1",
    });
    expect(successOf(await h.verify(es)).issuer.name).toBe(generic);
  });

  test.each(["RS384", "RS512", "PS256", "ES384", "EdDSA"])(
    "a github-kind issuer refuses %s before looking up any key",
    async (alg) => {
      const name = uniqueName();
      const h = harness([issuerConfig(name)]);
      const key = await keyPair(alg);
      const token = await signLocally(key.privateKey, githubClaims(issuerUrl(name), AUD, {}, h.clock.now), {
        alg,
        kid: `${name}-k1`,
      });
      const error = failureOf(await h.verify(token));
      expect(error.reason.code).toBe("alg_not_allowed");
      expect(h.fetches).toEqual([]);
    },
  );
});

describe("issuer allow-list", () => {
  test("an issuer served by the test server but absent from the allow-list is refused with no discovery or JWKS fetch", async () => {
    const trusted = uniqueName();
    const stranger = uniqueName();
    const h = harness([issuerConfig(trusted)]);
    // The stranger exists at the test server (minting creates it) and would answer discovery if asked.
    const { token } = await mintAt(stranger, githubClaims(issuerUrl(stranger), AUD, {}, h.clock.now));
    const error = failureOf(await h.verify(token));
    expect(error.code).toBe("invalid_token");
    expect(error.reason.code).toBe("issuer_untrusted");
    expect(error.issuer).toBeUndefined();
    expect(h.fetches).toEqual([]);
    expect(h.requested).toEqual([]);
    expect(await issuerHits(stranger)).toEqual({ discovery: 0, jwks: 0 });
  });

  test("look-alikes of a trusted test issuer are refused without any fetch", async () => {
    const name = uniqueName();
    const url = issuerUrl(name);
    const h = harness([issuerConfig(name)]);
    const lookAlikes = [
      `${url}/`,
      `${url}//`,
      `${base}/${name.toUpperCase()}`,
      url.replace("http://", "HTTP://"),
      url.replace("127.0.0.1", "localhost"),
      `${url}/extra`,
      `${url}/.well-known/openid-configuration`,
      ` ${url}`,
      `${url} `,
      `${url}\n`,
      `${url}\t`,
      `${url}\u0000`,
      `${url}?x=1`,
      `${url}#frag`,
    ];
    for (const iss of lookAlikes) {
      const { token } = await mintAt(name, githubClaims(iss, AUD, {}, h.clock.now));
      const error = failureOf(await h.verify(token));
      expect(error.code, JSON.stringify(iss)).toBe("invalid_token");
      expect(error.reason.code, JSON.stringify(iss)).toBe("issuer_untrusted");
    }
    expect(h.fetches).toEqual([]);
    expect(h.requested).toEqual([]);
    expect(await issuerHits(name)).toEqual({ discovery: 0, jwks: 0 });
  });

  test("look-alikes of the GitHub issuer are refused without any fetch", async () => {
    const requested: string[] = [];
    const noNetwork: typeof fetch = async (input) => {
      requested.push(String(input));
      throw new Error("no network in this test");
    };
    const h = harness([PRESET_ISSUERS.github, PRESET_ISSUERS.gitlab], { fetch: noNetwork });
    const signer = uniqueName();
    const github = PRESET_ISSUERS.github.url;
    const lookAlikes = [
      `${github}.evil.com`,
      `${github}/`,
      `${github}/evil`,
      `${github}:443`,
      github.replace("token.", "TOKEN."),
      github.replace("https://", "http://"),
      `https://token-actions.githubusercontent.com`,
      ` ${github}`,
      `${github} `,
      `${github}\n`,
      "https://gitlab.com/",
      "https://gitlab.com.evil.com",
      "https://GitLab.com",
    ];
    for (const iss of lookAlikes) {
      const { token } = await mintAt(signer, githubClaims(iss, AUD, {}, h.clock.now));
      const error = failureOf(await h.verify(token));
      expect(error.code, JSON.stringify(iss)).toBe("invalid_token");
      expect(error.reason.code, JSON.stringify(iss)).toBe("issuer_untrusted");
    }
    expect(h.fetches).toEqual([]);
    expect(requested).toEqual([]);
    expect(h.requested).toEqual([]);
  });

  test("a token whose iss is not a string is refused naming the iss claim, without any fetch", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name)]);
    for (const iss of [undefined, 42, [issuerUrl(name)], { url: issuerUrl(name) }]) {
      const claims = githubClaims(issuerUrl(name), AUD, {}, h.clock.now);
      if (iss === undefined) delete claims.iss;
      else (claims as Record<string, unknown>).iss = iss;
      const { token } = await mintAt(name, claims);
      const error = failureOf(await h.verify(token));
      expect(error.code).toBe("invalid_token");
      expect(error.reason).toEqual({ code: "claim_missing", claim: "iss" });
    }
    expect(h.fetches).toEqual([]);
  });
});

describe("required claims", () => {
  test.each([
    ["exp", undefined],
    ["iat", undefined],
    ["nbf", undefined],
    ["jti", undefined],
    ["sub", undefined],
    ["aud", undefined],
    ["exp", "9999999999"],
    ["exp", 1.5e9 + 0.5],
    ["iat", "1700000000"],
    ["nbf", "1700000000"],
    ["jti", 12345],
    ["jti", ""],
    ["jti", "x".repeat(257)],
    ["sub", ""],
    ["sub", 7],
    ["aud", ""],
  ] as const)("a github token with %s = %j is refused naming that claim", async (claim, value) => {
    const { name, h } = await githubSetup();
    const claims = githubClaims(issuerUrl(name), AUD, {}, h.clock.now) as Record<string, unknown>;
    if (value === undefined) delete claims[claim];
    else claims[claim] = value;
    const { token } = await mintAt(name, claims);
    const error = failureOf(await h.verify(token));
    expect(error.code).toBe("invalid_token");
    expect(error.reason).toEqual({ code: "claim_missing", claim });
    expect(error.description).toContain(`"${claim}"`);
  });

  test.each(["jti", "nbf"])("a gitlab token without %s is refused naming it", async (claim) => {
    const name = uniqueName();
    const h = harness([issuerConfig(name, "gitlab")]);
    const claims = gitlabClaims(issuerUrl(name), AUD, {}, h.clock.now) as Record<string, unknown>;
    delete claims[claim];
    const error = failureOf(await h.verify((await mintAt(name, claims)).token));
    expect(error.reason).toEqual({ code: "claim_missing", claim });
  });

  test("an exp not after iat is refused", async () => {
    const { name, h } = await githubSetup();
    const now = h.clock.seconds;
    const { token } = await mintAt(
      name,
      githubClaims(issuerUrl(name), AUD, { iat: now, exp: now }, h.clock.now),
    );
    expect(failureOf(await h.verify(token)).code).toBe("invalid_token");
  });
});

describe("audience", () => {
  test("an audience array is refused even when it holds only the accepted audience", async () => {
    const { name, h } = await githubSetup();
    for (const aud of [[AUD], [AUD, AUD], [AUD, "https://other.test"]]) {
      const { token } = await mintAt(name, githubClaims(issuerUrl(name), AUD, { aud }, h.clock.now));
      const error = failureOf(await h.verify(token));
      expect(error.code).toBe("invalid_token");
      expect(error.reason.code).toBe("audience_invalid");
    }
  });

  test("an audience runpass does not accept is refused", async () => {
    const { name, h } = await githubSetup();
    for (const aud of ["https://other.test", `${AUD}/`, AUD.toUpperCase(), ` ${AUD}`]) {
      const { token } = await mintAt(name, githubClaims(issuerUrl(name), AUD, { aud }, h.clock.now));
      const error = failureOf(await h.verify(token));
      expect(error.code).toBe("invalid_token");
      expect(error.reason.code).toBe("audience_invalid");
    }
  });

  test("any one of several accepted audiences is accepted", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name)], { audiences: [AUD, "sts.amazonaws.com"] });
    for (const aud of [AUD, "sts.amazonaws.com"]) {
      const { token } = await mintAt(name, githubClaims(issuerUrl(name), aud, {}, h.clock.now));
      expect(successOf(await h.verify(token)).standard.aud).toBe(aud);
    }
  });
});

describe("time", () => {
  /** Verifies a github token whose times are given relative to the frozen clock (seconds). */
  async function verifyAt(
    times: { iat: number; exp?: number; nbf?: number },
    kind: "github" | "gitlab" = "github",
  ) {
    const name = uniqueName();
    const h = harness([issuerConfig(name, kind)]);
    const now = h.clock.seconds;
    const iat = now + times.iat;
    const claims = (kind === "github" ? githubClaims : gitlabClaims)(
      issuerUrl(name),
      AUD,
      {
        iat,
        nbf: now + (times.nbf ?? times.iat),
        exp: times.exp !== undefined ? now + times.exp : iat + 300,
      },
      h.clock.now,
    );
    return h.verify((await mintAt(name, claims)).token);
  }

  test("an iat more than 60 s in the future is refused", async () => {
    const error = failureOf(await verifyAt({ iat: CLOCK_SKEW_SECONDS + 1, nbf: 0 }));
    expect(error.code).toBe("invalid_token");
    expect(error.reason).toEqual({ code: "not_yet_valid", claim: "iat" });
  });

  test("an iat up to 60 s in the future is tolerated as clock skew", async () => {
    successOf(await verifyAt({ iat: CLOCK_SKEW_SECONDS, nbf: 0 }));
  });

  test("an nbf more than 60 s in the future is refused; up to 60 s is tolerated", async () => {
    const error = failureOf(await verifyAt({ iat: 0, nbf: CLOCK_SKEW_SECONDS + 1 }));
    expect(error.reason).toEqual({ code: "not_yet_valid", claim: "nbf" });
    successOf(await verifyAt({ iat: 0, nbf: CLOCK_SKEW_SECONDS }));
  });

  test("a token expired by the clock skew or more is refused", async () => {
    const error = failureOf(await verifyAt({ iat: -300, exp: -CLOCK_SKEW_SECONDS }));
    expect(error.code).toBe("invalid_token");
    expect(error.reason.code).toBe("expired");
    expect(failureOf(await verifyAt({ iat: -3600, exp: -3000 })).reason.code).toBe("expired");
  });

  test("a token expired by less than the clock skew is tolerated", async () => {
    successOf(await verifyAt({ iat: -300, exp: -CLOCK_SKEW_SECONDS + 1 }));
  });

  test("a github-kind token older than 10 minutes (plus skew) is refused", async () => {
    const limit = DEFAULT_MAX_TOKEN_AGE_SECONDS.github + CLOCK_SKEW_SECONDS;
    const error = failureOf(await verifyAt({ iat: -(limit + 1), exp: 3600 }));
    expect(error.code).toBe("invalid_token");
    expect(error.reason.code).toBe("token_too_old");
    successOf(await verifyAt({ iat: -limit, exp: 3600 }));
  });

  test("a gitlab-kind token older than 12 hours (plus skew) is refused", async () => {
    const limit = DEFAULT_MAX_TOKEN_AGE_SECONDS.gitlab + CLOCK_SKEW_SECONDS;
    const error = failureOf(await verifyAt({ iat: -(limit + 1), exp: 3600 }, "gitlab"));
    expect(error.reason.code).toBe("token_too_old");
    // A long-running GitLab job's token, far past GitHub's 10 minutes, is still fine.
    successOf(await verifyAt({ iat: -(limit - 1), exp: 3600 }, "gitlab"));
  });

  test("a custom max_token_age bounds the token age for its issuer", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name, "github", { maxTokenAge: 120 })]);
    const now = h.clock.seconds;
    const at = (age: number) =>
      githubClaims(issuerUrl(name), AUD, { iat: now - age, nbf: now - age, exp: now + 3600 }, h.clock.now);
    const old = failureOf(await h.verify((await mintAt(name, at(120 + CLOCK_SKEW_SECONDS + 1))).token));
    expect(old.reason.code).toBe("token_too_old");
    successOf(await h.verify((await mintAt(name, at(120 + CLOCK_SKEW_SECONDS))).token));
  });

  test("a long-lived token (exp − iat of 6 h) is accepted while it is young", async () => {
    successOf(await verifyAt({ iat: -30, exp: 6 * 3600 - 30 }));
  });
});

describe("size and shape", () => {
  test("a token over 16 KiB is refused as request_too_large before any fetch", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name)]);
    const claims = githubClaims(issuerUrl(name), AUD, { padding: "x".repeat(MAX_TOKEN_BYTES) }, h.clock.now);
    const { token } = await mintAt(name, claims);
    expect(token.length).toBeGreaterThan(MAX_TOKEN_BYTES);
    const error = failureOf(await h.verify(token));
    expect(error.code).toBe("request_too_large");
    expect(error.reason.code).toBe("token_too_large");
    expect(h.fetches).toEqual([]);
    expect(await issuerHits(name)).toEqual({ discovery: 0, jwks: 0 });
  });

  test("a token just under 16 KiB verifies (the cap is not lower than documented)", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name)]);
    const claims = githubClaims(issuerUrl(name), AUD, { padding: "x".repeat(11_000) }, h.clock.now);
    const { token } = await mintAt(name, claims);
    expect(token.length).toBeLessThanOrEqual(MAX_TOKEN_BYTES);
    successOf(await h.verify(token));
  });

  test("a huge string of non-ASCII characters is refused before any fetch", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name)]);
    const error = failureOf(await h.verify("é".repeat(MAX_TOKEN_BYTES - 1)));
    expect(["request_too_large", "invalid_token"]).toContain(error.code);
    expect(h.fetches).toEqual([]);
  });

  test("an empty token is refused as missing", async () => {
    const h = harness([issuerConfig(uniqueName())]);
    const error = failureOf(await h.verify(""));
    expect(error.code).toBe("invalid_token");
    expect(error.reason.code).toBe("token_missing");
  });

  test("garbage strings are refused as malformed without any fetch", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name)]);
    const json = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const claims = githubClaims(issuerUrl(name), AUD, {}, h.clock.now);
    const garbage = [
      "abc",
      "a.b",
      "a.b.c.d",
      "...",
      "a..c",
      ".b.c",
      `${JSON.stringify({ alg: "RS256" })}.${JSON.stringify(claims)}.sig`,
      "YWJj.YWJj.YWJj",
      `${json({ alg: "RS256" })}.YWJj.sig`,
      `${json([{ alg: "RS256" }])}.${json(claims)}.sig`,
      `${json({ alg: "RS256" })}.${json("a string")}.sig`,
      `${json({ alg: "RS256" })}.${json([claims])}.sig`,
      `${json({ alg: "RS256" })}.${json(claims)}.sig with space`,
      `${json({ alg: "RS256" })}+.${json(claims)}.sig`,
      `Bearer ${json({ alg: "RS256" })}.${json(claims)}.sig`,
    ];
    for (const g of garbage) {
      const error = failureOf(await h.verify(g));
      expect(error.code, g.slice(0, 40)).toBe("invalid_token");
      expect(error.reason.code, g.slice(0, 40)).toBe("malformed");
    }
    expect(h.fetches).toEqual([]);
  });
});

describe("generic issuers", () => {
  test("a generic issuer's token without jti or nbf verifies and is single-use by its SHA-256", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name, "generic")]);
    const claims = githubClaims(issuerUrl(name), AUD, {}, h.clock.now);
    delete claims.jti;
    delete claims.nbf;
    const { token } = await mintAt(name, claims);
    const verified = successOf(await h.verify(token));
    expect(verified.singleUseId).toBe(shaSingleUseId(token));
    expect(verified.identity).toEqual({ issuer: name, kind: "generic", subject: claims.sub });
    expect(verified.identity.runKey).toBeUndefined();
  });

  test("a generic issuer's token with a jti is single-use by that jti", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name, "generic")]);
    const claims = githubClaims(issuerUrl(name), AUD, {}, h.clock.now);
    const verified = successOf(await h.verify((await mintAt(name, claims)).token));
    expect(verified.singleUseId).toBe(`jti:${claims.jti}`);
  });

  test("a generic issuer still requires exp, iat and sub", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name, "generic")]);
    for (const claim of ["exp", "iat", "sub"]) {
      const claims = githubClaims(issuerUrl(name), AUD, {}, h.clock.now) as Record<string, unknown>;
      delete claims[claim];
      delete claims.jti;
      const error = failureOf(await h.verify((await mintAt(name, claims)).token));
      expect(error.reason).toEqual({ code: "claim_missing", claim });
    }
  });

  test("the same generic token always yields the same single-use id; different tokens differ", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name, "generic")]);
    const claims = githubClaims(issuerUrl(name), AUD, { jti: undefined }, h.clock.now);
    const a = (await mintAt(name, claims)).token;
    const b = (await mintAt(name, { ...claims, iat: (claims.iat as number) - 1 })).token;
    const idA = successOf(await h.verify(a)).singleUseId;
    expect(successOf(await h.verify(a)).singleUseId).toBe(idA);
    expect(successOf(await h.verify(b)).singleUseId).not.toBe(idA);
  });
});

describe("identity normalisation", () => {
  test("a GitHub token yields the run key github:<name>:<repository_id>:<run_id>:<run_attempt>", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name, "github")]);
    const claims = githubClaims(issuerUrl(name), AUD, { run_attempt: "2" }, h.clock.now);
    const verified = successOf(await h.verify((await mintAt(name, claims)).token));
    expect(verified.singleUseId).toBe(`jti:${claims.jti}`);
    expect(verified.identity).toEqual({
      issuer: name,
      kind: "github",
      subject: claims.sub,
      ownerId: ACME.ownerId,
      ownerName: ACME.owner,
      repositoryId: ACME.repoId,
      repositoryName: ACME.repo,
      ref: "refs/heads/main",
      runKey: `github:${name}:${ACME.repoId}:${claims.run_id}:2`,
    });
  });

  test("a GitLab token yields the run key gitlab:<name>:<project_id>:<pipeline_id>", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name, "gitlab")]);
    const claims = gitlabClaims(issuerUrl(name), AUD, {}, h.clock.now);
    const verified = successOf(await h.verify((await mintAt(name, claims)).token));
    expect(verified.identity).toEqual({
      issuer: name,
      kind: "gitlab",
      subject: claims.sub,
      ownerId: "72",
      ownerName: "acme-group",
      repositoryId: "20",
      repositoryName: "acme-group/infra",
      ref: "refs/heads/main",
      runKey: `gitlab:${name}:20:${claims.pipeline_id}`,
    });
  });

  test("a numeric repository_id is not taken as the repository id nor into a run key", async () => {
    const name = uniqueName();
    const h = harness([issuerConfig(name, "github")]);
    const claims = githubClaims(issuerUrl(name), AUD, { repository_id: Number(ACME.repoId) }, h.clock.now);
    const verified = successOf(await h.verify((await mintAt(name, claims)).token));
    expect(verified.identity.repositoryId).toBeUndefined();
    expect(verified.identity.runKey).toBeUndefined();
    // The raw claim stays in the claims for the policy matcher (which reports type_mismatch for it).
    expect(verified.claims.repository_id).toBe(Number(ACME.repoId));
  });

  test.each([
    ["run_id", 123456],
    ["run_id", "12:34"],
    ["run_attempt", "1:github:x"],
    ["repository_id", "519345000:1"],
    ["repository_id", ""],
    ["run_id", "1".repeat(21)],
    ["run_attempt", undefined],
  ] as const)(
    "a GitHub token with %s = %j gets no run key (no aliasing of another run)",
    async (claim, value) => {
      const name = uniqueName();
      const h = harness([issuerConfig(name, "github")]);
      const claims = githubClaims(issuerUrl(name), AUD, {}, h.clock.now) as Record<string, unknown>;
      if (value === undefined) delete claims[claim];
      else claims[claim] = value;
      const verified = successOf(await h.verify((await mintAt(name, claims)).token));
      expect(verified.identity.runKey).toBeUndefined();
    },
  );

  test.each([
    ["project_id", 20],
    ["pipeline_id", 987654],
    ["pipeline_id", "1:2"],
  ] as const)("a GitLab token with %s = %j gets no run key", async (claim, value) => {
    const name = uniqueName();
    const h = harness([issuerConfig(name, "gitlab")]);
    const claims = gitlabClaims(issuerUrl(name), AUD, { [claim]: value }, h.clock.now);
    const verified = successOf(await h.verify((await mintAt(name, claims)).token));
    expect(verified.identity.runKey).toBeUndefined();
  });
});
