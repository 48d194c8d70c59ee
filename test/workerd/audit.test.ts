// Audit (docs/security.md, No credential without an audit record) in workerd: one record per decision, durable in the run ledger before the
// credential leaves, shipped to D1, queryable by admins, digests instead of identifiers, no secrets in logs.

import { afterEach, describe, expect, it, vi } from "vitest";
import {
  ADMIN_TOKEN,
  BROKER_URL,
  githubPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { githubClaims, mint } from "../support/claims.ts";
import { ship } from "../support/run-ledger.ts";

interface Record_ {
  id: string;
  event: string;
  decision: string;
  error?: string;
  policy?: string;
  run?: string;
  lease_id?: string;
  token_id?: string;
  repository_id?: string;
  reasons: Array<{ code: string; claim?: string }>;
  grants?: Array<{ type: string; id: string }>;
  count: number;
}

async function setup() {
  const gh = uniqueIssuer();
  const broker = await makeBroker({
    policies: { "api-deploy": githubPolicy(gh) },
    issuers: issuersYaml(gh),
  });
  const iss = `${ISSUER_BASE}/${gh}`;
  const claimsFor = (o: Record<string, unknown> = {}) => githubClaims(iss, BROKER_URL, o);
  return { gh, broker, claimsFor, mintFor: (c: Record<string, unknown>) => mint(ISSUER_BASE, gh, c) };
}

afterEach(() => {
  vi.restoreAllMocks();
});

async function query(broker: Awaited<ReturnType<typeof setup>>["broker"], params: Record<string, string>) {
  const res = await broker.admin(`/v1/admin/audit?${new URLSearchParams(params)}`);
  expect(res.status).toBe(200);
  return (await res.json()) as { records: Record_[]; next_cursor?: string };
}

describe("audit records", () => {
  it("an allowed exchange leaves one allow record with digests, shipped from the run ledger to D1", async () => {
    const { broker, claimsFor, mintFor } = await setup();
    const claims = claimsFor();
    const res = await broker.exchange(await mintFor(claims), { policy: "api-deploy" });
    const body = (await res.json()) as { lease: { id: string; run: string } };
    await ship(body.lease.run);
    const { records } = await query(broker, { run: body.lease.run });
    expect(records).toHaveLength(1);
    const [r] = records as [Record_];
    expect(r).toMatchObject({
      event: "exchange",
      decision: "allow",
      policy: "api-deploy",
      lease_id: body.lease.id,
      repository_id: "519345000",
      count: 1,
    });
    expect(r.token_id).toMatch(/^hmac-sha256:/);
    expect(r.grants?.[0]?.id).toMatch(/^hmac-sha256:/);

    // audit-hash of the jti finds the record.
    const hashed = (await (
      await broker.admin("/v1/admin/audit-hash", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ value: claims.jti }),
      })
    ).json()) as { digest: string };
    expect(hashed.digest).toBe(r.token_id);
    expect((await query(broker, { token_id: hashed.digest })).records.map((x) => x.id)).toEqual([r.id]);
    expect((await query(broker, { credential: r.grants?.[0]?.id as string })).records).toHaveLength(1);
  });

  it("denials are recorded with the full trace even when the caller sees no reasons", async () => {
    const { broker, claimsFor, mintFor } = await setup();
    const claims = claimsFor({ repository_owner_id: "31337", repository_id: "31338", run_id: "4242424242" });
    const res = await broker.exchange(await mintFor(claims), { policy: "api-deploy" });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { reasons?: unknown }).reasons).toBeUndefined();
    const { records } = await query(broker, { repository_id: "31338", decision: "deny" });
    expect(records.length).toBeGreaterThanOrEqual(1);
    expect(records[0]?.error).toBe("access_denied");
    expect(records[0]?.reasons.map((x) => x.claim)).toEqual(
      expect.arrayContaining(["repository_owner_id", "repository_id"]),
    );
  });

  it("invalid tokens, bad requests and replays are recorded too", async () => {
    const { broker, claimsFor, mintFor } = await setup();
    const claims = claimsFor();
    const t = await mintFor(claims);
    const policy = `p-${crypto.randomUUID().slice(0, 6)}`;
    await broker.exchange("garbage.token.here", { policy });
    await broker.exchange(t, { policy, ttl: "forever" });
    const ok = (await (await broker.exchange(t, { policy: "api-deploy" })).json()) as {
      lease: { run: string };
    };
    expect((await broker.exchange(t, { policy: "api-deploy" })).status).toBe(409);
    await ship(ok.lease.run);
    const denied = await query(broker, { policy });
    expect(denied.records.map((r) => r.error).sort()).toEqual(["invalid_request", "invalid_token"]);
    const run = await query(broker, { run: ok.lease.run });
    expect(run.records.map((r) => `${r.decision}:${r.error ?? ""}`).sort()).toEqual([
      "allow:",
      "deny:token_replayed",
    ]);
  });

  it("admin queries filter by policy, decision, event and since, newest first, paged with a cursor", async () => {
    const { broker, claimsFor, mintFor } = await setup();
    const policy = `paged-${crypto.randomUUID().slice(0, 6)}`;
    for (let i = 0; i < 5; i++) await broker.explain(await mintFor(claimsFor()), { policy });
    const first = await query(broker, { policy, limit: "2" });
    expect(first.records).toHaveLength(2);
    expect(first.next_cursor).toBeTruthy();
    const second = await query(broker, { policy, limit: "2", cursor: first.next_cursor as string });
    const third = await query(broker, { policy, limit: "2", cursor: second.next_cursor as string });
    const ids = [...first.records, ...second.records, ...third.records].map((r) => r.id);
    expect(new Set(ids).size).toBe(5);
    expect(third.next_cursor).toBeUndefined();
    expect((await query(broker, { policy, event: "explain" })).records).toHaveLength(5);
    expect((await query(broker, { policy, event: "exchange" })).records).toHaveLength(0);
    expect(
      (await query(broker, { policy, since: new Date(Date.now() + 60_000).toISOString() })).records,
    ).toHaveLength(0);
    const bad = await broker.admin("/v1/admin/audit?limit=5000");
    expect(bad.status).toBe(400);
    expect((await broker.admin("/v1/admin/audit?bogus=1")).status).toBe(400);
  });

  it("the admin API refuses a missing or wrong bearer with 401", async () => {
    const { broker } = await setup();
    expect((await broker.fetch("/v1/admin/audit")).status).toBe(401);
    const wrong = await broker.fetch("/v1/admin/audit", {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}x` },
    });
    expect(wrong.status).toBe(401);
  });

  it("nothing logged during exchanges, denials and explains contains the token, its signature or the issued credential", async () => {
    const lines: string[] = [];
    const capture = (...args: unknown[]) => {
      lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    };
    vi.spyOn(console, "log").mockImplementation(capture);
    vi.spyOn(console, "error").mockImplementation(capture);
    vi.spyOn(console, "warn").mockImplementation(capture);
    vi.spyOn(console, "info").mockImplementation(capture);
    const { broker, claimsFor, mintFor } = await setup();
    const t = await mintFor(claimsFor());
    const denied = await mintFor(claimsFor({ ref: "refs/heads/other" }));
    const res = await broker.exchange(t, { policy: "api-deploy" });
    const body = (await res.json()) as {
      lease: { run: string; revoke_token: string };
      credentials: { token: { token: string } };
    };
    await broker.exchange(t, { policy: "api-deploy" });
    await broker.exchange(denied, { policy: "api-deploy" });
    await broker.explain(denied, { policy: "api-deploy" });
    await ship(body.lease.run);
    const logged = lines.join("\n");
    expect(logged).toContain("runpass.audit");
    const secrets = [
      ...t.split("."),
      ...denied.split("."),
      ...body.credentials.token.token.split("."),
      body.lease.revoke_token,
    ];
    for (const s of secrets) expect(logged).not.toContain(s);
  });
});
