// Rate limits (docs/security.md, Rate limits; docs/api.md, Errors): failures per client address are refused before any parsing or
// key lookup, verified requests per repository, run-ending webhooks per installation, introspection per
// address; honest CI bursts pass; refusals are audited in aggregate with counts that add up.

import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
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
import { ACME, githubClaims, gitlabClaims, mint } from "../support/claims.ts";
import { gitlabPolicy } from "../support/policies.ts";
import { GITHUB_SECRET, GITLAB_TOKEN, pipelineHook, signGitHub, workflowRun } from "../support/webhooks.ts";

const OTHER_REPO = "777000777";

/** A clock the test moves (windows are fixed minutes on it). */
function testClock() {
  let now = Date.now();
  return { clock: () => now, advance: (ms: number) => (now += ms) };
}

/** Counts the broker's outbound fetches (discovery and JWKS). */
function countingFetch() {
  const calls: string[] = [];
  const f: typeof fetch = (input, init) => {
    calls.push(input instanceof Request ? input.url : String(input));
    return fetch(input, init);
  };
  return { calls, fetch: f };
}

async function setup(limits?: Record<string, string>, extraEnv: Partial<Cloudflare.Env> = {}) {
  const gh = uniqueIssuer();
  const gl = uniqueIssuer("gl");
  const time = testClock();
  const counter = countingFetch();
  const broker = await makeBroker({
    policies: {
      "api-deploy": githubPolicy(gh),
      "other-deploy": githubPolicy(gh).replace(ACME.repoId, OTHER_REPO),
      "infra-apply": gitlabPolicy(gl),
    },
    issuers: issuersYaml(gh, `${gl}:gitlab`),
    env: { ...(limits ? { RUNPASS_RATE_LIMITS: JSON.stringify(limits) } : {}), ...extraEnv },
    clock: time.clock,
    fetch: counter.fetch,
  });
  const token = (o: Record<string, unknown> = {}) =>
    mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, o));
  const gitlabToken = (o: Record<string, unknown> = {}) =>
    mint(ISSUER_BASE, gl, gitlabClaims(`${ISSUER_BASE}/${gl}`, BROKER_URL, o));
  return { gh, gl, broker, token, gitlabToken, time, fetches: counter.calls };
}

/** POST /v1/exchange (or /v1/explain) from a client address. */
function post(
  broker: TestBroker,
  ip: string,
  token: string | undefined,
  body: unknown = { policy: "api-deploy" },
  path = "/v1/exchange",
  headers: Record<string, string> = {},
): Promise<Response> {
  return broker.fetch(path, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "cf-connecting-ip": ip,
      ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

function oauth(broker: TestBroker, ip: string, subject: string): Promise<Response> {
  return broker.fetch("/oauth/token", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "cf-connecting-ip": ip },
    body: new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: subject,
      subject_token_type: "urn:ietf:params:oauth:token-type:id_token",
      scope: "api-deploy",
    }).toString(),
  });
}

function introspect(broker: TestBroker, ip: string, token: string): Promise<Response> {
  return broker.fetch("/v1/introspect", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "cf-connecting-ip": ip },
    body: new URLSearchParams({ token }).toString(),
  });
}

async function expect429(res: Response, error = "rate_limited"): Promise<number> {
  expect(res.status).toBe(429);
  const retryAfter = Number(res.headers.get("retry-after"));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(((await res.json()) as { error: string }).error).toBe(error);
  return retryAfter;
}

type AuditRow = Record<string, unknown> & { count: number };

async function audit(broker: TestBroker, query: Record<string, string>): Promise<AuditRow[]> {
  const res = await broker.admin(`/v1/admin/audit?${new URLSearchParams({ limit: "1000", ...query })}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { records: AuditRow[] }).records;
}

const sum = (records: AuditRow[]) => records.reduce((n, r) => n + r.count, 0);

/** The audit digest of a client address (what its limiter object's name and records carry). */
async function clientDigest(broker: TestBroker, ip: string): Promise<string> {
  const res = await broker.admin("/v1/admin/audit-hash", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ value: `client:${ip}` }),
  });
  return ((await res.json()) as { digest: string }).digest;
}

/** The limiter object of a client address. */
async function clientLimiter(broker: TestBroker, rule: string, ip: string) {
  const name = `${rule}:${await clientDigest(broker, ip)}`;
  return env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(name));
}

/** The aggregated records of one client address (the test D1 is shared by the tests of a file). */
async function clientRecords(broker: TestBroker, ip: string): Promise<AuditRow[]> {
  const digest = await clientDigest(broker, ip);
  return (await audit(broker, { event: "rate_limit" })).filter((r) => String(r.detail).includes(digest));
}

/** Garbage of several kinds: unparseable strings, and a real token's header and claims with a forged signature. */
async function garbage(token: () => Promise<string>): Promise<string[]> {
  const [h, p] = (await token()).split(".");
  return ["abc", "a.b.c", "eyJ.eyJ.sig", `${h}.${p}.AAAA`, `${h}.${p}.${"B".repeat(342)}`];
}

describe("failures per client address", () => {
  it("a garbage flood gets 429 after the limit, without a key fetch or a record of its own; a valid token from the flooding address and honest exchanges for the same repository still succeed; audit aggregated", async () => {
    const { broker, token, time, fetches } = await setup({ failures: "5/1m" });
    const flood = { policy: `flood-${crypto.randomUUID()}` };
    // Warm the key cache the way a live deployment is warm.
    expect((await post(broker, "10.0.0.2", await token())).status).toBe(200);
    fetches.length = 0;

    const junk = await garbage(token);
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const res = await post(broker, "203.0.113.7", junk[i % junk.length], flood);
      statuses.push(res.status);
      if (res.status === 429) await expect429(res);
      else await res.body?.cancel();
    }
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses.slice(5).every((s) => s === 429)).toBe(true);

    // Over the limit, any failure is a 429, not 413/415: an oversize token, a wrong media type.
    const huge = `eyJhbGciOiJSUzI1NiJ9.${"A".repeat(17 * 1024)}.sig`;
    await expect429(await post(broker, "203.0.113.7", huge));
    await expect429(
      await post(broker, "203.0.113.7", await token(), "policy=x", "/v1/exchange", {
        "content-type": "text/plain",
      }),
    );
    // Runner fleets share egress addresses: a token that verifies is served from the flooding address on
    // exchange, explain and /oauth/token alike.
    expect((await post(broker, "203.0.113.7", await token())).status).toBe(200);
    expect((await post(broker, "203.0.113.7", await token(), undefined, "/v1/explain")).status).toBe(200);
    expect((await oauth(broker, "203.0.113.7", await token())).status).toBe(200);

    // A concurrent burst from the flooding address: all refused.
    const burst = await Promise.all(
      Array.from({ length: 20 }, (_, i) => post(broker, "203.0.113.7", junk[i % junk.length], flood)),
    );
    expect(burst.map((r) => r.status)).toEqual(Array(20).fill(429));
    await Promise.all(burst.map((r) => r.body?.cancel()));

    // Honest CI during the flood: another address, the same repository the forged tokens name.
    for (const ip of ["10.0.0.2", "10.0.0.3"]) {
      expect((await post(broker, ip, await token())).status).toBe(200);
    }
    expect(fetches).toEqual([]);

    const refused = 35 + 2 + 20;
    // The window rolls: the next failure from that address is decided again (401) and rolls the limiter,
    // which writes one record for the whole flood.
    time.advance(60_000);
    expect((await post(broker, "203.0.113.7", "abc", flood)).status).toBe(401);
    const limited = await clientRecords(broker, "203.0.113.7");
    expect(limited).toHaveLength(1);
    expect(limited[0]).toMatchObject({ decision: "deny", error: "rate_limited", count: refused });
    expect(String(limited[0]?.detail)).toMatch(/^failures limit \(5 per 60 s\) for client hmac-sha256:/);
    expect(JSON.stringify(limited)).not.toContain("203.0.113.7");
    // Individually recorded: only the decided failures (5 + 1), never the refused requests.
    const invalid = await audit(broker, { decision: "deny", event: "exchange", policy: flood.policy });
    expect(invalid.map((r) => r.error)).toEqual(Array(6).fill("invalid_token"));
    expect(fetches).toEqual([]);
  });

  it("counts add up under a concurrent flood, and the alarm records a window no later request rolls", async () => {
    const { broker, token } = await setup({ failures: "10/1m" });
    const junk = await garbage(token);
    const flood = { policy: `flood-${crypto.randomUUID()}` };
    // Four waves of 20 concurrent requests: within a wave, requests overtake each other's counting.
    const statuses: number[] = [];
    for (let wave = 0; wave < 4; wave++) {
      const responses = await Promise.all(
        Array.from({ length: 20 }, (_, i) => post(broker, "198.51.100.9", junk[i % junk.length], flood)),
      );
      statuses.push(...responses.map((r) => r.status));
      await Promise.all(responses.map((r) => r.body?.cancel()));
    }
    const decided = statuses.filter((s) => s === 401).length;
    const refused = statuses.filter((s) => s === 429).length;
    expect(decided + refused).toBe(80);
    expect(decided).toBeGreaterThanOrEqual(10);
    expect(refused).toBeGreaterThan(0);

    expect(await runDurableObjectAlarm(await clientLimiter(broker, "failures", "198.51.100.9"))).toBe(true);
    const limited = await clientRecords(broker, "198.51.100.9");
    expect(limited.length).toBeLessThanOrEqual(2);
    expect(sum(limited)).toBe(refused);
    const individual = await audit(broker, { decision: "deny", event: "exchange", policy: flood.policy });
    expect(individual).toHaveLength(decided);
    // Every request is accounted for exactly once.
    expect(sum(individual) + sum(limited)).toBe(80);
  });

  it("IPv6 clients are limited per /64", async () => {
    const { broker } = await setup({ failures: "3/1m" });
    for (const ip of ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"]) {
      expect((await post(broker, ip, "abc")).status).toBe(401);
    }
    await expect429(await post(broker, "2001:0db8:0001:0002:0:0:0:99", "abc"));
    expect((await post(broker, "2001:db8:1:3::1", "abc")).status).toBe(401);
  });

  it("introspection failures count against the same budget; valid introspections are limited per run, not per address", async () => {
    const { broker, token } = await setup({ failures: "2/1m", introspect: "3/1m" });
    for (let i = 0; i < 2; i++) {
      const res = await introspect(broker, "192.0.2.1", "not-a-token");
      expect(await res.json()).toEqual({ active: false });
    }
    await expect429(await introspect(broker, "192.0.2.1", "not-a-token"));
    await expect429(await post(broker, "192.0.2.1", "not-a-token"));

    // Junk from 192.0.2.1 locks out neither its valid exchanges nor its valid introspections.
    const issued = (await (await post(broker, "192.0.2.1", await token())).json()) as {
      credentials: { token: { token: string } };
    };
    const jwt = issued.credentials.token.token;
    expect(await (await introspect(broker, "192.0.2.1", jwt)).json()).toMatchObject({ active: true });
    // Three per minute for this token's run, from any address; then 429 wherever it comes from.
    for (let i = 0; i < 2; i++) {
      expect(await (await introspect(broker, "192.0.2.2", jwt)).json()).toMatchObject({ active: true });
    }
    await expect429(await introspect(broker, "192.0.2.3", jwt));
  });
});

describe("verified requests per repository", () => {
  it("an honest CI burst of 120 exchanges for one repository within a minute all succeed under the defaults", async () => {
    const { broker, token } = await setup();
    expect(broker.env.RUNPASS_RATE_LIMITS).toContain('"repository":"300/1m"');
    const tokens = await Promise.all(Array.from({ length: 120 }, () => token()));
    const statuses: number[] = [];
    for (let i = 0; i < tokens.length; i += 8) {
      const batch = await Promise.all(tokens.slice(i, i + 8).map((t) => post(broker, "10.1.1.1", t)));
      statuses.push(...batch.map((r) => r.status));
      await Promise.all(batch.map((r) => r.body?.cancel()));
    }
    expect(statuses).toEqual(Array(120).fill(200));
  });

  it("over the repository limit: 429 with Retry-After on exchange, explain and /oauth/token; other repositories, and the next window, are fine", async () => {
    const { broker, gh, token, time } = await setup({ repository: "4/1m" });
    for (let i = 0; i < 4; i++) {
      expect((await post(broker, `10.2.0.${i}`, await token())).status).toBe(200);
    }
    // From any address: the budget is the repository's.
    await expect429(await post(broker, "10.2.0.9", await token()));
    await expect429(await post(broker, "10.2.0.9", await token(), undefined, "/v1/explain"));
    await expect429(await oauth(broker, "10.2.0.9", await token()), "temporarily_unavailable");
    // A policy denial is still a verified request of that repository: refused too.
    await expect429(await post(broker, "10.2.0.9", await token({ ref: "refs/heads/dev" })));

    const other = await token({ repository_id: OTHER_REPO, repository: "acme/other" });
    expect((await post(broker, "10.2.0.9", other, { policy: "other-deploy" })).status).toBe(200);
    // Refusals are not failures: the address is not blocked.
    expect((await post(broker, "10.2.0.9", "abc")).status).toBe(401);

    time.advance(60_000);
    expect((await post(broker, "10.2.0.1", await token())).status).toBe(200);
    const limited = (await audit(broker, { event: "rate_limit", repository_id: ACME.repoId })).filter(
      (r) => r.issuer === gh,
    );
    expect(limited).toHaveLength(1);
    expect(limited[0]).toMatchObject({ count: 4, error: "rate_limited" });
    expect(String(limited[0]?.detail)).toContain(
      `repository limit (4 per 60 s) for repository ${ACME.repoId}`,
    );
  });

  it("forged tokens naming a repository never spend its budget", async () => {
    const { broker, token } = await setup({ repository: "3/1m", failures: "off" });
    const [h, p] = (await token()).split(".");
    for (let i = 0; i < 20; i++) {
      expect((await post(broker, `10.3.0.${i}`, `${h}.${p}.AAAA`)).status).toBe(401);
    }
    for (let i = 0; i < 3; i++) expect((await post(broker, "10.3.1.1", await token())).status).toBe(200);
  });

  it("GitLab tokens are limited per project", async () => {
    const { broker, gitlabToken } = await setup({ repository: "2/1m" });
    for (let i = 0; i < 2; i++) {
      expect((await post(broker, "10.4.0.1", await gitlabToken(), { policy: "infra-apply" })).status).toBe(
        200,
      );
    }
    await expect429(await post(broker, "10.4.0.1", await gitlabToken(), { policy: "infra-apply" }));
    const other = await gitlabToken({ project_id: "21" });
    expect((await post(broker, "10.4.0.1", other, { policy: "infra-apply" })).status).toBe(403);
  });
});

describe("webhooks per installation", () => {
  const WEBHOOK_ENV = { GITHUB_WEBHOOK_SECRET: GITHUB_SECRET, GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN };

  async function github(
    broker: TestBroker,
    path: string,
    payload: Record<string, unknown>,
    event = "workflow_run",
  ): Promise<Response> {
    const body = JSON.stringify(payload);
    return broker.fetch(path, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": crypto.randomUUID(),
        "x-hub-signature-256": await signGitHub(body),
        "cf-connecting-ip": "140.82.115.1",
      },
      body,
    });
  }

  const completed = (installation?: number) => {
    const payload = workflowRun({
      repositoryId: Number(ACME.repoId),
      runId: Math.floor(Math.random() * 9e9) + 1e9,
    });
    if (installation !== undefined) payload.installation = { id: installation };
    return payload;
  };

  it("run-ending deliveries are limited per installation; ignored events cost nothing; GitLab per project", async () => {
    const { broker, gh, gl } = await setup({ webhook: "2/1m" }, WEBHOOK_ENV);
    const path = `/v1/webhooks/github/${gh}`;
    expect((await github(broker, path, completed(111))).status).toBe(202);
    expect((await github(broker, path, completed(111))).status).toBe(202);
    await expect429(await github(broker, path, completed(111)));
    // Events that end nothing are answered as before and never refused.
    const queued = workflowRun({ repositoryId: 1, runId: 5 }, { action: "requested", status: "queued" });
    queued.installation = { id: 111 };
    for (let i = 0; i < 3; i++) {
      expect(await (await github(broker, path, queued)).json()).toEqual({ result: "ignored" });
    }
    // Other installations, and repository webhooks (no installation: keyed by repository), have their own budgets.
    expect((await github(broker, path, completed(222))).status).toBe(202);
    expect((await github(broker, path, completed())).status).toBe(202);

    const gitlab = (pipeline: number) =>
      broker.fetch(`/v1/webhooks/gitlab/${gl}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-gitlab-event": "Pipeline Hook",
          "x-gitlab-token": GITLAB_TOKEN,
          "cf-connecting-ip": "34.74.90.64",
        },
        body: JSON.stringify(pipelineHook(20, pipeline, "success")),
      });
    expect((await gitlab(1001)).status).toBe(202);
    expect((await gitlab(1002)).status).toBe(202);
    await expect429(await gitlab(1003));
  });

  it("bad signatures count as failures of the sending address", async () => {
    const { broker, gh } = await setup({ failures: "2/1m" }, WEBHOOK_ENV);
    const send = (signature: string) =>
      broker.fetch(`/v1/webhooks/github/${gh}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-github-event": "workflow_run",
          "x-github-delivery": crypto.randomUUID(),
          "x-hub-signature-256": signature,
          "cf-connecting-ip": "192.0.2.66",
        },
        body: JSON.stringify(completed(1)),
      });
    expect((await send(`sha256=${"0".repeat(64)}`)).status).toBe(401);
    expect((await send("sha1=abc")).status).toBe(401);
    await expect429(await send(`sha256=${"0".repeat(64)}`));
  });
});

describe("configuration", () => {
  it('"off" switches a limit off', async () => {
    const { broker } = await setup({ failures: "off" });
    for (let i = 0; i < 70; i++) {
      const res = await post(broker, "192.0.2.200", "abc");
      expect(res.status).toBe(401);
      await res.body?.cancel();
    }
  });

  it("a malformed RUNPASS_RATE_LIMITS fails closed with a 503 naming it", async () => {
    for (const raw of ['{"failures":"lots"}', '{"burst":"5/1m"}', "not json", '{"failures":"0/1m"}']) {
      const gh = uniqueIssuer();
      const broker = await makeBroker({
        policies: { "api-deploy": githubPolicy(gh) },
        issuers: issuersYaml(gh),
        env: { RUNPASS_RATE_LIMITS: raw },
      });
      const res = await broker.exchange("abc", { policy: "api-deploy" });
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error_description: string }).error_description).toContain(
        "RUNPASS_RATE_LIMITS",
      );
    }
  });
});
