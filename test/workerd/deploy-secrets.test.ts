// `runpass init`'s secrets (src/cli/keygen.ts, the code the CLI writes the file with) in a broker started with
// them: the signing keys sign and verify from the JWKS, the master key encrypts and decrypts secrets, the webhook
// secrets' HMAC and token are accepted, the audit key keys lease ids and digests, the admin token opens the admin
// API, and the SSH and X.509 CA keys import and sign. Also: GET /v1/admin/status never shows any of them.

import { env } from "cloudflare:workers";
import { createLocalJWKSet, importJWK, type JWK, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { type DeploymentSecrets, generateSecrets } from "../../src/cli/keygen.ts";
import { type CaJwk, importCa } from "../../src/core/ssh/keys.ts";
import { X509Authority } from "../../src/core/x509/ca.ts";
import {
  BROKER_URL,
  githubPolicy,
  gitlabPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  type TestBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { ACME, githubClaims, mint } from "../support/claims.ts";
import { pipelineHook, signGitHub, workflowRun } from "../support/webhooks.ts";

async function setup(secrets: DeploymentSecrets) {
  const gh = uniqueIssuer();
  const gl = uniqueIssuer("gl");
  const ns = `acme-${crypto.randomUUID().slice(0, 8)}`;
  const broker = await makeBroker({
    policies: {
      "api-deploy": githubPolicy(
        gh,
        "",
        `token: { audience: "https://deploy.acme.dev" }\n  secrets: { STRIPE_API_KEY: ${ns}/stripe }`,
      ),
      "gl-deploy": gitlabPolicy(gl),
    },
    issuers: issuersYaml(gh, `${gl}:gitlab`),
    env: { ...secrets, RUNPASS_ADMIN_TOKEN: secrets.RUNPASS_ADMIN_TOKEN } as Partial<Cloudflare.Env>,
  });
  const admin = (path: string, init: RequestInit = {}) =>
    broker.fetch(path, {
      ...init,
      headers: {
        authorization: `Bearer ${secrets.RUNPASS_ADMIN_TOKEN}`,
        "content-type": "application/json",
        ...init.headers,
      },
    });
  const runId = Math.floor(Math.random() * 9e9) + 1e9;
  const token = () =>
    mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, { run_id: String(runId) }));
  return { broker, admin, token, ns, gh, gl, runId };
}

/** Every string in the secrets that must never be shown: whole values and each private member of a JSON value. */
function secretStrings(secrets: DeploymentSecrets): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === "string" && v.length >= 16) out.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") {
      for (const [k, inner] of Object.entries(v)) {
        // Public members of a JWK and key ids are not secret.
        if (["kid", "kty", "crv", "alg", "use", "x", "y", "n", "e", "active", "certificate"].includes(k))
          continue;
        walk(inner);
      }
    }
  };
  for (const [name, value] of Object.entries(secrets)) {
    out.push(value);
    if (name.endsWith("_KEYS") || name === "RUNPASS_X509_CA") walk(JSON.parse(value));
  }
  return out;
}

async function status(
  broker: TestBroker,
  adminToken: string,
): Promise<{ text: string; body: Record<string, unknown> }> {
  const res = await broker.fetch("/v1/admin/status", { headers: { authorization: `Bearer ${adminToken}` } });
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, body: JSON.parse(text) as Record<string, unknown> };
}

/** A broker whose one policy has a github grant, with this env. */
async function githubGrantBroker(extra: Record<string, string | undefined>): Promise<TestBroker> {
  const gh = uniqueIssuer();
  return makeBroker({
    policies: {
      p: githubPolicy(
        gh,
        "",
        "github: { owner: acme, repositories: [api], permissions: { contents: read } }",
      ),
    },
    issuers: issuersYaml(gh),
    env: extra as Partial<Cloudflare.Env>,
  });
}

describe("runpass init's secrets in a broker", () => {
  it("every generated key works: sign/verify, encrypt/decrypt, webhook HMAC and token, lease MAC, admin", async () => {
    const secrets = await generateSecrets({ with: ["ssh", "x509"] });
    const s = await setup(secrets);
    const signing = JSON.parse(secrets.RUNPASS_SIGNING_KEYS as string) as JWK[];
    expect(signing.map((k) => k.alg)).toEqual(["ES256", "RS256"]);

    // The admin token opens the admin API; the master key encrypts a secret.
    const put = await s.admin(`/v1/admin/secrets/${s.ns}/stripe`, {
      method: "PUT",
      body: JSON.stringify({ value: "sk_generated_1" }),
    });
    expect(put.status).toBe(201);
    expect(
      (
        await s.broker.fetch("/v1/admin/status", {
          headers: { authorization: "Bearer rpa_wrong_wrong_wrong" },
        })
      ).status,
    ).toBe(401);

    // The exchange signs with the ES256 key; a relying party verifies it from the published JWKS; the secret decrypts.
    const res = await s.broker.exchange(await s.token(), { policy: "api-deploy" });
    expect(res.status).toBe(200);
    const out = (await res.json()) as {
      lease: { id: string; revoke_token: string; run: string };
      credentials: { token: { token: string }; secrets: Record<string, string> };
    };
    expect(out.credentials.secrets.STRIPE_API_KEY).toBe("sk_generated_1");
    const jwks = (await (await s.broker.fetch("/.well-known/jwks.json")).json()) as { keys: JWK[] };
    expect(jwks.keys.map((k) => k.kid)).toEqual(signing.map((k) => k.kid));
    for (const k of jwks.keys) expect(k.d).toBeUndefined();
    const verified = await jwtVerify(out.credentials.token.token, createLocalJWKSet(jwks), {
      issuer: BROKER_URL,
    });
    expect(verified.protectedHeader.kid).toBe(signing[0]?.kid);
    // The RS256 key is a working key pair too (gcp/azure sign with it).
    const rs = signing[1] as JWK;
    const rsPrivate = await importJWK(rs, "RS256");
    const sig = await crypto.subtle.sign(
      "RSASSA-PKCS1-v1_5",
      rsPrivate as CryptoKey,
      new Uint8Array([1, 2, 3]),
    );
    const rsPublic = await importJWK(jwks.keys[1] as JWK, "RS256");
    expect(
      await crypto.subtle.verify("RSASSA-PKCS1-v1_5", rsPublic as CryptoKey, sig, new Uint8Array([1, 2, 3])),
    ).toBe(true);

    // The audit key: digests are keyed (the same value under the default test key differs), lease ids verify.
    const digest = (await (
      await s.admin("/v1/admin/audit-hash", { method: "POST", body: JSON.stringify({ value: "x" }) })
    ).json()) as { digest: string };
    expect(digest.digest).toMatch(/^hmac-sha256:/);
    const renew = await s.broker.fetch(`/v1/leases/${encodeURIComponent(out.lease.id)}/renew`, {
      method: "POST",
      headers: { authorization: `Bearer ${out.lease.revoke_token}`, "content-type": "application/json" },
      body: "{}",
    });
    expect([200, 429]).toContain(renew.status);

    // GITHUB_WEBHOOK_SECRET: a delivery signed with it ends the run; one signed with anything else is refused.
    const body = JSON.stringify(workflowRun({ repositoryId: Number(ACME.repoId), runId: s.runId }));
    const hook = (secret: string) =>
      signGitHub(body, secret).then((signature) =>
        s.broker.fetch(`/v1/webhooks/github/${s.gh}`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-github-event": "workflow_run",
            "x-github-delivery": crypto.randomUUID(),
            "x-hub-signature-256": signature,
          },
          body,
        }),
      );
    expect((await hook("not-the-generated-secret")).status).toBe(401);
    const ended = await hook(secrets.GITHUB_WEBHOOK_SECRET as string);
    expect(ended.status).toBe(202);
    expect(await ended.json()).toMatchObject({ result: "run_ended", ended_leases: 1 });

    // GITLAB_WEBHOOK_TOKEN: accepted as the master token.
    const gitlab = (t: string) =>
      s.broker.fetch(`/v1/webhooks/gitlab/${s.gl}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-gitlab-event": "Pipeline Hook",
          "x-gitlab-token": t,
        },
        body: JSON.stringify(pipelineHook(20, Math.floor(Math.random() * 1e9), "success")),
      });
    expect((await gitlab("wrong-token-wrong-token")).status).toBe(401);
    expect([200, 202]).toContain((await gitlab(secrets.GITLAB_WEBHOOK_TOKEN as string)).status);

    // The SSH CA key and the X.509 CA load where the ssh and x509 grants load them, and sign.
    const [sshJwk] = JSON.parse(secrets.RUNPASS_SSH_CA_KEYS as string) as CaJwk[];
    const ca = await importCa(sshJwk as CaJwk);
    expect(ca.type).toBe("ssh-ed25519");
    expect((await ca.sign(new Uint8Array([1]))).length).toBeGreaterThan(64);
    const authority = await X509Authority.fromConfig(secrets.RUNPASS_X509_CA);
    expect(authority).toBeInstanceOf(X509Authority);
  });

  it("GET /v1/admin/status reports the configuration and never a secret value", async () => {
    const secrets = await generateSecrets({ with: ["ssh", "x509"] });
    const s = await setup(secrets);
    const put = await s.admin(`/v1/admin/secrets/${s.ns}/stripe`, {
      method: "PUT",
      body: JSON.stringify({ value: "sk_x" }),
    });
    expect(put.status).toBe(201);
    // A token verified once, so the issuer's JWKS cache holds something to report.
    expect((await s.broker.exchange(await s.token(), { policy: "api-deploy" })).status).toBe(200);
    const { text, body } = await status(s.broker, secrets.RUNPASS_ADMIN_TOKEN as string);
    for (const value of secretStrings(secrets))
      expect(text.includes(value), "a secret value is in the status body").toBe(false);

    const signing = JSON.parse(secrets.RUNPASS_SIGNING_KEYS as string) as JWK[];
    const master = JSON.parse(secrets.RUNPASS_MASTER_KEYS as string) as { active: string };
    expect(body).toMatchObject({
      runpass_version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      issuer_url: BROKER_URL,
      signing_keys: signing.map((k) => ({ kid: k.kid, alg: k.alg })),
      d1: { reachable: true },
      secret_store: { master_key_ids: [master.active], active: master.active },
      ssh_ca: { key_ids: [(JSON.parse(secrets.RUNPASS_SSH_CA_KEYS as string) as JWK[])[0]?.kid] },
      x509_ca: { configured: true },
      connections: { configured: expect.any(Number) },
      webhooks: { github: { secret_set: true }, gitlab: { token_set: true } },
      policy_set: { version: s.broker.bundle.version, policies: 2, grants_in_use: ["secrets", "token"] },
      problems: [],
    });
    const issuers = body.issuers as Array<{
      name: string;
      kind: string;
      jwks: { state: string; keys?: number };
    }>;
    expect(issuers.find((i) => i.name === s.gh)).toMatchObject({ kind: "github", jwks: { state: "fresh" } });
    expect(issuers.find((i) => i.name === s.gl)).toMatchObject({
      kind: "gitlab",
      jwks: { state: "not_fetched" },
    });
    const settings = body.settings as Array<{ name: string; set: boolean; needed: boolean }>;
    expect(settings.find((x) => x.name === "RUNPASS_MASTER_KEYS")).toMatchObject({ set: true, needed: true });
    expect(settings.find((x) => x.name === "GITHUB_APP_PRIVATE_KEY")).toMatchObject({ needed: false });
    expect(body.rate_limits).toMatchObject({ failures: { limit: 60, window_seconds: 60 } });
  });

  it("status names what is missing or refused, still without values", async () => {
    const secrets = await generateSecrets();
    const { GITHUB_WEBHOOK_SECRET: _gone, ...rest } = secrets;
    const broker = await githubGrantBroker({
      ...rest,
      GITHUB_WEBHOOK_SECRET: "",
      RUNPASS_MASTER_KEYS: '{"active":"m9","keys":{"m1":"c2VjcmV0LXZhbHVlLW5vdC0zMi1ieXRlcw=="}}',
      GITHUB_APP_ID: "777",
      GITHUB_APP_PRIVATE_KEY: "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    });
    const { text, body } = await status(broker, secrets.RUNPASS_ADMIN_TOKEN as string);
    expect(text).not.toContain("c2VjcmV0LXZhbHVlLW5vdC0zMi1ieXRlcw==");
    expect(text).not.toContain("bm90IGEga2V5");
    const problems = (body.problems as Array<{ setting: string }>).map((p) => p.setting);
    expect(problems).toEqual(
      expect.arrayContaining(["GITHUB_WEBHOOK_SECRET", "RUNPASS_MASTER_KEYS", "GITHUB_APP_PRIVATE_KEY"]),
    );
    expect(body.github_app).toMatchObject({ configured: true, id: "777", jwt_accepted: false });
    expect(body.webhooks).toMatchObject({ github: { secret_set: false } });
  });

  it("status asks GitHub whether the App's JWT is accepted", async () => {
    const secrets = await generateSecrets();
    const broker = await githubGrantBroker({
      ...secrets,
      GITHUB_APP_ID: env.TEST_GITHUB_APP_ID,
      GITHUB_APP_PRIVATE_KEY: env.TEST_GITHUB_APP_PRIVATE_KEY,
      GITHUB_API_URL: env.TEST_GITHUB_API_BASE,
    });
    const { text, body } = await status(broker, secrets.RUNPASS_ADMIN_TOKEN as string);
    expect(body.github_app).toEqual({ configured: true, id: env.TEST_GITHUB_APP_ID, jwt_accepted: true });
    expect(body.problems).toEqual([]);
    const keyBody = env.TEST_GITHUB_APP_PRIVATE_KEY.split("\n").filter((l) => l.length > 40);
    for (const line of keyBody) expect(text.includes(line)).toBe(false);
  });
});
