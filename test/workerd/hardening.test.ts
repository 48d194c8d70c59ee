// Hardening (docs/security.md): scoped webhook secrets, linear-time bearer parsing, MAC'd lease ids, shared
// egress addresses, bounded renewal, no enumeration through /oauth/token, complete emergency revocation,
// webhook HMAC over the raw bytes.

import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { deriveWebhookSecret } from "../../src/core/webhook-scope.ts";
import {
  BROKER_URL,
  githubPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  type TestBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { ACME, githubClaims, gitlabClaims, mint } from "../support/claims.ts";
import { gitlabPolicy } from "../support/policies.ts";
import { introspect, ledgerFor, movableClock } from "../support/run-ledger.ts";
import { GITHUB_SECRET, GITLAB_TOKEN, pipelineHook, signGitHub, workflowRun } from "../support/webhooks.ts";

const WEBHOOK_ENV = { GITHUB_WEBHOOK_SECRET: GITHUB_SECRET, GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN };

interface Exchanged {
  lease: { id: string; run: string; expires_at: string; revoke_token: string };
  credentials: { token: { token: string; expires_at: string } };
  error?: string;
}

async function setup(extraEnv: Partial<Cloudflare.Env> = {}) {
  const gh = uniqueIssuer();
  const gl = uniqueIssuer("gl");
  const time = movableClock();
  const fetches: string[] = [];
  // A policy and repository no other test (in any file) names, for revocation rules.
  const repoId = String(Math.floor(Math.random() * 9e8) + 1e8);
  const own = `own-${gh}`;
  const broker = await makeBroker({
    policies: {
      "api-deploy": githubPolicy(gh),
      "api-other": githubPolicy(gh),
      [own]: githubPolicy(gh).replace(ACME.repoId, repoId),
      "infra-apply": gitlabPolicy(gl),
    },
    issuers: issuersYaml(gh, `${gl}:gitlab`),
    env: { ...WEBHOOK_ENV, ...extraEnv },
    clock: time.clock,
    fetch: (input, init) => {
      fetches.push(input instanceof Request ? input.url : String(input));
      return fetch(input, init);
    },
  });
  const runId = Math.floor(Math.random() * 9e9) + 1e9;
  const token = (o: Record<string, unknown> = {}) =>
    mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, { run_id: String(runId), ...o }));
  const gitlabToken = (o: Record<string, unknown> = {}) =>
    mint(ISSUER_BASE, gl, gitlabClaims(`${ISSUER_BASE}/${gl}`, BROKER_URL, o));
  const exchange = async (t: string, policy = "api-deploy", ip?: string) => {
    const res = await broker.fetch("/v1/exchange", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${t}`,
        ...(ip ? { "cf-connecting-ip": ip } : {}),
      },
      body: JSON.stringify({ policy }),
    });
    return { status: res.status, body: (await res.json()) as Exchanged };
  };
  return { gh, gl, broker, runId, token, gitlabToken, exchange, time, fetches, own, repoId };
}

async function audit(broker: TestBroker, query: Record<string, string>) {
  const res = await broker.admin(`/v1/admin/audit?${new URLSearchParams({ limit: "1000", ...query })}`);
  return ((await res.json()) as { records: Array<Record<string, unknown>> }).records;
}

async function postGitHub(broker: TestBroker, path: string, body: Uint8Array | string, secret: string) {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, bytes));
  const signature = `sha256=${[...mac].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  return broker.fetch(path, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": "workflow_run",
      "x-github-delivery": crypto.randomUUID(),
      "x-hub-signature-256": signature,
    },
    body: bytes,
  });
}

function postGitLab(broker: TestBroker, path: string, payload: unknown, token: string) {
  return broker.fetch(path, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-gitlab-event": "Pipeline Hook",
      "idempotency-key": crypto.randomUUID(),
      "x-gitlab-token": token,
    },
    body: JSON.stringify(payload),
  });
}

/** A completed workflow_run for ACME's repository and `runId`, naming `ownerId` as the repository's owner. */
function completedRun(runId: number, ownerId = Number(ACME.ownerId), repositoryId = Number(ACME.repoId)) {
  const payload = workflowRun({ repositoryId, runId });
  (payload.repository as { owner: { id: number } }).owner.id = ownerId;
  return JSON.stringify(payload);
}

/**
 * Limits count in fixed one-minute windows on the Worker's clock: move it just past the start of a window, so a
 * test's requests all fall in one (the clock stays within the tokens' skew of real time).
 */
function atWindowStart(time: { clock: () => number; advance: (ms: number) => number }): void {
  time.advance(60_000 - (time.clock() % 60_000) + 500);
}

describe("webhooks are scoped", () => {
  it("an owner-scoped secret ends its own owner's run, and nothing of another owner's", async () => {
    const s = await setup();
    const got = await s.exchange(await s.token());
    expect(got.status).toBe(200);
    const ownSecret = await deriveWebhookSecret(GITHUB_SECRET, { kind: "github-owner", id: ACME.ownerId });
    const otherSecret = await deriveWebhookSecret(GITHUB_SECRET, { kind: "github-owner", id: "999001" });
    const path = `/v1/webhooks/github/${s.gh}`;

    // The other owner's secret, naming ACME's run: the payload is outside its scope → 401.
    expect((await postGitHub(s.broker, path, completedRun(s.runId), otherSecret)).status).toBe(401);
    // The other owner's secret, with a payload that lies about the owner: inside its scope on paper, but the
    // run's verified claims are ACME's → a 2xx no-op.
    const lying = await postGitHub(s.broker, path, completedRun(s.runId, 999001), otherSecret);
    expect(lying.status).toBe(200);
    expect(await lying.json()).toEqual({ result: "ignored" });
    expect(await introspect(s.broker, got.body.credentials.token.token)).toMatchObject({ active: true });
    expect((await s.exchange(await s.token())).status).toBe(200);

    // ACME's own secret ends it.
    const own = await postGitHub(s.broker, path, completedRun(s.runId), ownSecret);
    expect(own.status).toBe(202);
    expect(await own.json()).toMatchObject({ result: "run_ended", run: got.body.lease.run });
    expect(await introspect(s.broker, got.body.credentials.token.token)).toEqual({ active: false });
    const records = await audit(s.broker, { event: "webhook", run: got.body.lease.run });
    expect(records.some((r) => (r.reasons as Array<{ code: string }>)[0]?.code === "out_of_scope")).toBe(
      true,
    );
  });

  it("a repository-scoped secret cannot end another repository's run, and cannot pre-end a run with no exchange", async () => {
    const s = await setup();
    const path = `/v1/webhooks/github/${s.gh}`;
    const otherRepo = await deriveWebhookSecret(GITHUB_SECRET, {
      kind: "github-repository",
      id: "777000777",
    });
    // Named honestly (another repository id): the run key is another run, with no verified claims → no-op.
    const future = await postGitHub(s.broker, path, completedRun(s.runId, 999001, 777000777), otherRepo);
    expect(await future.json()).toEqual({ result: "ignored" });
    // Naming ACME's repository with another repository's secret: outside its scope → 401.
    expect((await postGitHub(s.broker, path, completedRun(s.runId), otherRepo)).status).toBe(401);
    // A secret of ACME's own repository on a run that has not exchanged yet: nothing proves the run is in
    // scope, so nothing ends; the run's later exchange still works.
    const ownRepo = await deriveWebhookSecret(GITHUB_SECRET, { kind: "github-repository", id: ACME.repoId });
    const early = await postGitHub(s.broker, path, completedRun(s.runId), ownRepo);
    expect(await early.json()).toEqual({ result: "ignored" });
    expect((await s.exchange(await s.token())).status).toBe(200);
    expect((await postGitHub(s.broker, path, completedRun(s.runId), ownRepo)).status).toBe(202);
  });

  it("GitLab: a project token is refused for another project's payload; a namespace token ends only its namespace's runs", async () => {
    const s = await setup();
    const path = `/v1/webhooks/gitlab/${s.gl}`;
    const pipelineId = Math.floor(Math.random() * 9e6) + 1e6;
    const got = await s.exchange(await s.gitlabToken({ pipeline_id: String(pipelineId) }), "infra-apply");
    expect(got.status).toBe(200);
    const hook = pipelineHook(20, pipelineId, "success");
    const otherProject = await deriveWebhookSecret(GITLAB_TOKEN, { kind: "gitlab-project", id: "21" });
    expect((await postGitLab(s.broker, path, hook, otherProject)).status).toBe(401);
    const otherNamespace = await deriveWebhookSecret(GITLAB_TOKEN, { kind: "gitlab-namespace", id: "73" });
    const ignored = await postGitLab(s.broker, path, hook, otherNamespace);
    expect(ignored.status).toBe(200);
    expect(await introspect(s.broker, got.body.credentials.token.token)).toMatchObject({ active: true });
    // A GitHub-kind derived secret is no GitLab token, and a tampered one is nothing at all.
    const wrongKind = await deriveWebhookSecret(GITLAB_TOKEN, { kind: "github-owner", id: "72" });
    expect((await postGitLab(s.broker, path, hook, wrongKind)).status).toBe(401);
    const own = await deriveWebhookSecret(GITLAB_TOKEN, { kind: "gitlab-namespace", id: "72" });
    expect((await postGitLab(s.broker, path, hook, `${own.slice(0, -2)}AA`)).status).toBe(401);
    expect((await postGitLab(s.broker, path, hook, own)).status).toBe(202);
    expect(await introspect(s.broker, got.body.credentials.token.token)).toEqual({ active: false });
  });

  it("a body that is not JSON under a signature no secret made is 401, not 400", async () => {
    const s = await setup();
    const res = await postGitHub(s.broker, `/v1/webhooks/github/${s.gh}`, "not json", "not-the-secret");
    expect(res.status).toBe(401);
  });

  it("the master secret still ends any run", async () => {
    const s = await setup();
    const got = await s.exchange(await s.token());
    const res = await postGitHub(
      s.broker,
      `/v1/webhooks/github/${s.gh}`,
      completedRun(s.runId),
      GITHUB_SECRET,
    );
    expect(res.status).toBe(202);
    expect(await introspect(s.broker, got.body.credentials.token.token)).toEqual({ active: false });
  });

  it("the HMAC covers the raw bytes, a leading BOM included", async () => {
    const s = await setup();
    const got = await s.exchange(await s.token());
    const json = new TextEncoder().encode(completedRun(s.runId));
    const withBom = new Uint8Array([0xef, 0xbb, 0xbf, ...json]);
    const path = `/v1/webhooks/github/${s.gh}`;
    // Signed over the bytes without the BOM, sent with it: not what was signed.
    const stripped = await signGitHub(new TextDecoder().decode(json));
    const mismatch = await s.broker.fetch(path, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-github-event": "workflow_run",
        "x-github-delivery": crypto.randomUUID(),
        "x-hub-signature-256": stripped,
      },
      body: withBom,
    });
    expect(mismatch.status).toBe(401);
    const res = await postGitHub(s.broker, path, withBom, GITHUB_SECRET);
    expect(res.status).toBe(202);
    expect(await introspect(s.broker, got.body.credentials.token.token)).toEqual({ active: false });
  });
});

describe("cheap rejections stay cheap", () => {
  it("an Authorization header of 64 KB of spaces is refused on every route that reads a bearer", async () => {
    const s = await setup({ RUNPASS_RATE_LIMITS: JSON.stringify({ failures: "off" }) });
    const header = `Bearer${" ".repeat(64_000)}x y`;
    const lease = (await s.exchange(await s.token())).body.lease;
    const routes: Array<[string, string]> = [
      ["POST", "/v1/exchange"],
      ["POST", "/v1/explain"],
      ["DELETE", `/v1/leases/${lease.id}`],
      ["POST", `/v1/leases/${lease.id}/renew`],
      ["GET", "/v1/admin/leases"],
    ];
    for (const [method, path] of routes) {
      const res = await s.broker.fetch(path, {
        method,
        headers: { authorization: header, "content-type": "application/json" },
        ...(method === "POST" ? { body: JSON.stringify({ policy: "api-deploy" }) } : {}),
      });
      expect([401, 404, 413], `${method} ${path}`).toContain(res.status);
      await res.body?.cancel();
    }
  });
});

describe("forged lease ids touch nothing", () => {
  it("an altered, forged or MAC-less lease id is 404 on DELETE and renew, and counts against the failure limit", async () => {
    const s = await setup({ RUNPASS_RATE_LIMITS: JSON.stringify({ failures: "4/1m" }) });
    atWindowStart(s.time);
    const got = (await s.exchange(await s.token())).body;
    const { id, revoke_token: revokeToken } = got.lease;
    const [prefix, random, mac] = id.split(".") as [string, string, string];
    const otherRun = `lse_${btoa("github:x:1:2:1").replace(/=+$/, "")}`;
    const forged = [
      `${prefix}.${random}`, // minted before ids carried a MAC: refused
      `${prefix}.${random}.${"A".repeat(22)}`, // a MAC that is not this deployment's
      `${otherRun}.${random}.${mac}`, // another run key under this lease's MAC
    ];
    const statuses: number[] = [];
    for (const [i, lease] of forged.entries()) {
      const res = await s.broker.fetch(`/v1/leases/${lease}${i === 1 ? "/renew" : ""}`, {
        method: i === 1 ? "POST" : "DELETE",
        headers: { authorization: `Bearer ${revokeToken}`, "cf-connecting-ip": "198.51.100.40" },
      });
      statuses.push(res.status);
      await res.body?.cancel();
    }
    expect(statuses).toEqual([404, 404, 404]);
    // The real lease is untouched.
    expect(await introspect(s.broker, got.credentials.token.token)).toMatchObject({ active: true });
    const records = await audit(s.broker, { event: "lease_delete", decision: "deny" });
    expect(
      records.filter((r) => (r.reasons as Array<{ code: string }>)[0]?.code === "lease_id_invalid"),
    ).toHaveLength(2);
    expect(records.some((r) => r.run !== undefined && forged.includes(String(r.lease_id)))).toBe(false);

    // Failures count: the fourth puts the address at its limit, the fifth is 429.
    const more = await s.broker.fetch(`/v1/leases/${forged[0]}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${revokeToken}`, "cf-connecting-ip": "198.51.100.40" },
    });
    expect(more.status).toBe(404);
    const limited = await s.broker.fetch(`/v1/leases/${forged[0]}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${revokeToken}`, "cf-connecting-ip": "198.51.100.40" },
    });
    expect(limited.status).toBe(429);
    // …while the real id with its revoke token still works from that address.
    const real = await s.broker.fetch(`/v1/leases/${id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${revokeToken}`, "cf-connecting-ip": "198.51.100.40" },
    });
    expect(real.status).toBe(204);
  });
});

describe("a flood from a shared address does not lock out honest jobs", () => {
  it("after 61 garbage tokens from one address, a valid token from it gets 200; garbage gets 429 with no record and no key fetch", async () => {
    const s = await setup();
    atWindowStart(s.time);
    expect((await s.exchange(await s.token(), "api-deploy", "10.9.9.9")).status).toBe(200); // warm keys
    s.fetches.length = 0;
    const [h, p] = (await s.token()).split(".");
    const statuses: number[] = [];
    for (let i = 0; i < 61; i++) {
      const junk = i % 2 === 0 ? `${h}.${p}.AAAA` : "garbage";
      statuses.push((await s.exchange(junk, "api-deploy", "192.0.2.61")).status);
    }
    expect(statuses.slice(0, 60).every((x) => x === 401)).toBe(true);
    expect(statuses[60]).toBe(429);
    const valid = await s.exchange(
      await s.token({ run_id: String(s.runId + 1) }),
      "api-deploy",
      "192.0.2.61",
    );
    expect(valid.status).toBe(200);
    // A token with an unknown kid from the blocked address: 429, and still no fetch of the issuer's keys.
    const header = btoa(JSON.stringify({ alg: "RS256", kid: "never-published", typ: "JWT" })).replace(
      /=+$/,
      "",
    );
    expect((await s.exchange(`${header}.${p}.AAAA`, "api-deploy", "192.0.2.61")).status).toBe(429);
    expect(s.fetches).toEqual([]);
  });
});

describe("renewal is bounded", () => {
  it("one renewal per half the shortest credential lifetime; the rest get 429 with Retry-After; each is audited", async () => {
    const s = await setup();
    const got = (await s.exchange(await s.token())).body;
    const renew = () =>
      s.broker.fetch(`/v1/leases/${got.lease.id}/renew`, {
        method: "POST",
        headers: { authorization: `Bearer ${got.lease.revoke_token}` },
      });
    // The token grant lives 10 min: the next renewal is due 5 min after issuance.
    const early = await renew();
    expect(early.status).toBe(429);
    expect(Number(early.headers.get("retry-after"))).toBeGreaterThan(200);
    expect(Number(early.headers.get("retry-after"))).toBeLessThanOrEqual(300);
    s.time.advance(5 * 60_000 + 1000);
    // Two at once: exactly one is served.
    const pair = await Promise.all([renew(), renew()]);
    expect(pair.map((r) => r.status).sort()).toEqual([200, 429]);
    await Promise.all(pair.map((r) => r.body?.cancel()));
    await runDurableObjectAlarm(ledgerFor(got.lease.run));
    const records = await audit(s.broker, { event: "renew", lease_id: got.lease.id });
    expect(records.filter((r) => r.decision === "allow")).toHaveLength(1);
    expect(records.filter((r) => r.error === "rate_limited")).toHaveLength(2);
  });
});

describe("no enumeration through /oauth/token", () => {
  const form = (subject: string, scope: string, audience?: string) =>
    new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: subject,
      subject_token_type: "urn:ietf:params:oauth:token-type:id_token",
      scope,
      ...(audience !== undefined ? { audience } : {}),
    }).toString();
  const post = (broker: TestBroker, body: string) =>
    broker.fetch("/oauth/token", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body,
    });

  it("with a garbage token every scope and audience gets the same invalid_request; audience is judged after verification", async () => {
    const s = await setup({ RUNPASS_RATE_LIMITS: JSON.stringify({ failures: "off" }) });
    const answers = new Set<string>();
    for (const [scope, audience] of [
      ["api-deploy", "https://deploy.acme.dev"],
      ["api-deploy", "https://elsewhere.example"],
      ["no-such-policy", "https://deploy.acme.dev"],
      ["no-such-policy", undefined],
    ] as const) {
      const res = await post(s.broker, form("not.a.token", scope, audience));
      const body = (await res.json()) as Record<string, unknown>;
      answers.add(JSON.stringify([res.status, body.error, body.error_description]));
    }
    expect(answers.size).toBe(1);
    expect(JSON.parse([...answers][0] as string).slice(0, 2)).toEqual([400, "invalid_request"]);

    // A token that verifies and matches: a wrong audience is invalid_target, the right one is served.
    const wrong = await post(s.broker, form(await s.token(), "api-deploy", "https://elsewhere.example"));
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { error: string }).error).toBe("invalid_target");
    const right = await post(
      s.broker,
      form(await s.token({ run_id: String(s.runId + 7) }), "api-deploy", "https://deploy.acme.dev"),
    );
    expect(right.status).toBe(200);
  });
});

describe("emergency revoke is complete", () => {
  /**
   * A lease the lease index has not seen yet, as between the exchange and its outbox shipment: exchanged and
   * settled, then taken out of the index and marked as not yet confirmed by its run's object.
   */
  async function unindexedLease(s: Awaited<ReturnType<typeof setup>>) {
    const got = (await s.exchange(await s.token({ repository_id: s.repoId }), s.own)).body;
    await runDurableObjectAlarm(ledgerFor(got.lease.run));
    await runInDurableObject(ledgerFor(got.lease.run), (_instance, state) => {
      state.storage.sql.exec("UPDATE leases SET rules_checked = 0");
    });
    await env.AUDIT_DB.prepare("DELETE FROM lease_index WHERE lease_id = ?").bind(got.lease.id).run();
    return got;
  }

  const revoke = (broker: TestBroker, body: Record<string, string>) =>
    broker.admin("/v1/admin/revoke", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  it("revoking by policy ends a lease the index does not show yet: introspection says inactive right away", async () => {
    const s = await setup();
    const got = await unindexedLease(s);
    const res = await revoke(s.broker, { policy: s.own });
    expect(((await res.json()) as { ended_leases: number }).ended_leases).toBe(0);
    expect(await introspect(s.broker, got.credentials.token.token)).toEqual({ active: false });
    const [lease] = (await ledgerFor(got.lease.run).leases()) as Array<{ end_reason: string }>;
    expect(lease?.end_reason).toBe("admin_revoke");
  });

  it("revoking by repository reaches the lease at its run's next alarm; leases issued after the revoke are untouched", async () => {
    const s = await setup();
    const got = await unindexedLease(s);
    await revoke(s.broker, { repository_id: s.repoId });
    s.time.advance(1000);
    const later = (
      await s.exchange(await s.token({ run_id: String(s.runId + 1), repository_id: s.repoId }), s.own)
    ).body;
    // The run object's next alarm (the one that would have shipped the lease) applies the rule.
    await runInDurableObject(ledgerFor(got.lease.run), (_instance, state) =>
      state.storage.setAlarm(Date.now()),
    );
    await runDurableObjectAlarm(ledgerFor(got.lease.run));
    const [lease] = (await ledgerFor(got.lease.run).leases()) as Array<{ ended_at: number | null }>;
    expect(lease?.ended_at).not.toBeNull();
    expect(await introspect(s.broker, later.credentials.token.token)).toMatchObject({ active: true });
  });

  it("renewal of such a lease is refused", async () => {
    const s = await setup();
    const got = await unindexedLease(s);
    await revoke(s.broker, { issuer: s.gh });
    s.time.advance(5 * 60_000 + 1000);
    const res = await s.broker.fetch(`/v1/leases/${got.lease.id}/renew`, {
      method: "POST",
      headers: { authorization: `Bearer ${got.lease.revoke_token}` },
    });
    expect(res.status).toBe(403);
  });
});

describe("every failure limit spares honest callers", () => {
  it("failed admin logins are limited per address and audited in aggregate; the right token still gets in", async () => {
    const s = await setup({ RUNPASS_RATE_LIMITS: JSON.stringify({ failures: "3/1m" }) });
    atWindowStart(s.time);
    const ip = "203.0.113.99";
    const tryAdmin = (token: string) =>
      s.broker.fetch("/v1/admin/leases", {
        headers: { authorization: `Bearer ${token}`, "cf-connecting-ip": ip },
      });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await tryAdmin(`guess-${i}-0123456789abcdef`)).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429, 429, 429, 429]);
    expect((await tryAdmin(env.RUNPASS_ADMIN_TOKEN as string)).status).toBe(200);
    const denied = (await audit(s.broker, { event: "admin", decision: "deny" })).filter((r) =>
      String(r.detail).includes("/v1/admin/leases"),
    );
    expect(denied.length).toBeGreaterThanOrEqual(3);
    // The window rolls: the next failure is decided again and the limiter writes one record for the five.
    s.time.advance(60_000);
    expect((await tryAdmin("guess-again-0123456789abcdef")).status).toBe(401);
    const aggregate = (await audit(s.broker, { event: "rate_limit" })).filter((r) =>
      String(r.detail).startsWith("failures limit (3 per 60 s)"),
    );
    expect(aggregate.some((r) => r.count === 5)).toBe(true);
  });
});
