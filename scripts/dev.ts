// `npm start`: the local broker. Generates dev keys on first start (.dev/, git-ignored), writes a generated env
// file with them plus RUNPASS_*/GITHUB_*/GITLAB_*/AWS_*/GCP_*/AZURE_* from this environment, builds the policies, loads a large
// set's records into wrangler's local POLICY_KV, and runs `wrangler dev` on PORT.

import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { DEV_SERVER_MARKER } from "../src/cli/dev-build-guard.ts";
import { devVars, renderEnvFile } from "../src/cli/dev-env.ts";
import { DEV_DIR, devBaseUrl, devPort, ensureDevKeys } from "../src/cli/dev-keys.ts";
import { ensureDevX509Ca } from "../src/cli/dev-x509-ca.ts";
import { putLocalKv } from "../src/cli/local-kv.ts";

const root = resolve(import.meta.dirname, "..");
const port = devPort();
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`runpass: PORT "${process.env.PORT}" is not a port number`);
  process.exit(2);
}
const policiesDir = resolve(root, process.env.RUNPASS_POLICIES_DIR || "policies");
const base = devBaseUrl(port);
const keys = await ensureDevKeys(root);

const vars = devVars(
  {
    RUNPASS_ISSUER_URL: base,
    RUNPASS_SIGNING_KEYS: JSON.stringify(keys.signingKeys),
    RUNPASS_AUDIT_KEY: keys.auditKey,
    RUNPASS_ADMIN_TOKEN: keys.adminToken,
    // The x509 grant's CA (.dev/x509-ca.json); RUNPASS_X509_CA in the environment replaces it.
    RUNPASS_X509_CA: JSON.stringify(await ensureDevX509Ca(root)),
    // The ssh grant's CA (.dev/keys.json); RUNPASS_SSH_CA_KEYS in the environment replaces it.
    RUNPASS_SSH_CA_KEYS: JSON.stringify(keys.sshCaKeys),
  },
  process.env,
);
const envFile = join(root, DEV_DIR, "runpass.env");
await writeFile(envFile, renderEnvFile(vars), { mode: 0o600 });
await writeFile(
  join(root, DEV_DIR, "state.json"),
  `${JSON.stringify({ issuer: `${base}/dev/oidc`, audience: vars.RUNPASS_AUDIENCE || vars.RUNPASS_ISSUER_URL, port }, null, 2)}\n`,
);

const childEnv = {
  ...process.env,
  RUNPASS_DEV: "1",
  [DEV_SERVER_MARKER]: "1",
  RUNPASS_POLICIES_DIR: policiesDir,
  PORT: String(port),
};
const run = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { cwd: root, env: childEnv, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
// wrangler dev builds again when it starts, but a set above RUNPASS_BUNDLE_MAX needs its records in the local
// POLICY_KV (wrangler's local persistence, which wrangler dev then reads) before the first request.
run(process.execPath, [join(root, "scripts/build-policies.ts")]);
const kvFile = join(root, "generated/policy-kv.json");
if (existsSync(kvFile)) {
  const entries = JSON.parse(await readFile(kvFile, "utf8")) as Array<{ key: string; value: string }>;
  console.error(`runpass: loading ${entries.length} policy records into the local POLICY_KV`);
  await putLocalKv(root, "POLICY_KV", entries);
}

console.error(`runpass: starting the local broker on ${base} with policies from ${policiesDir}`);
console.error("runpass: mint a dev token with `npx runpass dev token`; the admin token is in .dev/keys.json");
// The console's sign-in page; the admin token is never printed (docs/console.md).
console.error(`runpass: web console: ${base}/console/sign-in (paste the admin token from .dev/keys.json)`);

const child = spawn(
  "wrangler",
  [
    "dev",
    "--port",
    String(port),
    "--ip",
    "127.0.0.1",
    "--env-file",
    envFile,
    "--show-interactive-dev-session=false",
    "--inspector-port",
    "0",
  ],
  {
    cwd: root,
    stdio: "inherit",
    env: childEnv,
  },
);
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
