// Secret bundles inside workerd: the encrypted, versioned store (real Durable Objects), the admin API, the
// secrets grant with lease-bound delivery, key rotation, tampering and every refusal failing closed.

import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ADMIN_TOKEN,
  BROKER_URL,
  buildBundle,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  type TestBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { ACME, githubClaims, mint } from "../support/claims.ts";

// A real PKCS#8 key, generated per run (multi-line, as teams store signing keys).
let PEM = "";
beforeAll(async () => {
  const { privateKey } = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
  ])) as CryptoKeyPair;
  const der = new Uint8Array((await crypto.subtle.exportKey("pkcs8", privateKey)) as ArrayBuffer);
  const label = "PRIVATE KEY";
  PEM = `-----BEGIN ${label}-----\n${b64(der)
    .replace(/(.{64})/g, "$1\n")
    .trimEnd()}\n-----END ${label}-----\n`;
});
const BINARY = new Uint8Array([0, 1, 2, 250, 251, 255, 10, 13, 0]);

function b64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function b64url(bytes: Uint8Array): string {
  return b64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * A version sealed the way runpass wrote them before the associated data named the encoding (format v1), so
 * the test pins that records written then still decrypt.
 */
async function sealLegacyV1(masterB64: string, kid: string, path: string, version: number, value: string) {
  const aad = (kind: string, k?: string) =>
    new TextEncoder().encode(`runpass-secret/v1\n${kind}\n${path}\n${version}${k ? `\n${k}` : ""}`);
  const dek = crypto.getRandomValues(new Uint8Array(32));
  const dataKey = await crypto.subtle.importKey("raw", dek, "AES-GCM", false, ["encrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: aad("value") },
    dataKey,
    new TextEncoder().encode(value),
  );
  const master = await crypto.subtle.importKey(
    "raw",
    Uint8Array.from(atob(masterB64), (c) => c.charCodeAt(0)),
    "AES-GCM",
    false,
    ["encrypt"],
  );
  const wrapIv = crypto.getRandomValues(new Uint8Array(12));
  const wrapped = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: wrapIv, additionalData: aad("key", kid) },
    master,
    dek,
  );
  return {
    kid,
    wrapped: `${b64url(wrapIv)}.${b64url(new Uint8Array(wrapped))}`,
    iv: b64url(iv),
    ciphertext: b64url(new Uint8Array(ct)),
  };
}

function masterKeys(active: string, ...kids: string[]): string {
  const keys: Record<string, string> = {};
  for (const kid of kids) keys[kid] = b64(crypto.getRandomValues(new Uint8Array(32)));
  return JSON.stringify({ active, keys });
}

/** Master key material per kid, stable across a test (so rotation configs share keys). */
function keyring() {
  const material = new Map<string, string>();
  return (active: string, ...kids: string[]) => {
    for (const kid of kids)
      if (!material.has(kid)) material.set(kid, b64(crypto.getRandomValues(new Uint8Array(32))));
    return JSON.stringify({ active, keys: Object.fromEntries(kids.map((k) => [k, material.get(k)])) });
  };
}

interface Setup {
  ns: string;
  broker: TestBroker;
  gh: string;
  token: (o?: Record<string, unknown>) => Promise<string>;
  put: (path: string, body: unknown, headers?: Record<string, string>) => Promise<Response>;
  exchange: (t: string, policy?: string) => Promise<{ status: number; body: Record<string, unknown> }>;
}

async function setup(
  options: {
    env?: Partial<Cloudflare.Env>;
    policies?: (ns: string, gh: string) => Record<string, string>;
  } = {},
): Promise<Setup> {
  const ns = `acme-${crypto.randomUUID().slice(0, 8)}`;
  const gh = uniqueIssuer();
  const base = (extra: string, secrets: string) => `issuer: ${gh}
allow:
  repository_owner_id: "${ACME.ownerId}"
  repository_id: "${ACME.repoId}"
${extra}
grants:
  secrets:
${secrets}
`;
  const policies = options.policies?.(ns, gh) ?? {
    bundle: base(
      "",
      `    STRIPE_API_KEY: ${ns}/api/stripe
    SIGNING_KEY: ${ns}/api/signing-pem
    BLOB: ${ns}/api/blob`,
    ),
    pinned: base("", `    STRIPE_API_KEY: ${ns}/api/stripe@1`),
    once: base("deliver_once: true", `    STRIPE_API_KEY: ${ns}/api/stripe`),
  };
  const broker = await makeBroker({ policies, issuers: issuersYaml(gh), env: options.env ?? {} });
  const put = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    broker.admin(`/v1/admin/secrets/${path}`, {
      method: "PUT",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
  const token = (o: Record<string, unknown> = {}) =>
    mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, o));
  const exchange = async (t: string, policy = "bundle") => {
    const res = await broker.exchange(t, { policy });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return { ns, broker, gh, token, put, exchange };
}

async function seed(s: Setup): Promise<void> {
  expect((await s.put(`${s.ns}/api/stripe`, { value: "sk_live_first" })).status).toBe(201);
  expect((await s.put(`${s.ns}/api/signing-pem`, { value: PEM })).status).toBe(201);
  expect((await s.put(`${s.ns}/api/blob`, { value_base64: b64(BINARY) })).status).toBe(201);
}

function shard(ns: string) {
  return env.SECRET_STORE.get(env.SECRET_STORE.idFromName(`shard:${ns}`));
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("secret store admin API", () => {
  it("puts numbered versions and lists metadata by prefix, never values", async () => {
    const s = await setup();
    const first = await s.put(
      `${s.ns}/api/stripe`,
      { value: "sk_live_v1" },
      { "x-runpass-actor": "alice@laptop" },
    );
    expect(first.status).toBe(201);
    expect(await first.json()).toEqual({ path: `${s.ns}/api/stripe`, version: 1 });
    expect(await (await s.put(`${s.ns}/api/stripe`, { value: "sk_live_v2" })).json()).toMatchObject({
      version: 2,
    });
    await s.put(`${s.ns}/web/dsn`, { value: "https://dsn.example/1" });

    const list = await s.broker.admin(`/v1/admin/secrets?prefix=${s.ns}/api`);
    const listed = (await list.json()) as {
      secrets: Array<{ path: string; current_version: number; versions: Array<Record<string, unknown>> }>;
    };
    expect(listed.secrets.map((x) => x.path)).toEqual([`${s.ns}/api/stripe`]);
    expect(listed.secrets[0]?.current_version).toBe(2);
    expect(listed.secrets[0]?.versions[0]).toMatchObject({
      version: 1,
      created_by: "admin:alice@laptop",
      state: "active",
    });
    const all = await (await s.broker.admin(`/v1/admin/secrets?prefix=${s.ns}`)).text();
    expect(all).toContain(`${s.ns}/web/dsn`);
    const one = await (await s.broker.admin(`/v1/admin/secrets/${s.ns}/api/stripe`)).text();
    for (const text of [JSON.stringify(listed), all, one]) {
      expect(text).not.toContain("sk_live_v1");
      expect(text).not.toContain("sk_live_v2");
    }
    expect((await s.broker.admin(`/v1/admin/secrets/${s.ns}/nope`)).status).toBe(404);
  });

  it("refuses bad paths, oversize, empty and non-base64 values, and callers without the admin token", async () => {
    const s = await setup();
    // URL parsing already resolves literal /../ and /./ before a Worker sees them; encoded slashes do not.
    for (const bad of [
      `${s.ns}%2F..%2Fx`,
      `${s.ns}%2F%2Fx`,
      `${s.ns}%2F.%2Fx`,
      `${s.ns}/a%20b`,
      `${s.ns}/x%2F`,
      `${s.ns}/%00`,
    ]) {
      const res = await s.put(bad, { value: "v" });
      expect(res.status, bad).toBe(400);
    }
    expect((await s.put(`${s.ns}/big`, { value: "x".repeat(64 * 1024 + 1) })).status).toBe(413);
    expect((await s.put(`${s.ns}/big`, { value_base64: b64(new Uint8Array(64 * 1024 + 1)) })).status).toBe(
      413,
    );
    expect((await s.put(`${s.ns}/ok`, { value: "x".repeat(64 * 1024) })).status).toBe(201);
    expect((await s.put(`${s.ns}/empty`, { value: "" })).status).toBe(400);
    expect((await s.put(`${s.ns}/surrogate`, { value: "a\ud800b" })).status).toBe(400);
    expect((await s.broker.admin(`/v1/admin/secrets/${s.ns}/a%25zz`)).status).toBe(400);
    expect((await s.put(`${s.ns}/b64`, { value_base64: "not base64!" })).status).toBe(400);
    expect((await s.put(`${s.ns}/both`, { value: "a", value_base64: "YQ==" })).status).toBe(400);
    const noAuth = await s.broker.fetch(`/v1/admin/secrets/${s.ns}/x`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ value: "v" }),
    });
    expect(noAuth.status).toBe(401);
    const wrong = await s.broker.fetch(`/v1/admin/secrets?prefix=${s.ns}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}x` },
    });
    expect(wrong.status).toBe(401);
    expect((await s.broker.admin(`/v1/admin/secrets/${s.ns}/x`)).status).toBe(404);
  });

  it("malformed master key configuration fails closed with a 503 naming RUNPASS_MASTER_KEYS", async () => {
    for (const bad of [
      "",
      "not json",
      '{"a":"b","c":"d"}',
      '{"k1":"c2hvcnQ="}',
      '{"active":"k2","keys":{"k1":"AAAA"}}',
    ]) {
      const s = await setup({ env: { RUNPASS_MASTER_KEYS: bad } });
      const res = await s.put(`${s.ns}/x`, { value: "v" });
      expect(res.status, bad).toBe(503);
      expect(((await res.json()) as { error_description: string }).error_description).toContain(
        "RUNPASS_MASTER_KEYS",
      );
    }
  });
});

describe("the secrets grant", () => {
  it("delivers the bundle exactly: multi-line PEM byte for byte, binary as base64 named in secret_encodings", async () => {
    const s = await setup();
    await seed(s);
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(200);
    const credentials = res.body.credentials as { secrets: Record<string, string> };
    expect(credentials.secrets).toEqual({
      STRIPE_API_KEY: "sk_live_first",
      SIGNING_KEY: PEM,
      BLOB: b64(BINARY),
    });
    expect(res.body.secret_encodings).toEqual({ BLOB: "base64" });
  });

  it("a pinned version stays pinned; a rollback makes a copy of an old version current", async () => {
    const s = await setup();
    await seed(s);
    await s.put(`${s.ns}/api/stripe`, { value: "sk_live_second" });
    const pinned = await s.exchange(await s.token(), "pinned");
    expect((pinned.body.credentials as { secrets: Record<string, string> }).secrets.STRIPE_API_KEY).toBe(
      "sk_live_first",
    );
    const current = await s.exchange(await s.token());
    expect((current.body.credentials as { secrets: Record<string, string> }).secrets.STRIPE_API_KEY).toBe(
      "sk_live_second",
    );

    const rb = await s.broker.admin(`/v1/admin/secrets/${s.ns}/api/stripe/rollback`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ version: 1 }),
    });
    expect(await rb.json()).toEqual({ path: `${s.ns}/api/stripe`, version: 3 });
    const after = await s.exchange(await s.token());
    expect((after.body.credentials as { secrets: Record<string, string> }).secrets.STRIPE_API_KEY).toBe(
      "sk_live_first",
    );
  });

  it("each delivery is recorded on the lease and in the audit log by path and version; audit-hash of a value finds nothing", async () => {
    const s = await setup();
    await seed(s);
    const res = await s.exchange(await s.token());
    const lease = res.body.lease as { run: string };
    await runDurableObjectAlarm(env.RUN_LEDGER.get(env.RUN_LEDGER.idFromName(lease.run)));
    const audit = (await (
      await s.broker.admin(`/v1/admin/audit?run=${encodeURIComponent(lease.run)}&decision=allow`)
    ).json()) as {
      records: Array<{
        grants: Array<{ type: string; path?: string; version?: number; id: string; name?: string }>;
      }>;
    };
    const delivered = audit.records[0]?.grants.filter((g) => g.type === "secrets") ?? [];
    expect(delivered.map((g) => `${g.name}=${g.path}@${g.version}`).sort()).toEqual([
      `BLOB=${s.ns}/api/blob@1`,
      `SIGNING_KEY=${s.ns}/api/signing-pem@1`,
      `STRIPE_API_KEY=${s.ns}/api/stripe@1`,
    ]);
    const auditHash = async (value: string) =>
      (
        (await (
          await s.broker.admin("/v1/admin/audit-hash", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ value }),
          })
        ).json()) as { digest: string }
      ).digest;
    // No API computes a digest of a secret's value that appears in a record: no guessing oracle.
    const leaseGrants = await runInDurableObject(
      env.RUN_LEDGER.get(env.RUN_LEDGER.idFromName(lease.run)),
      (_i, state) =>
        state.storage.sql
          .exec("SELECT * FROM leases")
          .toArray()
          .map((row) => JSON.stringify(row))
          .join("\n"),
    );
    expect(leaseGrants).toContain(`${s.ns}/api/stripe`);
    for (const value of ["sk_live_first", PEM, b64(BINARY)]) {
      const digest = await auditHash(value);
      expect(JSON.stringify(audit)).not.toContain(digest);
      expect(leaseGrants).not.toContain(digest);
    }
    // A delivery of a version is still searchable, by `secret:<path>@<version>`.
    const byVersion = await auditHash(`secret:${s.ns}/api/stripe@1`);
    expect(delivered.find((g) => g.name === "STRIPE_API_KEY")?.id).toBe(byVersion);
    const found = await (
      await s.broker.admin(
        `/v1/admin/audit?credential=${encodeURIComponent(byVersion)}&run=${encodeURIComponent(lease.run)}`,
      )
    ).json();
    expect((found as { records: unknown[] }).records).toHaveLength(1);
    expect(JSON.stringify(audit)).not.toContain("sk_live_first");
  });

  it("after the run ends the same secrets are never delivered again for that run", async () => {
    const s = await setup();
    await seed(s);
    const runId = "8880001";
    const first = await s.exchange(await s.token({ run_id: runId }));
    expect(first.status).toBe(200);
    await s.broker.admin("/v1/admin/revoke", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ run: (first.body.lease as { run: string }).run }),
    });
    const again = await s.exchange(await s.token({ run_id: runId }));
    expect(again.status).toBe(403);
    expect(again.body.credentials).toBeUndefined();
  });

  it("deliver_once: a bundle is retrievable once per run; another run gets its own", async () => {
    const s = await setup();
    await seed(s);
    const one = await s.exchange(await s.token({ run_id: "8880002" }), "once");
    expect(one.status).toBe(200);
    const twice = await s.exchange(await s.token({ run_id: "8880002" }), "once");
    expect(twice.status).toBe(403);
    expect(twice.body.reasons).toEqual([{ code: "secrets_already_delivered" }]);
    expect((await s.exchange(await s.token({ run_id: "8880003" }), "once")).status).toBe(200);
  });

  it("a missing, deleted or destroyed secret fails the exchange with 502 and no partial bundle; the token stays usable", async () => {
    const s = await setup();
    await s.put(`${s.ns}/api/stripe`, { value: "sk_live_first" });
    await s.put(`${s.ns}/api/signing-pem`, { value: PEM });
    const t = await s.token();
    const missing = await s.exchange(t);
    expect(missing.status).toBe(502);
    expect(missing.body).toMatchObject({ error: "upstream_error", retryable: false });
    expect(missing.body.credentials).toBeUndefined();
    expect(JSON.stringify(missing.body)).not.toContain("sk_live_first");

    await s.put(`${s.ns}/api/blob`, { value_base64: b64(BINARY) });
    // Deleted between policy load and exchange:
    expect((await s.broker.admin(`/v1/admin/secrets/${s.ns}/api/blob`, { method: "DELETE" })).status).toBe(
      204,
    );
    expect((await s.exchange(t)).status).toBe(502);
    await s.put(`${s.ns}/api/blob`, { value_base64: b64(BINARY) });
    expect((await s.exchange(t)).status).toBe(200);

    const destroy = await s.broker.admin(`/v1/admin/secrets/${s.ns}/api/stripe?version=1&destroy=1`, {
      method: "DELETE",
    });
    expect(destroy.status).toBe(204);
    expect((await s.exchange(await s.token(), "pinned")).status).toBe(502);
    const meta = (await (await s.broker.admin(`/v1/admin/secrets/${s.ns}/api/stripe`)).json()) as {
      versions: Array<{ state: string }>;
    };
    expect(meta.versions[0]?.state).toBe("destroyed");
  });

  it("an output name that is not an environment variable, or would shadow one the runner sets, is refused at load", async () => {
    for (const name of ["1ABC", "MY-KEY", "PATH", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "LD_PRELOAD"]) {
      await expect(
        buildBundle({
          p: `issuer: github
allow:
  repository_owner_id: "1"
grants:
  secrets:
    ${name}: acme/x
`,
        }),
      ).rejects.toThrow(/environment variable|override/);
    }
    await expect(
      buildBundle({
        p: 'issuer: github\nallow:\n  repository_owner_id: "1"\ngrants:\n  secrets:\n    OK: acme/../x\n',
      }),
    ).rejects.toThrow(/path/);
  });
});

describe("tampering and keys", () => {
  it("a flipped ciphertext byte or a record moved to another path or version fails closed", async () => {
    const s = await setup({
      policies: (ns, gh) => ({
        p: `issuer: ${gh}
allow:
  repository_owner_id: "${ACME.ownerId}"
grants:
  secrets:
    A: ${ns}/a
`,
      }),
    });
    await s.put(`${s.ns}/a`, { value: "value-a" });
    await s.put(`${s.ns}/b`, { value: "value-b" });
    expect((await s.exchange(await s.token(), "p")).status).toBe(200);

    // Copy b's record over a (wrong AAD: another path).
    await runInDurableObject(shard(s.ns), (_i, state) => {
      const b = state.storage.sql.exec("SELECT * FROM secret_versions WHERE path = ?", `${s.ns}/b`).one();
      state.storage.sql.exec(
        "UPDATE secret_versions SET kid = ?, wrapped = ?, iv = ?, ciphertext = ? WHERE path = ?",
        b.kid,
        b.wrapped,
        b.iv,
        b.ciphertext,
        `${s.ns}/a`,
      );
    });
    const moved = await s.exchange(await s.token(), "p");
    expect(moved.status).toBe(502);
    expect(JSON.stringify(moved.body)).not.toContain("value-b");

    // A fresh version, then flip one ciphertext byte.
    await s.put(`${s.ns}/a`, { value: "value-a2" });
    expect((await s.exchange(await s.token(), "p")).status).toBe(200);
    await runInDurableObject(shard(s.ns), (_i, state) => {
      const row = state.storage.sql
        .exec("SELECT ciphertext FROM secret_versions WHERE path = ? AND version = 2", `${s.ns}/a`)
        .one();
      const ct = String(row.ciphertext);
      const flipped = `${ct.slice(0, 5)}${ct[5] === "A" ? "B" : "A"}${ct.slice(6)}`;
      state.storage.sql.exec(
        "UPDATE secret_versions SET ciphertext = ? WHERE path = ? AND version = 2",
        flipped,
        `${s.ns}/a`,
      );
    });
    const flipped = await s.exchange(await s.token(), "p");
    expect(flipped.status).toBe(502);
  });

  it("a version whose stored encoding is flipped fails closed (the encoding is bound into the AEAD)", async () => {
    const s = await setup({
      policies: (ns, gh) => ({
        p: `issuer: ${gh}
allow:
  repository_owner_id: "${ACME.ownerId}"
grants:
  secrets:
    A: ${ns}/bin
    B: ${ns}/text
`,
      }),
    });
    await s.put(`${s.ns}/bin`, { value_base64: b64(BINARY) });
    await s.put(`${s.ns}/text`, { value: "value-text" });
    expect((await s.exchange(await s.token(), "p")).status).toBe(200);
    const flip = (path: string, encoding: string) =>
      runInDurableObject(shard(s.ns), (_i, state) => {
        state.storage.sql.exec("UPDATE secret_versions SET encoding = ? WHERE path = ?", encoding, path);
      });

    await flip(`${s.ns}/bin`, "utf8");
    const asText = await s.exchange(await s.token(), "p");
    expect(asText.status).toBe(502);
    expect(asText.body.credentials).toBeUndefined();
    await flip(`${s.ns}/bin`, "base64");
    expect((await s.exchange(await s.token(), "p")).status).toBe(200);

    await flip(`${s.ns}/text`, "base64");
    const asBase64 = await s.exchange(await s.token(), "p");
    expect(asBase64.status).toBe(502);
    expect(JSON.stringify(asBase64.body)).not.toContain(btoa("value-text"));
  });

  it("a version written in the old associated-data format still decrypts; a new one relabelled as old fails closed", async () => {
    const keys = keyring();
    const master = keys("m1", "m1");
    const s = await setup({
      env: { RUNPASS_MASTER_KEYS: master },
      policies: (ns, gh) => ({
        old: `issuer: ${gh}\nallow:\n  repository_owner_id: "${ACME.ownerId}"\ngrants:\n  secrets:\n    A: ${ns}/legacy@1\n`,
        new: `issuer: ${gh}\nallow:\n  repository_owner_id: "${ACME.ownerId}"\ngrants:\n  secrets:\n    A: ${ns}/legacy@2\n`,
      }),
    });
    await s.put(`${s.ns}/legacy`, { value: "placeholder" });
    await s.put(`${s.ns}/legacy`, { value: "value-v2-format" });
    const material = (JSON.parse(master) as { keys: Record<string, string> }).keys.m1 as string;
    const legacy = await sealLegacyV1(material, "m1", `${s.ns}/legacy`, 1, "value-v1-format");
    // Rows written before the format was recorded carry no format (the column was added later).
    await runInDurableObject(shard(s.ns), (_i, state) => {
      state.storage.sql.exec(
        "UPDATE secret_versions SET kid = ?, wrapped = ?, iv = ?, ciphertext = ?, aad = NULL WHERE path = ? AND version = 1",
        legacy.kid,
        legacy.wrapped,
        legacy.iv,
        legacy.ciphertext,
        `${s.ns}/legacy`,
      );
    });
    const old = await s.exchange(await s.token(), "old");
    expect(old.status).toBe(200);
    expect((old.body.credentials as { secrets: Record<string, string> }).secrets.A).toBe("value-v1-format");
    expect((await s.exchange(await s.token(), "new")).status).toBe(200);

    // Re-wrapping re-seals old-format versions in the current format, so their encoding is bound too.
    await s.broker.admin("/v1/admin/secrets-rewrap", { method: "POST" });
    const formats = await runInDurableObject(shard(s.ns), (_i, state) =>
      state.storage.sql
        .exec("SELECT version, aad FROM secret_versions WHERE path = ? ORDER BY version", `${s.ns}/legacy`)
        .toArray()
        .map((r) => `${r.version}:${r.aad}`),
    );
    expect(formats).toEqual(["1:2", "2:2"]);
    const resealed = await s.exchange(await s.token(), "old");
    expect((resealed.body.credentials as { secrets: Record<string, string> }).secrets.A).toBe(
      "value-v1-format",
    );

    await runInDurableObject(shard(s.ns), (_i, state) => {
      state.storage.sql.exec(
        "UPDATE secret_versions SET aad = 1 WHERE path = ? AND version = 2",
        `${s.ns}/legacy`,
      );
    });
    expect((await s.exchange(await s.token(), "new")).status).toBe(502);
  });

  it("rotation without downtime: old records decrypt until rewrapped; a removed kid fails closed, named", async () => {
    const keys = keyring();
    const policies = (ns: string, gh: string) => ({
      p: `issuer: ${gh}
allow:
  repository_owner_id: "${ACME.ownerId}"
grants:
  secrets:
    A: ${ns}/a
`,
    });
    const old = await setup({ env: { RUNPASS_MASTER_KEYS: keys("m1", "m1") }, policies });
    await old.put(`${old.ns}/a`, { value: "rotating-value" });
    const withBroker = (master: string) =>
      makeBroker({
        policies: policies(old.ns, old.gh),
        issuers: issuersYaml(old.gh),
        env: { RUNPASS_MASTER_KEYS: master },
      });
    const exchangeWith = async (b: TestBroker) =>
      (await b.exchange(await old.token(), { policy: "p" })).status;

    // Step 1: add m2 and make it active; m1 records still decrypt.
    const both = await withBroker(keys("m2", "m1", "m2"));
    expect(await exchangeWith(both)).toBe(200);
    // Step 2: rewrap everything under m2.
    // (Rewrap covers every shard; other tests' shards use other keys, so only ours is asserted.)
    const rewrap = (await (await both.admin("/v1/admin/secrets-rewrap", { method: "POST" })).json()) as {
      rewrapped: number;
      failed: Array<{ path: string }>;
    };
    expect(rewrap.rewrapped).toBeGreaterThanOrEqual(1);
    expect(rewrap.failed.filter((f) => f.path.startsWith(`${old.ns}/`))).toEqual([]);
    const meta = (await (await both.admin(`/v1/admin/secrets/${old.ns}/a`)).json()) as {
      versions: Array<{ kid: string }>;
    };
    expect(meta.versions[0]?.kid).toBe("m2");
    // Step 3: retire m1.
    expect(await exchangeWith(await withBroker(keys("m2", "m2")))).toBe(200);

    // A record whose key was removed before it was rewrapped fails closed, and the audit names the kid.
    const lost = await withBroker(keys("m3", "m3"));
    expect(await exchangeWith(lost)).toBe(502);
    const denied = (await (await lost.admin("/v1/admin/audit?policy=p&decision=deny")).json()) as {
      records: Array<{ detail?: string }>;
    };
    expect(denied.records.some((r) => r.detail?.includes('"m2"'))).toBe(true);
    const failed = await lost.admin("/v1/admin/secrets-rewrap", { method: "POST" });
    expect(failed.status).toBe(207);
    const report = (await failed.json()) as { failed: Array<{ path: string; kid: string }> };
    expect(report.failed.filter((f) => f.path === `${old.ns}/a`)).toEqual([
      { path: `${old.ns}/a`, version: 1, kid: "m2" },
    ]);
  });
});

describe("destroy and the version cap", () => {
  const rollback = (s: Setup, path: string, version: number) =>
    s.broker.admin(`/v1/admin/secrets/${path}/rollback`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ version }),
    });
  const destroy = (s: Setup, path: string, version: number) =>
    s.broker.admin(`/v1/admin/secrets/${path}?version=${version}&destroy=1`, { method: "DELETE" });
  const pinned = (ns: string, gh: string) => {
    const policy = (ref: string) =>
      `issuer: ${gh}\nallow:\n  repository_owner_id: "${ACME.ownerId}"\ngrants:\n  secrets:\n    A: ${ref}\n`;
    return {
      current: policy(`${ns}/a`),
      v2: policy(`${ns}/a@2`),
      v3: policy(`${ns}/a@3`),
      v4: policy(`${ns}/a@4`),
    };
  };
  const states = async (s: Setup, path: string) =>
    (
      (await (await s.broker.admin(`/v1/admin/secrets/${path}`)).json()) as {
        current_version: number;
        versions: Array<{ version: number; state: string }>;
      }
    ).versions.map((v) => `${v.version}:${v.state}`);

  it("destroying a version destroys every rollback copy of it: undeliverable, unreadable, metadata says destroyed", async () => {
    const s = await setup({ policies: pinned });
    const path = `${s.ns}/a`;
    await s.put(path, { value: "first-value" });
    await s.put(path, { value: "second-value" });
    expect(await (await rollback(s, path, 1)).json()).toMatchObject({ version: 3 });
    // A copy of the copy.
    expect(await (await rollback(s, path, 3)).json()).toMatchObject({ version: 4 });
    await s.put(path, { value: "fifth-value" });
    expect((await s.exchange(await s.token(), "v3")).status).toBe(200);

    expect((await destroy(s, path, 1)).status).toBe(204);
    for (const policy of ["v3", "v4"]) {
      const res = await s.exchange(await s.token(), policy);
      expect(res.status, policy).toBe(502);
      expect(JSON.stringify(res.body)).not.toContain("first-value");
    }
    expect((await s.exchange(await s.token(), "v2")).status).toBe(200);
    const current = await s.exchange(await s.token(), "current");
    expect((current.body.credentials as { secrets: Record<string, string> }).secrets.A).toBe("fifth-value");
    expect(await states(s, path)).toEqual([
      "1:destroyed",
      "2:active",
      "3:destroyed",
      "4:destroyed",
      "5:active",
    ]);
    const stored = await runInDurableObject(shard(s.ns), (_i, state) =>
      state.storage.sql
        .exec(
          "SELECT version FROM secret_versions WHERE path = ? AND (ciphertext IS NOT NULL OR wrapped IS NOT NULL) ORDER BY version",
          path,
        )
        .toArray()
        .map((r) => r.version),
    );
    expect(stored).toEqual([2, 5]);
    // Nothing left to roll back to either.
    expect((await rollback(s, path, 4)).status).toBe(404);
  });

  it("destroying a rollback copy destroys the version it copied, even when the copy is current", async () => {
    const s = await setup({ policies: pinned });
    const path = `${s.ns}/a`;
    await s.put(path, { value: "first-value" });
    await s.put(path, { value: "second-value" });
    await rollback(s, path, 1);
    expect((await destroy(s, path, 3)).status).toBe(204);
    expect(await states(s, path)).toEqual(["1:destroyed", "2:active", "3:destroyed"]);
    expect((await s.exchange(await s.token(), "current")).status).toBe(502);
    expect((await s.exchange(await s.token(), "v2")).status).toBe(200);
  });

  it("a path keeps at most 100 versions with content: one more is refused 409 conflict, nothing is dropped, the current one is delivered", async () => {
    const s = await setup({ policies: pinned });
    const path = `${s.ns}/a`;
    await s.put(path, { value: "first-value" });
    // Versions 2..99 as copies of version 1's stored record (never read; only counted).
    await runInDurableObject(shard(s.ns), (_i, state) => {
      for (let v = 2; v <= 99; v++) {
        state.storage.sql.exec(
          "INSERT INTO secret_versions (path, version, kid, wrapped, iv, ciphertext, encoding, size, created_at, created_by, state, copied_from, aad) SELECT path, ?, kid, wrapped, iv, ciphertext, encoding, size, created_at, created_by, state, copied_from, aad FROM secret_versions WHERE path = ? AND version = 1",
          v,
          path,
        );
      }
    });
    const hundredth = await s.put(path, { value: "hundredth-value" });
    expect(await hundredth.json()).toEqual({ path, version: 100 });

    const over = await s.put(path, { value: "one-too-many" });
    expect(over.status).toBe(409);
    const body = (await over.json()) as { error: string; error_description: string };
    expect(body.error).toBe("conflict");
    expect(body.error_description).toMatch(/100 versions/);
    expect(body.error_description).toMatch(/destroy/);
    expect((await rollback(s, path, 1)).status).toBe(409);

    const meta = (await (await s.broker.admin(`/v1/admin/secrets/${path}`)).json()) as {
      current_version: number;
      versions: Array<{ state: string }>;
    };
    expect(meta.current_version).toBe(100);
    expect(meta.versions).toHaveLength(100);
    expect(meta.versions.every((v) => v.state === "active")).toBe(true);
    const current = await s.exchange(await s.token(), "current");
    expect((current.body.credentials as { secrets: Record<string, string> }).secrets.A).toBe(
      "hundredth-value",
    );

    // Destroying an old version makes room.
    expect((await destroy(s, path, 2)).status).toBe(204);
    expect(await (await s.put(path, { value: "after-room" })).json()).toEqual({ path, version: 101 });
  });
});

describe("no plaintext anywhere in logs", () => {
  it("every value stored in this test run is absent from everything logged", async () => {
    const lines: string[] = [];
    const capture = (...args: unknown[]) => {
      lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    };
    for (const m of ["log", "error", "warn", "info", "debug"] as const)
      vi.spyOn(console, m).mockImplementation(capture);
    const s = await setup();
    await seed(s);
    await s.put(`${s.ns}/api/stripe`, { value: "sk_live_second" });
    await s.exchange(await s.token());
    await s.exchange(await s.token(), "pinned");
    await s.broker.admin(`/v1/admin/secrets/${s.ns}/api/stripe/rollback`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ version: 1 }),
    });
    await s.broker.admin(`/v1/admin/secrets?prefix=${s.ns}`);
    await s.broker.admin(`/v1/admin/secrets/${s.ns}/api/blob`, { method: "DELETE" });
    await s.exchange(await s.token());
    await s.broker.admin("/v1/admin/secrets-rewrap", { method: "POST" });
    const logged = lines.join("\n");
    expect(logged).toContain("runpass.audit");
    for (const value of ["sk_live_first", "sk_live_second", PEM.split("\n")[1] as string, b64(BINARY)]) {
      expect(logged).not.toContain(value);
    }
    void masterKeys;
  });
});
