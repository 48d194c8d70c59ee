// The gcp and azure grants' parts outside workerd: which key signs their assertions (RS256, refused without one),
// the Google subject within 127 bytes, the token-endpoint clients against the stand-ins (retries with an injected
// sleep, Google's and Entra's error text kept for the audit only, endpoint overrides), the client exports, and
// `npm start`'s dev keys and passthrough.

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type JWK,
  jwtVerify,
} from "jose";
import { describe, expect, inject, it } from "vitest";
import { azureFor, gcpFor } from "../../src/adapters/cloud-endpoints.ts";
import type { Env } from "../../src/adapters/env.ts";
import { devVars } from "../../src/cli/dev-env.ts";
import { ensureDevKeys } from "../../src/cli/dev-keys.ts";
import { GRANT_ENV_NAMES, GRANT_EXPORTS } from "../../src/client/grant-exports.ts";
import { ConfigError } from "../../src/core/errors.ts";
import { azureGrant } from "../../src/core/grants/azure.ts";
import { gcpGrant, gcpSubject } from "../../src/core/grants/gcp.ts";
import { Signer } from "../../src/core/grants/signer.ts";
import { UpstreamError } from "../../src/core/grants/upstream.ts";
import { loadPolicySet } from "../../src/core/policy/load.ts";
import { envNameProblem } from "../../src/core/secrets/paths.ts";

const gcpBase = inject("gcpBase");
const azureBase = inject("azureBase");

async function privateJwk(alg: "ES256" | "RS256", kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg };
}

async function post(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: "POST", body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
}

describe("signing keys", () => {
  it("gcp and azure assertions are RS256 with the RS256 key even when an ES256 key is active; others use the active key", async () => {
    const es = await privateJwk("ES256", "es");
    const rs = await privateJwk("RS256", "rs");
    const signer = await Signer.fromConfig(JSON.stringify([es, rs]), { requireRs256: "x" });
    const jwks = createLocalJWKSet(signer.jwks());
    for (const [grant, alg, kid] of [
      ["gcp", "RS256", "rs"],
      ["azure", "RS256", "rs"],
      ["aws", "ES256", "es"],
      ["token", "ES256", "es"],
    ] as const) {
      const jwt = await signer.sign(grant, { sub: "s" });
      expect(decodeProtectedHeader(jwt), grant).toMatchObject({ alg, kid });
      expect((await jwtVerify(jwt, jwks)).payload.runpass_grant).toBe(grant);
    }
    expect(signer.algorithms).toEqual(["ES256", "RS256"]);
  });

  it("without an RS256 key: refused at load when something needs one, and a gcp/azure signature is a ConfigError naming the fix", async () => {
    const es = JSON.stringify([await privateJwk("ES256", "es")]);
    await expect(
      Signer.fromConfig(es, { requireRs256: 'the gcp and azure grants (policy "deploy")' }),
    ).rejects.toThrow(
      /RUNPASS_SIGNING_KEYS has no RS256 key, which the gcp and azure grants \(policy "deploy"\) need.*"alg": "RS256"/,
    );
    const signer = await Signer.fromConfig(es);
    expect(signer.algorithms).toEqual(["ES256"]);
    await expect(signer.sign("azure", {})).rejects.toBeInstanceOf(ConfigError);
    await expect(signer.sign("gcp", {})).rejects.toThrow(/no RS256 key/);
    expect(decodeProtectedHeader(await signer.sign("token", {})).alg).toBe("ES256");
  });
});

describe("the Google subject", () => {
  it("is policy:<name>:run:<run> when it fits in 127 bytes, else the run's digest under the same prefix", async () => {
    expect(await gcpSubject("deploy", "github:github:519345000:42:1")).toBe(
      "policy:deploy:run:github:github:519345000:42:1",
    );
    const long = await gcpSubject("p".repeat(64), `token:some-long-issuer-name:${"a".repeat(64)}`);
    expect(long).toMatch(new RegExp(`^policy:${"p".repeat(64)}:run:sha256-[0-9a-f]{40}$`));
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(127);
    expect(await gcpSubject("p".repeat(64), `token:x:${"b".repeat(64)}`)).not.toBe(long);
  });
});

describe("loading and planning", () => {
  const PROVIDER = "projects/1/locations/global/workloadIdentityPools/ci-pool/providers/runpass";
  const policy = (grants: string, ttl = "1h") =>
    `issuer: github\nallow:\n  repository_id: "519345000"\nttl: ${ttl}\ngrants:\n${grants}\n`;
  const problems = async (grants: string, ttl?: string) => {
    const r = await loadPolicySet(
      { policies: [{ path: "policies/p.yaml", text: policy(grants, ttl) }] },
      { dev: false },
    );
    return r.problems.map((p) => p.message).join("\n");
  };

  it("the build refuses what Google and Entra would refuse, and what could outlive the lease", async () => {
    expect(await problems("  gcp: { workload_identity_provider: ci-pool/runpass }")).toMatch(
      /workload_identity_provider: expected projects\/<project number>/,
    );
    expect(
      await problems(
        `  gcp: { workload_identity_provider: ${PROVIDER}, service_account: deployer@gmail.com }`,
      ),
    ).toMatch(/not a service account email/);
    expect(
      await problems(`  gcp: { workload_identity_provider: ${PROVIDER}, lifetime: 13h }`, "24h"),
    ).toMatch(/Google access tokens last from 1m to 12h/);
    expect(await problems(`  gcp: { workload_identity_provider: ${PROVIDER}, lifetime: 2h }`)).toMatch(
      /longer than the policy's lease ttl/,
    );
    expect(await problems(`  gcp: { workload_identity_provider: ${PROVIDER}, scopes: [] }`)).toMatch(
      /from 1 to 20/,
    );
    expect(
      await problems(
        "  azure: { tenant_id: x, client_id: not-a-guid, scope: https://graph.microsoft.com/.default }",
      ),
    ).toMatch(/tenant_id: expected[\s\S]*client_id: expected the application/);
    // The full resource name is accepted too, and normalised.
    const ok = await loadPolicySet(
      {
        policies: [
          {
            path: "policies/p.yaml",
            text: policy(`  gcp: { workload_identity_provider: "//iam.googleapis.com/${PROVIDER}" }`),
          },
        ],
      },
      { dev: false },
    );
    expect(ok.bundle?.policies[0]?.grants.gcp).toEqual({
      workload_identity_provider: PROVIDER,
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
      lifetime: 15 * 60,
    });
  });

  it("a lease with under a minute left gets neither grant (400 lease_too_short, before any upstream call)", () => {
    const ctx = {
      subject: { issuer: {} as never, claims: {}, sub: "s" },
      lease: { id: "lse_x", run: "r", expiresAt: 1_000_030 },
      now: 1_000_000,
      inputs: {},
    };
    const gcpDef = { workload_identity_provider: PROVIDER, scopes: ["openid"], lifetime: 900 };
    expect(() => gcpGrant.plan(gcpDef, ctx)).toThrow(/less than a minute/);
    const azureDef = { tenant_id: "t", client_id: "c", scope: "x/.default" };
    expect(() => azureGrant.plan(azureDef, ctx)).toThrow(/less than a minute/);
    const later = { ...ctx, lease: { ...ctx.lease, expiresAt: 1_000_000 + 600 } };
    expect(gcpGrant.plan(gcpDef, later).lifetimeSeconds).toBe(600);
    expect(azureGrant.plan(azureDef, later).assertionSeconds).toBe(600);
    const long = { ...ctx, lease: { ...ctx.lease, expiresAt: 1_000_000 + 4 * 3600 } };
    expect(gcpGrant.plan({ ...gcpDef, lifetime: 7200 }, long).lifetimeSeconds).toBe(3600);
    expect(azureGrant.plan(azureDef, long).assertionSeconds).toBe(3600);
  });
});

describe("token endpoint clients against the stand-ins", () => {
  const sleeps: number[] = [];
  const retry = { attempts: 3, baseDelayMs: 100, sleep: async (ms: number) => void sleeps.push(ms) };
  const env = {
    GCP_STS_ENDPOINT: gcpBase,
    GCP_IAMCREDENTIALS_ENDPOINT: gcpBase,
    AZURE_AUTHORITY_HOST: azureBase,
  } as Env;

  it("throttling is retried with the injected sleep; an outage ends retryable with the upstream's text for the audit only", async () => {
    const audience = `//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/u-${crypto.randomUUID().slice(0, 8)}/providers/runpass`;
    const signer = await Signer.fromConfig(JSON.stringify([await privateJwk("RS256", "rs")]));
    await post(`${gcpBase}/__control/provider`, {
      name: audience,
      issuer: "https://runpass.test",
      jwks: signer.jwks(),
    });
    const now = Math.floor(Date.now() / 1000);
    const subjectToken = await signer.sign("gcp", {
      iss: "https://runpass.test",
      aud: audience,
      sub: "policy:p:run:1",
      iat: now,
      exp: now + 120,
    });
    const gcp = gcpFor(env, { retry });
    await post(`${gcpBase}/__control/fault`, { target: audience, mode: "throttle", times: 2 });
    sleeps.length = 0;
    const token = await gcp.exchange({
      audience,
      scope: "https://www.googleapis.com/auth/cloud-platform",
      subjectToken,
    });
    expect(token.expiresIn).toBeLessThanOrEqual(120);
    expect(sleeps).toHaveLength(2);

    await post(`${gcpBase}/__control/fault`, { target: audience, mode: "down" });
    sleeps.length = 0;
    const down = await gcp
      .exchange({ audience, scope: "https://www.googleapis.com/auth/cloud-platform", subjectToken })
      .catch((e: unknown) => e);
    expect(down).toBeInstanceOf(UpstreamError);
    expect(down).toMatchObject({ retryable: true });
    expect((down as UpstreamError).detail).toMatch(
      /^Google STS token exchange: HTTP 503 temporarily_unavailable/,
    );
    expect(sleeps).toHaveLength(2);
  });

  it("a refusal is not retried; Entra's AADSTS text is kept for the audit", async () => {
    const azure = azureFor(env, { retry });
    sleeps.length = 0;
    const refused = await azure
      .token({
        tenantId: crypto.randomUUID(),
        clientId: crypto.randomUUID(),
        scope: "x/.default",
        clientAssertion: "a.b.c",
      })
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ retryable: false });
    expect((refused as UpstreamError).detail).toMatch(/HTTP 400 unauthorized_client: AADSTS700016/);
    expect(sleeps).toEqual([]);
  });

  it("endpoint overrides must be https, or http to a loopback host", () => {
    expect(() => gcpFor({ GCP_STS_ENDPOINT: "http://sts.example.com" } as Env)).toThrow(
      /GCP_STS_ENDPOINT must be an https URL/,
    );
    expect(() => azureFor({ AZURE_AUTHORITY_HOST: "not a url" } as Env)).toThrow(
      /AZURE_AUTHORITY_HOST is not a URL/,
    );
    expect(() => gcpFor({ GCP_IAMCREDENTIALS_ENDPOINT: "https://iam.example.com/" } as Env)).not.toThrow();
  });
});

const gcpSample = { access_token: "ya29.t", expires_at: "2026-12-02T12:00:00Z" };
const azureSample = {
  access_token: "eyJ.at",
  expires_at: "2026-12-02T13:00:00Z",
  client_id: "c",
  tenant_id: "t",
  federated_token: "eyJ.fed",
};

describe("clients", () => {
  it("export the Google token for gcloud and Terraform and the Azure SDKs' variables", () => {
    const gcp = { access_token: "ya29.t", expires_at: "2026-12-02T12:00:00Z" };
    expect(GRANT_EXPORTS.gcp.env(gcp)).toEqual([
      ["CLOUDSDK_AUTH_ACCESS_TOKEN", "ya29.t"],
      ["GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.t"],
    ]);
    const azure = {
      access_token: "eyJ.at",
      expires_at: "2026-12-02T13:00:00Z",
      client_id: "c",
      tenant_id: "t",
      federated_token: "eyJ.fed",
    };
    expect(GRANT_EXPORTS.azure.env(azure)).toEqual([
      ["AZURE_CLIENT_ID", "c"],
      ["AZURE_TENANT_ID", "t"],
      ["AZURE_FEDERATED_TOKEN", "eyJ.fed"],
      ["RUNPASS_AZURE_ACCESS_TOKEN", "eyJ.at"],
    ]);
    expect(GRANT_EXPORTS.azure.values(azure)).toEqual(["eyJ.at", "eyJ.fed"]);
  });

  it("a secret cannot be delivered under a name the gcp or azure grant exports", () => {
    const names = [...GRANT_EXPORTS.gcp.env(gcpSample), ...GRANT_EXPORTS.azure.env(azureSample)].map(
      ([n]) => n,
    );
    expect(names).toHaveLength(6);
    for (const name of names) expect(envNameProblem(name), name).toMatch(/would override/);
    expect(envNameProblem("AZURE_SUBSCRIPTION_ID")).toBeUndefined();
  });

  it("the broker refuses, as a secret's name, every variable any grant exports (the clients' list)", () => {
    expect(GRANT_ENV_NAMES.length).toBeGreaterThan(20);
    for (const name of GRANT_ENV_NAMES) {
      // In any case: Windows runners and the action treat environment names case-insensitively.
      for (const variant of [name, name.toLowerCase()])
        expect(envNameProblem(variant), variant).toMatch(/would override/);
    }
    for (const name of ["path", "Path", "ld_preload", "LD_LIBRARY_PATH64", "github_token"])
      expect(envNameProblem(name), name).toMatch(/would override/);
    expect(envNameProblem("PGAPPNAME")).toBeUndefined();
  });
});

describe("npm start", () => {
  it("passes GCP_* and AZURE_* through like AWS_*", () => {
    const vars = devVars(
      {},
      { GCP_STS_ENDPOINT: "http://127.0.0.1:1", AZURE_AUTHORITY_HOST: "http://127.0.0.1:2", HOME: "/h" },
    );
    expect(vars).toMatchObject({
      GCP_STS_ENDPOINT: "http://127.0.0.1:1",
      AZURE_AUTHORITY_HOST: "http://127.0.0.1:2",
    });
    expect(vars).not.toHaveProperty("HOME");
  });

  it("dev keys include an RS256 key, and a keys file from before gains one (the ES256 key stays active)", async () => {
    const root = await mkdtemp(join(tmpdir(), "runpass-devkeys-"));
    try {
      const fresh = await ensureDevKeys(root);
      expect(fresh.signingKeys.map((k) => k.alg)).toEqual(["ES256", "RS256"]);
      await writeFile(
        join(root, ".dev/keys.json"),
        JSON.stringify({ ...fresh, signingKeys: [fresh.signingKeys[0]] }),
      );
      const upgraded = await ensureDevKeys(root);
      expect(upgraded.signingKeys.map((k) => k.alg)).toEqual(["ES256", "RS256"]);
      expect(upgraded.signingKeys[0]).toEqual(fresh.signingKeys[0]);
      expect(JSON.parse(await readFile(join(root, ".dev/keys.json"), "utf8"))).toEqual(upgraded);
      await expect(
        Signer.fromConfig(JSON.stringify(upgraded.signingKeys), { requireRs256: "x" }),
      ).resolves.toBeDefined();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
