// Large policy sets live in POLICY_KV: each record is a policy's YAML source with an inclusion proof for the
// Merkle root in the Worker bundle. Records are verified and loaded with the bundled policies' rules on first
// use; anything that does not verify is refused with a named 503 and never used.

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { splitForStore } from "../../src/cli/build.ts";
import { sha256 } from "../../src/core/crypto.ts";
import { canonicalJson } from "../../src/core/encoding.ts";
import { STORE_MISS_TTL_MS } from "../../src/core/policy/compile.ts";
import { buildPolicyRecords, policyRecordKey } from "../../src/core/policy/store-record.ts";
import type { PolicyBundle } from "../../src/core/policy/types.ts";
import {
  BROKER_URL,
  buildBundle,
  githubPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { githubClaims, mint } from "../support/claims.ts";

const KV = env.POLICY_KV as KVNamespace;

interface Stored {
  name: string;
  source: string;
  proof: string[];
}

/** A set of five policies named `<issuer>-svc-<i>`, split into a store bundle; records uploaded unless `upload` is false. */
async function storeSet(options: { upload?: boolean; clock?: () => number } = {}) {
  const gh = uniqueIssuer();
  const policies: Record<string, string> = {};
  for (let i = 0; i < 5; i++)
    policies[`${gh}-svc-${i}`] = githubPolicy(gh, "", `token: { audience: "https://svc-${i}.example" }`);
  const full = await buildBundle(policies, issuersYaml(gh));
  const sources = Object.entries(policies).map(([name, text]) => ({ path: `policies/${name}.yaml`, text }));
  const split = await splitForStore(full, 2, sources);
  const entries = split.entries ?? [];
  if (options.upload !== false) for (const e of entries) await KV.put(e.key, e.value);
  const broker = await makeBroker({
    policies: {},
    bundle: split.bundle,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const name = (i: number) => `${gh}-svc-${i}`;
  const record = (i: number) => entries.find((e) => e.key.endsWith(`/p/${name(i)}`)) as (typeof entries)[0];
  const token = (overrides: Record<string, unknown> = {}, now = Date.now()) =>
    mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, overrides, now));
  return { gh, full, split, broker, name, record, token, policies };
}

/** Exchanges and reports status, error code and whether anything was issued (never the credentials). */
async function exchange(
  broker: Awaited<ReturnType<typeof makeBroker>>,
  token: string,
  policy: string,
): Promise<{
  status: number;
  error?: string;
  description?: string;
  issued: boolean;
  body: Record<string, unknown>;
}> {
  const res = await broker.exchange(token, { policy });
  const { credentials: _credentials, lease: _lease, ...body } = (await res.json()) as Record<string, unknown>;
  return {
    status: res.status,
    ...(typeof body.error === "string" ? { error: body.error } : {}),
    ...(typeof body.error_description === "string" ? { description: body.error_description } : {}),
    issued: _credentials !== undefined || _lease !== undefined,
    body,
  };
}

async function auditFor(broker: Awaited<ReturnType<typeof makeBroker>>, policy: string) {
  const res = await broker.admin(`/v1/admin/audit?policy=${encodeURIComponent(policy)}`);
  return ((await res.json()) as { records: Array<{ decision: string; error?: string; detail?: string }> })
    .records;
}

describe("policy store", () => {
  it("a set above RUNPASS_BUNDLE_MAX exchanges from verified POLICY_KV records; unknown names are the usual 403", async () => {
    const s = await storeSet();
    expect(s.split.bundle.policies).toEqual([]);
    expect(s.split.bundle.store).toMatchObject({ kind: "kv", count: 5 });
    expect(s.split.bundle.store?.root).toMatch(/^sha256:[0-9a-f]{64}$/);
    // The bundle carries the root, not one digest per record.
    expect(JSON.stringify(s.split.bundle)).not.toContain((JSON.parse(s.record(0).value) as Stored).proof[0]);
    const ok = await exchange(s.broker, await s.token(), s.name(3));
    expect(ok.status).toBe(200);
    expect(ok.body.policy).toBe(s.name(3));
    expect((await exchange(s.broker, await s.token(), `${s.gh}-svc-99`)).status).toBe(403);
  });

  it("policy_version is the digest of the verified record's content (its policy and issuer)", async () => {
    const s = await storeSet();
    const ok = await exchange(s.broker, await s.token(), s.name(2));
    expect(ok.status).toBe(200);
    const built = s.full.policies.find((p) => p.name === s.name(2));
    const { version: _, ...content } = built as NonNullable<typeof built>;
    const issuer = s.full.issuers.find((i) => i.name === s.gh);
    expect(ok.body.policy_version).toBe(await sha256(canonicalJson({ policy: content, issuer })));
  });

  it("a tampered record (allow: {} under the same name, proof kept) is refused with a named 503, audited, nothing issued", async () => {
    const s = await storeSet();
    const stored = JSON.parse(s.record(1).value) as Stored;
    const tampered = stored.source.replace(/^allow:[\s\S]*?^grants:/m, "allow: {}\ngrants:");
    expect(tampered).not.toBe(stored.source);
    await KV.put(s.record(1).key, JSON.stringify({ ...stored, source: tampered }));
    const stranger = await s.token({ repository_owner_id: "999", repository_id: "999" });
    const res = await exchange(s.broker, stranger, s.name(1));
    expect(res.status).toBe(503);
    expect(res.error).toBe("temporarily_unavailable");
    expect(res.description).toMatch(/POLICY_KV record .* re-upload the set's records/);
    expect(res.issued).toBe(false);
    const audit = await auditFor(s.broker, s.name(1));
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ decision: "deny", error: "temporarily_unavailable" });
    expect(audit[0]?.detail).toMatch(/proof does not lead to this deployment's Merkle root/);
    // Refusals are not cached as a policy: once the build's record is back, the policy works again.
    await KV.put(s.record(1).key, s.record(1).value);
    expect((await exchange(s.broker, await s.token(), s.name(1))).status).toBe(200);
  });

  it("a record in the old format (a bare policy definition with allow: {}) is refused", async () => {
    const s = await storeSet();
    const def = { ...s.full.policies.find((p) => p.name === s.name(0)), allow: {} };
    await KV.put(s.record(0).key, JSON.stringify(def));
    const res = await exchange(s.broker, await s.token({ repository_owner_id: "999" }), s.name(0));
    expect(res.status).toBe(503);
    expect(res.issued).toBe(false);
  });

  it("a record whose proof is for another leaf is refused", async () => {
    const s = await storeSet();
    const mine = JSON.parse(s.record(1).value) as Stored;
    const other = JSON.parse(s.record(0).value) as Stored;
    expect(mine.proof).not.toEqual(other.proof);
    await KV.put(s.record(1).key, JSON.stringify({ ...mine, proof: other.proof }));
    const res = await exchange(s.broker, await s.token(), s.name(1));
    expect(res.status).toBe(503);
    expect(res.issued).toBe(false);
  });

  it("another policy's genuine record under this name is refused, not served", async () => {
    const s = await storeSet();
    await KV.put(s.record(4).key, s.record(0).value);
    const res = await exchange(s.broker, await s.token(), s.name(4));
    expect(res.status).toBe(503);
    expect(res.issued).toBe(false);
  });

  it("a record with a valid proof that breaks a load-time rule (no pinned owner) is refused", async () => {
    const gh = uniqueIssuer();
    const good = await buildBundle({ [`${gh}-ok`]: githubPolicy(gh) }, issuersYaml(gh));
    const unpinned = `issuer: ${gh}\nallow:\n  ref: refs/heads/main\ngrants:\n  token: { audience: "https://x.example" }\n`;
    const { root, entries } = await buildPolicyRecords([
      { name: `${gh}-ok`, source: githubPolicy(gh) },
      { name: `${gh}-open`, source: unpinned },
    ]);
    for (const e of entries) await KV.put(e.key, e.value);
    const bundle: PolicyBundle = { ...good, policies: [], store: { kind: "kv", count: 2, root } };
    const broker = await makeBroker({ policies: {}, bundle });
    const token = () => mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL));
    expect((await exchange(broker, await token(), `${gh}-ok`)).status).toBe(200);
    const res = await exchange(broker, await token(), `${gh}-open`);
    expect(res.status).toBe(503);
    expect(res.issued).toBe(false);
    const audit = await auditFor(broker, `${gh}-open`);
    expect(audit[0]?.detail).toMatch(/load-time rule .*must pin/);
  });

  it("a miss is re-read once the miss window has passed", async () => {
    let now = Date.now();
    const s = await storeSet({ upload: false, clock: () => now });
    const first = await exchange(s.broker, await s.token({}, now), s.name(2));
    expect(first.status).toBe(403);
    // The records arrive after the miss: still a miss inside the window, found after it.
    await KV.put(s.record(2).key, s.record(2).value);
    now += STORE_MISS_TTL_MS - 1000;
    expect((await exchange(s.broker, await s.token({}, now), s.name(2))).status).toBe(403);
    now += 2000;
    expect((await exchange(s.broker, await s.token({}, now), s.name(2))).status).toBe(200);
    expect(STORE_MISS_TTL_MS).toBeLessThanOrEqual(60_000);
  });

  it("records are keyed by the set's Merkle root", async () => {
    const s = await storeSet({ upload: false });
    expect(s.record(0).key).toBe(policyRecordKey(s.split.bundle.store?.root as string, s.name(0)));
  });

  it("without the POLICY_KV binding the broker fails closed with a named 503", async () => {
    const s = await storeSet();
    const broker = await makeBroker({ policies: {}, bundle: s.split.bundle, env: { POLICY_KV: undefined } });
    const res = await exchange(broker, await s.token(), s.name(1));
    expect(res.status).toBe(503);
    expect(res.description).toContain("POLICY_KV");
  });
});
