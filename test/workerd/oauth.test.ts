// RFC 8693 token exchange at POST /oauth/token: the same pipeline as /v1/exchange, RFC-shaped answers.

import { env } from "cloudflare:workers";
import { createLocalJWKSet, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import {
  BROKER_URL,
  githubPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { githubClaims, mint } from "../support/claims.ts";

const EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token";
const JWT = "urn:ietf:params:oauth:token-type:jwt";

async function setup() {
  const gh = uniqueIssuer();
  const owner = `acme-${crypto.randomUUID().slice(0, 8)}`;
  const installationId = Math.floor(Math.random() * 9e8) + 1e8;
  await fetch(`${env.TEST_GITHUB_API_BASE}/__control/installation`, {
    method: "POST",
    body: JSON.stringify({ owner, id: installationId }),
  });
  const broker = await makeBroker({
    policies: {
      "api-deploy": githubPolicy(gh),
      "gh-only": githubPolicy(
        gh,
        "",
        `github: { owner: ${owner}, repositories: [api], permissions: { contents: read } }`,
      ),
    },
    issuers: issuersYaml(gh),
    env: {
      GITHUB_APP_ID: env.TEST_GITHUB_APP_ID,
      GITHUB_APP_PRIVATE_KEY: env.TEST_GITHUB_APP_PRIVATE_KEY,
      GITHUB_API_URL: env.TEST_GITHUB_API_BASE,
    },
  });
  const token = (o: Record<string, unknown> = {}) =>
    mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, o));
  const post = async (fields: Record<string, string>, contentType = "application/x-www-form-urlencoded") => {
    const res = await broker.fetch("/oauth/token", {
      method: "POST",
      headers: { "content-type": contentType },
      body: new URLSearchParams(fields).toString(),
    });
    return { res, body: (await res.json()) as Record<string, unknown> };
  };
  const form = async (overrides: Record<string, string | undefined> = {}, t?: string) => {
    const base: Record<string, string | undefined> = {
      grant_type: EXCHANGE,
      subject_token: t ?? (await token()),
      subject_token_type: ID_TOKEN,
      scope: "api-deploy",
      ...overrides,
    };
    return Object.fromEntries(Object.entries(base).filter(([, v]) => v !== undefined)) as Record<
      string,
      string
    >;
  };
  return { broker, token, post, form };
}

async function expectOAuthError(
  p: Promise<{ res: Response; body: Record<string, unknown> }>,
  error: string,
  status = 400,
) {
  const { res, body } = await p;
  expect(res.status).toBe(status);
  expect(body.error).toBe(error);
  expect(typeof body.error_description).toBe("string");
  expect(res.headers.get("cache-control")).toBe("no-store");
  return body;
}

describe("POST /oauth/token", () => {
  it("exchanges an id_token (or jwt) subject token for the policy's runpass JWT", async () => {
    const s = await setup();
    for (const type of [ID_TOKEN, JWT]) {
      const { res, body } = await s.post(
        await s.form({ subject_token_type: type, audience: "https://deploy.acme.dev" }),
      );
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(body).toMatchObject({ issued_token_type: JWT, token_type: "Bearer" });
      expect(body.expires_in).toBeGreaterThan(0);
      expect(body.expires_in).toBeLessThanOrEqual(600);
      const jwks = createLocalJWKSet(
        (await (await s.broker.fetch("/.well-known/jwks.json")).json()) as never,
      );
      const { payload } = await jwtVerify(body.access_token as string, jwks, {
        issuer: BROKER_URL,
        audience: "https://deploy.acme.dev",
      });
      expect(payload.policy).toBe("api-deploy");
      expect(body.lease_id).toBe(payload.lease_id);
    }
  });

  it("requested_token_type urn:runpass:token-type:github returns the GitHub grant", async () => {
    const s = await setup();
    const { res, body } = await s.post(
      await s.form({ scope: "gh-only", requested_token_type: "urn:runpass:token-type:github" }),
    );
    expect(res.status).toBe(200);
    expect(body.issued_token_type).toBe("urn:runpass:token-type:github");
    expect(String(body.access_token)).toMatch(/^ghs_/);
  });

  it("answers every error in the RFC shape", async () => {
    const s = await setup();
    await expectOAuthError(
      s.post(await s.form({ grant_type: "client_credentials" })),
      "unsupported_grant_type",
    );
    await expectOAuthError(s.post(await s.form({ grant_type: undefined })), "unsupported_grant_type");
    await expectOAuthError(s.post(await s.form({ subject_token: "" })), "invalid_request");
    await expectOAuthError(
      s.post(await s.form({ subject_token_type: "urn:ietf:params:oauth:token-type:saml2" })),
      "invalid_request",
    );
    await expectOAuthError(
      s.post(await s.form({ requested_token_type: "urn:ietf:params:oauth:token-type:refresh_token" })),
      "invalid_request",
    );
    await expectOAuthError(s.post(await s.form({ scope: undefined })), "invalid_request");
    await expectOAuthError(s.post(await s.form({ scope: "api-deploy other" })), "invalid_request");
    await expectOAuthError(
      s.post(await s.form({ actor_token: "x", actor_token_type: JWT })),
      "invalid_request",
    );
    await expectOAuthError(s.post(await s.form(), "application/json"), "invalid_request");
    await expectOAuthError(s.post(await s.form({ audience: "https://elsewhere.example" })), "invalid_target");
    await expectOAuthError(s.post(await s.form({ resource: "https://api.example" })), "invalid_target");
    // An invalid or unacceptable subject token:
    await expectOAuthError(s.post(await s.form({}, "not.a.jwt")), "invalid_request");
    await expectOAuthError(
      s.post(await s.form({}, await s.token({ ref: "refs/heads/other" }))),
      "invalid_request",
    );
    await expectOAuthError(s.post(await s.form({ scope: "no-such-policy" })), "invalid_request");
    // A grant already used, or revoked by the run's end:
    const t = await s.token();
    expect((await s.post(await s.form({}, t))).res.status).toBe(200);
    await expectOAuthError(s.post(await s.form({}, t)), "invalid_grant");
  });

  it("a run that ended makes its subject tokens invalid_grant; nothing leaks about the token", async () => {
    const s = await setup();
    const runId = "7070708";
    const first = await s.post(await s.form({}, await s.token({ run_id: runId })));
    expect(first.res.status).toBe(200);
    const leaseId = String(first.body.lease_id);
    const run = new TextDecoder().decode(
      Uint8Array.from(
        atob(leaseId.slice(4, leaseId.indexOf(".")).replace(/-/g, "+").replace(/_/g, "/")),
        (ch) => ch.charCodeAt(0),
      ),
    );
    await s.broker.admin("/v1/admin/revoke", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ run }),
    });
    const t = await s.token({ run_id: runId });
    const body = await expectOAuthError(s.post(await s.form({}, t)), "invalid_grant");
    for (const part of t.split(".")) expect(JSON.stringify(body)).not.toContain(part);
  });
});
