// The deployment secrets file (`runpass init`, `runpass keys rotate`): one flat JSON object of setting name →
// value — exactly what `wrangler secret bulk` uploads — written owner-only, never through a symlink.

import { mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import * as z from "zod/mini";
import { writeExclusive } from "./exclusive-file.ts";
import type { DeploymentSecrets } from "./keygen.ts";

/** Where `runpass init` writes by default, relative to the project folder (git-ignored). */
export const DEFAULT_SECRETS_FILE = ".runpass/secrets.json";

const SecretsFileSchema = z.record(z.string().check(z.regex(/^[A-Z][A-Z0-9_]{0,63}$/)), z.string());

/** The secrets file path: --secrets/--out, or .runpass/secrets.json under `cwd`. */
export function secretsPath(flag: string | undefined, cwd = process.cwd()): string {
  return resolve(cwd, flag ?? DEFAULT_SECRETS_FILE);
}

/** Reads and validates a secrets file; the error names the file and the problem, never a value. */
export function readSecretsFile(path: string): DeploymentSecrets {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    const missing = (e as { code?: string }).code === "ENOENT";
    throw new Error(
      missing ? `${path} does not exist (run \`runpass init\` first)` : `${path} is not a JSON secrets file`,
    );
  }
  const result = SecretsFileSchema.safeParse(parsed);
  if (!result.success) throw new Error(`${path} is not a flat JSON object of SETTING_NAME → string value`);
  return result.data;
}

/**
 * Writes `secrets` to `path` with mode 0600 (its folder 0700). A new file is created exclusively; `replace`
 * writes a fresh exclusive temporary file beside it and renames it over the old one, so a reader never sees half
 * a file and the result is never a symlink's target.
 */
export function writeSecretsFile(path: string, secrets: DeploymentSecrets, replace: boolean): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const text = `${JSON.stringify(secrets, null, 2)}\n`;
  if (!replace) {
    writeExclusive(path, text, "the secrets file");
    return;
  }
  const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.tmp`);
  try {
    writeExclusive(tmp, text, "a temporary secrets file");
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}
