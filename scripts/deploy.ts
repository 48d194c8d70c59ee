// `npm run deploy`: builds the production policy set; uploads large sets' records to POLICY_KV first (so the
// new version's records exist before the Worker that names that version goes live); then `wrangler deploy`.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const env = { ...process.env };
delete env.RUNPASS_DEV;
const run = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { cwd: root, env, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run(process.execPath, [resolve(root, "scripts/build-policies.ts")]);
const kv = resolve(root, "generated/policy-kv.json");
if (existsSync(kv)) run("wrangler", ["kv", "bulk", "put", kv, "--binding", "POLICY_KV", "--remote"]);
run("wrangler", ["deploy", ...process.argv.slice(2)]);
