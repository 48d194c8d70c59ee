// Large policy sets live in POLICY_KV (records by set version and name), loaded and compiled on first use.

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { splitForStore } from "../../src/cli/build.ts";
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

async function storeBroker(envOverrides: Partial<Cloudflare.Env> = {}) {
  const gh = uniqueIssuer();
  const policies: Record<string, string> = {};
  for (let i = 0; i < 5; i++)
    policies[`svc-${i}`] = githubPolicy(gh, "", `token: { audience: "https://svc-${i}.example" }`);
  const full = await buildBundle(policies, issuersYaml(gh));
  const split = splitForStore(full, 2);
  expect(split.bundle.policies).toEqual([]);
  expect(split.bundle.store).toEqual({ kind: "kv", count: 5 });
  for (const e of split.entries ?? []) await KV.put(e.key, e.value);
  const broker = await makeBroker({ policies: {}, bundle: split.bundle, env: envOverrides });
  const token = () => mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL));
  return { broker, token, split };
}

describe("policy store", () => {
  it("a set above RUNPASS_BUNDLE_MAX exchanges from POLICY_KV records; unknown names are the usual 403", async () => {
    const { broker, token } = await storeBroker();
    const res = await broker.exchange(await token(), { policy: "svc-3" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { policy: string }).policy).toBe("svc-3");
    expect((await broker.exchange(await token(), { policy: "svc-99" })).status).toBe(403);
  });

  it("a record under the wrong name is treated as absent", async () => {
    const { broker, token, split } = await storeBroker();
    const key = split.entries?.[0]?.key as string;
    await KV.put(key.replace(/svc-0$/, "svc-x"), split.entries?.[1]?.value as string);
    expect((await broker.exchange(await token(), { policy: "svc-x" })).status).toBe(403);
  });

  it("without the POLICY_KV binding the broker fails closed with a named 503", async () => {
    const { broker, token } = await storeBroker({ POLICY_KV: undefined });
    const res = await broker.exchange(await token(), { policy: "svc-1" });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error_description: string }).error_description).toContain("POLICY_KV");
  });
});
