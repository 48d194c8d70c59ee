// Alerts raised by what happens at the broker (docs/leaks.md, Alerts): failed-verification, denial and issuance
// bursts at their (overridden) thresholds, sensitive policies used outside business hours, and emergency
// revokes; each listed at GET /v1/admin/alerts, once per key within the dedupe window, for 90 days.

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { alertHub } from "../../src/adapters/alert-hub.ts";
import { BROKER_URL, ISSUER_BASE, issuersYaml, makeBroker, uniqueIssuer } from "../support/broker.ts";
import { ACME, githubClaims, mint } from "../support/claims.ts";

interface Listed {
  alert: string;
  key: string;
  summary: string;
  details: Record<string, unknown>;
  request_ids: string[];
  duplicates: number;
  delivery: string;
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

async function setup(env: Partial<Cloudflare.Env>, extra = "") {
  const gh = uniqueIssuer();
  const policy = (owner: string) => `issuer: ${gh}
allow:
  repository_owner_id: "${owner}"
ttl: 1h
${extra}grants:
  token: { audience: "https://deploy.acme.dev", ttl: 10m }
`;
  const broker = await makeBroker({
    policies: { deploy: policy(ACME.ownerId), elsewhere: policy("999") },
    issuers: issuersYaml(gh),
    env,
  });
  const exchange = async (
    policy = "deploy",
    claims: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) => {
    const token = await mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, claims));
    return broker.fetch("/v1/exchange", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}`, ...headers },
      body: JSON.stringify({ policy }),
    });
  };
  const alerts = async (): Promise<Listed[]> =>
    ((await (await broker.admin("/v1/admin/alerts?limit=1000")).json()) as { alerts: Listed[] }).alerts;
  return { gh, broker, exchange, alerts };
}

describe("alerts", () => {
  it("failed_auth_burst: the threshold's worth of bad tokens from one address, once", async () => {
    const s = await setup({ RUNPASS_ALERTS: '{"failed_auth_burst":"3/5m"}' });
    const ip = `198.51.100.${Math.floor(Math.random() * 250) + 1}`;
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await s.broker.fetch("/v1/exchange", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer not.a.jwt",
          "cf-connecting-ip": ip,
        },
        body: JSON.stringify({ policy: "deploy" }),
      });
      expect(res.status).toBe(401);
      ids.push(res.headers.get("x-request-id") ?? "");
    }
    const raised = (await s.alerts()).filter(
      (a) => a.alert === "failed_auth_burst" && ids.some((id) => a.request_ids.includes(id)),
    );
    expect(raised).toHaveLength(1);
    expect(raised[0]?.request_ids).toEqual([ids[2]]);
    expect(JSON.stringify(raised[0])).not.toContain(ip);
  });

  it("denial_burst: denials for one repository reach the threshold; issuance_burst: exchanges for one run, for one repository", async () => {
    const s = await setup({
      RUNPASS_ALERTS:
        '{"denial_burst":"3/5m","issuance_burst_run":"3/10m","issuance_burst_repository":"5/10m"}',
    });
    for (let i = 0; i < 3; i++) expect((await s.exchange("elsewhere")).status).toBe(403);
    const denial = (await s.alerts()).filter((a) => a.alert === "denial_burst" && a.details.issuer === s.gh);
    expect(denial).toHaveLength(1);
    expect(denial[0]?.details).toMatchObject({ repository_id: ACME.repoId, count: 3 });

    const run = String(Math.floor(Math.random() * 9e9) + 1e9);
    for (let i = 0; i < 3; i++) expect((await s.exchange("deploy", { run_id: run })).status).toBe(200);
    const issuance = (await s.alerts()).filter(
      (a) => a.alert === "issuance_burst" && String(a.details.run).includes(`:${run}:`),
    );
    expect(issuance).toHaveLength(1);
    expect(issuance[0]?.details).toMatchObject({ count: 3 });

    // Two more exchanges in another run make five for the repository: one repository alert, no second run alert.
    const other = String(Math.floor(Math.random() * 9e9) + 1e9);
    for (let i = 0; i < 2; i++) expect((await s.exchange("deploy", { run_id: other })).status).toBe(200);
    const listed = await s.alerts();
    const repository = listed.filter((a) => a.alert === "issuance_burst" && a.details.issuer === s.gh);
    expect(repository).toHaveLength(1);
    expect(repository[0]?.details).toMatchObject({ repository_id: ACME.repoId, count: 5 });
    expect(
      listed.filter((a) => a.alert === "issuance_burst" && String(a.details.run).includes(`:${other}:`)),
    ).toHaveLength(0);
  });

  it("sensitive_off_hours: a sensitive policy's exchange outside business hours alerts; inside it does not", async () => {
    const today = new Date().getUTCDay();
    const tomorrow = DAYS[(today + 1) % 7] as string;
    const off = await setup({ RUNPASS_BUSINESS_HOURS: `${tomorrow} 00:00-24:00 UTC` }, "sensitive: true\n");
    const res = await off.exchange();
    expect(res.status).toBe(200);
    const lease = ((await res.json()) as { lease: { id: string } }).lease.id;
    const raised = (await off.alerts()).filter(
      (a) => a.alert === "sensitive_off_hours" && a.details.lease === lease,
    );
    expect(raised).toHaveLength(1);
    expect(raised[0]?.details).toMatchObject({ policy: "deploy" });

    const during = await setup(
      { RUNPASS_BUSINESS_HOURS: `${DAYS[today]} 00:00-24:00 UTC` },
      "sensitive: true\n",
    );
    const ok = await during.exchange();
    const okLease = ((await ok.json()) as { lease: { id: string } }).lease.id;
    expect((await during.alerts()).some((a) => a.details.lease === okLease)).toBe(false);
  });

  it("admin_revoke: every emergency revoke alerts", async () => {
    const s = await setup({});
    const res = await s.exchange();
    const run = ((await res.json()) as { lease: { run: string } }).lease.run;
    const revoke = await s.broker.admin("/v1/admin/revoke", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ run }),
    });
    expect(revoke.status).toBe(200);
    const raised = (await s.alerts()).filter((a) => a.alert === "admin_revoke" && a.details.run === run);
    expect(raised).toHaveLength(1);
    expect(raised[0]?.request_ids).toEqual([revoke.headers.get("x-request-id")]);
  });
});

describe("alert settings", () => {
  it("a malformed RUNPASS_ALERTS or RUNPASS_BUSINESS_HOURS fails closed, naming the variable", async () => {
    for (const env of [
      { RUNPASS_ALERTS: '{"denial_brust":"3/5m"}' },
      { RUNPASS_BUSINESS_HOURS: "weekdays" },
    ]) {
      const s = await setup(env);
      const res = await s.exchange();
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error_description: string };
      expect(body.error_description).toContain(Object.keys(env)[0]);
    }
  });

  it("an alert counter that cannot count costs the alert, never the committed exchange's response", async () => {
    // Rate limits off and no RATE_LIMITER binding: the counters' store throws after the lease is committed.
    const s = await setup({
      RATE_LIMITER: undefined as unknown as Cloudflare.Env["RATE_LIMITER"],
      RUNPASS_RATE_LIMITS: '{"repository":"off","failures":"off"}',
    });
    const res = await s.exchange();
    expect(res.status).toBe(200);
    expect(((await res.json()) as { credentials: { token?: unknown } }).credentials.token).toBeDefined();
  });

  it("a malformed RUNPASS_ALERTS does not turn a bad admin token's 401 into an error: charging the failure never throws", async () => {
    const s = await setup({ RUNPASS_ALERTS: '{"failed_auth_burst":"often"}' });
    const res = await s.broker.fetch("/v1/admin/leases", { headers: { authorization: "Bearer wrong" } });
    expect(res.status).toBe(401);
  });
});

describe("alert retention", () => {
  it("a settled alert stays listed for 90 days (docs/operations.md, Retention), then the hub's alarm forgets it", async () => {
    const hub = alertHub(env);
    const day = 24 * 3600_000;
    const now = Date.now();
    const tag = crypto.randomUUID();
    // No webhook configured: each alert is settled (`not_configured`) when raised, so only its age decides.
    const raised: Record<number, string> = {};
    for (const age of [31, 89, 91]) {
      const input = {
        alert: "admin_revoke" as const,
        key: `retention:${tag}:${age}`,
        summary: `retention check, ${age} days old`,
        details: { tag },
        request_ids: [],
      };
      raised[age] = (await hub.raise(input, {}, 60_000, now - age * day)).id;
    }
    await hub.deliverDue(now);
    const listed = new Set((await hub.list(10_000)).map((a) => a.id));
    expect(listed.has(raised[31] as string), "31 days old").toBe(true);
    expect(listed.has(raised[89] as string), "89 days old").toBe(true);
    expect(listed.has(raised[91] as string), "91 days old").toBe(false);
  });
});
