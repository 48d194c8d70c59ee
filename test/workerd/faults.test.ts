// Fault injection through the Worker: an issuer that is down, slow or answers junk; key rotation; STS and the
// GitHub API failing; a run ledger that cannot commit after credentials were minted; a webhook storm beside
// live exchanges; and clock skew exactly at the boundaries. Time is injected, so hours pass in milliseconds.

import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  CLOCK_SKEW_SECONDS,
  DEFAULT_MAX_TOKEN_AGE_SECONDS,
  JWKS_FAILURE_BACKOFF_MS,
  JWKS_FETCH_TIMEOUT_MS,
  JWKS_FRESH_MS,
  JWKS_STALE_WINDOW_MS,
  JWKS_UNKNOWN_KID_COOLDOWN_MS,
} from "../../src/core/constants.ts";
import {
  BROKER_URL,
  githubPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  type TestBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { ACME, control, githubClaims, mint } from "../support/claims.ts";
import type { StsRecord } from "../support/fake-sts.ts";
import { GH_API, GITHUB_ENV, STATIC_AWS_ENV, STS } from "../support/upstream-env.ts";

/** An injected clock (ms) that only moves when a test moves it. */
class TestClock {
  now: number;
  constructor(start = Date.now()) {
    this.now = start;
  }
  readonly fn = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

interface Answer {
  status: number;
  headers: Headers;
  body: {
    error?: string;
    retryable?: boolean;
    reasons?: Array<{ code: string; claim?: string }>;
    credentials?: { github?: { token: string }; aws?: unknown; token?: unknown };
    lease?: { run: string; id: string };
  };
}

async function answer(res: Response): Promise<Answer> {
  return { status: res.status, headers: res.headers, body: (await res.json()) as Answer["body"] };
}

/** A 503 that tells the caller to come back, and carries nothing. */
function expectUnavailable(res: Answer): void {
  expect(res.status).toBe(503);
  expect(res.body.error).toBe("temporarily_unavailable");
  expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
  expect(res.body.credentials).toBeUndefined();
}

async function post(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: "POST", body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
}

function ledgerFor(run: string) {
  return env.RUN_LEDGER.get(env.RUN_LEDGER.idFromName(run));
}

afterEach(() => {
  vi.restoreAllMocks();
});

// ---------------------------------------------------------------------------------------------------------
// Issuer keys

/** A broker trusting one fresh test issuer (explicit jwks_uri or discovery), with an injected clock and a fetch log. */
async function issuerSetup(options: { clock: TestClock; jwksUri?: boolean }) {
  const gh = uniqueIssuer();
  const calls: string[] = [];
  const counting: typeof fetch = (input, init) => {
    calls.push(input instanceof Request ? input.url : String(input));
    return fetch(input, init);
  };
  const issuers = options.jwksUri
    ? `${gh}: { url: "${ISSUER_BASE}/${gh}", kind: github, jwks_uri: "${ISSUER_BASE}/${gh}/jwks" }`
    : issuersYaml(gh);
  const broker = await makeBroker({
    policies: { "api-deploy": githubPolicy(gh) },
    issuers,
    clock: options.clock.fn,
    fetch: counting,
    env: { RUNPASS_EXPLAIN: "full" },
  });
  const iss = `${ISSUER_BASE}/${gh}`;
  // Claims are minted relative to the injected clock, which also judges exp/iat.
  const token = (kid?: string) =>
    mint(ISSUER_BASE, gh, githubClaims(iss, BROKER_URL, {}, options.clock.now), kid ? { kid } : {});
  const exchange = async (t: string) => answer(await broker.exchange(t, { policy: "api-deploy" }));
  return { gh, broker, calls, token, exchange };
}

describe("issuer outages", () => {
  it("down at cold start: 503 with Retry-After and nothing cached, no refetch within the backoff, then the same broker recovers", async () => {
    const clock = new TestClock();
    const s = await issuerSetup({ clock });
    const t = await s.token();
    await control(ISSUER_BASE, s.gh, { mode: "down" });
    try {
      const first = await s.exchange(t);
      expectUnavailable(first);
      expect(first.body.reasons).toEqual([{ code: "keys_unavailable" }]);
      const attempted = s.calls.length;
      expect(attempted).toBe(1); // the discovery document, which failed

      // Within the failure backoff the broker answers from memory instead of hammering the issuer.
      clock.advance(JWKS_FAILURE_BACKOFF_MS - 1000);
      expectUnavailable(await s.exchange(t));
      expect(s.calls.length).toBe(attempted);

      await control(ISSUER_BASE, s.gh, { mode: "ok" });
      clock.advance(1000);
      // Nothing bad was cached and the token was not consumed by the failures.
      expect((await s.exchange(t)).status).toBe(200);
      expect(s.calls.slice(attempted).map((u) => new URL(u).pathname)).toEqual([
        `/${s.gh}/.well-known/openid-configuration`,
        `/${s.gh}/jwks`,
      ]);
    } finally {
      await control(ISSUER_BASE, s.gh, { mode: "ok" });
    }
  });

  it("down after warm-up: cached keys keep verifying through the stale window, and 503 once it is over", async () => {
    const clock = new TestClock();
    const s = await issuerSetup({ clock });
    const warmedAt = clock.now;
    expect((await s.exchange(await s.token())).status).toBe(200);
    await control(ISSUER_BASE, s.gh, { mode: "down" });
    try {
      // Past freshness: the refetch fails, the stale keys serve.
      clock.now = warmedAt + JWKS_FRESH_MS + 1000;
      expect((await s.exchange(await s.token())).status).toBe(200);
      // The last second of the stale window.
      clock.now = warmedAt + JWKS_FRESH_MS + JWKS_STALE_WINDOW_MS - 1000;
      expect((await s.exchange(await s.token())).status).toBe(200);
      // The window is over: a perfectly good token gets 503, not a verification against keys of unknown age.
      clock.now = warmedAt + JWKS_FRESH_MS + JWKS_STALE_WINDOW_MS;
      const t = await s.token();
      const late = await s.exchange(t);
      expectUnavailable(late);
      expect(late.body.reasons).toEqual([{ code: "keys_unavailable" }]);

      await control(ISSUER_BASE, s.gh, { mode: "ok" });
      clock.advance(JWKS_FAILURE_BACKOFF_MS);
      expect((await s.exchange(t)).status).toBe(200);
    } finally {
      await control(ISSUER_BASE, s.gh, { mode: "ok" });
    }
  });
});

describe("bad issuer answers are 503 and never cached", () => {
  const cases: Array<{ mode: string; jwksUri: boolean }> = [
    ...["slow", "html", "redirect", "wrong-issuer", "empty", "junk", "huge"].map((mode) => ({
      mode,
      jwksUri: false,
    })),
    ...["slow", "html", "redirect"].map((mode) => ({ mode, jwksUri: true })),
  ];

  it.each(cases)("$mode (explicit jwks_uri: $jwksUri)", async ({ mode, jwksUri }) => {
    const clock = new TestClock();
    const s = await issuerSetup({ clock, jwksUri });
    const t = await s.token();
    await control(ISSUER_BASE, s.gh, { mode });
    try {
      const started = Date.now();
      const res = await s.exchange(t);
      expectUnavailable(res);
      expect(res.body.reasons).toEqual([{ code: "keys_unavailable" }]);
      // A slow issuer is cut off by the time cap, long before its 5 s answer.
      if (mode === "slow") expect(Date.now() - started).toBeLessThan(JWKS_FETCH_TIMEOUT_MS + 1500);
      // Redirects are not followed: the attacker's location is never fetched.
      expect(s.calls.filter((u) => u.includes("/attacker/"))).toEqual([]);

      await control(ISSUER_BASE, s.gh, { mode: "ok" });
      // Past the failure backoff but well inside the unknown-kid cooldown: had the bad answer (say, an empty
      // key set) been cached, this would be 401 unknown_key without a refetch. It verifies: nothing was cached.
      clock.advance(JWKS_FAILURE_BACKOFF_MS);
      expect(JWKS_FAILURE_BACKOFF_MS).toBeLessThan(JWKS_UNKNOWN_KID_COOLDOWN_MS);
      expect((await s.exchange(t)).status).toBe(200);
    } finally {
      await control(ISSUER_BASE, s.gh, { mode: "ok" });
    }
  });
});

describe("key rotation", () => {
  it("a token signed with a newly rotated kid verifies after the unknown-kid cooldown (one refetch); the old kid keeps working", async () => {
    const clock = new TestClock();
    const s = await issuerSetup({ clock });
    expect((await s.exchange(await s.token())).status).toBe(200);
    const kids = await control(ISSUER_BASE, s.gh, { rotate: true });
    const [oldKid, newKid] = [kids[0] as string, kids[kids.length - 1] as string];
    expect(newKid).not.toBe(oldKid);
    const rotated = await s.token(newKid);

    clock.advance(1000);
    const before = s.calls.length;
    const early = await s.exchange(rotated);
    expect(early.status).toBe(401);
    expect(early.body.reasons).toEqual([{ code: "unknown_key" }]);
    expect(s.calls.length).toBe(before); // inside the cooldown: no refetch for an unknown kid
    expect((await s.exchange(await s.token(oldKid))).status).toBe(200);

    clock.advance(JWKS_UNKNOWN_KID_COOLDOWN_MS);
    // The same token (not consumed by its 401) now verifies after exactly one JWKS refetch.
    expect((await s.exchange(rotated)).status).toBe(200);
    expect(s.calls.slice(before).map((u) => new URL(u).pathname)).toEqual([`/${s.gh}/jwks`]);
    expect((await s.exchange(await s.token(newKid))).status).toBe(200);
    expect((await s.exchange(await s.token(oldKid))).status).toBe(200);
    expect(s.calls.length).toBe(before + 1);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Upstreams and storage

async function stsCalls(roleArn: string): Promise<StsRecord[]> {
  return (await (
    await fetch(`${STS}/__requests?roleArn=${encodeURIComponent(roleArn)}`)
  ).json()) as StsRecord[];
}

async function ghRecords(installationId: number) {
  return (await (await fetch(`${GH_API}/__records?installationId=${installationId}`)).json()) as {
    mints: Array<{ token: string }>;
    mintAttempts: number;
    revocations: string[];
    lookups: number;
  };
}

/** A policy with token, github and aws grants over a fresh issuer, role and installation. */
async function grantsSetup(envOverrides: Partial<Cloudflare.Env> = {}) {
  const gh = uniqueIssuer();
  const suffix = crypto.randomUUID().slice(0, 8);
  const roleArn = `arn:aws:iam::111111111111:role/faults-${suffix}`;
  const owner = `acme-${suffix}`;
  const installationId = Math.floor(Math.random() * 9e8) + 1e8;
  await post(`${GH_API}/__control/installation`, { owner, id: installationId });
  const policy = `issuer: ${gh}
allow:
  repository_owner_id: "${ACME.ownerId}"
  repository_id: "${ACME.repoId}"
ttl: 1h
grants:
  token: { audience: "https://deploy.acme.dev", ttl: 10m }
  github: { owner: ${owner}, repositories: [api], permissions: { contents: read } }
  aws: { role_arn: ${roleArn}, region: eu-west-1, duration: 30m }
`;
  const options = {
    policies: { deploy: policy },
    issuers: issuersYaml(gh),
    env: { ...GITHUB_ENV, ...STATIC_AWS_ENV, ...envOverrides },
  };
  const broker = await makeBroker(options);
  const runId = String(Math.floor(Math.random() * 9e9) + 1e9);
  const token = () =>
    mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, { run_id: runId }));
  const exchangeOn = async (b: TestBroker, t: string) => answer(await b.exchange(t, { policy: "deploy" }));
  return {
    gh,
    broker,
    roleArn,
    installationId,
    run: `github:${gh}:${ACME.repoId}:${runId}:1`,
    token,
    exchange: (t: string) => exchangeOn(broker, t),
    /** The same policies and upstreams over the real bindings (storage healthy again). */
    healthy: async () => {
      const b = await makeBroker({
        ...options,
        bundle: broker.bundle,
        env: { ...GITHUB_ENV, ...STATIC_AWS_ENV },
      });
      return (t: string) => exchangeOn(b, t);
    },
  };
}

describe("upstream outages", () => {
  it("STS unavailable (503): 502 retryable after three attempts, nothing returned, the GitHub token minted first revoked", async () => {
    const s = await grantsSetup();
    await post(`${STS}/__control/role`, { roleArn: s.roleArn, mode: "unavailable" });
    const t = await s.token();
    const res = await s.exchange(t);
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({ error: "upstream_error", retryable: true });
    expect(res.body.credentials).toBeUndefined();
    expect(JSON.stringify(res.body)).not.toMatch(/ServiceUnavailable|unable to handle|ghs_|ASIA/);
    expect((await stsCalls(s.roleArn)).map((c) => c.errorCode)).toEqual([
      "ServiceUnavailable",
      "ServiceUnavailable",
      "ServiceUnavailable",
    ]);
    const gh = await ghRecords(s.installationId);
    expect(gh.mints).toHaveLength(1);
    expect(gh.revocations).toEqual([gh.mints[0]?.token]);
    // The token was not consumed: once STS is back, the same token is exchanged.
    await post(`${STS}/__control/role`, { roleArn: s.roleArn, mode: "ok" });
    expect((await s.exchange(t)).status).toBe(200);
  });

  it("GitHub API 5xx: 502 retryable after three attempts, nothing minted, STS never called; the token stays usable", async () => {
    const s = await grantsSetup();
    await post(`${GH_API}/__control/rate-limit`, { installationId: s.installationId, mode: "fail" });
    const t = await s.token();
    const res = await s.exchange(t);
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({ error: "upstream_error", retryable: true });
    expect(res.body.credentials).toBeUndefined();
    expect(JSON.stringify(res.body)).not.toContain("Server Error");
    const gh = await ghRecords(s.installationId);
    expect(gh.lookups + gh.mintAttempts).toBe(3);
    expect(gh.mints).toEqual([]);
    expect(await stsCalls(s.roleArn)).toEqual([]);
    await post(`${GH_API}/__control/rate-limit`, { installationId: s.installationId, mode: "off" });
    expect((await s.exchange(t)).status).toBe(200);
    expect((await ghRecords(s.installationId)).mints).toHaveLength(1);
  });

  it("GitHub API 5xx twice, then fine: the exchange succeeds within the retry budget with one token minted", async () => {
    const s = await grantsSetup();
    await post(`${GH_API}/__control/rate-limit`, {
      installationId: s.installationId,
      mode: "fail",
      times: 2,
    });
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(200);
    const gh = await ghRecords(s.installationId);
    expect(gh.mints).toHaveLength(1);
    expect(res.body.credentials?.github?.token).toBe(gh.mints[0]?.token);
    expect(gh.revocations).toEqual([]);
  });
});

describe("storage errors in the run object", () => {
  it("a commit (the lease and its audit record, one transaction) failing after minting: 503, nothing issued, the GitHub token revoked, the denial audited", async () => {
    // The run object answers peeks but cannot write: the audit record and the lease share the failing commit.
    const failingCommit = {
      idFromName: (name: string) => env.RUN_LEDGER.idFromName(name),
      get: (id: DurableObjectId) => {
        const real = env.RUN_LEDGER.get(id);
        return {
          peek: (singleUse: string, deliverOnce?: string) => real.peek(singleUse, deliverOnce),
          commit: () => Promise.reject(new Error("SQLITE_FULL: database or disk is full")),
        };
      },
    } as unknown as Cloudflare.Env["RUN_LEDGER"];
    const s = await grantsSetup({ RUN_LEDGER: failingCommit });
    const t = await s.token();
    const res = await s.exchange(t);
    expectUnavailable(res);
    expect(JSON.stringify(res.body)).not.toMatch(/ghs_|ASIA|SQLITE/);

    // The GitHub token minted for this request was revoked upstream; the AWS session (not revocable) was minted.
    const gh = await ghRecords(s.installationId);
    expect(gh.mints).toHaveLength(1);
    expect(gh.revocations).toEqual([gh.mints[0]?.token]);
    expect((await stsCalls(s.roleArn)).filter((c) => c.status === 200)).toHaveLength(1);
    // Nothing reached the run's storage.
    expect(await ledgerFor(s.run).leases()).toEqual([]);

    // The denial is audited (from the Worker, since the run object cannot write) with what was recalled.
    const audit = (await (
      await s.broker.admin(`/v1/admin/audit?run=${encodeURIComponent(s.run)}`)
    ).json()) as { records: Array<{ decision: string; error?: string; detail?: string }> };
    expect(audit.records).toHaveLength(1);
    expect(audit.records[0]).toMatchObject({ decision: "deny", error: "temporarily_unavailable" });
    expect(audit.records[0]?.detail).toMatch(/GitHub token revoked/);
    expect(audit.records[0]?.detail).toMatch(/AWS session was minted/);

    // The token was not consumed: with storage back, the same token is exchanged.
    const exchange = await s.healthy();
    const again = await exchange(t);
    expect(again.status).toBe(200);
    expect(await ledgerFor(s.run).leases()).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Webhook storm

// Built here rather than from test/support/webhooks.ts: that module loads @octokit/webhooks-examples (4 MB of
// JSON); with it imported here as well as in lifecycle.test.ts, full workerd runs intermittently lost the
// lifecycle worker to a WebSocket 1009 "Message is too large". The storm's 500 run-ending deliveries (with
// redeliveries) stay under the default webhook limit of 600 per installation per minute.
const WEBHOOK_SECRET = "faults-webhook-secret";
const INSTALLATION_ID = 4_242_001;

/** A `workflow_run` delivery body shaped like GitHub's (the fields runpass reads, and some it ignores). */
function workflowRunBody(repositoryId: number, runId: number, action: string, status: string): string {
  const at = "2026-11-23T13:44:58Z";
  return JSON.stringify({
    action,
    workflow_run: {
      id: runId,
      name: "deploy",
      node_id: `WFR_${runId}`,
      head_branch: "main",
      head_sha: "ec022c5d3b2b83dee1fd044aeff40586c373eabe",
      path: ".github/workflows/deploy.yml",
      run_number: 42,
      run_attempt: 1,
      event: "push",
      status,
      conclusion: status === "completed" ? "success" : null,
      workflow_id: 161335,
      html_url: `https://github.com/acme/api/actions/runs/${runId}`,
      created_at: at,
      updated_at: at,
      run_started_at: at,
    },
    workflow: { id: 161335, name: "deploy", path: ".github/workflows/deploy.yml", state: "active" },
    repository: {
      id: repositoryId,
      node_id: `R_${repositoryId}`,
      name: "api",
      full_name: "acme/api",
      private: true,
      owner: { login: "acme", id: Number(ACME.ownerId), type: "Organization" },
    },
    organization: { login: "acme", id: Number(ACME.ownerId) },
    sender: { login: "octocat", id: 583231, type: "User" },
    installation: { id: INSTALLATION_ID, node_id: "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0MjAwMQ==" },
  });
}

/** `sha256=<hex>` HMAC over exactly `body`, as GitHub signs deliveries. */
async function signWebhook(body: string): Promise<string> {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey(
    "raw",
    enc.encode(WEBHOOK_SECRET),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(body)));
  return `sha256=${Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

describe("a webhook storm beside live exchanges", () => {
  it("1,000 signed workflow_run deliveries for 250 unrelated runs (with redeliveries) and 50 exchanges: all exchanges succeed, every webhook is 2xx", async () => {
    // Every delivery and decision is logged; keep the test output readable.
    vi.spyOn(console, "log").mockImplementation(() => undefined);
    const gh = uniqueIssuer();
    const broker = await makeBroker({
      policies: { "api-deploy": githubPolicy(gh) },
      issuers: issuersYaml(gh),
      env: { GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET },
    });
    const iss = `${ISSUER_BASE}/${gh}`;
    // Our runs have ids ≥ 1e9 (githubClaims); the storm's runs are below, so none of them is ours.
    const tokens = await Promise.all(
      Array.from({ length: 50 }, () => mint(ISSUER_BASE, gh, githubClaims(iss, BROKER_URL))),
    );

    interface Delivery {
      id: string;
      body: string;
      signature: string;
      expect: "run_ended" | "ignored" | "duplicate";
    }
    // 250 unrelated runs, each seen as GitHub sends it: requested, completed, a `completed` delivery whose run
    // is still queued (ignored), and a redelivery of the completed one (same delivery id) right behind it.
    const deliveries: Delivery[] = [];
    for (let r = 0; r < 250; r++) {
      const repositoryId = r % 3 === 0 ? 900_000_000 + r : Number(ACME.repoId);
      const runId = 5_000_000 + r;
      const signed = async (
        action: string,
        status: string,
        expected: Delivery["expect"],
      ): Promise<Delivery> => {
        const body = workflowRunBody(repositoryId, runId, action, status);
        return { id: crypto.randomUUID(), body, signature: await signWebhook(body), expect: expected };
      };
      const completed = await signed("completed", "completed", "run_ended");
      deliveries.push(
        await signed("requested", "queued", "ignored"),
        completed,
        await signed("completed", "queued", "ignored"),
        { ...completed, expect: "duplicate" },
      );
    }
    const sendWebhook = (d: Delivery) =>
      broker.fetch(`/v1/webhooks/github/${gh}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-github-event": "workflow_run",
          "x-github-delivery": d.id,
          "x-hub-signature-256": d.signature,
          "user-agent": "GitHub-Hookshot/test",
        },
        body: d.body,
      });

    const webhookResults: Array<{ status: number; result: string }> = [];
    const exchangeResults: Answer[] = [];
    const batch = 50;
    let nextToken = 0;
    for (let b = 0; b < deliveries.length / batch; b++) {
      const mine = tokens.slice(nextToken, nextToken + (b < 10 ? 3 : 2));
      nextToken += mine.length;
      const [hooks, exchanges] = await Promise.all([
        Promise.all(
          deliveries.slice(b * batch, (b + 1) * batch).map(async (d) => {
            const res = await sendWebhook(d);
            return { status: res.status, result: ((await res.json()) as { result?: string }).result ?? "" };
          }),
        ),
        Promise.all(mine.map(async (t) => answer(await broker.exchange(t, { policy: "api-deploy" })))),
      ]);
      webhookResults.push(...hooks);
      exchangeResults.push(...exchanges);
    }

    expect(nextToken).toBe(50);
    expect(exchangeResults.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect(webhookResults).toHaveLength(1000);
    expect(webhookResults.filter((r) => r.status < 200 || r.status >= 300)).toEqual([]);
    const tally = (result: string) => webhookResults.filter((r) => r.result === result).length;
    // Each distinct delivery ends its run exactly once, whichever copy arrived first.
    expect(tally("run_ended")).toBe(250);
    expect(tally("duplicate")).toBe(250);
    expect(tally("ignored")).toBe(500);
    expect(webhookResults.filter((r) => r.result === "run_ended").every((r) => r.status === 202)).toBe(true);
    deliveries.forEach((d, i) => {
      const got = webhookResults[i]?.result;
      if (d.expect === "ignored") expect(got).toBe("ignored");
      // An original and its redelivery: exactly one ends the run, whichever arrived first.
      if (d.expect === "run_ended")
        expect([got, webhookResults[i + 2]?.result].sort()).toEqual(["duplicate", "run_ended"]);
    });

    // None of our runs was touched; some of the storm's runs are ended.
    for (const r of exchangeResults) expect(await ledgerFor(r.body.lease?.run as string).ended()).toBe(false);
    expect(await ledgerFor(`github:${gh}:${ACME.repoId}:5000001:1`).ended()).toBe(true);
    expect(await ledgerFor(`github:${gh}:900000000:5000000:1`).ended()).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Clock skew

describe("clock skew at the boundaries, through POST /v1/exchange", () => {
  /** A broker whose clock stands still at a whole second; times are given relative to it, in seconds. */
  async function skewSetup() {
    const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000);
    const s = await issuerSetup({ clock });
    const now = clock.now / 1000;
    const iss = `${ISSUER_BASE}/${s.gh}`;
    const at = async (times: { iat: number; nbf?: number; exp?: number }) => {
      const iat = now + times.iat;
      const claims = githubClaims(iss, BROKER_URL, {
        iat,
        nbf: now + (times.nbf ?? times.iat),
        exp: times.exp !== undefined ? now + times.exp : iat + 300,
      });
      return s.exchange(await mint(ISSUER_BASE, s.gh, claims));
    };
    // Warm the key cache so every case below is decided by time alone.
    expect((await at({ iat: 0 })).status).toBe(200);
    return at;
  }

  it("iat exactly 60 s in the future is accepted; 61 s is refused as not yet valid", async () => {
    const at = await skewSetup();
    expect((await at({ iat: CLOCK_SKEW_SECONDS })).status).toBe(200);
    const late = await at({ iat: CLOCK_SKEW_SECONDS + 1, nbf: 0 });
    expect(late.status).toBe(401);
    expect(late.body.reasons).toEqual([{ code: "not_yet_valid", claim: "iat" }]);
  });

  it("nbf exactly 60 s in the future is accepted; 61 s is refused as not yet valid", async () => {
    const at = await skewSetup();
    expect((await at({ iat: 0, nbf: CLOCK_SKEW_SECONDS })).status).toBe(200);
    const late = await at({ iat: 0, nbf: CLOCK_SKEW_SECONDS + 1 });
    expect(late.status).toBe(401);
    expect(late.body.reasons).toEqual([{ code: "not_yet_valid", claim: "nbf" }]);
  });

  it("exp 59 s in the past is accepted; exactly 60 s and 61 s in the past are refused as expired", async () => {
    // exp is exclusive (RFC 7519 §4.1.4: valid only *before* exp). With 60 s of skew, a token whose exp is
    // exactly 60 s ago was already expired on a clock 60 s behind ours; src/core/oidc/verify.ts and
    // test/unit/verify.test.ts agree.
    const at = await skewSetup();
    expect((await at({ iat: -300, exp: -(CLOCK_SKEW_SECONDS - 1) })).status).toBe(200);
    for (const past of [CLOCK_SKEW_SECONDS, CLOCK_SKEW_SECONDS + 1]) {
      const res = await at({ iat: -300, exp: -past });
      expect(res.status, `exp ${past} s ago`).toBe(401);
      expect(res.body.reasons).toEqual([{ code: "expired" }]);
    }
  });

  it("a GitHub token exactly 10 min + 60 s old is accepted; one second older is refused as too old", async () => {
    const at = await skewSetup();
    const limit = DEFAULT_MAX_TOKEN_AGE_SECONDS.github + CLOCK_SKEW_SECONDS;
    expect((await at({ iat: -limit, exp: 3600 })).status).toBe(200);
    const old = await at({ iat: -(limit + 1), exp: 3600 });
    expect(old.status).toBe(401);
    expect(old.body.reasons).toEqual([{ code: "token_too_old" }]);
  });
});
