// The gcp and azure grants end to end inside workerd, with no static cloud key anywhere: runpass signs its own
// RS256 assertions, and local stand-ins of Google STS + IAM Credentials and Entra's token endpoint verify them
// against runpass's JWKS as the real services do (test/support/fake-gcp.ts, fake-azure.ts). One exchange with
// AWS (web identity), GCP and Azure; refusals; throttling; outages; lifetimes; secrecy; configuration.

import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { GCP_EXPIRY_SKEW_SECONDS } from "../../src/core/constants.ts";
import {
  BROKER_URL,
  buildBundle,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  type TestBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { ACME, githubClaims, mint } from "../support/claims.ts";
import { captureConsole } from "../support/console-capture.ts";
import type { AzureRecord } from "../support/fake-azure.ts";
import type { GcpRecord } from "../support/fake-gcp.ts";
import type { StsRecord } from "../support/fake-sts.ts";
import { AZURE, CLOUD_ENV, GCP, STS } from "../support/upstream-env.ts";

interface Exchanged {
  lease: { id: string; run: string; expires_at: string; revoke_token: string };
  credentials?: {
    aws?: { access_key_id: string; secret_access_key: string; session_token: string; expires_at: string };
    gcp?: { access_token: string; expires_at: string; service_account?: string };
    azure?: {
      access_token: string;
      expires_at: string;
      client_id: string;
      tenant_id: string;
      federated_token: string;
    };
  };
  error?: string;
  error_description?: string;
  retryable?: boolean;
  reasons?: Array<{ code: string; grant?: string }>;
}

async function post(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: "POST", body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
}

const gcpCalls = async (target: string) =>
  (await (await fetch(`${GCP}/__requests?target=${encodeURIComponent(target)}`)).json()) as GcpRecord[];
const azureCalls = async (clientId: string) =>
  (await (await fetch(`${AZURE}/__requests?clientId=${clientId}`)).json()) as AzureRecord[];
const stsCalls = async (roleArn: string) =>
  (await (await fetch(`${STS}/__requests?roleArn=${encodeURIComponent(roleArn)}`)).json()) as StsRecord[];

function decodeClaims(jwt: string): Record<string, unknown> {
  return JSON.parse(atob((jwt.split(".")[1] as string).replace(/-/g, "+").replace(/_/g, "/"))) as Record<
    string,
    unknown
  >;
}

interface Setup {
  broker: TestBroker;
  roleArn: string;
  /** `//iam.googleapis.com/projects/…/providers/runpass`. */
  audience: string;
  pool: string;
  serviceAccount: string;
  tenant: string;
  clientId: string;
  jwks: unknown;
  token: () => Promise<string>;
  exchange: (t: string, body?: Record<string, unknown>) => Promise<{ status: number; body: Exchanged }>;
}

interface Options {
  ttl?: string;
  /** The gcp grant's lines (indented by 4); default: the service account, cloud-platform, 30m. */
  gcp?: string;
  env?: Partial<Cloudflare.Env>;
  /** Register runpass at the clouds (default) or leave each cloud's trust to the test. */
  trust?: boolean;
}

/** A policy with aws (web identity), gcp and azure grants, each cloud trusting runpass for it. */
async function setup(options: Options = {}): Promise<Setup> {
  const gh = uniqueIssuer();
  const suffix = crypto.randomUUID().slice(0, 8);
  const roleArn = `arn:aws:iam::111111111111:role/multi-${suffix}`;
  const pool = `projects/123456789012/locations/global/workloadIdentityPools/ci-${suffix}`;
  const provider = `${pool}/providers/runpass`;
  const audience = `//iam.googleapis.com/${provider}`;
  const serviceAccount = `deployer-${suffix}@acme-prod.iam.gserviceaccount.com`;
  const tenant = crypto.randomUUID();
  const clientId = crypto.randomUUID();
  const gcp =
    options.gcp ??
    `    service_account: ${serviceAccount}
    scopes: [https://www.googleapis.com/auth/cloud-platform]
    lifetime: 30m`;
  const policy = `issuer: ${gh}
allow:
  repository_owner_id: "${ACME.ownerId}"
  repository_id: "${ACME.repoId}"
ttl: ${options.ttl ?? "1h"}
grants:
  aws:
    role_arn: ${roleArn}
    duration: 15m
  gcp:
    workload_identity_provider: ${provider}
${gcp}
  azure:
    tenant_id: ${tenant}
    client_id: ${clientId}
    scope: https://management.azure.com/.default
`;
  const broker = await makeBroker({
    policies: { deploy: policy },
    issuers: issuersYaml(gh),
    env: {
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
      AWS_STS_ENDPOINT: STS,
      ...CLOUD_ENV,
      ...options.env,
    },
  });
  const jwks = await (await broker.fetch("/.well-known/jwks.json")).json();
  if (options.trust !== false) {
    await post(`${STS}/__control/web-identity`, { issuer: BROKER_URL, jwks });
    // The one-time set-up of docs/grants.md: a provider for runpass with a condition on the policy's subjects,
    // the service account bound to the policy's principal set, an Entra app trusting the policy's subject.
    await post(`${GCP}/__control/provider`, {
      name: audience,
      issuer: BROKER_URL,
      jwks,
      subjectPrefix: "policy:deploy:run:",
    });
    await post(`${GCP}/__control/service-account`, {
      email: serviceAccount,
      members: [`principalSet://iam.googleapis.com/${pool}/attribute.policy/deploy`],
    });
    await post(`${AZURE}/__control/issuer`, { issuer: BROKER_URL, jwks });
    await post(`${AZURE}/__control/app`, {
      tenant,
      clientId,
      credentials: [{ issuer: BROKER_URL, subject: "runpass:policy:deploy" }],
    });
  }
  const token = () => mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL));
  const exchange = async (t: string, body: Record<string, unknown> = {}) => {
    const res = await broker.exchange(t, { policy: "deploy", ...body });
    return { status: res.status, body: (await res.json()) as Exchanged };
  };
  return { broker, roleArn, audience, pool, serviceAccount, tenant, clientId, jwks, token, exchange };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("one run, three clouds, no static cloud key", () => {
  it("one exchange returns AWS, GCP and Azure credentials, each cloud verifying runpass's own assertion", async () => {
    const s = await setup();
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(200);
    const c = res.body.credentials;
    expect(c?.aws?.access_key_id).toMatch(/^ASIA/);
    expect(c?.gcp?.access_token).toMatch(/^ya29\.c\./);
    expect(c?.gcp?.service_account).toBe(s.serviceAccount);
    expect(c?.azure).toMatchObject({ client_id: s.clientId, tenant_id: s.tenant });
    expect(c?.azure?.access_token).toBeTruthy();
    const run = res.body.lease.run;

    const [aws] = await stsCalls(s.roleArn);
    expect(aws?.action).toBe("AssumeRoleWithWebIdentity");
    expect(aws?.accessKeyId).toBeUndefined();

    const [sts, iam] = await gcpCalls(s.audience).then(async (a) => [
      a[0],
      (await gcpCalls(s.serviceAccount))[0],
    ]);
    expect(sts?.claims).toMatchObject({
      iss: BROKER_URL,
      aud: s.audience,
      sub: `policy:deploy:run:${run}`,
      runpass_grant: "gcp",
      policy: "deploy",
    });
    // The service account is impersonated for the policy's scopes and lifetime (30m, inside the 1h lease).
    expect(iam).toMatchObject({
      status: 200,
      lifetime: "1800s",
      scope: ["https://www.googleapis.com/auth/cloud-platform"],
    });

    const [entra] = await azureCalls(s.clientId);
    expect(entra?.alg).toBe("RS256");
    expect(entra?.claims).toMatchObject({
      iss: BROKER_URL,
      aud: "api://AzureADTokenExchange",
      sub: "runpass:policy:deploy",
      runpass_grant: "azure",
    });
    // federated_token is the assertion Entra accepted: `az login --federated-token` can redeem it.
    expect(decodeClaims(c?.azure?.federated_token as string)).toEqual(entra?.claims);

    // runpass's JWKS and discovery publish the RS256 key next to the active one.
    const keys = (s.jwks as { keys: Array<{ alg: string; d?: string }> }).keys;
    expect(keys.map((k) => k.alg).sort()).toEqual(["ES256", "RS256"]);
    expect(keys.every((k) => k.d === undefined)).toBe(true);
    const discovery = (await (await s.broker.fetch("/.well-known/openid-configuration")).json()) as {
      id_token_signing_alg_values_supported: string[];
    };
    expect(discovery.id_token_signing_alg_values_supported).toContain("RS256");
  });

  it("without service_account the run gets the federated token, capped by the assertion's lifetime", async () => {
    const s = await setup({
      ttl: "20m",
      gcp: `    scopes: [https://www.googleapis.com/auth/devstorage.read_only]
    lifetime: 20m`,
    });
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(200);
    expect(res.body.credentials?.gcp?.access_token).toMatch(/^ya29\.d\./);
    expect(res.body.credentials?.gcp?.service_account).toBeUndefined();
    const [sts] = await gcpCalls(s.audience);
    expect(sts?.scope).toBe("https://www.googleapis.com/auth/devstorage.read_only");
    expect(sts?.expiresIn).toBeLessThanOrEqual(20 * 60);
    expect(Date.parse(res.body.credentials?.gcp?.expires_at as string)).toBeLessThanOrEqual(
      Date.parse(res.body.lease.expires_at),
    );
  });
});

describe("a Google token that would outlive the lease", () => {
  it("is not delivered: 502, not retried, nothing in the response, the reason in the audit only", async () => {
    const s = await setup({
      ttl: "20m",
      gcp: `    scopes: [https://www.googleapis.com/auth/devstorage.read_only]
    lifetime: 20m`,
    });
    // A Google that issues hour-long federated tokens whatever the assertion's expiry.
    await post(`${GCP}/__control/provider`, {
      name: s.audience,
      issuer: BROKER_URL,
      jwks: s.jwks,
      subjectPrefix: "policy:deploy:run:",
      federatedLifetime: "hour",
    });
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(502);
    expect(res.body.credentials).toBeUndefined();
    expect((res.body as { retryable?: boolean }).retryable).toBe(false);
    const [sts] = await gcpCalls(s.audience);
    expect(sts?.issued).toBe(true);
    expect(sts?.expiresIn).toBe(60 * 60);
  });
});

describe("the stand-ins refuse what the real services refuse", () => {
  it("a Google provider expecting another audience or issuer, or a condition on another policy, refuses: 502, not retried, Google's text only in the audit", async () => {
    for (const [change, error] of [
      [{ allowedAudiences: ["https://iam.googleapis.com/other"] }, /audience in ID Token/],
      [{ issuer: "https://other-runpass.example" }, /issuer in ID Token/],
      [{ subjectPrefix: "policy:other:run:" }, /attribute condition/],
    ] as const) {
      const s = await setup();
      await post(`${GCP}/__control/provider`, {
        name: s.audience,
        issuer: BROKER_URL,
        jwks: s.jwks,
        subjectPrefix: "policy:deploy:run:",
        ...change,
      });
      const res = await s.exchange(await s.token());
      expect(res.status).toBe(502);
      expect(res.body).toMatchObject({ error: "upstream_error", retryable: false });
      expect(res.body.credentials).toBeUndefined();
      expect(JSON.stringify(res.body)).not.toMatch(/ID Token|condition|invalid_grant/);
      const calls = await gcpCalls(s.audience);
      expect(calls).toHaveLength(1);
      expect(calls[0]?.errorDescription).toMatch(error);
      const audit = (await (await s.broker.admin("/v1/admin/audit?policy=deploy&decision=deny")).json()) as {
        records: Array<{ error: string; detail?: string }>;
      };
      expect(audit.records.some((r) => r.error === "upstream_error" && error.test(r.detail ?? ""))).toBe(
        true,
      );
    }
  });

  it("a service account bound to another policy refuses the federated principal", async () => {
    const s = await setup();
    await post(`${GCP}/__control/service-account`, {
      email: s.serviceAccount,
      members: [`principalSet://iam.googleapis.com/${s.pool}/attribute.policy/other`],
    });
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(502);
    const [iam] = await gcpCalls(s.serviceAccount);
    expect(iam).toMatchObject({ status: 403, error: "PERMISSION_DENIED" });
  });

  it("an Entra federated credential for another subject, issuer or audience refuses the assertion", async () => {
    for (const [credential, code] of [
      [{ issuer: BROKER_URL, subject: "runpass:policy:other" }, 700213],
      [{ issuer: "https://other-runpass.example", subject: "runpass:policy:deploy" }, 700211],
      [{ issuer: BROKER_URL, subject: "runpass:policy:deploy", audiences: ["api://other"] }, 700212],
    ] as const) {
      const s = await setup();
      await post(`${AZURE}/__control/app`, {
        tenant: s.tenant,
        clientId: s.clientId,
        credentials: [credential],
      });
      const res = await s.exchange(await s.token());
      expect(res.status).toBe(502);
      expect(res.body).toMatchObject({ error: "upstream_error", retryable: false });
      expect(JSON.stringify(res.body)).not.toMatch(/AADSTS/);
      const calls = await azureCalls(s.clientId);
      expect(calls.map((c) => c.errorCode)).toEqual([code]);
    }
  });

  it("the stand-ins check signature, expiry and (Entra) RS256 against runpass's JWKS", async () => {
    const s = await setup();
    const now = Math.floor(Date.now() / 1000);
    const ownKeys = JSON.parse(env.RUNPASS_SIGNING_KEYS as string) as Array<
      JWK & { kid: string; alg: string }
    >;
    /** Signs with runpass's own key for `alg` (a genuine signature), or with a stranger's key under its kid. */
    const sign = async (alg: "RS256" | "ES256", payload: Record<string, unknown>, forged = false) => {
      const own = ownKeys.find((k) => k.alg === alg) as JWK & { kid: string };
      const key = forged
        ? (await generateKeyPair(alg)).privateKey
        : ((await importJWK(own, alg)) as CryptoKey);
      return new SignJWT(payload).setProtectedHeader({ alg, kid: own.kid }).sign(key);
    };
    const gcpExchange = async (subjectToken: string) => {
      const res = await fetch(`${GCP}/v1/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
          audience: s.audience,
          scope: "https://www.googleapis.com/auth/cloud-platform",
          requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
          subject_token: subjectToken,
          subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
        }),
      });
      const body = (await res.json()) as { error?: string; error_description?: string };
      return `${res.status} ${body.error ?? "ok"}: ${body.error_description ?? ""}`;
    };
    const gcpClaims = { iss: BROKER_URL, aud: s.audience, sub: "policy:deploy:run:1", policy: "deploy" };
    const live = { iat: now, exp: now + 300 };
    const past = { iat: now - 600, exp: now - 300 };
    expect(await gcpExchange(await sign("RS256", { ...gcpClaims, ...live }))).toMatch(/^200 ok/);
    expect(await gcpExchange(await sign("RS256", { ...gcpClaims, ...live }, true))).toMatch(
      /^400 invalid_grant: .*signature/,
    );
    expect(await gcpExchange(await sign("RS256", { ...gcpClaims, ...past }))).toMatch(
      /^400 invalid_grant: .*expired/,
    );

    const entra = (assertion: string) =>
      fetch(`${AZURE}/${s.tenant}/oauth2/v2.0/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_id: s.clientId,
          scope: "https://management.azure.com/.default",
          client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
          client_assertion: assertion,
        }),
      }).then((r) => r.body?.cancel());
    const azureClaims = { iss: BROKER_URL, aud: "api://AzureADTokenExchange", sub: "runpass:policy:deploy" };
    await entra(await sign("RS256", { ...azureClaims, ...live }));
    await entra(await sign("RS256", { ...azureClaims, ...live }, true));
    await entra(await sign("RS256", { ...azureClaims, ...past }));
    // runpass's own ES256 key, genuinely signed: Entra refuses the algorithm.
    await entra(await sign("ES256", { ...azureClaims, ...live }));
    expect((await azureCalls(s.clientId)).map((c) => c.errorCode ?? c.status)).toEqual([
      200, 700027, 700024, 5002738,
    ]);
  });
});

describe("throttling, outages and consumption", () => {
  it("throttled Google STS, IAM Credentials and Entra recover within the retry budget", async () => {
    const s = await setup();
    await post(`${GCP}/__control/fault`, { target: s.audience, mode: "throttle", times: 2 });
    await post(`${GCP}/__control/fault`, { target: s.serviceAccount, mode: "throttle", times: 1 });
    await post(`${AZURE}/__control/fault`, { clientId: s.clientId, mode: "throttle", times: 2 });
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(200);
    expect((await gcpCalls(s.audience)).map((c) => c.status)).toEqual([429, 429, 200]);
    expect((await gcpCalls(s.serviceAccount)).map((c) => c.status)).toEqual([429, 200]);
    expect((await azureCalls(s.clientId)).map((c) => c.status)).toEqual([429, 429, 200]);
  });

  it("an upstream that stays down is 502 retryable, nothing is issued, and the CI token is not consumed", async () => {
    for (const down of ["gcp", "azure"] as const) {
      const s = await setup();
      if (down === "gcp") await post(`${GCP}/__control/fault`, { target: s.audience, mode: "down" });
      else await post(`${AZURE}/__control/fault`, { clientId: s.clientId, mode: "down" });
      const t = await s.token();
      const res = await s.exchange(t);
      expect(res.status, down).toBe(502);
      expect(res.body).toMatchObject({ error: "upstream_error", retryable: true });
      expect(res.body.credentials).toBeUndefined();
      const attempts = down === "gcp" ? await gcpCalls(s.audience) : await azureCalls(s.clientId);
      expect(attempts.map((c) => c.status)).toEqual([503, 503, 503]);
      if (down === "gcp") await post(`${GCP}/__control/fault`, { target: s.audience, mode: "ok" });
      else await post(`${AZURE}/__control/fault`, { clientId: s.clientId, mode: "ok" });
      const again = await s.exchange(t);
      expect(again.status, down).toBe(200);
      expect(again.body.credentials?.gcp && again.body.credentials.azure).toBeTruthy();
    }
  });
});

describe("lifetimes", () => {
  it("the Google token is capped to the lease and to 1 h; Entra's own expiry is reported even past the lease", async () => {
    // The policy allows 1h and the gcp grant 30m; this run asks for a 20-minute lease.
    const short = await setup();
    const res = await short.exchange(await short.token(), { ttl: "20m" });
    expect(res.status).toBe(200);
    const leaseEnd = Date.parse(res.body.lease.expires_at);
    const [iam] = await gcpCalls(short.serviceAccount);
    expect(Number(iam?.lifetime?.replace("s", ""))).toBeLessThanOrEqual(20 * 60);
    // Google counts the lifetime runpass asked for from when it answers, a moment after runpass planned it: its
    // expiry may pass the lease by that moment, never by more than the skew runpass tolerates before refusing.
    expect(Date.parse(res.body.credentials?.gcp?.expires_at as string)).toBeLessThanOrEqual(
      leaseEnd + GCP_EXPIRY_SKEW_SECONDS * 1000,
    );
    // The federated token handed to the run never outlives the lease; Entra's access token may (70 min here).
    expect(
      Number(decodeClaims(res.body.credentials?.azure?.federated_token as string).exp) * 1000,
    ).toBeLessThanOrEqual(leaseEnd);
    expect(Date.parse(res.body.credentials?.azure?.expires_at as string)).toBeGreaterThan(leaseEnd);

    const long = await setup({
      ttl: "3h",
      gcp: `    service_account: deployer@acme-prod.iam.gserviceaccount.com
    lifetime: 2h`,
    });
    await post(`${GCP}/__control/service-account`, {
      email: "deployer@acme-prod.iam.gserviceaccount.com",
      members: [`principalSet://iam.googleapis.com/${long.pool}/attribute.policy/deploy`],
    });
    const capped = await long.exchange(await long.token());
    expect(capped.status).toBe(200);
    const calls = await gcpCalls("deployer@acme-prod.iam.gserviceaccount.com");
    expect(calls.at(-1)?.lifetime).toBe("3600s");
  });
});

describe("secrecy", () => {
  it("no Google or Entra token, nor the assertion, appears in any log line or audit record", async () => {
    const lines = captureConsole();
    const s = await setup();
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(200);
    await post(`${AZURE}/__control/fault`, { clientId: s.clientId, mode: "down" });
    await s.exchange(await s.token());
    await s.broker.fetch(`/v1/leases/${res.body.lease.id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${res.body.lease.revoke_token}` },
    });
    const audit = await (await s.broker.admin("/v1/admin/audit?policy=deploy")).text();
    const logged = lines.join("\n");
    expect(logged).toContain("runpass.audit");
    expect(audit).toContain("upstream_error");
    const c = res.body.credentials;
    const secrets = [
      c?.gcp?.access_token,
      c?.azure?.access_token,
      ...(c?.azure?.federated_token.split(".") ?? []),
    ];
    for (const secret of secrets) {
      expect(secret).toBeTruthy();
      expect(logged).not.toContain(secret as string);
      expect(audit).not.toContain(secret as string);
    }
  });
});

describe("configuration", () => {
  it("a deployment with gcp or azure grants and no RS256 key refuses to serve, naming the fix", async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const es256Only = JSON.stringify([{ ...(await exportJWK(privateKey)), kid: "only-es256", alg: "ES256" }]);
    const s = await setup({ env: { RUNPASS_SIGNING_KEYS: es256Only }, trust: false });
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(503);
    expect(res.body.error).toBe("temporarily_unavailable");
    expect(res.body.error_description).toMatch(/RUNPASS_SIGNING_KEYS has no RS256 key.*"alg": "RS256"/);
    expect(res.body.error_description).toContain('policy "deploy"');
    expect((await s.broker.fetch("/.well-known/jwks.json")).status).toBe(503);
    // The same keys serve a deployment without gcp or azure grants.
    const gh = uniqueIssuer();
    const plain = await makeBroker({
      policies: {
        ci: `issuer: ${gh}\nallow:\n  repository_id: "${ACME.repoId}"\ngrants:\n  token: { audience: "https://deploy.acme.dev", ttl: 10m }\n`,
      },
      issuers: issuersYaml(gh),
      env: { RUNPASS_SIGNING_KEYS: es256Only },
    });
    expect((await plain.fetch("/.well-known/jwks.json")).status).toBe(200);
  });

  it("a policy with a gcp grant and a name over 64 characters does not load", async () => {
    const gh = uniqueIssuer();
    const grant = `grants:
  gcp:
    workload_identity_provider: projects/1/locations/global/workloadIdentityPools/ci-pool/providers/runpass
`;
    const body = `issuer: ${gh}\nallow:\n  repository_id: "${ACME.repoId}"\n${grant}`;
    await expect(buildBundle({ ["p".repeat(65)]: body }, issuersYaml(gh))).rejects.toThrow(
      /gcp grant has a name of at most 64 characters/,
    );
    expect((await buildBundle({ ["p".repeat(64)]: body }, issuersYaml(gh))).policies).toHaveLength(1);
  });
});
