// `npm start` with a policy set above RUNPASS_BUNDLE_MAX on a fresh clone (no generated/ folder): the build
// writes the records, the launcher loads them into wrangler's local POLICY_KV, and exchanges work locally.

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_BUNDLE_MAX } from "../../src/cli/build.ts";
import { type DevBroker, scratchProject, startDevBroker } from "../support/dev-broker.ts";
import { runpass } from "../support/run-cli.ts";

const COUNT = DEFAULT_BUNDLE_MAX + 1;
let scratch = "";
let broker: DevBroker | undefined;

/** A dev-issuer policy for repository 2000001 + i (the default dev token matches svc-0). */
function policy(i: number): string {
  return `issuer: dev
allow:
  repository_owner_id: "1000001"
  repository_id: "${2000001 + i}"
  ref: refs/heads/main
grants:
  token: { audience: "https://svc-${i}.internal", ttl: 10m }
`;
}

beforeAll(async () => {
  scratch = await scratchProject("runpass-large-", [
    "src",
    "scripts",
    "bin",
    "wrangler.toml",
    "package.json",
    "tsconfig.json",
  ]);
  const dir = join(scratch, "large-policies");
  await mkdir(dir);
  for (let i = 0; i < COUNT; i++) await writeFile(join(dir, `svc-${i}.yaml`), policy(i));
  broker = await startDevBroker(scratch, { RUNPASS_POLICIES_DIR: dir }, 240_000);
}, 300_000);

afterAll(async () => {
  await broker?.stop();
});

describe("npm start with a large policy set", () => {
  it("builds on a fresh clone, loads the records into the local POLICY_KV and serves an exchange from them", async () => {
    const log = (broker as DevBroker).log();
    expect(log).toContain(`${COUNT} policies exceed RUNPASS_BUNDLE_MAX=${DEFAULT_BUNDLE_MAX}`);
    expect(log).toContain(`loading ${COUNT} policy records into the local POLICY_KV`);
    const base = (broker as DevBroker).base;
    const env = { PORT: String((broker as DevBroker).port) };
    const token = async () =>
      (
        await runpass(["dev", "token"], { cwd: scratch, env, script: join(scratch, "bin/runpass.mjs") })
      ).stdout.trim();
    const res = await fetch(`${base}/v1/exchange`, {
      method: "POST",
      headers: { authorization: `Bearer ${await token()}`, "content-type": "application/json" },
      body: JSON.stringify({ policy: "svc-0" }),
    });
    const { credentials: _credentials, ...body } = (await res.json()) as Record<string, unknown>;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.policy).toBe("svc-0");
    expect(body.policy_version).toMatch(/^sha256:[0-9a-f]{64}$/);
    const other = await fetch(`${base}/v1/exchange`, {
      method: "POST",
      headers: { authorization: `Bearer ${await token()}`, "content-type": "application/json" },
      body: JSON.stringify({ policy: `svc-${COUNT - 1}` }),
    });
    // A record that exists but does not match the token's repository: the usual 403, not a store failure.
    expect(other.status).toBe(403);
  }, 60_000);
});
