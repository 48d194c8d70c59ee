// The admin API behind Cloudflare Access (docs/deploy.md, "Admin access"): with RUNPASS_ACCESS_TEAM_DOMAIN and its
// own RUNPASS_ADMIN_ACCESS_AUD set, a verified Access token is accepted instead of the shared admin token, and the
// audit records and secret versions its requests write name that person (or the Access service token). A token
// that does not verify is refused even next to a valid admin token; the console's audience never admits anyone
// to the admin API; without admin Access configured, the header changes nothing.

import { describe, expect, it } from "vitest";
import { githubPolicy, ISSUER_BASE, issuersYaml, makeBroker, uniqueIssuer } from "../support/broker.ts";
import { mint } from "../support/claims.ts";
import { auditRecords } from "../support/run-ledger.ts";

const AUD = "aud-tag-admin-0123456789";
const CONSOLE_AUD = "aud-tag-console-0123456789";
const ACCESS_ENV = {
  RUNPASS_ACCESS_TEAM_DOMAIN: ISSUER_BASE,
  RUNPASS_ACCESS_AUD: CONSOLE_AUD,
  RUNPASS_ADMIN_ACCESS_AUD: AUD,
};

function accessToken(claims: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return mint(ISSUER_BASE, "cf-access", {
    iss: ISSUER_BASE,
    aud: [AUD],
    sub: "user-7",
    email: "grace@acme.dev",
    iat: now,
    exp: now + 300,
    ...claims,
  });
}

async function setup(env: Record<string, string>) {
  const gh = uniqueIssuer();
  const policy = `p-${crypto.randomUUID().slice(0, 8)}`;
  const broker = await makeBroker({
    policies: { [policy]: githubPolicy(gh) },
    issuers: issuersYaml(gh),
    env,
  });
  return { broker, policy };
}

describe("admin API with Cloudflare Access", () => {
  it("accepts a verified Access identity instead of the admin token and names the person in audit records", async () => {
    const { broker, policy } = await setup(ACCESS_ENV);
    const token = await accessToken();
    const headers = { "cf-access-jwt-assertion": token };
    expect((await broker.fetch("/v1/admin/status", { headers })).status).toBe(200);

    const revoke = await broker.fetch("/v1/admin/revoke", {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ policy }),
    });
    expect(revoke.status).toBe(200);
    const [record] = await auditRecords(broker, { event: "admin_revoke", policy });
    expect(record).toMatchObject({ event: "admin_revoke", policy, actor: "grace@acme.dev" });

    const ns = `acme-${crypto.randomUUID().slice(0, 8)}`;
    const put = await broker.fetch(`/v1/admin/secrets/${ns}/k`, {
      method: "PUT",
      headers: { ...headers, "content-type": "application/json", "x-runpass-actor": "someone-else" },
      body: JSON.stringify({ value: "v" }),
    });
    expect(put.status).toBe(201);
    const shown = (await (await broker.admin(`/v1/admin/secrets/${ns}/k`)).json()) as {
      versions: Array<{ created_by: string }>;
    };
    expect(shown.versions[0]?.created_by).toBe("admin:grace@acme.dev");
  });

  it("refuses an Access token that does not verify, even beside the right admin token", async () => {
    const { broker } = await setup(ACCESS_ENV);
    for (const bad of [
      await accessToken({ aud: ["another-app"] }),
      await accessToken({ iss: `${ISSUER_BASE}/elsewhere` }),
      await accessToken({ exp: Math.floor(Date.now() / 1000) - 600 }),
      "not-a-jwt",
    ]) {
      const res = await broker.admin("/v1/admin/status", { headers: { "cf-access-jwt-assertion": bad } });
      expect(res.status).toBe(401);
      const body = (await res.json()) as { error: string };
      expect(body.error).toBe("invalid_token");
    }
    // A bearer admin token alone still works when Access is configured (automation, runpass doctor).
    expect((await broker.admin("/v1/admin/status")).status).toBe(200);
  });

  it("refuses a console-audience Access token: the console's users do not get the admin API", async () => {
    const consoleUser = await accessToken({ aud: [CONSOLE_AUD] });
    const headers = { "cf-access-jwt-assertion": consoleUser };
    // With an admin audience of its own, the console's token does not verify for /v1/admin/*.
    const { broker } = await setup(ACCESS_ENV);
    expect((await broker.fetch("/v1/admin/status", { headers })).status).toBe(401);
    // Console Access alone (no RUNPASS_ADMIN_ACCESS_AUD): the admin API takes the admin token only.
    const consoleOnly = await setup({
      RUNPASS_ACCESS_TEAM_DOMAIN: ISSUER_BASE,
      RUNPASS_ACCESS_AUD: CONSOLE_AUD,
    });
    const res = await consoleOnly.broker.fetch("/v1/admin/status", { headers });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe("invalid_token");
    expect((await consoleOnly.broker.admin("/v1/admin/status", { headers })).status).toBe(200);
  });

  it("one audience for both the console and the admin API is a configuration problem: Access closed, the token works", async () => {
    const { broker } = await setup({
      RUNPASS_ACCESS_TEAM_DOMAIN: ISSUER_BASE,
      RUNPASS_ACCESS_AUD: AUD,
      RUNPASS_ADMIN_ACCESS_AUD: AUD,
    });
    const headers = { "cf-access-jwt-assertion": await accessToken() };
    expect((await broker.fetch("/v1/admin/status", { headers })).status).not.toBe(200);
    const status = (await (await broker.admin("/v1/admin/status")).json()) as {
      admin_access: { access: boolean };
      problems: Array<{ setting: string }>;
    };
    expect(status.admin_access).toEqual({ access: false });
    expect(status.problems.map((p) => p.setting)).toContain("RUNPASS_ADMIN_ACCESS_AUD");
    const good = await setup(ACCESS_ENV);
    const shown = (await (await good.broker.admin("/v1/admin/status")).json()) as { admin_access: unknown };
    expect(shown.admin_access).toEqual({ access: true });
  });

  it("accepts an Access service token (common_name, no email) and names it as the actor", async () => {
    const { broker, policy } = await setup(ACCESS_ENV);
    const service = await accessToken({ email: undefined, common_name: "ci-doctor.access", sub: "" });
    // Beside the admin token (Access attaches its JWT to service-token requests too) and on its own.
    expect(
      (await broker.admin("/v1/admin/status", { headers: { "cf-access-jwt-assertion": service } })).status,
    ).toBe(200);
    const revoke = await broker.fetch("/v1/admin/revoke", {
      method: "POST",
      headers: { "cf-access-jwt-assertion": service, "content-type": "application/json" },
      body: JSON.stringify({ policy }),
    });
    expect(revoke.status).toBe(200);
    const [record] = await auditRecords(broker, { event: "admin_revoke", policy });
    expect(record).toMatchObject({ actor: "access-service:ci-doctor.access" });
    // Neither an email nor a common_name: still refused.
    const nobody = await accessToken({ email: undefined });
    expect(
      (await broker.admin("/v1/admin/status", { headers: { "cf-access-jwt-assertion": nobody } })).status,
    ).toBe(401);
  });

  it("without Access configured, an Access header is no credential and changes nothing", async () => {
    const { broker } = await setup({});
    const token = await accessToken();
    expect(
      (await broker.fetch("/v1/admin/status", { headers: { "cf-access-jwt-assertion": token } })).status,
    ).toBe(401);
    expect(
      (await broker.admin("/v1/admin/status", { headers: { "cf-access-jwt-assertion": token } })).status,
    ).toBe(200);
  });
});
