// Issuer keys inside the Worker: warm cache means no fetch per exchange, a down issuer is survivable with
// cached keys and a 503 without them; runpass's own discovery; the dev issuer exists only in dev builds.

import { describe, expect, it } from "vitest";
import {
  BROKER_URL,
  githubPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { control, githubClaims, mint } from "../support/claims.ts";

function countingFetch() {
  const calls: string[] = [];
  const f: typeof fetch = (input, init) => {
    calls.push(input instanceof Request ? input.url : String(input));
    return fetch(input, init);
  };
  return { calls, fetch: f };
}

async function setup(gh = uniqueIssuer()) {
  const counter = countingFetch();
  const broker = await makeBroker({
    policies: { "api-deploy": githubPolicy(gh) },
    issuers: issuersYaml(gh),
    fetch: counter.fetch,
  });
  const token = () => mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL));
  return { gh, broker, token, calls: counter.calls };
}

describe("issuer keys in the Worker", () => {
  it("once warm, exchanges make no discovery or JWKS fetches", async () => {
    const { broker, token, calls } = await setup();
    expect((await broker.exchange(await token(), { policy: "api-deploy" })).status).toBe(200);
    const warm = calls.length;
    expect(warm).toBe(2); // discovery + JWKS
    for (let i = 0; i < 10; i++) {
      expect((await broker.exchange(await token(), { policy: "api-deploy" })).status).toBe(200);
    }
    expect(calls.length).toBe(warm);
  });

  it("an issuer that goes down after warming still verifies with the cached keys", async () => {
    const { gh, broker, token } = await setup();
    const t2 = await token();
    expect((await broker.exchange(await token(), { policy: "api-deploy" })).status).toBe(200);
    await control(ISSUER_BASE, gh, { mode: "down" });
    try {
      expect((await broker.exchange(t2, { policy: "api-deploy" })).status).toBe(200);
    } finally {
      await control(ISSUER_BASE, gh, { mode: "ok" });
    }
  });

  it("an issuer that is down with nothing cached gives 503 temporarily_unavailable with Retry-After", async () => {
    const gh = uniqueIssuer();
    const t = await mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL));
    await control(ISSUER_BASE, gh, { mode: "down" });
    try {
      const { broker } = await setup(gh);
      const res = await broker.exchange(t, { policy: "api-deploy" });
      expect(res.status).toBe(503);
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(((await res.json()) as { error: string }).error).toBe("temporarily_unavailable");
      // The token was not consumed: once the issuer is back, it works.
      await control(ISSUER_BASE, gh, { mode: "ok" });
      const { broker: fresh } = await setup(gh);
      expect((await fresh.exchange(t, { policy: "api-deploy" })).status).toBe(200);
    } finally {
      await control(ISSUER_BASE, gh, { mode: "ok" });
    }
  });

  it("a token from an untrusted issuer never causes a fetch", async () => {
    const { broker, calls } = await setup();
    const other = uniqueIssuer("evil");
    const t = await mint(ISSUER_BASE, other, githubClaims(`${ISSUER_BASE}/${other}`, BROKER_URL));
    expect((await broker.exchange(t, { policy: "api-deploy" })).status).toBe(401);
    expect(calls).toEqual([]);
  });

  it("a jku header pointing at an attacker is never fetched", async () => {
    const { gh, broker, calls } = await setup();
    const t = await mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL), {
      header: { jku: `${ISSUER_BASE}/attacker/jwks` },
    });
    expect((await broker.exchange(t, { policy: "api-deploy" })).status).toBe(401);
    expect(calls.filter((c) => c.includes("/attacker/"))).toEqual([]);
  });
});

describe("runpass's own issuer", () => {
  it("publishes discovery and a JWKS of public keys only", async () => {
    const { broker } = await setup();
    const discovery = (await (await broker.fetch("/.well-known/openid-configuration")).json()) as {
      issuer: string;
      jwks_uri: string;
    };
    expect(discovery.issuer).toBe(BROKER_URL);
    expect(discovery.jwks_uri).toBe(`${BROKER_URL}/.well-known/jwks.json`);
    const jwks = (await (await broker.fetch("/.well-known/jwks.json")).json()) as {
      keys: Array<Record<string, unknown>>;
    };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const k of jwks.keys) {
      expect(k.d).toBeUndefined();
      expect(k.kid).toBeTruthy();
    }
  });

  it("healthz answers without secrets", async () => {
    const { broker } = await setup();
    const res = await broker.fetch("/healthz");
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain(String(broker.env.RUNPASS_ADMIN_TOKEN));
    expect(text).not.toContain(String(broker.env.RUNPASS_AUDIT_KEY));
  });
});

describe("dev issuer", () => {
  const devPolicy = `issuer: dev
allow:
  repository_owner_id: "1000001"
grants:
  token: { audience: x }
`;
  const devIssuers = `dev: { url: "http://127.0.0.1:8787/dev/oidc", kind: github, jwks: { keys: [] } }`;

  it("a production bundle drops dev-only policies and serves no dev issuer", async () => {
    const gh = uniqueIssuer();
    const broker = await makeBroker({
      policies: { "api-deploy": githubPolicy(gh).replace(ISSUER_BASE, ISSUER_BASE), "dev-demo": devPolicy },
      issuers: issuersYaml(gh),
      dev: false,
    }).catch((e: Error) => e);
    // The test issuer is loopback http, which production refuses outright.
    expect(broker).toBeInstanceOf(Error);
    expect(String((broker as Error).message)).toMatch(/https/);

    const prod = await makeBroker({
      policies: {
        "api-deploy": `issuer: github
allow:
  repository_owner_id: "1342004"
  event_name: push
grants:
  token: { audience: x }
`,
        "dev-demo": devPolicy,
      },
      dev: false,
    });
    expect(prod.bundle.policies.map((p) => p.name)).toEqual(["api-deploy"]);
    expect(prod.bundle.issuers.map((i) => i.name)).toEqual(["github"]);
    expect((await prod.fetch("/dev/oidc/.well-known/openid-configuration")).status).toBe(404);
    expect((await prod.fetch("/dev/oidc/jwks")).status).toBe(404);
    void devIssuers;
  });
});
