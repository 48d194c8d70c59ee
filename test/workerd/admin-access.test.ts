// The admin API behind Cloudflare Access (docs/deploy.md, "Admin access"): with RUNPASS_ACCESS_TEAM_DOMAIN/AUD set,
// a verified Access token is accepted instead of the shared admin token, and the audit records and secret
// versions its requests write name that person. A token that does not verify is refused even next to a valid
// admin token; without Access configured, the header changes nothing.

import { describe, expect, it } from "vitest";
import { githubPolicy, ISSUER_BASE, issuersYaml, makeBroker, uniqueIssuer } from "../support/broker.ts";
import { mint } from "../support/claims.ts";
import { auditRecords } from "../support/run-ledger.ts";

const AUD = "aud-tag-admin-0123456789";
const ACCESS_ENV = { RUNPASS_ACCESS_TEAM_DOMAIN: ISSUER_BASE, RUNPASS_ACCESS_AUD: AUD };

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
