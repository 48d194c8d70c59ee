// AWS and GitHub grants end to end inside workerd: the real @aws-sdk/client-sts and fetch against local
// servers that speak STS's Query/XML protocol (verifying SigV4 or the web-identity JWT) and GitHub's REST API
// (verifying the App JWT), with faults. Revocation at run end, rollback on partial failure, renewal.

import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { decodeJwt } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  BROKER_URL,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  type TestBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { ACME, githubClaims, mint } from "../support/claims.ts";
import { STS_ACCESS_KEY_ID, STS_SECRET_ACCESS_KEY, type StsRecord } from "../support/fake-sts.ts";
import { movableClock } from "../support/run-ledger.ts";
import { GH_API as GH, GITHUB_ENV, STATIC_AWS_ENV, STS } from "../support/upstream-env.ts";

interface Exchanged {
  lease: { id: string; run: string; expires_at: string; revoke_token: string };
  credentials: {
    token?: { token: string; expires_at: string };
    aws?: {
      access_key_id: string;
      secret_access_key: string;
      session_token: string;
      expires_at: string;
      region: string;
    };
    github?: {
      token: string;
      expires_at: string;
      repositories: string[];
      permissions: Record<string, string>;
    };
  };
  error?: string;
  retryable?: boolean;
  reasons?: Array<{ code: string }>;
}

async function post(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: "POST", body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
}

async function stsCalls(roleArn: string): Promise<StsRecord[]> {
  return (await (
    await fetch(`${STS}/__requests?roleArn=${encodeURIComponent(roleArn)}`)
  ).json()) as StsRecord[];
}

async function ghRecords(installationId: number) {
  return (await (await fetch(`${GH}/__records?installationId=${installationId}`)).json()) as {
    mints: Array<{ body: { repositories?: string[]; permissions?: Record<string, string> }; token: string }>;
    mintAttempts: number;
    revocations: string[];
    lookups: number;
  };
}

interface Setup {
  broker: TestBroker;
  roleArn: string;
  owner: string;
  installationId: number;
  token: (o?: Record<string, unknown>) => Promise<string>;
  exchange: (
    t: string,
    body?: Record<string, unknown>,
  ) => Promise<{ status: number; headers: Headers; body: Exchanged }>;
}

async function setup(
  options: { env?: Partial<Cloudflare.Env>; grants?: string; ttl?: string; clock?: () => number } = {},
): Promise<Setup> {
  const gh = uniqueIssuer();
  const suffix = crypto.randomUUID().slice(0, 8);
  const roleArn = `arn:aws:iam::111111111111:role/deploy-${suffix}`;
  const owner = `acme-${suffix}`;
  const installationId = Math.floor(Math.random() * 9e8) + 1e8;
  await post(`${GH}/__control/installation`, { owner, id: installationId });
  const grants =
    options.grants ??
    `  token: { audience: "https://deploy.acme.dev", ttl: 10m }
  github:
    owner: ${owner}
    repositories: [api, docs]
    permissions: { contents: read, deployments: write }
  aws:
    role_arn: ${roleArn}
    region: eu-west-1
    duration: 30m
    session_name: "api-\${run_id}"
    session_tags: { repository: "\${repository}", workflow: "\${workflow}" }
    transitive_tag_keys: [repository]
    session_policy: { Version: "2012-10-17", Statement: [{ Effect: Allow, Action: "s3:GetObject", Resource: "*" }] }
    policy_arns: [arn:aws:iam::aws:policy/ReadOnlyAccess]
    source_identity: "\${actor}"`;
  const policy = `issuer: ${gh}
allow:
  repository_owner_id: "${ACME.ownerId}"
  repository_id: "${ACME.repoId}"
ttl: ${options.ttl ?? "1h"}
grants:
${grants.replaceAll("{{roleArn}}", roleArn).replaceAll("{{owner}}", owner)}
`;
  const broker = await makeBroker({
    policies: { deploy: policy },
    issuers: issuersYaml(gh),
    env: { ...GITHUB_ENV, ...STATIC_AWS_ENV, ...options.env },
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const token = (o: Record<string, unknown> = {}) =>
    mint(
      ISSUER_BASE,
      gh,
      githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, { workflow: "deploy (prod)", ...o }),
    );
  const exchange = async (t: string, body: Record<string, unknown> = {}) => {
    const res = await broker.exchange(t, { policy: "deploy", ...body });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Exchanged };
  };
  return { broker, roleArn, owner, installationId, token, exchange };
}

async function alarm(run: string): Promise<void> {
  await runDurableObjectAlarm(env.RUN_LEDGER.get(env.RUN_LEDGER.idFromName(run)));
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("aws and github grants", () => {
  it("one exchange returns a token, an STS session and a scoped GitHub token, sent exactly as the policy says", async () => {
    const s = await setup();
    const res = await s.exchange(await s.token({ run_id: "5550001", actor: "octo cat!" }));
    expect(res.status).toBe(200);
    const { credentials, lease } = res.body;
    expect(credentials.aws).toMatchObject({ region: "eu-west-1" });
    expect(credentials.aws?.access_key_id).toMatch(/^ASIA/);
    expect(credentials.github?.repositories).toEqual(["api", "docs"]);
    expect(credentials.github?.permissions).toEqual({ contents: "read", deployments: "write" });
    for (const c of [credentials.aws, credentials.github, credentials.token]) {
      expect(Date.parse(c?.expires_at as string)).toBeLessThanOrEqual(Date.parse(lease.expires_at));
    }
    // Every runpass-signed JWT says which grant it is for, so no audience can take one for another.
    expect(decodeJwt(credentials.token?.token as string)).toMatchObject({ runpass_grant: "token" });

    const [call] = await stsCalls(s.roleArn);
    expect(call).toMatchObject({
      action: "AssumeRole",
      status: 200,
      accessKeyId: STS_ACCESS_KEY_ID,
      region: "eu-west-1",
      roleSessionName: "api-5550001",
      durationSeconds: 1800,
      tags: { repository: "acme/api", workflow: "deploy _prod_" },
      transitiveTagKeys: ["repository"],
      policyArns: ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
      sourceIdentity: "octo-cat-",
    });
    expect(JSON.parse(call?.policy as string)).toEqual({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "*" }],
    });

    const gh = await ghRecords(s.installationId);
    expect(gh.mints).toHaveLength(1);
    expect(gh.lookups).toBe(1);
    // The installation id is cached: a second exchange mints without another lookup.
    expect((await s.exchange(await s.token())).status).toBe(200);
    expect((await ghRecords(s.installationId)).lookups).toBe(1);
    expect(gh.mints[0]?.body).toEqual({
      repositories: ["api", "docs"],
      permissions: { contents: "read", deployments: "write" },
    });
  });

  it("a request may name a subset of grants; naming one the policy lacks is 403 before any upstream call", async () => {
    const s = await setup({
      grants: `  aws: { role_arn: {{roleArn}}, duration: 15m }
  github: { owner: {{owner}}, repositories: [api], permissions: { contents: read } }`,
    });
    const onlyGitHub = await s.exchange(await s.token(), { grants: ["github"] });
    expect(onlyGitHub.status).toBe(200);
    expect(Object.keys(onlyGitHub.body.credentials)).toEqual(["github"]);
    expect(await stsCalls(s.roleArn)).toHaveLength(0);
    const tooMuch = await s.exchange(await s.token(), { grants: ["github", "token"] });
    expect(tooMuch.status).toBe(403);
    expect((await ghRecords(s.installationId)).mintAttempts).toBe(1);
  });

  it("an AWS session never outlives the lease: the requested ttl caps the duration; a lease under 15m is refused", async () => {
    const s = await setup();
    const res = await s.exchange(await s.token(), { ttl: "20m" });
    expect(res.status).toBe(200);
    const [call] = await stsCalls(s.roleArn);
    expect(call?.durationSeconds).toBeLessThanOrEqual(20 * 60);
    expect(Date.parse(res.body.credentials.aws?.expires_at as string)).toBeLessThanOrEqual(
      Date.parse(res.body.lease.expires_at),
    );
    const short = await s.exchange(await s.token(), { ttl: "10m" });
    expect(short.status).toBe(400);
    expect(short.body.reasons).toEqual([{ code: "lease_too_short", grant: "aws" }]);
    expect(await stsCalls(s.roleArn)).toHaveLength(1);
  });

  it("a throttled STS recovers within the retry budget", async () => {
    const s = await setup();
    await post(`${STS}/__control/role`, { roleArn: s.roleArn, mode: "throttle", times: 2 });
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(200);
    expect((await stsCalls(s.roleArn)).map((c) => c.errorCode ?? "ok")).toEqual([
      "Throttling",
      "Throttling",
      "ok",
    ]);
  });

  it("STS failing for good is 502 retryable, with no AWS text; a refusal is 502 not retryable and not retried", async () => {
    const s = await setup();
    await post(`${STS}/__control/role`, { roleArn: s.roleArn, mode: "fail" });
    const failing = await s.exchange(await s.token());
    expect(failing.status).toBe(502);
    expect(failing.body).toMatchObject({ error: "upstream_error", retryable: true });
    expect(JSON.stringify(failing.body)).not.toMatch(/InternalFailure|encountered|RequestId/i);
    expect(await stsCalls(s.roleArn)).toHaveLength(3);

    await post(`${STS}/__control/role`, { roleArn: s.roleArn, mode: "reject" });
    const before = (await stsCalls(s.roleArn)).length;
    const rejected = await s.exchange(await s.token());
    expect(rejected.status).toBe(502);
    expect(rejected.body.retryable).toBe(false);
    expect((await stsCalls(s.roleArn)).length).toBe(before + 1);
  });

  it("a failing second grant revokes the first: nothing is returned, the GitHub token is revoked, the audit says so", async () => {
    const s = await setup();
    await post(`${STS}/__control/role`, { roleArn: s.roleArn, mode: "malformed" });
    const t = await s.token();
    const res = await s.exchange(t);
    expect(res.status).toBe(502);
    expect(res.body.credentials).toBeUndefined();
    const gh = await ghRecords(s.installationId);
    expect(gh.mints).toHaveLength(1);
    expect(gh.revocations).toEqual([gh.mints[0]?.token]);
    const audit = (await (await s.broker.admin("/v1/admin/audit?policy=deploy&decision=deny")).json()) as {
      records: Array<{ error: string; detail?: string }>;
    };
    expect(audit.records[0]?.error).toBe("upstream_error");
    expect(audit.records[0]?.detail).toMatch(/MalformedPolicyDocument.*GitHub token revoked/);
    // The token was not consumed: a retry after the fix succeeds.
    await post(`${STS}/__control/role`, { roleArn: s.roleArn, mode: "ok" });
    expect((await s.exchange(t)).status).toBe(200);
  });

  it("run end revokes the GitHub token upstream exactly once", async () => {
    const s = await setup();
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(200);
    const revoke = await s.broker.admin("/v1/admin/revoke", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ run: res.body.lease.run }),
    });
    expect(revoke.status).toBe(200);
    await alarm(res.body.lease.run);
    await alarm(res.body.lease.run);
    const again = await s.broker.admin("/v1/admin/revoke", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ run: res.body.lease.run }),
    });
    expect(again.status).toBe(200);
    await alarm(res.body.lease.run);
    const gh = await ghRecords(s.installationId);
    expect(gh.revocations).toEqual([res.body.credentials.github?.token]);
    const records = (await (
      await s.broker.admin(`/v1/admin/audit?run=${encodeURIComponent(res.body.lease.run)}&event=revocation`)
    ).json()) as { records: Array<{ grants: Array<{ type: string }>; detail: string }> };
    expect(records.records.map((r) => `${r.grants[0]?.type}:${r.detail.split(":")[0]}`).sort()).toEqual([
      "aws:not_revocable",
      "github:revoked",
      "token:revoked",
    ]);
  });

  it("DELETE of the lease revokes the GitHub token", async () => {
    const s = await setup();
    const res = await s.exchange(await s.token());
    const del = await s.broker.fetch(`/v1/leases/${res.body.lease.id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${res.body.lease.revoke_token}` },
    });
    expect(del.status).toBe(204);
    await alarm(res.body.lease.run);
    expect((await ghRecords(s.installationId)).revocations).toHaveLength(1);
  });

  it("GitHub rate limits answer 502 with Retry-After and are not retried", async () => {
    const s = await setup();
    await post(`${GH}/__control/rate-limit`, { installationId: s.installationId, mode: "primary" });
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(502);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(res.body.retryable).toBe(true);
    const gh = await ghRecords(s.installationId);
    expect(gh.lookups + gh.mintAttempts).toBe(1);
    expect(await stsCalls(s.roleArn)).toHaveLength(0);
  });

  it("without GitHub App configuration the github grant fails closed with a named 503 and nothing is minted", async () => {
    const s = await setup({ env: { GITHUB_APP_ID: "" } });
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(503);
    expect(JSON.stringify(res.body)).toContain("GITHUB_APP_ID");
    expect(await stsCalls(s.roleArn)).toHaveLength(0);
  });

  it("a template naming a claim the token lacks refuses the exchange before any upstream call", async () => {
    const s = await setup();
    const res = await s.exchange(await s.token({ actor: undefined }));
    expect(res.status).toBe(403);
    expect(res.body.reasons).toEqual([{ code: "claim_absent", claim: "actor", grant: "aws" }]);
    expect(await stsCalls(s.roleArn)).toHaveLength(0);
    expect((await ghRecords(s.installationId)).mintAttempts).toBe(0);
  });
});

describe("web identity: no static AWS keys", () => {
  it("runpass signs its own JWT for sts.amazonaws.com and STS verifies it against runpass's JWKS", async () => {
    const s = await setup({ env: { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" } });
    const jwks = await (await s.broker.fetch("/.well-known/jwks.json")).json();
    await post(`${STS}/__control/web-identity`, { issuer: BROKER_URL, jwks });
    const res = await s.exchange(await s.token({ run_id: "5550002" }));
    expect(res.status).toBe(200);
    const [call] = await stsCalls(s.roleArn);
    expect(call?.action).toBe("AssumeRoleWithWebIdentity");
    expect(call?.accessKeyId).toBeUndefined();
    expect(call?.webIdentityClaims).toMatchObject({
      iss: BROKER_URL,
      aud: "sts.amazonaws.com",
      runpass_grant: "aws",
      sub: `policy:deploy:run:${res.body.lease.run}`,
      "https://aws.amazon.com/tags": {
        principal_tags: { repository: ["acme/api"], workflow: ["deploy _prod_"] },
        transitive_tag_keys: ["repository"],
      },
    });
    expect(call?.durationSeconds).toBe(1800);
  });
});

describe("renewal", () => {
  it("re-mints the lease's credentials while the lease and run are live, never past the lease", async () => {
    const time = movableClock();
    const s = await setup({ clock: time.clock });
    const first = await s.exchange(await s.token());
    const renew = (token = first.body.lease.revoke_token) =>
      s.broker.fetch(`/v1/leases/${first.body.lease.id}/renew`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
      });
    // The token grant lives 10 min, the shortest: one renewal per 5 min.
    time.advance(5 * 60_000 + 1000);
    const res = await renew();
    expect(res.status).toBe(200);
    const body = (await res.json()) as Exchanged;
    expect(body.credentials.aws?.access_key_id).not.toBe(first.body.credentials.aws?.access_key_id);
    expect(body.credentials.github?.token).not.toBe(first.body.credentials.github?.token);
    expect(body.credentials.token?.token).toBeTruthy();
    for (const c of [body.credentials.aws, body.credentials.github, body.credentials.token]) {
      expect(Date.parse(c?.expires_at as string)).toBeLessThanOrEqual(
        Date.parse(first.body.lease.expires_at),
      );
    }
    expect((await renew("rvk_wrong")).status).toBe(404);

    // Run end: both GitHub tokens (original and renewed) are revoked, and renewal is refused.
    await s.broker.admin("/v1/admin/revoke", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ run: first.body.lease.run }),
    });
    await alarm(first.body.lease.run);
    expect((await ghRecords(s.installationId)).revocations).toHaveLength(2);
    expect((await renew()).status).toBe(403);
  });
});

describe("secrets stay out of logs", () => {
  it("no credential appears in any log line of an exchange, a failure, a renewal or a revocation", async () => {
    const lines: string[] = [];
    const capture = (...args: unknown[]) => {
      lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    };
    for (const m of ["log", "error", "warn", "info", "debug"] as const)
      vi.spyOn(console, m).mockImplementation(capture);
    const time = movableClock();
    const s = await setup({ clock: time.clock });
    const res = await s.exchange(await s.token());
    time.advance(5 * 60_000 + 1000);
    const renewed = (await (
      await s.broker.fetch(`/v1/leases/${res.body.lease.id}/renew`, {
        method: "POST",
        headers: { authorization: `Bearer ${res.body.lease.revoke_token}` },
      })
    ).json()) as Exchanged;
    await post(`${STS}/__control/role`, { roleArn: s.roleArn, mode: "reject" });
    await s.exchange(await s.token());
    await s.broker.fetch(`/v1/leases/${res.body.lease.id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${res.body.lease.revoke_token}` },
    });
    await alarm(res.body.lease.run);
    const logged = lines.join("\n");
    expect(logged).toContain("runpass.audit");
    const secrets = [res.body, renewed].flatMap((b) => [
      b.credentials.aws?.secret_access_key,
      b.credentials.aws?.session_token,
      b.credentials.aws?.access_key_id,
      b.credentials.github?.token,
      ...(b.credentials.token?.token.split(".") ?? []),
    ]);
    secrets.push(res.body.lease.revoke_token, STS_SECRET_ACCESS_KEY);
    for (const secret of secrets) {
      expect(secret).toBeTruthy();
      expect(logged).not.toContain(secret as string);
    }
  });
});
