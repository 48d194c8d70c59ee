// The fake upstreams themselves (test/support/fake-sts.ts, fake-github.ts): driven by the real
// @aws-sdk/client-sts and by fetch + jose, they must behave like AWS STS and the GitHub REST API.
// Credentials and tokens are only ever compared as booleans, never passed to a failing matcher.

import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { request as httpRequest } from "node:http";
import {
  AssumeRoleCommand,
  type AssumeRoleCommandInput,
  AssumeRoleWithWebIdentityCommand,
  STSClient,
  type STSClientConfig,
} from "@aws-sdk/client-sts";
import { exportJWK, generateKeyPair, importPKCS8, type JWTPayload, SignJWT } from "jose";
import { describe, expect, inject, it } from "vitest";
import { STS_ACCESS_KEY_ID, STS_SECRET_ACCESS_KEY, type StsRecord } from "../support/fake-sts.ts";

const stsBase = inject("stsBase");
const githubBase = inject("githubApiBase");
const appId = inject("githubAppId");
const appPem = inject("githubAppPrivateKey");

const ok = (value: unknown, re: RegExp) => typeof value === "string" && re.test(value);
const uid = () => crypto.randomUUID().slice(0, 8);
const roleArn = (name = `role-${uid()}`) => `arn:aws:iam::111111111111:role/ci/${name}`;

function sts(config: Partial<STSClientConfig> = {}): STSClient {
  return new STSClient({
    region: "us-east-1",
    endpoint: stsBase,
    credentials: { accessKeyId: STS_ACCESS_KEY_ID, secretAccessKey: STS_SECRET_ACCESS_KEY },
    ...config,
  });
}

async function stsRecords(arn: string): Promise<StsRecord[]> {
  return (await fetch(`${stsBase}/__requests?roleArn=${encodeURIComponent(arn)}`)).json() as Promise<
    StsRecord[]
  >;
}

async function control(base: string, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${base}${path}`, { method: "POST", body: JSON.stringify(body) });
  expect(res.status).toBe(200);
}

/** Runs an STS call expected to fail and returns what the SDK made of the error. */
async function stsError(client: STSClient, command: AssumeRoleCommand | AssumeRoleWithWebIdentityCommand) {
  try {
    if (command instanceof AssumeRoleCommand) await client.send(command);
    else await client.send(command);
  } catch (e) {
    const err = e as {
      name: string;
      message: string;
      $fault: string;
      $metadata: { httpStatusCode?: number };
    };
    return { name: err.name, message: err.message, fault: err.$fault, status: err.$metadata.httpStatusCode };
  }
  throw new Error("expected the STS call to fail");
}

describe("fake STS with the real @aws-sdk/client-sts", () => {
  it("AssumeRole: SigV4 verified, credentials returned, every parameter recorded", async () => {
    const arn = roleArn("deployer");
    const input: AssumeRoleCommandInput = {
      RoleArn: arn,
      RoleSessionName: "runpass-gh-519345000.1",
      DurationSeconds: 900,
      Policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*" }],
      }),
      PolicyArns: [{ arn: "arn:aws:iam::aws:policy/ReadOnlyAccess" }],
      Tags: [
        { Key: "runpass:repo", Value: "acme/api" },
        { Key: "runpass:run", Value: "github:1:2" },
      ],
      TransitiveTagKeys: ["runpass:repo"],
      SourceIdentity: "runpass@acme",
    };
    const started = Date.now();
    const out = await sts().send(new AssumeRoleCommand(input));
    const c = out.Credentials!;
    expect(ok(c.AccessKeyId, /^ASIA[A-Z2-7]{16}$/)).toBe(true);
    expect(ok(c.SecretAccessKey, /^[A-Za-z0-9+/]{40}$/)).toBe(true);
    expect((c.SessionToken?.length ?? 0) > 200).toBe(true);
    const expiresIn = c.Expiration!.getTime() - started;
    expect(expiresIn).toBeGreaterThan(895_000);
    expect(expiresIn).toBeLessThan(905_000);
    expect(out.AssumedRoleUser).toEqual({
      Arn: "arn:aws:sts::111111111111:assumed-role/deployer/runpass-gh-519345000.1",
      AssumedRoleId: expect.stringMatching(/^AROA[A-Z2-7]{17}:runpass-gh-519345000\.1$/),
    });
    expect(out.SourceIdentity).toBe("runpass@acme");
    expect(out.PackedPolicySize).toBeGreaterThan(0);
    expect(out.$metadata.httpStatusCode).toBe(200);
    expect(out.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);

    const [rec, ...more] = await stsRecords(arn);
    expect(more).toHaveLength(0);
    const { returnedAccessKeyId, at, userAgent, signedHeaders, ...params } = rec!;
    expect(returnedAccessKeyId === c.AccessKeyId).toBe(true);
    expect(params).toEqual({
      action: "AssumeRole",
      roleArn: arn,
      roleSessionName: "runpass-gh-519345000.1",
      durationSeconds: 900,
      policy: input.Policy,
      policyArns: ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
      tags: { "runpass:repo": "acme/api", "runpass:run": "github:1:2" },
      transitiveTagKeys: ["runpass:repo"],
      sourceIdentity: "runpass@acme",
      accessKeyId: STS_ACCESS_KEY_ID,
      region: "us-east-1",
      status: 200,
    });
    expect(userAgent).toMatch(/^aws-sdk-js\//);
    expect(signedHeaders).toEqual(expect.arrayContaining(["host", "x-amz-date", "content-type"]));
  });

  it("AssumeRole: wrong secret, unknown key, no signature and a stale signature are refused like AWS", async () => {
    const arn = roleArn();
    const command = () => new AssumeRoleCommand({ RoleArn: arn, RoleSessionName: "s1" });
    const wrongSecret = await stsError(
      sts({
        credentials: {
          accessKeyId: STS_ACCESS_KEY_ID,
          secretAccessKey: `${STS_SECRET_ACCESS_KEY.slice(1)}x`,
        },
      }),
      command(),
    );
    expect(wrongSecret).toMatchObject({ name: "SignatureDoesNotMatch", fault: "client", status: 403 });
    const unknownKey = await stsError(
      sts({ credentials: { accessKeyId: "AKIAUNKNOWN000000000", secretAccessKey: STS_SECRET_ACCESS_KEY } }),
      command(),
    );
    expect(unknownKey).toMatchObject({ name: "InvalidClientTokenId", fault: "client", status: 403 });
    const stale = await stsError(sts({ systemClockOffset: -20 * 60_000, maxAttempts: 1 }), command());
    expect(stale).toMatchObject({ name: "SignatureDoesNotMatch", status: 403 });
    expect(stale.message).toMatch(/^Signature expired/);

    // A body changed after signing (same length, so only the signature can tell).
    const tampering = sts({ maxAttempts: 1 });
    tampering.middlewareStack.add(
      (next) => async (args) => {
        const req = args.request as { body: string };
        req.body = req.body.replace("RoleSessionName=s1", "RoleSessionName=s2");
        return next(args);
      },
      { step: "deserialize", name: "tamperAfterSigning" },
    );
    expect(await stsError(tampering, command())).toMatchObject({
      name: "SignatureDoesNotMatch",
      status: 403,
    });

    const unsigned = await fetch(stsBase, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `Action=AssumeRole&Version=2011-06-15&RoleArn=${encodeURIComponent(arn)}&RoleSessionName=s1`,
    });
    expect(unsigned.status).toBe(403);
    expect(unsigned.headers.get("content-type")).toBe("text/xml");
    expect(await unsigned.text()).toMatch(
      /^<ErrorResponse xmlns="https:\/\/sts\.amazonaws\.com\/doc\/2011-06-15\/"><Error><Type>Sender<\/Type><Code>MissingAuthenticationToken<\/Code>/,
    );
    const records = await stsRecords(arn);
    expect(records.map((r) => r.errorCode)).toEqual([
      "SignatureDoesNotMatch",
      "InvalidClientTokenId",
      "SignatureDoesNotMatch",
      "SignatureDoesNotMatch",
      "MissingAuthenticationToken",
    ]);
    expect(records[3]?.roleSessionName).toBe("s2");
    expect(records.every((r) => r.returnedAccessKeyId === undefined)).toBe(true);
  });

  it("validates parameters like STS (ValidationError / PackedPolicyTooLarge)", async () => {
    const arn = roleArn();
    const client = sts();
    const cases: Array<[Partial<AssumeRoleCommandInput>, string, RegExp]> = [
      [{ DurationSeconds: 899 }, "ValidationError", /durationSeconds.*greater than or equal to 900/],
      [{ DurationSeconds: 43201 }, "ValidationError", /durationSeconds.*less than or equal to 43200/],
      [{ RoleSessionName: "a" }, "ValidationError", /roleSessionName/],
      [{ RoleSessionName: "has space" }, "ValidationError", /regular expression/],
      [{ RoleSessionName: "x".repeat(65) }, "ValidationError", /roleSessionName/],
      [
        { Tags: Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: "v" })) },
        "ValidationError",
        /tags/,
      ],
      [{ Tags: [{ Key: "k".repeat(129), Value: "v" }] }, "ValidationError", /128/],
      [{ Tags: [{ Key: "k", Value: "v".repeat(257) }] }, "ValidationError", /256/],
      [
        { Policy: `{"Version":"2012-10-17","Statement":[],"Pad":"${"x".repeat(2048)}"}` },
        "PackedPolicyTooLargeException",
        /./,
      ],
    ];
    for (const [override, code, message] of cases) {
      const err = await stsError(
        client,
        new AssumeRoleCommand({ RoleArn: arn, RoleSessionName: "valid-session", ...override }),
      );
      expect(err).toMatchObject({ name: code, status: 400, fault: "client" });
      expect(err.message).toMatch(message);
    }
    // The edges are fine.
    const edge = await client.send(
      new AssumeRoleCommand({
        RoleArn: arn,
        RoleSessionName: "ab",
        DurationSeconds: 43200,
        Tags: Array.from({ length: 50 }, (_, i) => ({ Key: `k${i}`, Value: "v".repeat(256) })),
      }),
    );
    expect(edge.$metadata.httpStatusCode).toBe(200);
  });

  it("per-role faults: throttle N times then recover; reject, malformed and outage modes", async () => {
    const arn = roleArn();
    await control(stsBase, "/__control/role", { roleArn: arn, mode: "throttle", times: 2 });
    const once = sts({ maxAttempts: 1 });
    const cmd = () => new AssumeRoleCommand({ RoleArn: arn, RoleSessionName: "s1" });
    expect(await stsError(once, cmd())).toMatchObject({ name: "Throttling", status: 400, fault: "client" });
    expect(await stsError(once, cmd())).toMatchObject({ name: "Throttling", status: 400 });
    expect((await once.send(cmd())).$metadata.httpStatusCode).toBe(200);
    expect((await stsRecords(arn)).map((r) => r.status)).toEqual([400, 400, 200]);

    // The SDK's default retry strategy absorbs a single throttle by itself.
    const retried = roleArn();
    await control(stsBase, "/__control/role", { roleArn: retried, mode: "throttle", times: 1 });
    const out = await sts().send(new AssumeRoleCommand({ RoleArn: retried, RoleSessionName: "s1" }));
    expect(out.$metadata.attempts).toBe(2);

    const rejected = roleArn();
    await control(stsBase, "/__control/role", { roleArn: rejected, mode: "reject" });
    const denied = await stsError(once, new AssumeRoleCommand({ RoleArn: rejected, RoleSessionName: "s1" }));
    expect(denied).toMatchObject({ name: "AccessDenied", status: 403, fault: "client" });
    expect(denied.message).toContain(rejected);

    const malformed = roleArn();
    await control(stsBase, "/__control/role", { roleArn: malformed, mode: "malformed" });
    expect(
      await stsError(once, new AssumeRoleCommand({ RoleArn: malformed, RoleSessionName: "s1" })),
    ).toMatchObject({ name: "MalformedPolicyDocumentException", status: 400 });

    const down = roleArn();
    await control(stsBase, "/__control/role", { roleArn: down, mode: "fail" });
    expect(
      await stsError(once, new AssumeRoleCommand({ RoleArn: down, RoleSessionName: "s1" })),
    ).toMatchObject({
      name: "InternalFailure",
      status: 500,
      fault: "server",
    });
    const unavailable = roleArn();
    await control(stsBase, "/__control/role", { roleArn: unavailable, mode: "unavailable" });
    expect(
      await stsError(once, new AssumeRoleCommand({ RoleArn: unavailable, RoleSessionName: "s1" })),
    ).toMatchObject({ name: "ServiceUnavailable", status: 503, fault: "server" });
    const stats = (await (await fetch(`${stsBase}/__stats`)).json()) as { total: number };
    expect(stats.total).toBeGreaterThanOrEqual(9);
  });

  it("AssumeRoleWithWebIdentity: a jose-signed token is accepted once its issuer's JWKS is configured", async () => {
    const issuer = `https://token.actions.example/${uid()}`;
    const { privateKey, publicKey } = await generateKeyPair("RS256");
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256" }] };
    const token = (claims: JWTPayload, exp = "5m") =>
      new SignJWT({ sub: "repo:acme/api:ref:refs/heads/main", ...claims })
        .setProtectedHeader({ alg: "RS256", kid: "k1" })
        .setIssuer(issuer)
        .setAudience((claims.aud as string | undefined) ?? "sts.amazonaws.com")
        .setIssuedAt()
        .setExpirationTime(exp)
        .sign(privateKey);
    const arn = roleArn();
    const web = (t: string) =>
      new AssumeRoleWithWebIdentityCommand({ RoleArn: arn, RoleSessionName: "gha", WebIdentityToken: t });
    // The SDK sends this operation unsigned (noAuth) even when the client has credentials.
    const client = sts({ maxAttempts: 1 });

    const unknown = await stsError(client, web(await token({})));
    expect(unknown).toMatchObject({ name: "InvalidIdentityTokenException", status: 400 });
    expect(unknown.message).toContain("No OpenIDConnect provider");

    await control(stsBase, "/__control/web-identity", { issuer, jwks });
    const out = await client.send(web(await token({ repository: "acme/api" })));
    expect(ok(out.Credentials?.AccessKeyId, /^ASIA[A-Z2-7]{16}$/)).toBe(true);
    expect(out.SubjectFromWebIdentityToken).toBe("repo:acme/api:ref:refs/heads/main");
    expect(out.Audience).toBe("sts.amazonaws.com");
    expect(out.Provider).toBe(issuer);
    expect(out.AssumedRoleUser?.Arn).toMatch(/:assumed-role\/role-[0-9a-f]{8}\/gha$/);

    expect(await stsError(client, web(await token({ aud: "https://runpass.test" })))).toMatchObject({
      name: "InvalidIdentityTokenException",
    });
    expect(await stsError(client, web(await token({}, "-1m")))).toMatchObject({
      name: "ExpiredTokenException",
    });
    const other = await generateKeyPair("RS256");
    const forged = await new SignJWT({ sub: "x", aud: "sts.amazonaws.com" })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setIssuer(issuer)
      .setExpirationTime("5m")
      .sign(other.privateKey);
    expect(await stsError(client, web(forged))).toMatchObject({ name: "InvalidIdentityTokenException" });

    // On the wire the Query error codes are AWS's (InvalidIdentityToken); the SDK names them *Exception.
    const records = await stsRecords(arn);
    expect(records.map((r) => [r.action, r.errorCode])).toEqual([
      ["AssumeRoleWithWebIdentity", "InvalidIdentityToken"],
      ["AssumeRoleWithWebIdentity", undefined],
      ["AssumeRoleWithWebIdentity", "InvalidIdentityToken"],
      ["AssumeRoleWithWebIdentity", "ExpiredTokenException"],
      ["AssumeRoleWithWebIdentity", "InvalidIdentityToken"],
    ]);
    expect(records[1]?.webIdentityClaims).toMatchObject({ iss: issuer, repository: "acme/api" });
    expect(records[1]?.accessKeyId).toBeUndefined();
    expect(records[1]?.returnedAccessKeyId === out.Credentials?.AccessKeyId).toBe(true);
  });
});

// GitHub App: the PKCS#1 key as GitHub hands it out, converted for jose.
const appKey = importPKCS8(
  createPrivateKey(appPem).export({ type: "pkcs8", format: "pem" }) as string,
  "RS256",
);

async function appJwt(
  claims: { iss?: string | number; iat?: number; exp?: number } = {},
  key?: CryptoKey,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  // GitHub accepts a numeric iss too, which JWTPayload's typing does not allow for.
  return new SignJWT({ iat: now - 30, exp: now + 540, iss: appId, ...claims } as JWTPayload)
    .setProtectedHeader({ alg: "RS256" })
    .sign(key ?? (await appKey));
}

async function gh(
  path: string,
  init: { method?: string; auth?: string; body?: unknown } = {},
): Promise<Response> {
  return fetch(`${githubBase}${path}`, {
    method: init.method ?? "GET",
    headers: {
      accept: "application/vnd.github+json",
      "x-github-api-version": "2022-11-28",
      "user-agent": "runpass-test",
      ...(init.auth ? { authorization: init.auth } : {}),
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
}

interface GitHubRecords {
  mints: Array<{ body: unknown; token: string; expiresAt: string }>;
  mintAttempts: number;
  revocations: string[];
  lookups: number;
}

async function ghRecords(installationId: number): Promise<GitHubRecords> {
  return (
    await fetch(`${githubBase}/__records?installationId=${installationId}`)
  ).json() as Promise<GitHubRecords>;
}

let nextInstallation = 1000 + Math.floor(Math.random() * 1000);
async function installation(opts: { repositories?: string[]; permissions?: Record<string, string> } = {}) {
  const owner = `acme-${uid()}`;
  const id = nextInstallation++;
  await control(githubBase, "/__control/installation", { owner, id, ...opts });
  return { owner, id };
}

describe("fake GitHub API with fetch + jose", () => {
  it("the app key is provided in PKCS#1 form with app id 424242", () => {
    expect(appPem).toMatch(/^-{5}BEGIN RSA PRIVATE KEY-{5}\n/);
    expect(appId).toBe("424242");
  });

  it("installation lookup → mint → revoke once (204) → revoke again (401)", async () => {
    const { owner, id } = await installation({ repositories: ["api", "web"] });
    const jwt = `Bearer ${await appJwt()}`;

    const lookup = await gh(`/repos/${owner}/api/installation`, { auth: jwt });
    expect(lookup.status).toBe(200);
    const inst = (await lookup.json()) as { id: number; app_id: number; account: { login: string } };
    expect(inst).toMatchObject({
      id,
      app_id: 424242,
      account: { login: owner },
      repository_selection: "selected",
    });
    expect((await gh(`/orgs/${owner}/installation`, { auth: jwt })).status).toBe(200);
    expect((await gh(`/users/${owner}/installation`, { auth: jwt })).status).toBe(200);

    const body = { repositories: ["api"], permissions: { contents: "read", metadata: "read" } };
    const minted = await gh(`/app/installations/${id}/access_tokens`, { method: "POST", auth: jwt, body });
    expect(minted.status).toBe(201);
    const tok = (await minted.json()) as {
      token: string;
      expires_at: string;
      permissions: unknown;
      repository_selection: string;
      repositories: Array<{ id: number; name: string; full_name: string }>;
    };
    expect(ok(tok.token, /^ghs_[A-Za-z0-9]{36}$/)).toBe(true);
    expect(tok.expires_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Math.abs(Date.parse(tok.expires_at) - Date.now() - 3_600_000)).toBeLessThan(5_000);
    expect(tok.permissions).toEqual(body.permissions);
    expect(tok.repository_selection).toBe("selected");
    expect(tok.repositories).toEqual(
      [{ id: expect.any(Number), name: "api", full_name: `${owner}/api` }].map((r) =>
        expect.objectContaining(r),
      ),
    );

    const records = await ghRecords(id);
    expect(records.lookups).toBe(3);
    expect(records.mints).toHaveLength(1);
    expect(records.mints[0]?.body).toEqual(body);
    expect(records.mints[0]?.token === tok.token).toBe(true);

    expect((await gh("/installation/token", { method: "DELETE", auth: `token ${tok.token}` })).status).toBe(
      204,
    );
    const again = await gh("/installation/token", { method: "DELETE", auth: `Bearer ${tok.token}` });
    expect(again.status).toBe(401);
    expect(await again.json()).toMatchObject({ message: "Bad credentials" });
    const after = await ghRecords(id);
    expect(after.revocations.length === 1 && after.revocations[0] === tok.token).toBe(true);
  });

  it("refuses app JWTs GitHub would refuse; accepts a numeric iss", async () => {
    const { owner } = await installation();
    const now = Math.floor(Date.now() / 1000);
    const status = async (auth: string | undefined) =>
      (await gh(`/orgs/${owner}/installation`, { auth })).status;
    expect(await status(`Bearer ${await appJwt({ iss: 424242 })}`)).toBe(200);

    const expired = await gh(`/orgs/${owner}/installation`, {
      auth: `Bearer ${await appJwt({ iat: now - 700, exp: now - 100 })}`,
    });
    expect(expired.status).toBe(401);
    expect(await expired.json()).toMatchObject({
      message: expect.stringContaining("'exp'"),
      documentation_url: expect.any(String),
    });
    expect(await status(`Bearer ${await appJwt({ iat: now, exp: now + 601 })}`)).toBe(401);
    expect(await status(`Bearer ${await appJwt({ iat: now + 120, exp: now + 300 })}`)).toBe(401);
    expect(await status(`Bearer ${await appJwt({ iss: "1" })}`)).toBe(401);
    const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const wrongKey = await importPKCS8(stranger.export({ type: "pkcs8", format: "pem" }) as string, "RS256");
    const forged = await gh(`/orgs/${owner}/installation`, { auth: `Bearer ${await appJwt({}, wrongKey)}` });
    expect(forged.status).toBe(401);
    expect(await forged.json()).toEqual({
      message: "A JSON web token could not be decoded",
      documentation_url: "https://docs.github.com/rest",
    });
    expect(await status("Bearer not-a-jwt")).toBe(401);
    expect(await status(undefined)).toBe(401);
  });

  it("unknown owners and installations are 404; permissions beyond the installation are 422", async () => {
    const jwt = `Bearer ${await appJwt()}`;
    const missing = await gh(`/repos/nobody-${uid()}/x/installation`, { auth: jwt });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ message: "Not Found" });
    expect(
      (await gh("/app/installations/9/access_tokens", { method: "POST", auth: jwt, body: {} })).status,
    ).toBe(404);
    const { id } = await installation({ permissions: { contents: "read", metadata: "read" } });
    const escalate = await gh(`/app/installations/${id}/access_tokens`, {
      method: "POST",
      auth: jwt,
      body: { permissions: { contents: "write" } },
    });
    expect(escalate.status).toBe(422);
    expect((await ghRecords(id)).mints).toHaveLength(0);
  });

  it("rate limits and outages per installation, with GitHub's headers, then recovery", async () => {
    const { owner, id } = await installation();
    const jwt = `Bearer ${await appJwt()}`;
    const mint = () => gh(`/app/installations/${id}/access_tokens`, { method: "POST", auth: jwt, body: {} });

    const normal = await gh(`/orgs/${owner}/installation`, { auth: jwt });
    expect(normal.headers.get("x-ratelimit-limit")).toBe("5000");
    expect(Number(normal.headers.get("x-ratelimit-remaining"))).toBeGreaterThan(0);

    await control(githubBase, "/__control/rate-limit", { installationId: id, mode: "primary", times: 1 });
    const primary = await mint();
    expect(primary.status).toBe(403);
    expect(primary.headers.get("x-ratelimit-limit")).toBe("5000");
    expect(primary.headers.get("x-ratelimit-remaining")).toBe("0");
    const reset = Number(primary.headers.get("x-ratelimit-reset"));
    expect(reset - Date.now() / 1000).toBeGreaterThan(50);
    expect(reset - Date.now() / 1000).toBeLessThan(70);
    expect(await primary.json()).toMatchObject({
      message: `API rate limit exceeded for installation ID ${id}.`,
    });
    expect((await mint()).status).toBe(201);

    await control(githubBase, "/__control/rate-limit", { installationId: id, mode: "secondary", times: 1 });
    const secondary = await mint();
    expect(secondary.status).toBe(429);
    expect(secondary.headers.get("retry-after")).toBe("30");
    expect(((await secondary.json()) as { message: string }).message).toMatch(/secondary rate limit/);

    await control(githubBase, "/__control/rate-limit", { installationId: id, mode: "fail" });
    expect((await mint()).status).toBe(502);
    expect((await gh(`/orgs/${owner}/installation`, { auth: jwt })).status).toBe(502);
    await control(githubBase, "/__control/rate-limit", { installationId: id, mode: "off" });
    expect((await mint()).status).toBe(201);

    const records = await ghRecords(id);
    expect(records.mintAttempts).toBe(5);
    expect(records.mints).toHaveLength(2);
  });

  it("requests without a User-Agent are refused, as GitHub does", async () => {
    const { owner } = await installation();
    const jwt = await appJwt();
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${githubBase}/orgs/${owner}/installation`, {
        headers: { authorization: `Bearer ${jwt}` },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(403);
  });
});
