// Running a real OS tool (openssl, ssh-keygen, sshd) on files in a fresh temp dir, for the suites that check what
// runpass issued with the real binaries (test/support/openssl.ts, test/support/openssh.ts).

import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** What a run of a tool gave. */
export interface ToolResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** File name → contents (text, or bytes for DER, KRLs). */
export type Files = Record<string, string | Uint8Array>;

/** Collects a child's output until it exits. */
export function collect(child: ChildProcess): Promise<ToolResult> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => {
    stdout += String(d);
  });
  child.stderr?.on("data", (d) => {
    stderr += String(d);
  });
  return new Promise((done, fail) => {
    child.on("error", fail);
    child.on("close", (status) => done({ status, stdout, stderr }));
  });
}

/** Runs `run` in a new temp dir (prefix `prefix`) holding `files` (mode 0600), then removes the dir. */
export async function withFiles<T>(
  prefix: string,
  files: Files,
  run: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    for (const [name, content] of Object.entries(files)) {
      if (name.includes("/")) throw new Error(`file names only: ${name}`);
      await writeFile(join(dir, name), content, { mode: 0o600 });
    }
    return await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
