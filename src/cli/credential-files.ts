// Credential files on the runner (docs/clients.md, "Certificates"): certificates and their keys go into a fresh
// owner-only folder in the job's temp dir, each file created exclusively with mode 0600, and the folder is removed
// when the lease ends (`runpass revoke`, the action's post step). Shared by the runner CLI and the action.

import { mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { CredentialFile } from "../client/grant-exports.ts";
import { writeExclusive } from "./exclusive-file.ts";

/** The folder name prefix: `revoke` and the post step only ever remove folders that carry it. */
const PREFIX = "runpass-files-";

/** Where a job's credential folders go: the runner's temp dir (RUNNER_TEMP on GitHub), else TMPDIR. */
export function jobTempDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.RUNNER_TEMP || env.TMPDIR || tmpdir();
}

/**
 * Writes `files` into a new folder (mode 0700, refused if it exists) under `parent`; returns the folder and each
 * file's [variable, path]. On any failure, what was written is removed and the error thrown.
 */
export function writeCredentialFiles(
  files: readonly CredentialFile[],
  parent = jobTempDir(),
): { dir: string; paths: Array<[string, string]> } {
  const random = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) =>
    b.toString(16).padStart(2, "0"),
  );
  const dir = join(parent, `${PREFIX}${random.join("")}`);
  mkdirSync(dir, { mode: 0o700 });
  try {
    const paths = files.map((f): [string, string] => {
      if (!/^[A-Za-z0-9._-]+$/.test(f.name))
        throw new Error(`refusing credential file name ${JSON.stringify(f.name)}`);
      const path = join(dir, f.name);
      writeExclusive(path, f.content, "the credential file");
      return [f.env, path];
    });
    return { dir, paths };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** Removes a folder `writeCredentialFiles` made (anything else is left alone); true when something was removed. */
export function removeCredentialFiles(dir: string | undefined): boolean {
  if (!dir || !basename(dir).startsWith(PREFIX)) return false;
  rmSync(dir, { recursive: true, force: true });
  return true;
}
