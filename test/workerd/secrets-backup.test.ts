// Backup and restore of the secret store (docs/operations.md, "Backup and restore of the secret store"): the
// export holds ciphertexts and wrapped data keys only; after the store is lost, importing it brings every version
// back and exchanges deliver the same values; a restore never overwrites a path the store has; a dump whose rows
// were moved to another shard is refused.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  BROKER_URL,
  githubPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { githubClaims, mint } from "../support/claims.ts";

async function setup() {
  const gh = uniqueIssuer();
  const ns = `bk-${crypto.randomUUID().slice(0, 8)}`;
  const broker = await makeBroker({
    policies: {
      vault: githubPolicy(gh, "", `secrets: { STRIPE_API_KEY: ${ns}/api/stripe, DSN: ${ns}/web/dsn }`),
    },
    issuers: issuersYaml(gh),
  });
  const json = { "content-type": "application/json" };
  const put = (path: string, value: string) =>
    broker.admin(`/v1/admin/secrets/${path}`, {
      method: "PUT",
      headers: json,
      body: JSON.stringify({ value }),
    });
  const exchange = async () => {
    const token = await mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL));
    const res = await broker.exchange(token, { policy: "vault" });
    return {
      status: res.status,
      body: (await res.json()) as { credentials?: { secrets: Record<string, string> } },
    };
  };
  const importDump = (dump: unknown) =>
    broker.admin("/v1/admin/secrets-import", { method: "POST", headers: json, body: JSON.stringify(dump) });
  return { ns, broker, put, exchange, importDump };
}

/** Loses the shard's storage, as a deleted namespace or a restore into a new account would. */
async function wipe(ns: string): Promise<void> {
  const stub = env.SECRET_STORE.get(env.SECRET_STORE.idFromName(`shard:${ns}`));
  await runInDurableObject(stub, (_instance, state) => {
    state.storage.sql.exec("DELETE FROM secret_versions");
    state.storage.sql.exec("DELETE FROM secret_paths");
  });
}

type Dump = {
  format: string;
  shards: Array<{ shard: string; paths: Array<{ path: string }>; versions: Array<Record<string, unknown>> }>;
};

describe("secret store backup and restore", () => {
  it("round trip: export (no values), lose the store, import, the same values are delivered", async () => {
    const s = await setup();
    expect((await s.put(`${s.ns}/api/stripe`, "sk_live_backup_v1")).status).toBe(201);
    expect((await s.put(`${s.ns}/api/stripe`, "sk_live_backup_v2")).status).toBe(201);
    expect((await s.put(`${s.ns}/web/dsn`, "https://dsn.example/backup")).status).toBe(201);
    const before = await s.exchange();
    expect(before.body.credentials?.secrets).toEqual({
      STRIPE_API_KEY: "sk_live_backup_v2",
      DSN: "https://dsn.example/backup",
    });

    const res = await s.broker.admin("/v1/admin/secrets-export");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const text = await res.text();
    for (const value of [
      "sk_live_backup_v1",
      "sk_live_backup_v2",
      "https://dsn.example/backup",
      btoa("sk_live_backup_v2"),
    ])
      expect(text.includes(value), "a value is in the export").toBe(false);
    const dump = JSON.parse(text) as Dump;
    const ours = dump.shards.find((x) => x.shard === s.ns);
    expect(ours?.versions.map((v) => [v.path, v.version])).toEqual([
      [`${s.ns}/api/stripe`, 1],
      [`${s.ns}/api/stripe`, 2],
      [`${s.ns}/web/dsn`, 1],
    ]);
    for (const v of ours?.versions ?? [])
      expect(v).toMatchObject({
        kid: expect.any(String),
        wrapped: expect.any(String),
        ciphertext: expect.any(String),
      });

    await wipe(s.ns);
    expect((await s.exchange()).status).toBe(502);

    const restored = await s.importDump({ ...dump, shards: [ours] });
    expect(restored.status).toBe(200);
    expect(await restored.json()).toEqual({ paths: 2, versions: 3, skipped: [], indexed: 3, unindexed: 0 });
    expect((await s.exchange()).body.credentials?.secrets).toEqual({
      STRIPE_API_KEY: "sk_live_backup_v2",
      DSN: "https://dsn.example/backup",
    });

    // Importing again changes nothing: the paths exist.
    const again = await s.importDump({ ...dump, shards: [ours] });
    expect(await again.json()).toEqual({
      paths: 0,
      versions: 0,
      skipped: [`${s.ns}/api/stripe`, `${s.ns}/web/dsn`],
      indexed: 0,
      unindexed: 0,
    });
  });

  it("an import rebuilds the leak index: a restored value reported leaked is quarantined", async () => {
    const s = await setup();
    expect((await s.put(`${s.ns}/api/stripe`, "sk_live_restored_leak")).status).toBe(201);
    expect((await s.put(`${s.ns}/web/dsn`, "https://dsn.example/restored")).status).toBe(201);
    const dump = (await (await s.broker.admin("/v1/admin/secrets-export")).json()) as Dump;
    const ours = dump.shards.find((x) => x.shard === s.ns) as Dump["shards"][number];
    // A restore into a new account: the store and the D1 leak index are both gone.
    await wipe(s.ns);
    await env.AUDIT_DB.prepare("DELETE FROM leak_index WHERE path LIKE ?").bind(`${s.ns}/%`).run();
    const restored = await s.importDump({ ...dump, shards: [ours] });
    expect(await restored.json()).toMatchObject({ paths: 2, versions: 2, indexed: 2, unindexed: 0 });
    expect((await s.exchange()).status).toBe(200);

    const report = await s.broker.admin("/v1/admin/leaks", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ values: ["sk_live_restored_leak"], source: "pastebin" }),
    });
    expect(report.status).toBe(200);
    expect(((await report.json()) as { matches: unknown[] }).matches).toEqual([
      expect.objectContaining({
        kind: "secret",
        path: `${s.ns}/api/stripe`,
        version: 1,
        action: "secret_quarantined",
      }),
    ]);
    // Quarantined: the exchange that delivers it now fails closed.
    expect((await s.exchange()).status).toBe(502);
  });

  it("a restore never overwrites newer state, and refuses rows moved to another shard or another format", async () => {
    const s = await setup();
    await s.put(`${s.ns}/api/stripe`, "sk_old");
    const dump = (await (await s.broker.admin("/v1/admin/secrets-export")).json()) as Dump;
    const ours = dump.shards.find((x) => x.shard === s.ns) as Dump["shards"][number];
    await s.put(`${s.ns}/api/stripe`, "sk_newer");
    expect(await (await s.importDump({ ...dump, shards: [ours] })).json()).toMatchObject({
      skipped: [`${s.ns}/api/stripe`],
    });
    expect((await s.exchange()).status).toBe(502); // DSN was never put; the newer STRIPE value stays
    const moved = { ...ours, shard: `${s.ns}-elsewhere` };
    expect((await s.importDump({ ...dump, shards: [moved] })).status).toBe(400);
    expect((await s.importDump({ ...dump, format: "something/2", shards: [ours] })).status).toBe(400);
    const shown = (await (await s.broker.admin(`/v1/admin/secrets/${s.ns}/api/stripe`)).json()) as {
      current_version: number;
    };
    expect(shown.current_version).toBe(2);
  });
});
