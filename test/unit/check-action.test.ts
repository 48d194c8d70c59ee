// `npm run action:check` (scripts/check-action.ts): the committed action/dist must be exactly the built files,
// regular files only, and action.yml must run built files from dist/.

import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { distProblems, manifestProblems } from "../../scripts/action-dist.ts";
import { scratchProject } from "../support/dev-broker.ts";

const run = promisify(execFile);
const temps: string[] = [];

afterAll(async () => {
  for (const t of temps) await rm(t, { recursive: true, force: true });
});

async function temp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "runpass-check-action-"));
  temps.push(dir);
  return dir;
}

async function check(scratch: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(scratch, "scripts/check-action.ts")], {
      cwd: scratch,
    });
    return { code: 0, output: stdout + stderr };
  } catch (e) {
    const f = e as { code?: number; stdout?: string; stderr?: string };
    return { code: f.code ?? 1, output: `${f.stdout ?? ""}${f.stderr ?? ""}` };
  }
}

const MANIFEST = (main: string, post = "dist/post.js") =>
  `name: x\nruns:\n  using: node24\n  main: ${main}\n  post: ${post}\n  post-if: always()\n`;

describe("action build check", () => {
  it("refuses a symlink in action/dist and an action.yml whose main points outside dist (the real script)", async () => {
    const scratch = await scratchProject("runpass-action-check-", [
      "action",
      "scripts",
      "src",
      "package.json",
      "tsconfig.json",
    ]);
    temps.push(scratch);
    // Rebuilt from the copied sources, so the baseline is clean whatever state the working tree's dist is in.
    await run(process.execPath, [join(scratch, "scripts/build-action.ts")], { cwd: scratch });
    const clean = await check(scratch);
    expect(clean.code, clean.output).toBe(0);

    // A symlink with the same bytes as a built file is still refused: it could point anywhere on the runner.
    await rm(join(scratch, "action/dist/post.js"));
    await symlink(join(scratch, "action/dist/main.js"), join(scratch, "action/dist/post.js"));
    const yml = await readFile(join(scratch, "action/action.yml"), "utf8");
    await writeFile(
      join(scratch, "action/action.yml"),
      yml.replace("main: dist/main.js", "main: src/main.ts"),
    );
    const refused = await check(scratch);
    expect(refused.code).toBe(1);
    expect(refused.output).toContain("symlink (dist holds regular files only): action/dist/post.js");
    expect(refused.output).toContain(
      'action.yml runs.main must name a built file in dist/, not "src/main.ts"',
    );
  }, 120_000);

  it("a symlinked folder inside dist is refused", async () => {
    const built = await temp();
    const committed = await temp();
    await writeFile(join(built, "main.js"), "x");
    await writeFile(join(committed, "main.js"), "x");
    await mkdir(join(built, "chunks"));
    await symlink(tmpdir(), join(committed, "chunks"));
    expect(await distProblems(built, committed)).toContain(
      "symlink (dist holds regular files only): action/dist/chunks",
    );
  });

  it("main and post must be built files in dist/: no parent paths, absolute paths or unbuilt files", () => {
    const built = ["main.js", "post.js", "chunks/c.js"];
    expect(manifestProblems(MANIFEST("dist/main.js"), built)).toEqual([]);
    expect(manifestProblems(MANIFEST("dist/../bin/runpass.mjs"), built)).toHaveLength(1);
    expect(manifestProblems(MANIFEST("/usr/bin/env"), built)).toHaveLength(1);
    expect(manifestProblems(MANIFEST("dist/main.js", "dist/other.js"), built)).toEqual([
      'action.yml runs.post must name a built file in dist/, not "dist/other.js"',
    ]);
    expect(manifestProblems(MANIFEST("dist/main.js", "post.js"), built)).toHaveLength(1);
    expect(manifestProblems("name: x\n", built)).toEqual(["action.yml has no runs section"]);
  });
});
