// `npm run action:check` (CI's "action build check"): the committed GitHub Action bundle must be exactly what its
// sources build to. Typechecks action/src (the root tsconfig does not include it), rebuilds into a temporary
// folder with scripts/build-action.ts and byte-compares every file with action/dist (missing, extra, different,
// symlinked), and checks that action.yml runs only built files in dist/.

import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { builtFiles, distProblems, manifestProblems } from "./action-dist.ts";
import { buildAction } from "./build-action.ts";

const root = resolve(import.meta.dirname, "..");
const committed = resolve(root, "action/dist");

try {
  execFileSync(
    process.execPath,
    [resolve(root, "node_modules/typescript/bin/tsc"), "--noEmit", "-p", "action/tsconfig.json"],
    { cwd: root, stdio: "inherit" },
  );
} catch {
  console.error("action: action/src does not typecheck (tsc -p action/tsconfig.json)");
  process.exit(1);
}

const temp = await mkdtemp(join(tmpdir(), "runpass-action-"));
const problems: string[] = [];
let built = 0;
try {
  await buildAction(temp);
  const want = await builtFiles(temp);
  built = want.length;
  problems.push(...(await distProblems(temp, committed)));
  problems.push(...manifestProblems(await readFile(resolve(root, "action/action.yml"), "utf8"), want));
} finally {
  await rm(temp, { recursive: true, force: true });
}
if (problems.length) {
  for (const p of problems) console.error(`action: ${p}`);
  console.error("action: action/dist is stale or action.yml runs something else: run npm run build:action");
  process.exit(1);
}
console.log(`action: action/dist matches its sources (${built} files)`);
