// `npm start`: the local broker. Generates dev keys on first start (.dev/, git-ignored), writes a generated env
// file with them plus RUNPASS_*/GITHUB_*/GITLAB_*/AWS_* from this environment, and runs `wrangler dev` on PORT.

import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { devVars, renderEnvFile } from "../src/cli/dev-env.ts";
import { DEV_DIR, devBaseUrl, ensureDevKeys } from "../src/cli/dev-keys.ts";

const root = resolve(import.meta.dirname, "..");
const port = Number(process.env.PORT || 8787);
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
  },
  process.env,
);
const envFile = join(root, DEV_DIR, "runpass.env");
await writeFile(envFile, renderEnvFile(vars), { mode: 0o600 });
await writeFile(
  join(root, DEV_DIR, "state.json"),
  `${JSON.stringify({ issuer: `${base}/dev/oidc`, audience: vars.RUNPASS_AUDIENCE || vars.RUNPASS_ISSUER_URL, port }, null, 2)}\n`,
);

console.error(`runpass: starting the local broker on ${base} with policies from ${policiesDir}`);
console.error("runpass: mint a dev token with `npx runpass dev token`; the admin token is in .dev/keys.json");

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
    env: { ...process.env, RUNPASS_DEV: "1", RUNPASS_POLICIES_DIR: policiesDir, PORT: String(port) },
  },
);
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
