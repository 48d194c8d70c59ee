// Status rules (docs/api.md, Errors) over HTTP inside workerd: which failures are 401, 403, 400, 413, 415, the
// redaction rule for reasons, and that error bodies never echo the token.

import { describe, expect, it } from "vitest";
import {
  BROKER_URL,
  githubPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  type TestBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { ACME, githubClaims, mint } from "../support/claims.ts";

interface ErrorBody {
  error: string;
  error_description: string;
  request_id: string;
  reasons?: Array<{ code: string; claim?: string; expected?: unknown[] }>;
}

async function setup(extraPolicies: Record<string, string> = {}, env = {}) {
  const gh = uniqueIssuer();
  const broker = await makeBroker({
    policies: { "api-deploy": githubPolicy(gh), ...extraPolicies },
    issuers: issuersYaml(gh),
    env,
  });
  const iss = `${ISSUER_BASE}/${gh}`;
  const token = (overrides: Record<string, unknown> = {}) =>
    mint(ISSUER_BASE, gh, githubClaims(iss, BROKER_URL, overrides));
  return { gh, iss, broker, token };
}

async function expectError(res: Response, status: number, code: string): Promise<ErrorBody> {
  expect(res.status).toBe(status);
  expect(res.headers.get("x-request-id")).toMatch(/^req_/);
  expect(res.headers.get("cache-control")).toBe("no-store");
  const body = (await res.json()) as ErrorBody;
  expect(body.error).toBe(code);
  expect(body.request_id).toBe(res.headers.get("x-request-id"));
  expect(typeof body.error_description).toBe("string");
  return body;
}

function exchangeRaw(broker: TestBroker, init: RequestInit) {
  return broker.fetch("/v1/exchange", { method: "POST", ...init });
}

describe("status rules", () => {
  it("a missing bearer is 401 invalid_token with a WWW-Authenticate challenge", async () => {
    const { broker } = await setup();
    const res = await broker.exchange(undefined, { policy: "api-deploy" });
    await expectError(res, 401, "invalid_token");
    expect(res.headers.get("www-authenticate")).toContain("Bearer");
  });

  it("garbage bearers are 401 invalid_token", async () => {
    const { broker } = await setup();
    for (const garbage of ["abc", "a.b", "a.b.c.d", "eyJ.eyJ.sig", "%%%.%%%.%%%"]) {
      await expectError(await broker.exchange(garbage, { policy: "api-deploy" }), 401, "invalid_token");
    }
  });

  it("an issuer outside the allow-list is 401, not 403", async () => {
    const { broker } = await setup();
    const other = uniqueIssuer("untrusted");
    const t = await mint(ISSUER_BASE, other, githubClaims(`${ISSUER_BASE}/${other}`, BROKER_URL));
    await expectError(await broker.exchange(t, { policy: "api-deploy" }), 401, "invalid_token");
  });

  it("an audience no policy accepts is 401; one runpass accepts but the policy does not is 403", async () => {
    const { broker, token } = await setup();
    await expectError(
      await broker.exchange(await token({ aud: "https://not-runpass.example" }), { policy: "api-deploy" }),
      401,
      "invalid_token",
    );

    const gh = uniqueIssuer();
    const twoAudiences = await makeBroker({
      policies: {
        "api-deploy": githubPolicy(gh),
        "other-aud": githubPolicy(gh).replace("allow:", "audience: https://elsewhere.example\nallow:"),
      },
      issuers: issuersYaml(gh),
    });
    const t = await mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, "https://elsewhere.example"));
    const body = await expectError(
      await twoAudiences.exchange(t, { policy: "api-deploy" }),
      403,
      "access_denied",
    );
    expect(body.reasons).toContainEqual(expect.objectContaining({ code: "audience_mismatch" }));
  });

  it("a missing required claim is 401; an absent or wrongly typed policy claim is 403", async () => {
    const { broker, token } = await setup();
    await expectError(
      await broker.exchange(await token({ sub: undefined }), { policy: "api-deploy" }),
      401,
      "invalid_token",
    );
    const absent = await expectError(
      await broker.exchange(await token({ event_name: undefined }), { policy: "api-deploy" }),
      403,
      "access_denied",
    );
    expect(absent.reasons).toContainEqual({
      code: "claim_absent",
      claim: "event_name",
      expected: ["push", "workflow_dispatch"],
    });
    const typed = await expectError(
      await broker.exchange(await token({ repository_id: Number(ACME.repoId) }), { policy: "api-deploy" }),
      403,
      "access_denied",
    );
    expect(typed.reasons).toContainEqual(
      expect.objectContaining({ code: "type_mismatch", claim: "repository_id" }),
    );
  });

  it("an unknown policy and a policy that does not match get the same 403 body apart from the request id", async () => {
    const { broker, token } = await setup();
    const outsider = {
      repository_owner_id: "999",
      repository_owner: "evil",
      repository: "evil/api",
      repository_id: "1",
    };
    const unknown = await expectError(
      await broker.exchange(await token(outsider), { policy: "no-such-policy" }),
      403,
      "access_denied",
    );
    const unmatched = await expectError(
      await broker.exchange(await token(outsider), { policy: "api-deploy" }),
      403,
      "access_denied",
    );
    expect(unknown.reasons).toBeUndefined();
    expect(unmatched.reasons).toBeUndefined();
    expect(Object.keys(unknown).sort()).toEqual(Object.keys(unmatched).sort());
    expect(unknown.error_description.replace("no-such-policy", "X")).toBe(
      unmatched.error_description.replace("api-deploy", "X"),
    );
  });

  it("the pinned owner sees reasons with expected values; an outsider with the same owner name sees none", async () => {
    const { broker, token } = await setup();
    const owner = await expectError(
      await broker.exchange(await token({ ref: "refs/heads/main-evil" }), { policy: "api-deploy" }),
      403,
      "access_denied",
    );
    expect(owner.reasons).toEqual([{ code: "claim_mismatch", claim: "ref", expected: ["refs/heads/main"] }]);

    // Same owner *name* "acme", different owner id: an outsider.
    const outsider = await expectError(
      await broker.exchange(await token({ repository_owner_id: "66666666", ref: "refs/heads/main-evil" }), {
        policy: "api-deploy",
      }),
      403,
      "access_denied",
    );
    expect(outsider.reasons).toBeUndefined();
  });

  it("RUNPASS_EXPLAIN=full shows reasons to everyone", async () => {
    const { broker, token } = await setup({}, { RUNPASS_EXPLAIN: "full" });
    const body = await expectError(
      await broker.exchange(await token({ repository_owner_id: "66666666" }), { policy: "api-deploy" }),
      403,
      "access_denied",
    );
    expect(body.reasons).toContainEqual(
      expect.objectContaining({ code: "claim_mismatch", claim: "repository_owner_id" }),
    );
  });

  it("pull_request_target on main and refs/heads/main-evil are denied; deny rules beat allow", async () => {
    const gh = uniqueIssuer();
    const broker = await makeBroker({
      policies: {
        "api-deploy": githubPolicy(gh, "", undefined).replace(
          "grants:",
          "deny:\n  - runner_environment: self-hosted\ngrants:",
        ),
      },
      issuers: issuersYaml(gh),
    });
    const t = (o: Record<string, unknown>) =>
      mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, o));
    const prt = await expectError(
      await broker.exchange(await t({ event_name: "pull_request_target" }), { policy: "api-deploy" }),
      403,
      "access_denied",
    );
    expect(prt.reasons).toContainEqual(
      expect.objectContaining({ code: "claim_mismatch", claim: "event_name" }),
    );
    await expectError(
      await broker.exchange(await t({ ref: "refs/heads/main-evil" }), { policy: "api-deploy" }),
      403,
      "access_denied",
    );
    const denied = await expectError(
      await broker.exchange(await t({ runner_environment: "self-hosted" }), { policy: "api-deploy" }),
      403,
      "access_denied",
    );
    expect(denied.reasons).toContainEqual(expect.objectContaining({ code: "denied_by", rule: 0 }));
  });

  it("asking for a grant the policy does not have is 403 and issues nothing", async () => {
    const { broker, token } = await setup();
    const body = await expectError(
      await broker.exchange(await token(), { policy: "api-deploy", grants: ["aws"] }),
      403,
      "access_denied",
    );
    expect(body.reasons).toContainEqual({ code: "grant_not_allowed", grant: "aws" });
  });
});

describe("request validation order", () => {
  it("an oversize token is 413 before anything else, even with a wrong media type", async () => {
    const { broker } = await setup();
    const huge = `eyJhbGciOiJSUzI1NiJ9.${"A".repeat(17 * 1024)}.sig`;
    const res = await exchangeRaw(broker, {
      headers: { authorization: `Bearer ${huge}`, "content-type": "text/plain" },
      body: "not json",
    });
    await expectError(res, 413, "request_too_large");
  });

  it("a body over 64 KiB is 413, whether declared or streamed", async () => {
    const { broker, token } = await setup();
    const t = await token();
    const big = JSON.stringify({ policy: "api-deploy", pad: "x".repeat(70 * 1024) });
    await expectError(
      await exchangeRaw(broker, {
        headers: { authorization: `Bearer ${t}`, "content-type": "application/json" },
        body: big,
      }),
      413,
      "request_too_large",
    );
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    await expectError(
      await exchangeRaw(broker, {
        headers: { authorization: `Bearer ${t}`, "content-type": "application/json" },
        body: stream,
        duplex: "half",
      } as RequestInit),
      413,
      "request_too_large",
    );
  });

  it("a non-JSON media type is 415", async () => {
    const { broker, token } = await setup();
    const res = await exchangeRaw(broker, {
      headers: {
        authorization: `Bearer ${await token()}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: "policy=api-deploy",
    });
    await expectError(res, 415, "unsupported_media_type");
  });

  it("malformed JSON, unknown fields, bad grant names and bad ttl are 400 and consume nothing", async () => {
    const { broker, token } = await setup();
    const t = await token();
    for (const body of [
      "{not json",
      "[]",
      JSON.stringify({ policy: "api-deploy", extra: 1 }),
      JSON.stringify({ policy: "api-deploy", grants: ["root"] }),
      JSON.stringify({ policy: "api-deploy", ttl: "forever" }),
      JSON.stringify({ policy: "" }),
      JSON.stringify({}),
    ]) {
      await expectError(await broker.exchange(t, body), 400, "invalid_request");
    }
    expect((await broker.exchange(t, { policy: "api-deploy" })).status).toBe(200);
  });

  it("no error body or header ever contains the token or its signature", async () => {
    const { broker, token } = await setup();
    const cases: Array<[string, unknown]> = [];
    const good = await token({ repository_owner_id: "1" });
    cases.push([good, { policy: "api-deploy" }]);
    cases.push([good, "{broken"]);
    const expired = await token({
      exp: Math.floor(Date.now() / 1000) - 3600,
      iat: Math.floor(Date.now() / 1000) - 4000,
    });
    cases.push([expired, { policy: "api-deploy" }]);
    const [h, p] = good.split(".");
    cases.push([`${h}.${p}.AAAA`, { policy: "api-deploy" }]);
    for (const [t, body] of cases) {
      const res = await broker.exchange(t, body);
      expect(res.status).toBeGreaterThanOrEqual(400);
      const text = `${await res.text()}${JSON.stringify([...res.headers])}`;
      for (const part of t.split(".")) {
        if (part.length > 8) expect(text).not.toContain(part);
      }
      expect(text).not.toContain('repository_owner_id":"1"');
    }
  });

  it("every response carries x-request-id, including 404 and health", async () => {
    const { broker } = await setup();
    for (const path of ["/healthz", "/nope", "/.well-known/jwks.json"]) {
      const res = await broker.fetch(path);
      expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    }
    await expectError(await broker.fetch("/nope"), 404, "not_found");
  });
});
