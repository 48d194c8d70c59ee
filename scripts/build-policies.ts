// Build step (wrangler [build], npm test, npm run typecheck): policies folder → generated/policy-bundle.ts,
// and the standalone runner CLI → generated/cli-bundle.ts (served at /v1/cli/runpass.mjs).
// RUNPASS_POLICIES_DIR selects the folder (default policies/); RUNPASS_DEV=1 makes a dev bundle, for the local
// dev server only (src/cli/dev-build-guard.ts refuses it for `wrangler deploy`).

import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import {
  bundleModule,
  CONSOLE_LINT_MAX,
  DEFAULT_BUNDLE_MAX,
  formatProblem,
  lintModule,
  loadPolicyFolder,
  splitForStore,
  writeIfChanged,
} from "../src/cli/build.ts";
import { devBuildRefusal } from "../src/cli/dev-build-guard.ts";
import { devPort } from "../src/cli/dev-keys.ts";
import { writeRunnerModule } from "./bundle-runner.ts";

const root = resolve(import.meta.dirname, "..");
const dir = resolve(root, process.env.RUNPASS_POLICIES_DIR || "policies");
const refusal = devBuildRefusal(process.env);
if (refusal) {
  console.error(`runpass: ${refusal}; nothing was built`);
  process.exit(1);
}
const dev = process.env.RUNPASS_DEV === "1";
const port = devPort();
const out = resolve(root, "generated/policy-bundle.ts");

const result = await loadPolicyFolder({ root, dir, dev, port });
for (const path of result.ignored) console.error(`${path}: warning: ignored (policy files end in .yaml)`);
for (const problem of result.problems) console.error(formatProblem(problem));
for (const notice of result.notices) console.error(`note: ${notice}`);
if (!result.bundle) {
  console.error(`runpass: the policies in ${dir} did not compile; nothing was built`);
  process.exit(1);
}
// Large sets go to POLICY_KV (generated/policy-kv.json, uploaded by `npm run deploy`); the Worker keeps the rest.
const max = Number(process.env.RUNPASS_BUNDLE_MAX || DEFAULT_BUNDLE_MAX);
const split = await splitForStore(result.bundle, max, result.sources);
const kvFile = resolve(root, "generated/policy-kv.json");
if (split.entries) {
  await mkdir(dirname(kvFile), { recursive: true });
  await writeFile(kvFile, JSON.stringify(split.entries));
  console.error(
    `runpass: ${split.entries.length} policies exceed RUNPASS_BUNDLE_MAX=${max}: records written to ${kvFile} for POLICY_KV`,
  );
  // npm start loads the records into the local KV once, before wrangler dev starts; a rebuild while it runs
  // (watch_dir) names a new Merkle root whose records are not there yet.
  if (process.env.WRANGLER_COMMAND === "dev") {
    console.error(
      "note: npm start loads these records when it starts; restart it after changing the policies",
    );
  }
} else {
  await rm(kvFile, { force: true });
}
const changed = await writeIfChanged(out, bundleModule(split.bundle));
// The console shows each policy's lint findings (docs/console.md); sets above CONSOLE_LINT_MAX are linted by
// `runpass policy check` in CI instead, keeping the build fast.
const linted =
  result.bundle.policies.length <= CONSOLE_LINT_MAX
    ? (await loadPolicyFolder({ root, dir, dev, port, lint: true })).findings
    : [];
await writeIfChanged(resolve(root, "generated/policy-lint.ts"), lintModule(linted, root));
console.error(
  `runpass: ${result.bundle.policies.length} policies, ${result.bundle.issuers.length} issuers from ${dir} (${dev ? "development" : "production"} build, ${result.bundle.version.slice(0, 19)}…)${changed ? "" : " unchanged"}`,
);
const cli = await writeRunnerModule(root);
console.error(
  `runpass: runner CLI ${Math.round(cli.bytes / 1024)} KiB (sha256 ${cli.sha256.slice(0, 12)}…)${cli.changed ? "" : " unchanged"}`,
);
