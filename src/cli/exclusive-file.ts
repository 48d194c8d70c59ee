// Files the runner CLI writes credentials or revoke tokens into (the state file, --out): always created fresh,
// owner-only, never through a symlink. In a shared temp dir, a file someone else created first — or a symlink they
// planted — would otherwise hand them the contents or let them aim the write at a file of their choosing.

import { closeSync, constants, lstatSync, openSync, writeFileSync } from "node:fs";

/** A path the CLI refuses to write to, with why (the message names the path, never any content). */
export class ExistingFileError extends Error {
  readonly code = "file_exists";
}

/** Throws ExistingFileError when anything — a file, a directory, a symlink, dangling or not — is at `path`. */
export function refuseExisting(path: string, what: string): void {
  let exists = true;
  try {
    lstatSync(path);
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") exists = false;
  }
  if (exists) throw existing(path, what);
}

function existing(path: string, what: string): ExistingFileError {
  return new ExistingFileError(
    `${what} ${path} already exists (or is a symlink): runpass only writes to a file it creates itself; remove it or choose another path`,
  );
}

/**
 * Creates `path` exclusively (O_CREAT|O_EXCL, which never follows a symlink, plus O_NOFOLLOW), mode 0600, and
 * writes `text` into it. Throws ExistingFileError when something is already there.
 */
export function writeExclusive(path: string, text: string, what: string): void {
  let fd: number;
  try {
    fd = openSync(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
      0o600,
    );
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "EEXIST" || code === "ELOOP") throw existing(path, what);
    throw e;
  }
  try {
    writeFileSync(fd, text);
  } finally {
    closeSync(fd);
  }
}
