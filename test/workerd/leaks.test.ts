// Leak response inside workerd (docs/leaks.md): each report form ends exactly the lease and run it names, a
// leaked secret version is quarantined until a new one is put, floods are rate-limited and cannot end anything
// unreported, and alerts reach a local receiver signed, durably, deduplicated and without any value.

import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { credentialChecksumValid } from "../../src/core/credential-format.ts";
import { deriveWebhookSecret } from "../../src/core/webhook-scope.ts";
import {
  BROKER_URL,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  type TestBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { ACME, githubClaims, mint } from "../support/claims.ts";
import { auditRecords, ledgerFor, movableClock, ship } from "../support/run-ledger.ts";
import { GH_API, GITHUB_ENV, STATIC_AWS_ENV } from "../support/upstream-env.ts";
import { GITHUB_SECRET, signGitHub } from "../support/webhooks.ts";

interface Exchanged {
  lease: { id: string; run: string; revoke_token: string };
  credentials: {
    token?: { token: string };
    aws?: { access_key_id: string; secret_access_key: string; session_token: string };
    secrets?: Record<string, string>;
  };
  error?: string;
  reasons?: Array<{ code: string }>;
}

interface LeakAnswer {
  matches: Array<Record<string, unknown> & { kind: string; action: string }>;
  unmatched: number;
}

interface Received {
  body: string;
  signature: string | null;
  valid: boolean;
}

const ALERT_SECRET = "test-alert-secret-0123456789";

async function receiver(name: string, config: { down?: boolean } = {}): Promise<void> {
  await fetch(`${GH_API}/__alerts/${name}/config`, {
    method: "POST",
    body: JSON.stringify({ secret: ALERT_SECRET, ...config }),
  });
}

async function received(name: string): Promise<{ received: Received[]; refused: number }> {
  return (await (await fetch(`${GH_API}/__alerts/${name}/records`)).json()) as {
    received: Received[];
    refused: number;
  };
}

function alertHub() {
  return env.ALERTS.get(env.ALERTS.idFromName("alerts"));
}

interface Setup {
  broker: TestBroker;
  receiverName: string;
  exchange: (policy?: string) => Promise<Exchanged>;
  report: (body: unknown) => Promise<{ status: number; body: LeakAnswer; requestId: string }>;
}

async function setup(
  options: {
    grants?: string;
    policies?: Record<string, string>;
    leakLimit?: string;
    clock?: () => number;
    env?: Partial<Cloudflare.Env>;
  } = {},
): Promise<Setup> {
  const gh = uniqueIssuer();
  const receiverName = `r-${crypto.randomUUID().slice(0, 8)}`;
  await receiver(receiverName);
  const policy = (grants: string) => `issuer: ${gh}
allow:
  repository_owner_id: "${ACME.ownerId}"
ttl: 1h
grants:
${grants}
`;
  const broker = await makeBroker({
    policies: {
      deploy: policy(options.grants ?? `  token: { audience: "https://deploy.acme.dev", ttl: 10m }`),
      ...Object.fromEntries(Object.entries(options.policies ?? {}).map(([k, v]) => [k, policy(v)])),
    },
    issuers: issuersYaml(gh),
    ...(options.clock ? { clock: options.clock } : {}),
    env: {
      ...STATIC_AWS_ENV,
      GITHUB_API_URL: GH_API,
      RUNPASS_ALERT_WEBHOOK: `${GH_API}/__alerts/${receiverName}`,
      RUNPASS_ALERT_SECRET: ALERT_SECRET,
      // One limiter object counts every admin report: the flood test's limit is low, the others' out of reach.
      RUNPASS_RATE_LIMITS: JSON.stringify({ leak: options.leakLimit ?? "1000/1m" }),
      ...options.env,
    },
  });
  const exchange = async (name = "deploy") => {
    const token = await mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL));
    const res = await broker.exchange(token, { policy: name });
    const body = (await res.json()) as Exchanged;
    if (res.status === 200) await ship(body.lease.run);
    return body;
  };
  const report = async (body: unknown) => {
    const res = await broker.admin("/v1/admin/leaks", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return {
      status: res.status,
      body: (await res.json()) as LeakAnswer,
      requestId: res.headers.get("x-request-id") ?? "",
    };
  };
  return { broker, receiverName, exchange, report };
}

async function leaseOf(run: string, id: string) {
  return (await ledgerFor(run).leases()).find((l) => l.id === id);
}

describe("leak reports", () => {
  it("the admin leak and alert endpoints need the admin token", async () => {
    const s = await setup();
    const live = await s.exchange();
    const leak = await s.broker.fetch("/v1/admin/leaks", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer not-the-admin-token-000" },
      body: JSON.stringify({ values: [live.lease.revoke_token] }),
    });
    expect(leak.status).toBe(401);
    expect((await s.broker.fetch("/v1/admin/alerts")).status).toBe(401);
    expect(await ledgerFor(live.lease.run).ended()).toBe(false);
  });

  it("a reported token ends exactly its lease and run; the other run keeps its lease, and no value is echoed", async () => {
    const s = await setup();
    const leaked = await s.exchange();
    const bystander = await s.exchange();
    const value = leaked.credentials.token?.token as string;
    const res = await s.report({ values: [value, "not-a-runpass-credential"], source: "build log" });
    expect(res.status).toBe(200);
    expect(res.body.unmatched).toBe(1);
    expect(res.body.matches).toEqual([
      { kind: "token", lease: leaked.lease.id, run: leaked.lease.run, policy: "deploy", action: "run_ended" },
    ]);
    expect(JSON.stringify(res.body)).not.toContain(value);
    expect((await leaseOf(leaked.lease.run, leaked.lease.id))?.end_reason).toBe("leak_reported");
    expect(await ledgerFor(leaked.lease.run).ended()).toBe(true);
    expect((await leaseOf(bystander.lease.run, bystander.lease.id))?.ended_at).toBeNull();
    expect(await ledgerFor(bystander.lease.run).ended()).toBe(false);

    // Every step audited as `leak`, naming the source, never the value.
    const leakRecords = await auditRecords(s.broker, { event: "leak", run: leaked.lease.run });
    expect(leakRecords.map((r) => r.detail)).toEqual(["admin: token match (build log) → run_ended"]);
    expect(JSON.stringify(leakRecords)).not.toContain(value);

    // Reported again: already ended, still answered (and audited).
    const again = await s.report({ values: [value] });
    expect(again.body.matches.map((m) => m.action)).toEqual(["already_ended"]);
  });

  it("a credential a renewal returned is found too", async () => {
    const time = movableClock();
    const s = await setup({ clock: time.clock });
    const first = await s.exchange();
    // The token grant lives 10 min: a renewal is allowed after 5.
    time.advance(5 * 60_000 + 1000);
    const res = await s.broker.fetch(`/v1/leases/${first.lease.id}/renew`, {
      method: "POST",
      headers: { authorization: `Bearer ${first.lease.revoke_token}` },
    });
    expect(res.status).toBe(200);
    const renewed = ((await res.json()) as Exchanged).credentials.token?.token as string;
    expect(renewed).not.toBe(first.credentials.token?.token);
    await ship(first.lease.run);
    const report = await s.report({ values: [renewed] });
    expect(report.body.matches).toEqual([
      { kind: "token", lease: first.lease.id, run: first.lease.run, policy: "deploy", action: "run_ended" },
    ]);
  });

  it("the revoke token matches as revoke_token; AWS keys name the access key id to search CloudTrail for", async () => {
    const s = await setup({
      grants: `  aws: { role_arn: "arn:aws:iam::111111111111:role/leak-${crypto.randomUUID().slice(0, 6)}", duration: 15m }`,
    });
    const a = await s.exchange();
    const b = await s.exchange();
    const aws = a.credentials.aws as NonNullable<Exchanged["credentials"]["aws"]>;
    const byKey = await s.report({ values: [aws.secret_access_key] });
    expect(byKey.body.matches).toEqual([
      {
        kind: "aws",
        lease: a.lease.id,
        run: a.lease.run,
        policy: "deploy",
        upstream_id: aws.access_key_id,
        action: "run_ended",
      },
    ]);
    // Issued in the scanner-recognisable format (docs/scanners/gitleaks.toml).
    expect(b.lease.revoke_token).toMatch(/^rvk_[0-9A-Za-z]{46}$/);
    expect(credentialChecksumValid(b.lease.revoke_token)).toBe(true);
    const byRevoke = await s.report({ values: [b.lease.revoke_token] });
    expect(byRevoke.body.matches).toMatchObject([
      { kind: "revoke_token", lease: b.lease.id, action: "run_ended" },
    ]);
    expect(await ledgerFor(b.lease.run).ended()).toBe(true);
  });

  it("a gitleaks JSON report and trufflehog JSON objects each end the run they name, and only that one", async () => {
    const s = await setup();
    const [g, t, bystander] = [await s.exchange(), await s.exchange(), await s.exchange()];
    const gitleaks = [
      {
        Description: "runpass token",
        StartLine: 12,
        EndLine: 12,
        StartColumn: 1,
        EndColumn: 80,
        Match: `RUNPASS_TOKEN=${g.credentials.token?.token}`,
        Secret: g.credentials.token?.token,
        File: "ci/deploy.log",
        Commit: "0123456789abcdef",
        Entropy: 5.1,
        Author: "dev",
        Email: "dev@example.com",
        Date: "2026-12-01T10:00:00Z",
        Message: "oops",
        Tags: [],
        RuleID: "runpass-token",
        Fingerprint: "0123456789abcdef:ci/deploy.log:runpass-token:12",
      },
    ];
    const gl = await s.report({ gitleaks });
    expect(gl.body.matches).toMatchObject([{ kind: "token", run: g.lease.run, action: "run_ended" }]);
    const trufflehog = [
      {
        SourceMetadata: { Data: { Filesystem: { file: "logs/build.txt", line: 3 } } },
        SourceID: 1,
        SourceType: 15,
        SourceName: "trufflehog - filesystem",
        DetectorType: 1000,
        DetectorName: "JWT",
        DecoderName: "PLAIN",
        Verified: false,
        Raw: t.credentials.token?.token,
        RawV2: "",
        Redacted: "",
        ExtraData: null,
        StructuredData: null,
      },
    ];
    const th = await s.report({ trufflehog });
    expect(th.body.matches).toMatchObject([{ kind: "token", run: t.lease.run, action: "run_ended" }]);
    expect(await ledgerFor(bystander.lease.run).ended()).toBe(false);
  });

  it("a leaked secret version is quarantined: exchanges fail 502 secret_compromised until a new version is put", async () => {
    const path = `leak-${crypto.randomUUID().slice(0, 8)}/stripe`;
    const s = await setup({ grants: `  secrets: { STRIPE_KEY: ${path} }` });
    const put = (value: string) =>
      s.broker.admin(`/v1/admin/secrets/${path}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ value }),
      });
    const v1 = `sk_live_${crypto.randomUUID()}`;
    expect((await put(v1)).status).toBe(201);
    expect((await s.exchange()).credentials.secrets?.STRIPE_KEY).toBe(v1);

    const res = await s.report({ values: [v1] });
    expect(res.body.matches).toEqual([{ kind: "secret", path, version: 1, action: "secret_quarantined" }]);
    const refused = await s.exchange();
    expect(refused.error).toBe("upstream_error");
    expect(refused.reasons).toEqual([{ code: "secret_compromised" }]);
    const meta = (await (await s.broker.admin(`/v1/admin/secrets/${path}`)).json()) as {
      versions: Array<{ version: number; compromised_at?: string }>;
    };
    expect(meta.versions[0]?.compromised_at).toBeTypeOf("string");

    const v2 = `sk_live_${crypto.randomUUID()}`;
    expect((await put(v2)).status).toBe(201);
    expect((await s.exchange()).credentials.secrets?.STRIPE_KEY).toBe(v2);
  });

  it("a flood of reports is rate-limited and ends nothing it does not name", async () => {
    const s = await setup({ leakLimit: "10/1m" });
    const live = await s.exchange();
    const statuses: number[] = [];
    for (let i = 0; i < 14; i++) {
      statuses.push((await s.report({ values: [`guess-${i}-${crypto.randomUUID()}`] })).status);
    }
    // The limiter object counts every admin report in its window (other tests' too): at most 10 get through.
    const first = statuses.indexOf(429);
    expect(first).toBeGreaterThanOrEqual(0);
    expect(first).toBeLessThanOrEqual(10);
    expect(statuses.slice(first).every((st) => st === 429)).toBe(true);
    expect((await leaseOf(live.lease.run, live.lease.id))?.ended_at).toBeNull();
    expect(await ledgerFor(live.lease.run).ended()).toBe(false);
  });
});

describe("alerts", () => {
  it("a leak alert reaches the receiver signed, names where the credential came from, and carries no value", async () => {
    const s = await setup();
    const leaked = await s.exchange();
    const value = leaked.credentials.token?.token as string;
    const res = await s.report({ values: [value], source: "pastebin" });
    await runDurableObjectAlarm(alertHub());
    const got = (await received(s.receiverName)).received;
    expect(got).toHaveLength(1);
    const alert = JSON.parse(got[0]?.body as string) as Record<string, unknown> & {
      details: Record<string, unknown>;
    };
    expect(got[0]?.valid).toBe(true);
    expect(alert).toMatchObject({
      alert: "leak_detected",
      severity: "critical",
      request_ids: [res.requestId],
    });
    expect(alert.details).toMatchObject({
      run: leaked.lease.run,
      lease: leaked.lease.id,
      source: "pastebin",
    });
    expect(typeof alert.text).toBe("string");
    for (const secret of [value, leaked.lease.revoke_token]) expect(got[0]?.body).not.toContain(secret);

    const listed = (await (await s.broker.admin("/v1/admin/alerts?limit=1000")).json()) as {
      alerts: Array<{ request_ids: string[]; delivery: string }>;
    };
    expect(listed.alerts.find((a) => a.request_ids.includes(res.requestId))?.delivery).toBe("delivered");
    // The webhook URL is a credential (a Slack webhook posts with it alone): status says set, never the value.
    const status = await (await s.broker.admin("/v1/admin/status")).text();
    expect(status.includes(s.receiverName), "the alert webhook URL is in status").toBe(false);
    const settings = (
      JSON.parse(status) as { settings: Array<{ name: string; secret: boolean; set: boolean }> }
    ).settings;
    expect(settings.find((x) => x.name === "RUNPASS_ALERT_WEBHOOK")).toMatchObject({
      secret: true,
      set: true,
    });
    // Raising and delivering are audited as `alert`.
    const alertRecords = await auditRecords(s.broker, { event: "alert", run: leaked.lease.run });
    expect(alertRecords.map((r) => String(r.detail).replace(/ alr_\S+/, ""))).toEqual([
      "leak_detected delivered after 1 attempt(s)",
      expect.stringMatching(/^leak_detected raised: /),
    ]);
  });

  it("survives a receiver that is down for a while, and deduplicates repeats of one alert", async () => {
    const s = await setup();
    await receiver(s.receiverName, { down: true });
    const leaked = await s.exchange();
    const value = leaked.credentials.token?.token as string;
    await s.report({ values: [value] });
    // Reported twice more while down: one alert, the repeats counted on it.
    await s.report({ values: [value] });
    await s.report({ values: [value] });
    await runDurableObjectAlarm(alertHub());
    const hub = alertHub();
    // Minutes pass with the receiver down: every due attempt fails, nothing is lost.
    for (const minutes of [1, 3, 6]) await hub.deliverDue(Date.now() + minutes * 60_000);
    const down = await received(s.receiverName);
    expect(down.received).toHaveLength(0);
    expect(down.refused).toBeGreaterThanOrEqual(3);

    await receiver(s.receiverName, { down: false });
    await hub.deliverDue(Date.now() + 20 * 60_000);
    const up = await received(s.receiverName);
    const leakAlerts = up.received.map(
      (r) => JSON.parse(r.body) as { alert: string; details: { run?: string } },
    );
    expect(
      leakAlerts.filter((a) => a.alert === "leak_detected" && a.details.run === leaked.lease.run),
    ).toHaveLength(2);
    expect(up.received.every((r) => r.valid)).toBe(true);
  });
});

/** An ECDSA P-256 key pair standing in for GitHub's partner key, its id and SPKI PEM published at the fake API. */
async function partnerKey(): Promise<{ id: string; privateKey: CryptoKey; pem: string }> {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const spki = new Uint8Array((await crypto.subtle.exportKey("spki", pair.publicKey)) as ArrayBuffer);
  const pem = `-----BEGIN PUBLIC KEY-----\n${btoa(String.fromCharCode(...spki))}\n-----END PUBLIC KEY-----\n`;
  return { id: crypto.randomUUID().replace(/-/g, ""), privateKey: pair.privateKey, pem };
}

async function publishKeys(keys: Array<{ id: string; pem: string }>): Promise<void> {
  await fetch(`${GH_API}/__control/secret-scanning-keys`, {
    method: "POST",
    body: JSON.stringify({
      public_keys: keys.map((k) => ({ key_identifier: k.id, key: k.pem, is_current: true })),
    }),
  });
}

async function keyFetches(): Promise<number> {
  return ((await (await fetch(`${GH_API}/__secret-scanning/fetches`)).json()) as { fetches: number }).fetches;
}

/** An r‖s signature as the ASN.1 DER GitHub sends, base64. */
function derSignature(raw: Uint8Array): string {
  const int = (b: Uint8Array) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = b.subarray(i);
    return (v[0] as number) & 0x80 ? [0x02, v.length + 1, 0, ...v] : [0x02, v.length, ...v];
  };
  const body = [...int(raw.subarray(0, 32)), ...int(raw.subarray(32))];
  return btoa(String.fromCharCode(0x30, body.length, ...body));
}

async function partnerPost(
  broker: TestBroker,
  body: string,
  key: { id: string; privateKey: CryptoKey },
  keyId = key.id,
  headers: Record<string, string> = {},
): Promise<Response> {
  const raw = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      key.privateKey,
      new TextEncoder().encode(body),
    ),
  );
  return broker.fetch("/v1/leaks/github", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "Github-Public-Key-Identifier": keyId,
      "Github-Public-Key-Signature": derSignature(raw),
      ...headers,
    },
    body,
  });
}

async function sha256Hex(text: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

describe("GitHub secret-scanning partner endpoint", () => {
  it("a signed report ends the run of a runpass credential and answers in GitHub's format", async () => {
    const key = await partnerKey();
    await publishKeys([key]);
    const s = await setup();
    const leaked = await s.exchange();
    const bystander = await s.exchange();
    const token = leaked.credentials.token?.token as string;
    const body = JSON.stringify([
      {
        token,
        type: "runpass_token",
        url: "https://github.com/acme/api/blob/abc/deploy.log",
        source: "content",
      },
      {
        token: "rp_not_one_of_ours",
        type: "runpass_token",
        url: "https://github.com/acme/api",
        source: "content",
      },
    ]);
    const res = await partnerPost(s.broker, body, key);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([
      { token_hash: await sha256Hex(token), token_type: "runpass_token", label: "true_positive" },
      {
        token_hash: await sha256Hex("rp_not_one_of_ours"),
        token_type: "runpass_token",
        label: "false_positive",
      },
    ]);
    expect(await ledgerFor(leaked.lease.run).ended()).toBe(true);
    expect(await ledgerFor(bystander.lease.run).ended()).toBe(false);
  });

  it("refuses a missing or bad signature with 401 before acting on anything", async () => {
    const key = await partnerKey();
    const other = await partnerKey();
    await publishKeys([key]);
    const s = await setup();
    const live = await s.exchange();
    const body = JSON.stringify([
      { token: live.lease.revoke_token, type: "runpass_revoke_token", url: "x", source: "content" },
    ]);
    // Signed by a key GitHub does not publish, under the published key's id.
    expect((await partnerPost(s.broker, body, other, key.id)).status).toBe(401);
    // A valid signature over a different body.
    const signedOther = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      key.privateKey,
      new TextEncoder().encode("[]"),
    );
    const swapped = await s.broker.fetch("/v1/leaks/github", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "Github-Public-Key-Identifier": key.id,
        "Github-Public-Key-Signature": derSignature(new Uint8Array(signedOther)),
      },
      body,
    });
    expect(swapped.status).toBe(401);
    // No signature at all.
    const unsigned = await s.broker.fetch("/v1/leaks/github", {
      method: "POST",
      headers: { "content-type": "application/json", "Github-Public-Key-Identifier": key.id },
      body,
    });
    expect(unsigned.status).toBe(401);
    expect(await ledgerFor(live.lease.run).ended()).toBe(false);
    // The same body, properly signed, does end it.
    expect((await partnerPost(s.broker, body, key)).status).toBe(200);
    expect(await ledgerFor(live.lease.run).ended()).toBe(true);
  });

  it("a flood of forged reports is throttled with 429 and stops adding audit records; a signed one still gets in", async () => {
    const key = await partnerKey();
    const forger = await partnerKey();
    await publishKeys([key]);
    const s = await setup({
      env: { RUNPASS_RATE_LIMITS: JSON.stringify({ leak: "1000/1m", failures: "3/1m" }) },
    });
    const from = { "cf-connecting-ip": "192.0.2.77" };
    const body = JSON.stringify([{ token: "rp_x", type: "runpass_token", url: "x", source: "content" }]);
    const refusals = async () =>
      (await auditRecords(s.broker, { event: "leak" })).filter(
        (r) => r.detail === "github partner report refused",
      ).length;
    const before = await refusals();
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      statuses.push((await partnerPost(s.broker, body, forger, key.id, from)).status);
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429, 429, 429, 429]);
    expect((await refusals()) - before).toBe(3);
    // Verify first: GitHub's real signature is never locked out by someone forging from the same address.
    expect((await partnerPost(s.broker, body, key, key.id, from)).status).toBe(200);
  });

  it("an unknown key id is refetched at most once per cooldown, and refused", async () => {
    const key = await partnerKey();
    await publishKeys([key]);
    const time = movableClock();
    const s = await setup({ clock: time.clock });
    const body = JSON.stringify([{ token: "rp_x", type: "runpass_token", url: "x", source: "content" }]);
    expect((await partnerPost(s.broker, body, key)).status).toBe(200);
    const before = await keyFetches();
    for (let i = 0; i < 5; i++) {
      expect((await partnerPost(s.broker, body, key, `unknown-${i}`)).status).toBe(401);
    }
    expect((await keyFetches()) - before).toBeLessThanOrEqual(1);
    // GitHub rotates: a new key appears; after the cooldown its id is fetched and accepted.
    const rotated = await partnerKey();
    await publishKeys([key, rotated]);
    time.advance(61_000);
    expect((await partnerPost(s.broker, body, rotated)).status).toBe(200);
  });
});

describe("secret_scanning_alert webhook", () => {
  async function scanningSetup(leakLimit?: string) {
    const suffix = crypto.randomUUID().slice(0, 8);
    const owner = `acme-${suffix}`;
    const installationId = Math.floor(Math.random() * 9e8) + 1e8;
    await fetch(`${GH_API}/__control/installation`, {
      method: "POST",
      body: JSON.stringify({
        owner,
        id: installationId,
        repositories: ["api"],
        permissions: { metadata: "read", secret_scanning_alerts: "read" },
      }),
    });
    const s = await setup({
      env: { ...GITHUB_ENV, GITHUB_WEBHOOK_SECRET: GITHUB_SECRET },
      ...(leakLimit ? { leakLimit } : {}),
    });
    const deliver = async (number: number, action = "created", secret = GITHUB_SECRET) => {
      const body = JSON.stringify({
        action,
        alert: { number, secret_type: "runpass_token" },
        repository: { id: 4242, name: "api", full_name: `${owner}/api`, owner: { login: owner, id: 77 } },
        installation: { id: installationId },
      });
      return s.broker.fetch("/v1/webhooks/github", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-github-event": "secret_scanning_alert",
          "x-github-delivery": crypto.randomUUID(),
          "x-hub-signature-256": await signGitHub(body, secret),
        },
        body,
      });
    };
    const alert = (number: number, secret: string) =>
      fetch(`${GH_API}/__control/secret-scanning-alert`, {
        method: "POST",
        body: JSON.stringify({ owner, repo: "api", number, secret, secret_type: "runpass_token" }),
      });
    return { s, owner, deliver, alert };
  }

  it("has its own leak bucket: a flood on the partner endpoint does not silence it", async () => {
    const { s, deliver, alert } = await scanningSetup("3/1m");
    const key = await partnerKey();
    await publishKeys([key]);
    const body = JSON.stringify([{ token: "rp_flood", type: "runpass_token", url: "x", source: "content" }]);
    let status = 200;
    for (let i = 0; i < 10 && status === 200; i++) status = (await partnerPost(s.broker, body, key)).status;
    expect(status).toBe(429);
    const leaked = await s.exchange();
    await alert(9, leaked.credentials.token?.token as string);
    const res = await deliver(9);
    expect(res.status).toBe(200);
    expect(await ledgerFor(leaked.lease.run).ended()).toBe(true);
  });

  it("reads the alert's secret through the GitHub App and ends the run it came from", async () => {
    const { s, deliver, alert } = await scanningSetup();
    const leaked = await s.exchange();
    const bystander = await s.exchange();
    await alert(7, leaked.credentials.token?.token as string);
    const res = await deliver(7);
    expect(res.status).toBe(200);
    // GitHub's delivery log sees counts only: no run, lease, policy or upstream id.
    expect(await res.json()).toEqual({ result: "leak_checked", matched: 1, unmatched: 0 });
    expect(await ledgerFor(leaked.lease.run).ended()).toBe(true);
    expect(await ledgerFor(bystander.lease.run).ended()).toBe(false);
  });

  it("ignores deliveries signed with a derived (scoped) secret and actions other than created or reopened", async () => {
    const { s, deliver, alert } = await scanningSetup();
    const live = await s.exchange();
    await alert(8, live.credentials.token?.token as string);
    const before = (
      (await (await fetch(`${GH_API}/__secret-scanning/fetches`)).json()) as { alert_reads: number }
    ).alert_reads;
    const scoped = await deriveWebhookSecret(GITHUB_SECRET, { kind: "github-repository", id: "4242" });
    expect(await (await deliver(8, "created", scoped)).json()).toEqual({ result: "ignored" });
    expect(await (await deliver(8, "resolved")).json()).toEqual({ result: "ignored" });
    const after = (
      (await (await fetch(`${GH_API}/__secret-scanning/fetches`)).json()) as { alert_reads: number }
    ).alert_reads;
    expect(after).toBe(before);
    expect(await ledgerFor(live.lease.run).ended()).toBe(false);
    // Reopened (with the master secret) acts.
    expect((await deliver(8, "reopened")).status).toBe(200);
    expect(await ledgerFor(live.lease.run).ended()).toBe(true);
  });
});
