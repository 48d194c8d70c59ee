// Runs the `runpass` CLI (bin/runpass.mjs) as a child process, for tests of its exit codes and output.

import { spawn } from "node:child_process";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");
export const BIN = join(ROOT, "bin/runpass.mjs");

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs bin/runpass.mjs (or `script`, e.g. the standalone runner CLI the broker serves) with this Node, without
 * any RUNPASS_* (or PORT) settings from the outer environment.
 */
export function runpass(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; script?: string } = {},
): Promise<Run> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("RUNPASS_") && k !== "PORT") clean[k] = v;
  }
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [options.script ?? BIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...clean, NODE_NO_WARNINGS: "1", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}
