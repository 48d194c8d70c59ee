// Credentials that die with the run (issue 3): webhooks end runs, DELETE ends a lease, the alarm expires
// leases with no webhook at all, introspection sees it, admins can revoke, and races never leave an
// active lease on an ended run.

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
import { auditRecords, introspect, ledgerFor, ship } from "../support/run-ledger.ts";
import {
  GITHUB_SECRET,
  GITHUB_SECRET_OLD,
  GITLAB_TOKEN,
  GITLAB_TOKEN_OLD,
  githubExamples,
  pipelineHook,
  signGitHub,
  workflowRun,
} from "../support/webhooks.ts";

const WEBHOOK_ENV = {
  GITHUB_WEBHOOK_SECRET: GITHUB_SECRET,
  GITHUB_WEBHOOK_SECRET_PREVIOUS: GITHUB_SECRET_OLD,
  GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
  GITLAB_WEBHOOK_TOKEN_PREVIOUS: GITLAB_TOKEN_OLD,
};

interface Exchanged {
  lease: { id: string; run: string; expires_at: string; revoke_token: string };
  credentials: { token: { token: string } };
}

async function setup(envOverrides: Partial<Cloudflare.Env> = WEBHOOK_ENV) {
  const gh = uniqueIssuer();
  const gl = uniqueIssuer("gl");
  const broker = await makeBroker({
    policies: {
      "api-deploy": githubPolicy(gh),
      "api-other": githubPolicy(gh),
      "infra-apply": `issuer: ${gl}
allow:
  namespace_id: "72"
  project_id: "20"
  ref_protected: "true"
grants:
  token: { audience: "https://deploy.acme.dev" }
`,
      "preset-deploy": githubPolicy("github"),
    },
    issuers: issuersYaml(gh, `${gl}:gitlab`),
    env: envOverrides,
  });
  const runId = Math.floor(Math.random() * 9e9) + 1e9;
  const token = (o: Record<string, unknown> = {}) =>
    mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, { run_id: String(runId), ...o }));
  const exchange = async (t: string, policy = "api-deploy", body: Record<string, unknown> = {}) => {
    const res = await broker.exchange(t, { policy, ...body });
    return {
      status: res.status,
      body: (await res.json()) as Exchanged & { error?: string; reasons?: unknown },
    };
  };
  return { gh, gl, broker, runId, token, exchange };
}

async function postGitHub(
  broker: TestBroker,
  path: string,
  payload: unknown,
  options: {
    event?: string;
    delivery?: string;
    secret?: string;
    signature?: string;
    body?: string;
    contentType?: string;
  } = {},
): Promise<Response> {
  const body = options.body ?? JSON.stringify(payload);
  const signature = options.signature ?? (await signGitHub(body, options.secret));
  return broker.fetch(path, {
    method: "POST",
    headers: {
      "content-type": options.contentType ?? "application/json",
      "x-github-event": options.event ?? "workflow_run",
      "x-github-delivery": options.delivery ?? crypto.randomUUID(),
      "x-hub-signature-256": signature,
      "user-agent": "GitHub-Hookshot/test",
    },
    body,
  });
}

function postGitLab(
  broker: TestBroker,
  path: string,
  payload: unknown,
  token: string | null = GITLAB_TOKEN,
  event = "Pipeline Hook",
): Promise<Response> {
  return broker.fetch(path, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-gitlab-event": event,
      "idempotency-key": crypto.randomUUID(),
      ...(token !== null ? { "x-gitlab-token": token } : {}),
    },
    body: JSON.stringify(payload),
  });
}

describe("GitHub workflow_run webhook", () => {
  it("exchange → webhook → the run's next exchange is refused → introspection inactive → lease list shows it ended", async () => {
    const { gh, broker, runId, token, exchange } = await setup();
    const first = await exchange(await token());
    expect(first.status).toBe(200);
    const { lease, credentials } = first.body;
    expect(await introspect(broker, credentials.token.token)).toMatchObject({
      active: true,
      lease_id: lease.id,
      run: lease.run,
    });

    const hook = await postGitHub(
      broker,
      `/v1/webhooks/github/${gh}`,
      workflowRun({ repositoryId: Number(ACME.repoId), runId }),
    );
    expect(hook.status).toBe(202);
    expect(await hook.json()).toMatchObject({ result: "run_ended", run: lease.run, ended_leases: 1 });

    const again = await exchange(await token());
    expect(again.status).toBe(403);
    expect(again.body.error).toBe("access_denied");
    expect(again.body.reasons).toEqual([{ code: "run_ended" }]);
    expect(await introspect(broker, credentials.token.token)).toEqual({ active: false });

    await ship(lease.run);
    const listed = (await (
      await broker.admin(`/v1/admin/leases?run=${encodeURIComponent(lease.run)}`)
    ).json()) as {
      leases: Array<{ id: string; active: boolean; end_reason: string; ended_at: string }>;
    };
    expect(listed.leases).toEqual([
      expect.objectContaining({ id: lease.id, active: false, end_reason: "run_completed" }),
    ]);
    const active = (await (
      await broker.admin(`/v1/admin/leases?active=1&run=${encodeURIComponent(lease.run)}`)
    ).json()) as { leases: unknown[] };
    expect(active.leases).toEqual([]);
    const records = await auditRecords(broker, { run: lease.run });
    expect(records.map((r) => r.event).sort()).toEqual([
      "exchange",
      "exchange",
      "introspect",
      "introspect",
      "lease_end",
      "revocation",
      "webhook",
    ]);
    expect(records.find((r) => r.event === "lease_end")).toMatchObject({
      lease_id: lease.id,
      end_reason: "run_completed",
    });
  });

  it("ending attempt 1 leaves attempt 2 of the same run untouched", async () => {
    const { gh, broker, runId, token, exchange } = await setup();
    const a1 = await exchange(await token({ run_attempt: "1" }));
    const a2 = await exchange(await token({ run_attempt: "2" }));
    expect([a1.status, a2.status]).toEqual([200, 200]);
    await postGitHub(
      broker,
      `/v1/webhooks/github/${gh}`,
      workflowRun({ repositoryId: Number(ACME.repoId), runId, attempt: 1 }),
    );
    expect((await exchange(await token({ run_attempt: "1" }))).status).toBe(403);
    expect((await exchange(await token({ run_attempt: "2" }))).status).toBe(200);
    expect(await introspect(broker, a2.body.credentials.token.token)).toMatchObject({ active: true });
  });

  it("a completed run of another repository id ends nothing of ours", async () => {
    const { gh, broker, runId, token, exchange } = await setup();
    const ours = await exchange(await token());
    const res = await postGitHub(
      broker,
      `/v1/webhooks/github/${gh}`,
      workflowRun({ repositoryId: 999, runId }),
    );
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ ended_leases: 0 });
    expect(await introspect(broker, ours.body.credentials.token.token)).toMatchObject({ active: true });
    expect((await exchange(await token())).status).toBe(200);
  });

  it("non-terminal and unrelated real payloads change nothing", async () => {
    const { gh, broker, runId, token, exchange } = await setup();
    const ours = await exchange(await token());
    const target = { repositoryId: Number(ACME.repoId), runId };
    // The real examples include `completed` with a queued run, and `requested` runs.
    for (const payload of [
      workflowRun(target, { action: "completed", status: "queued" }),
      workflowRun(target, { action: "requested" }),
    ]) {
      const res = await postGitHub(broker, `/v1/webhooks/github/${gh}`, payload);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ result: "ignored" });
    }
    for (const job of githubExamples("workflow_job")) {
      const res = await postGitHub(broker, `/v1/webhooks/github/${gh}`, job, { event: "workflow_job" });
      expect(res.status).toBe(200);
    }
    const ping = await postGitHub(
      broker,
      `/v1/webhooks/github/${gh}`,
      { zen: "Keep it simple." },
      { event: "ping" },
    );
    expect(ping.status).toBe(200);
    expect(await introspect(broker, ours.body.credentials.token.token)).toMatchObject({ active: true });
    expect((await exchange(await token())).status).toBe(200);
  });

  it("a replayed delivery id is a no-op, audited as a duplicate", async () => {
    const { gh, broker, runId } = await setup();
    const delivery = crypto.randomUUID();
    const payload = workflowRun({ repositoryId: Number(ACME.repoId), runId });
    const first = await postGitHub(broker, `/v1/webhooks/github/${gh}`, payload, { delivery });
    expect(first.status).toBe(202);
    const second = await postGitHub(broker, `/v1/webhooks/github/${gh}`, payload, { delivery });
    expect(second.status).toBe(200);
    expect(await second.json()).toMatchObject({ result: "duplicate" });
    const run = `github:${gh}:${ACME.repoId}:${runId}:1`;
    await ship(run);
    const hooks = (await auditRecords(broker, { run, event: "webhook" })).filter(
      (r) => r.delivery === delivery,
    );
    expect(hooks.map((r) => r.decision).sort()).toEqual(["allow", "deny"]);
    expect(hooks.find((r) => r.decision === "deny")?.reasons).toEqual([{ code: "duplicate_delivery" }]);
  });

  it("the preset path ends github-preset runs; an unknown named issuer is 404", async () => {
    const { broker } = await setup();
    const runId = Math.floor(Math.random() * 9e9) + 1e9;
    const res = await postGitHub(broker, "/v1/webhooks/github", workflowRun({ repositoryId: 42, runId }));
    expect(res.status).toBe(202);
    expect(await ledgerFor(`github:github:42:${runId}:1`).ended()).toBe(true);
    const unknown = await postGitHub(
      broker,
      "/v1/webhooks/github/nope",
      workflowRun({ repositoryId: 42, runId }),
    );
    expect(unknown.status).toBe(404);
  });

  it("accepts the previous secret during rotation", async () => {
    const { gh, broker, runId, token, exchange } = await setup();
    await exchange(await token());
    const res = await postGitHub(
      broker,
      `/v1/webhooks/github/${gh}`,
      workflowRun({ repositoryId: Number(ACME.repoId), runId }),
      { secret: GITHUB_SECRET_OLD },
    );
    expect(res.status).toBe(202);
  });

  describe("bad input: documented status, nothing changed, an audit record", () => {
    const cases: Array<{
      name: string;
      status: number;
      error: string;
      make: (
        body: string,
      ) => Promise<{ signature?: string; body?: string; contentType?: string; secret?: string }>;
      env?: Partial<Cloudflare.Env>;
    }> = [
      {
        name: "missing signature",
        status: 401,
        error: "invalid_token",
        make: async () => ({ signature: "" }),
      },
      {
        name: "wrong secret",
        status: 401,
        error: "invalid_token",
        make: async () => ({ secret: "not-the-secret" }),
      },
      {
        name: "an old secret after rotation finished",
        status: 401,
        error: "invalid_token",
        make: async () => ({ secret: GITHUB_SECRET_OLD }),
        env: { GITHUB_WEBHOOK_SECRET: GITHUB_SECRET },
      },
      {
        name: "signature over re-serialised JSON",
        status: 401,
        error: "invalid_token",
        make: async (body) => ({ signature: await signGitHub(JSON.stringify(JSON.parse(body), null, 2)) }),
      },
      {
        name: "sha1= prefix",
        status: 401,
        error: "invalid_token",
        make: async (body) => ({ signature: (await signGitHub(body)).replace("sha256=", "sha1=") }),
      },
      {
        name: "a valid signature behind a stray prefix",
        status: 401,
        error: "invalid_token",
        make: async (body) => ({ signature: `x${await signGitHub(body)}` }),
      },
      {
        name: "non-hex signature",
        status: 401,
        error: "invalid_token",
        make: async () => ({ signature: `sha256=${"z".repeat(64)}` }),
      },
      {
        name: "wrong length",
        status: 401,
        error: "invalid_token",
        make: async (body) => ({ signature: (await signGitHub(body)).slice(0, -2) }),
      },
      {
        name: "valid signature on invalid JSON",
        status: 400,
        error: "invalid_request",
        make: async (body) => {
          const broken = `${body.slice(0, -1)},`;
          return { body: broken, signature: await signGitHub(broken) };
        },
      },
      {
        name: "non-JSON content type",
        status: 415,
        error: "unsupported_media_type",
        make: async () => ({ contentType: "application/x-www-form-urlencoded" }),
      },
    ];
    for (const c of cases) {
      it(`${c.name} → ${c.status}`, async () => {
        const { gh, broker, runId, token, exchange } = await setup({ ...WEBHOOK_ENV, ...(c.env ?? {}) });
        if (c.env) {
          // the env replaces the previous secret: drop it
          (broker.env as unknown as Record<string, unknown>).GITHUB_WEBHOOK_SECRET_PREVIOUS = undefined;
        }
        const ours = await exchange(await token());
        const payload = workflowRun({ repositoryId: Number(ACME.repoId), runId });
        const body = JSON.stringify(payload);
        const delivery = crypto.randomUUID();
        const res = await postGitHub(broker, `/v1/webhooks/github/${gh}`, payload, {
          body,
          delivery,
          ...(await c.make(body)),
        });
        expect(res.status).toBe(c.status);
        expect(((await res.json()) as { error: string }).error).toBe(c.error);
        expect(await introspect(broker, ours.body.credentials.token.token)).toMatchObject({ active: true });
        expect(await ledgerFor(ours.body.lease.run).ended()).toBe(false);
        const records = (await auditRecords(broker, { event: "webhook", decision: "deny" })).filter(
          (r) => r.delivery === delivery,
        );
        expect(records).toHaveLength(1);
        expect(records[0]?.error).toBe(c.error);
      });
    }

    it("without GITHUB_WEBHOOK_SECRET the endpoint is closed with a named 503", async () => {
      const { gh, broker, runId } = await setup({});
      const res = await postGitHub(
        broker,
        `/v1/webhooks/github/${gh}`,
        workflowRun({ repositoryId: 1, runId }),
      );
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error_description: string }).error_description).toContain(
        "GITHUB_WEBHOOK_SECRET",
      );
    });
  });
});

describe("GitLab pipeline webhook", () => {
  async function gitlabLease(setupResult: Awaited<ReturnType<typeof setup>>, pipelineId: number) {
    const { gl, broker } = setupResult;
    const t = await mint(
      ISSUER_BASE,
      gl,
      gitlabClaims(`${ISSUER_BASE}/${gl}`, BROKER_URL, { pipeline_id: String(pipelineId) }),
    );
    const res = await broker.exchange(t, { policy: "infra-apply" });
    expect(res.status).toBe(200);
    return (await res.json()) as Exchanged;
  }

  it("a terminal Pipeline Hook ends gitlab:<issuer>:<project>:<pipeline>", async () => {
    const s = await setup();
    const pipelineId = Math.floor(Math.random() * 9e6) + 1e6;
    const got = await gitlabLease(s, pipelineId);
    expect(got.lease.run).toBe(`gitlab:${s.gl}:20:${pipelineId}`);
    const running = await postGitLab(
      s.broker,
      `/v1/webhooks/gitlab/${s.gl}`,
      pipelineHook(20, pipelineId, "running"),
    );
    expect(running.status).toBe(200);
    expect(await introspect(s.broker, got.credentials.token.token)).toMatchObject({ active: true });
    const done = await postGitLab(
      s.broker,
      `/v1/webhooks/gitlab/${s.gl}`,
      pipelineHook(20, pipelineId, "canceled"),
    );
    expect(done.status).toBe(202);
    expect(await introspect(s.broker, got.credentials.token.token)).toEqual({ active: false });
  });

  it("the previous token is accepted; a missing or wrong token is 401 and changes nothing", async () => {
    const s = await setup();
    const pipelineId = Math.floor(Math.random() * 9e6) + 1e6;
    const got = await gitlabLease(s, pipelineId);
    const hook = pipelineHook(20, pipelineId, "success");
    for (const bad of [null, "wrong-token", `${GITLAB_TOKEN}x`]) {
      const res = await postGitLab(s.broker, `/v1/webhooks/gitlab/${s.gl}`, hook, bad);
      expect(res.status, String(bad)).toBe(401);
    }
    expect(await introspect(s.broker, got.credentials.token.token)).toMatchObject({ active: true });
    const denied = await auditRecords(s.broker, { event: "webhook", decision: "deny" });
    expect(
      denied.filter((r) => (r.reasons as Array<{ code: string }>)[0]?.code === "webhook_token_invalid")
        .length,
    ).toBeGreaterThanOrEqual(3);
    const ok = await postGitLab(s.broker, `/v1/webhooks/gitlab/${s.gl}`, hook, GITLAB_TOKEN_OLD);
    expect(ok.status).toBe(202);
    expect(await introspect(s.broker, got.credentials.token.token)).toEqual({ active: false });
  });
});

describe("DELETE /v1/leases/{id}", () => {
  it("ends the lease with its revoke token (204, idempotent); the run goes on", async () => {
    const { broker, token, exchange } = await setup();
    const got = await exchange(await token());
    const del = () =>
      broker.fetch(`/v1/leases/${got.body.lease.id}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${got.body.lease.revoke_token}` },
      });
    expect((await del()).status).toBe(204);
    expect((await del()).status).toBe(204);
    expect(await introspect(broker, got.body.credentials.token.token)).toEqual({ active: false });
    expect((await exchange(await token())).status).toBe(200);
    const [lease] = await ledgerFor(got.body.lease.run).leases();
    expect(lease?.end_reason).toBe("revoked_by_client");
  });

  it("a missing token is 401; a wrong token, another lease's token or an unknown id are the same 404", async () => {
    const { broker, token, exchange } = await setup();
    const a = await exchange(await token());
    const b = await exchange(await token());
    const missing = await broker.fetch(`/v1/leases/${a.body.lease.id}`, { method: "DELETE" });
    expect(missing.status).toBe(401);
    const bodies: string[] = [];
    for (const [id, secret] of [
      [a.body.lease.id, "rvk_wrong"],
      [a.body.lease.id, b.body.lease.revoke_token],
      [`${a.body.lease.id.slice(0, -4)}AAAA`, a.body.lease.revoke_token],
      ["lse_garbage", a.body.lease.revoke_token],
    ] as const) {
      const res = await broker.fetch(`/v1/leases/${id}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${secret}` },
      });
      expect(res.status).toBe(404);
      const body = (await res.json()) as Record<string, unknown>;
      bodies.push(JSON.stringify({ ...body, request_id: "" }));
    }
    expect(new Set(bodies).size).toBe(1);
    expect(await introspect(broker, a.body.credentials.token.token)).toMatchObject({ active: true });
    const refused = await auditRecords(broker, { event: "lease_delete", decision: "deny" });
    // A wrong revoke token reaches the run's ledger (its record names the run); a forged or altered id never does.
    expect(refused.filter((r) => r.run === a.body.lease.run).length).toBeGreaterThanOrEqual(2);
    expect(
      refused.filter((r) => (r.reasons as Array<{ code: string }>)[0]?.code === "lease_id_invalid").length,
    ).toBeGreaterThanOrEqual(2);
  });
});

describe("hard expiry without any webhook", () => {
  it("the alarm ends the lease at expires_at; introspection then says inactive", async () => {
    const { broker, token, exchange } = await setup();
    // Leases end on whole seconds (now rounded down + ttl), so a 1 s lease can have ~0 s left: use 3 s, and
    // wait for the expiry the response names.
    const got = await exchange(await token(), "api-deploy", { ttl: "3s" });
    expect(await introspect(broker, got.body.credentials.token.token)).toMatchObject({ active: true });
    await new Promise((r) => setTimeout(r, Date.parse(got.body.lease.expires_at) - Date.now() + 100));
    await ship(got.body.lease.run);
    expect(await introspect(broker, got.body.credentials.token.token)).toEqual({ active: false });
    const [lease] = await ledgerFor(got.body.lease.run).leases();
    expect(lease?.end_reason).toBe("expired");
    await ship(got.body.lease.run);
    const records = await auditRecords(broker, { lease_id: got.body.lease.id, event: "lease_end" });
    expect(records[0]).toMatchObject({ end_reason: "expired" });
  });
});

describe("introspection", () => {
  it("answers inactive for anything that is not a live runpass token, and never echoes identity claims", async () => {
    const { gh, broker, token, exchange } = await setup();
    const ciToken = await token();
    expect(await introspect(broker, ciToken)).toEqual({ active: false });
    expect(await introspect(broker, "garbage")).toEqual({ active: false });
    const got = await exchange(await token());
    const live = await introspect(broker, got.body.credentials.token.token);
    expect(live.active).toBe(true);
    expect(live.repository).toBeUndefined();
    expect(live.sub).toBe(`${gh}:repo:acme/api:ref:refs/heads/main`);
    const wrongType = await broker.fetch("/v1/introspect", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: got.body.credentials.token.token }),
    });
    expect(wrongType.status).toBe(415);
  });
});

describe("admin revocation", () => {
  it("revoking a run ends its leases and the run; revoking by policy or repository ends leases but not future runs", async () => {
    const { broker, token, exchange, gh } = await setup();
    const runA = await exchange(await token());
    const otherRun = Math.floor(Math.random() * 9e9) + 1e9;
    const runB = await exchange(await token({ run_id: String(otherRun) }), "api-other");
    const runC = await exchange(await token({ run_id: String(otherRun + 1) }));
    for (const r of [runA, runB, runC]) await ship(r.body.lease.run);

    const noAuth = await broker.fetch("/v1/admin/revoke", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ run: runA.body.lease.run }),
    });
    expect(noAuth.status).toBe(401);
    const wrongAuth = await broker.fetch("/v1/admin/revoke", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer not-the-admin-token" },
      body: JSON.stringify({ run: runA.body.lease.run }),
    });
    expect(wrongAuth.status).toBe(401);
    expect(await introspect(broker, runA.body.credentials.token.token)).toMatchObject({ active: true });
    const adminDenials = await auditRecords(broker, { event: "admin", decision: "deny" });
    expect(adminDenials.map((r) => (r.reasons as Array<{ code: string }>)[0]?.code)).toEqual(
      expect.arrayContaining(["token_missing", "admin_token_invalid"]),
    );

    const revoke = (body: unknown) =>
      broker.admin("/v1/admin/revoke", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect((await revoke({ run: runA.body.lease.run, policy: "x" })).status).toBe(400);

    const byPolicy = (await (await revoke({ policy: "api-other" })).json()) as { ended_leases: number };
    expect(byPolicy.ended_leases).toBe(1);
    expect(await introspect(broker, runB.body.credentials.token.token)).toEqual({ active: false });
    expect(await introspect(broker, runC.body.credentials.token.token)).toMatchObject({ active: true });
    expect((await exchange(await token({ run_id: String(otherRun) }), "api-other")).status).toBe(200);

    const byRun = (await (await revoke({ run: runA.body.lease.run })).json()) as { ended_leases: number };
    expect(byRun.ended_leases).toBe(1);
    expect((await exchange(await token())).status).toBe(403);

    const byIssuer = (await (await revoke({ issuer: gh })).json()) as { ended_leases: number };
    expect(byIssuer.ended_leases).toBeGreaterThanOrEqual(1);
    expect(await introspect(broker, runC.body.credentials.token.token)).toEqual({ active: false });
    expect((await exchange(await token({ run_id: String(otherRun + 1) }))).status).toBe(200);
  });

  it("revoking by repository id reaches every run of that repository", async () => {
    const repoId = String(Math.floor(Math.random() * 9e8) + 1e8);
    const gh = uniqueIssuer();
    const broker = await makeBroker({
      policies: {
        p: githubPolicy(gh).replace(`repository_id: "${ACME.repoId}"`, `repository_id: "${repoId}"`),
      },
      issuers: issuersYaml(gh),
    });
    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) {
      const t = await mint(
        ISSUER_BASE,
        gh,
        githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, { repository_id: repoId }),
      );
      const body = (await (await broker.exchange(t, { policy: "p" })).json()) as Exchanged;
      tokens.push(body.credentials.token.token);
      await ship(body.lease.run);
    }
    const listed = (await (
      await broker.admin(`/v1/admin/leases?active=1&repository_id=${repoId}`)
    ).json()) as {
      leases: unknown[];
    };
    expect(listed.leases).toHaveLength(3);
    const res = await broker.admin("/v1/admin/revoke", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ repository_id: repoId }),
    });
    expect(await res.json()).toEqual({ ended_leases: 3, runs: 3 });
    for (const t of tokens) expect(await introspect(broker, t)).toEqual({ active: false });
  });
});

describe("races", () => {
  it("a webhook racing exchanges for the same run never leaves an active lease on an ended run", async () => {
    for (let round = 0; round < 3; round++) {
      const { gh, broker, runId, token } = await setup();
      const tokens = await Promise.all(Array.from({ length: 6 }, () => token()));
      const results = await Promise.all([
        ...tokens.map((t) => broker.exchange(t, { policy: "api-deploy" })),
        postGitHub(
          broker,
          `/v1/webhooks/github/${gh}`,
          workflowRun({ repositoryId: Number(ACME.repoId), runId }),
        ),
      ]);
      const run = `github:${gh}:${ACME.repoId}:${runId}:1`;
      expect(await ledgerFor(run).ended()).toBe(true);
      const leases = await ledgerFor(run).leases();
      expect(leases.filter((l) => l.ended_at === null)).toEqual([]);
      const issued = results.slice(0, 6).filter((r) => r.status === 200).length;
      expect(leases).toHaveLength(issued);
    }
  });
});
