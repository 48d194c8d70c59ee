// The per-run ledger (a real Durable Object in workerd): single use, strong consistency under
// concurrency, denials that leave the token usable, lease expiry by alarm, and failing closed.

import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
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
import { ledgerFor } from "../support/run-ledger.ts";

async function setup(envOverrides: Partial<Cloudflare.Env> = {}) {
  const gh = uniqueIssuer();
  const broker = await makeBroker({
    policies: { "api-deploy": githubPolicy(gh) },
    issuers: issuersYaml(gh),
    env: envOverrides,
  });
  const iss = `${ISSUER_BASE}/${gh}`;
  const claimsFor = (overrides: Record<string, unknown> = {}) => githubClaims(iss, BROKER_URL, overrides);
  const token = (overrides: Record<string, unknown> = {}) => mint(ISSUER_BASE, gh, claimsFor(overrides));
  return { gh, broker, token, claimsFor };
}

describe("single use", () => {
  it("a replayed jti gets 409 token_replayed and issues nothing", async () => {
    const { broker, token } = await setup();
    const t = await token();
    const first = await broker.exchange(t, { policy: "api-deploy" });
    expect(first.status).toBe(200);
    const { lease } = (await first.json()) as { lease: { run: string } };
    const again = await broker.exchange(t, { policy: "api-deploy" });
    expect(again.status).toBe(409);
    const body = (await again.json()) as Record<string, unknown>;
    expect(body.error).toBe("token_replayed");
    expect(body.credentials).toBeUndefined();
    expect(await ledgerFor(lease.run).leases()).toHaveLength(1);
  });

  it("20 concurrent exchanges of one jti yield exactly one success", async () => {
    const { broker, token } = await setup();
    const t = await token();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => broker.exchange(t, { policy: "api-deploy" })),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
  });

  it("two tokens of the same run with different jtis both succeed, under one run ledger", async () => {
    const { broker, token } = await setup();
    const runId = "7777777001";
    const a = await broker.exchange(await token({ run_id: runId }), { policy: "api-deploy" });
    const b = await broker.exchange(await token({ run_id: runId }), { policy: "api-deploy" });
    expect([a.status, b.status]).toEqual([200, 200]);
    const run = ((await a.json()) as { lease: { run: string } }).lease.run;
    expect(((await b.json()) as { lease: { run: string } }).lease.run).toBe(run);
    expect(await ledgerFor(run).leases()).toHaveLength(2);
  });

  it("a denied request leaves the jti usable for a later exchange that matches", async () => {
    const { broker, token } = await setup();
    const t = await token();
    // Denied: asks for a grant the policy does not offer.
    expect((await broker.exchange(t, { policy: "api-deploy", grants: ["aws"] })).status).toBe(403);
    // Denied: unknown policy.
    expect((await broker.exchange(t, { policy: "nope" })).status).toBe(403);
    // Bad request.
    expect((await broker.exchange(t, { policy: "api-deploy", bogus: true })).status).toBe(400);
    // Explain consumes nothing.
    expect((await broker.explain(t, { policy: "api-deploy" })).status).toBe(200);
    expect((await broker.exchange(t, { policy: "api-deploy" })).status).toBe(200);
  });

  it("explain reports a used token as replayed without consuming anything", async () => {
    const { broker, token } = await setup();
    const t = await token();
    const before = (await (await broker.explain(t, { policy: "api-deploy" })).json()) as {
      decision: string;
    };
    expect(before.decision).toBe("allow");
    expect((await broker.exchange(t, { policy: "api-deploy" })).status).toBe(200);
    const after = (await (await broker.explain(t, { policy: "api-deploy" })).json()) as {
      decision: string;
      error: string;
      reasons: Array<{ code: string }>;
    };
    expect(after.decision).toBe("deny");
    expect(after.error).toBe("token_replayed");
    expect(after.reasons).toEqual([{ code: "replayed" }]);
  });
});

describe("leases", () => {
  it("a lease expires at min(policy ttl, requested ttl, hard cap) and the alarm ends it", async () => {
    const { broker, token } = await setup({ RUNPASS_MAX_LEASE_TTL: "20m" });
    const capped = (await (await broker.exchange(await token(), { policy: "api-deploy" })).json()) as {
      lease: { expires_at: string };
      credentials: { token: { expires_at: string } };
    };
    const remaining = Date.parse(capped.lease.expires_at) - Date.now();
    expect(remaining).toBeLessThanOrEqual(20 * 60_000);
    expect(remaining).toBeGreaterThan(19 * 60_000);

    // Leases end on whole seconds (now rounded down + ttl): 3 s leaves at least 2 s before it may end.
    const res = await broker.exchange(await token(), { policy: "api-deploy", ttl: "3s" });
    const body = (await res.json()) as {
      lease: { id: string; run: string; expires_at: string; revoke_token: string };
      credentials: { token: { expires_at: string } };
    };
    expect(Date.parse(body.credentials.token.expires_at)).toBeLessThanOrEqual(
      Date.parse(body.lease.expires_at),
    );
    const stub = ledgerFor(body.lease.run);
    expect((await stub.leases())[0]?.ended_at).toBeNull();
    await new Promise((r) => setTimeout(r, Date.parse(body.lease.expires_at) - Date.now() + 100));
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const [lease] = await stub.leases();
    expect(lease?.id).toBe(body.lease.id);
    expect(lease?.ended_at).toBeTypeOf("number");
  });

  it("the revoke token is stored only as a hash", async () => {
    const { broker, token } = await setup();
    const body = (await (await broker.exchange(await token(), { policy: "api-deploy" })).json()) as {
      lease: { run: string; revoke_token: string };
    };
    const dump = await runDump(body.lease.run);
    expect(dump).not.toContain(body.lease.revoke_token);
  });
});

async function runDump(run: string): Promise<string> {
  const { runInDurableObject } = await import("cloudflare:test");
  return runInDurableObject(ledgerFor(run), (_instance, state) => {
    const rows: unknown[] = [];
    for (const table of ["used_tokens", "leases", "run_state", "audit_outbox"]) {
      rows.push(state.storage.sql.exec(`SELECT * FROM ${table}`).toArray());
    }
    return JSON.stringify(rows);
  });
}

describe("fail closed", () => {
  it("an unreachable run ledger issues nothing and answers 503 with Retry-After", async () => {
    const broken = {
      idFromName: (name: string) => env.RUN_LEDGER.idFromName(name),
      get: () => ({
        commit: () => Promise.reject(new Error("storage unavailable")),
        peek: () => Promise.reject(new Error("storage unavailable")),
      }),
    } as unknown as Cloudflare.Env["RUN_LEDGER"];
    const { broker, token } = await setup({ RUN_LEDGER: broken });
    const res = await broker.exchange(await token(), { policy: "api-deploy" });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBeTruthy();
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.error).toBe("temporarily_unavailable");
    expect(body.credentials).toBeUndefined();
  });

  it("missing signing keys or audit key fail closed with a 503 naming the setting", async () => {
    for (const [name, overrides] of [
      ["RUNPASS_SIGNING_KEYS", { RUNPASS_SIGNING_KEYS: "" }],
      ["RUNPASS_SIGNING_KEYS", { RUNPASS_SIGNING_KEYS: '[{"kty":"oct"}]' }],
      ["RUNPASS_AUDIT_KEY", { RUNPASS_AUDIT_KEY: "" }],
      ["RUNPASS_ISSUER_URL", { RUNPASS_ISSUER_URL: "" }],
    ] as const) {
      const { broker, token } = await setup(overrides as Partial<Cloudflare.Env>);
      const res = await broker.exchange(await token(), { policy: "api-deploy" });
      expect(res.status, name).toBe(503);
      const body = (await res.json()) as { error: string; error_description: string };
      expect(body.error).toBe("temporarily_unavailable");
      expect(body.error_description).toContain(name);
      expect(JSON.stringify(body)).not.toMatch(/at .*\.ts:\d+/);
    }
  });

  it("a development bundle running without RUNPASS_DEV=1 refuses everything with a named 503", async () => {
    const gh = uniqueIssuer();
    const broker = await makeBroker({
      policies: { "api-deploy": githubPolicy(gh) },
      issuers: issuersYaml(gh),
      env: { RUNPASS_DEV: "0" },
    });
    const t = await mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL));
    const res = await broker.exchange(t, { policy: "api-deploy" });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error_description: string }).error_description).toContain("RUNPASS_DEV");
  });
});
