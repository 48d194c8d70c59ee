// `npm run action:check` (CI's "action build check"): the committed GitHub Action bundle must be exactly what its
// sources build to. Typechecks action/src (the root tsconfig does not include it), rebuilds into a temporary
// folder with scripts/build-action.ts and byte-compares every file with action/dist (missing, extra, different).

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { buildAction } from "./build-action.ts";

const root = resolve(import.meta.dirname, "..");
const committed = resolve(root, "action/dist");

async function files(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

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
  const want = await files(temp);
  const have = await files(committed);
  built = want.length;
  for (const f of want) {
    if (!have.includes(f)) problems.push(`missing: action/dist/${f}`);
    else if (!(await readFile(join(temp, f))).equals(await readFile(join(committed, f)))) {
      problems.push(`differs: action/dist/${f}`);
    }
  }
  for (const f of have) if (!want.includes(f)) problems.push(`not built by the sources: action/dist/${f}`);
} finally {
  await rm(temp, { recursive: true, force: true });
}
if (problems.length) {
  for (const p of problems) console.error(`action: ${p}`);
  console.error("action/dist is stale: run npm run build:action");
  process.exit(1);
}
console.log(`action: action/dist matches its sources (${built} files)`);
