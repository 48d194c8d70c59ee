// The checks behind `npm run action:check`, apart from building: the committed action/dist must be exactly the
// built files (regular files only: a symlink could point the runner at anything), and action.yml must run code
// from dist/ and nothing else.

import { lstat, readdir, readFile } from "node:fs/promises";
import { join, posix, relative } from "node:path";
import { parse } from "yaml";

/** Every entry under `dir` (relative paths, sorted) and the ones that are symlinks. */
async function listTree(dir: string): Promise<{ files: string[]; symlinks: string[] }> {
  const top = await lstat(dir).catch(() => undefined);
  if (!top) return { files: [], symlinks: [] };
  if (top.isSymbolicLink()) return { files: [], symlinks: ["."] };
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const rel = (e: (typeof entries)[number]) => relative(dir, join(e.parentPath, e.name));
  return {
    files: entries
      .filter((e) => e.isFile())
      .map(rel)
      .sort(),
    symlinks: entries
      .filter((e) => e.isSymbolicLink())
      .map(rel)
      .sort(),
  };
}

/** Differences between freshly built files in `built` and the committed `committed` folder (shown as action/dist/…). */
export async function distProblems(built: string, committed: string): Promise<string[]> {
  const problems: string[] = [];
  const want = (await listTree(built)).files;
  const have = await listTree(committed);
  for (const link of have.symlinks)
    problems.push(`symlink (dist holds regular files only): action/dist/${link}`);
  for (const f of want) {
    if (!have.files.includes(f)) problems.push(`missing: action/dist/${f}`);
    else if (!(await readFile(join(built, f))).equals(await readFile(join(committed, f)))) {
      problems.push(`differs: action/dist/${f}`);
    }
  }
  for (const f of have.files)
    if (!want.includes(f)) problems.push(`not built by the sources: action/dist/${f}`);
  return problems;
}

/** Problems with action.yml's `runs`: every script it names must be a file the build writes to dist/. */
export function manifestProblems(actionYml: string, builtFiles: readonly string[]): string[] {
  let manifest: unknown;
  try {
    manifest = parse(actionYml);
  } catch {
    return ["action.yml is not valid YAML"];
  }
  const runs = (manifest as { runs?: Record<string, unknown> } | null)?.runs;
  if (!runs || typeof runs !== "object") return ["action.yml has no runs section"];
  const problems: string[] = [];
  if (runs.main === undefined) problems.push("action.yml names no runs.main");
  for (const key of ["pre", "main", "post"] as const) {
    const value = runs[key];
    if (value === undefined) continue;
    const path = typeof value === "string" ? posix.normalize(value) : "";
    const inDist = path.startsWith("dist/") && !path.includes("..") && !posix.isAbsolute(path);
    if (!inDist || !builtFiles.includes(path.slice("dist/".length))) {
      problems.push(`action.yml runs.${key} must name a built file in dist/, not ${JSON.stringify(value)}`);
    }
  }
  return problems;
}

/** The built files of `dir` (relative paths), for manifestProblems. */
export async function builtFiles(dir: string): Promise<string[]> {
  return (await listTree(dir)).files;
}
