// The secret store: one Durable Object per top-level path segment (a "shard": acme/…, shared/…), holding
// encrypted, numbered versions. Encryption and decryption happen here, with the master keys from the env;
// nothing outside this object ever sees a data key.

import { DurableObject } from "cloudflare:workers";
import { MAX_SECRET_VERSIONS } from "../core/constants.ts";
import { errorMessage } from "../core/errors.ts";
import {
  type AadFormat,
  CURRENT_AAD_FORMAT,
  type MasterKeys,
  openValue,
  parseMasterKeys,
  rewrapValue,
  type SealedValue,
  SecretDecryptError,
  type SecretEncoding,
  sealValue,
} from "../core/secrets/crypto.ts";
import type { Env } from "./env.ts";
import { applySchema, type SqliteSchema } from "./sqlite-schema.ts";

export type { SecretEncoding };
export type VersionState = "active" | "destroyed";

/** Why a new version was not stored: configuration, or the path is at its version cap. */
export type PutFailure = { ok: false; code: "config" | "conflict"; detail: string };

export interface VersionMeta {
  version: number;
  created_at: string;
  created_by: string;
  state: VersionState;
  encoding: SecretEncoding;
  size: number;
  kid: string | null;
  /** For a rollback: the version this one copies. */
  copied_from?: number;
  /** A leak report matched this version (docs/leaks.md): it is never delivered again. ISO 8601. */
  compromised_at?: string;
}

export interface SecretMeta {
  path: string;
  current_version: number;
  deleted: boolean;
  deleted_at?: string;
  /** Rotation age in seconds: the current version is "rotation due" once older than this. */
  max_age?: number;
  versions: VersionMeta[];
}

export type ReadResult =
  | { ok: true; version: number; value: string; encoding: SecretEncoding }
  | {
      ok: false;
      code:
        | "not_found"
        | "deleted"
        | "destroyed"
        | "no_such_version"
        | "undecryptable"
        | "config"
        | "compromised";
      detail: string;
    };

export type VersionRow = {
  path: string;
  version: number;
  kid: string | null;
  wrapped: string | null;
  iv: string | null;
  ciphertext: string | null;
  encoding: SecretEncoding;
  size: number;
  created_at: number;
  created_by: string;
  state: VersionState;
  copied_from: number | null;
  /** Associated-data format; NULL for rows written before it was recorded (format 1). */
  aad: number | null;
  /** When a leak report quarantined this version (ms), or NULL. */
  compromised_at: number | null;
};

export type PathRow = {
  path: string;
  current_version: number;
  deleted_at: number | null;
  max_age: number | null;
};

/** One shard's rows, as `exportRows` returns and `importRows` takes them. */
export interface SecretStoreDump {
  paths: PathRow[];
  versions: VersionRow[];
}

function formatOf(row: VersionRow): AadFormat | undefined {
  if (row.aad === null) return 1;
  return row.aad === 1 || row.aad === 2 ? row.aad : undefined;
}

/** The sealed record of a row; undefined when destroyed. A format this code does not know opens as format 2 and fails. */
function sealedOf(row: VersionRow): SealedValue | undefined {
  if (!row.kid || !row.wrapped || !row.iv || !row.ciphertext) return undefined;
  return {
    aad: formatOf(row) ?? CURRENT_AAD_FORMAT,
    kid: row.kid,
    wrapped: row.wrapped,
    iv: row.iv,
    ciphertext: row.ciphertext,
  };
}

function toBytes(value: string, encoding: SecretEncoding): Uint8Array<ArrayBuffer> {
  if (encoding === "utf8") return new TextEncoder().encode(value) as Uint8Array<ArrayBuffer>;
  return Uint8Array.from(atob(value), (c) => c.charCodeAt(0));
}

function fromBytes(bytes: Uint8Array, encoding: SecretEncoding): string {
  // ignoreBOM: a value that starts with a BOM is delivered with it, byte for byte.
  if (encoding === "utf8") return new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }).decode(bytes);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Paths with their current version, and every sealed version. */
const SECRET_STORE_SCHEMA: SqliteSchema = {
  statements: [
    `CREATE TABLE IF NOT EXISTS secret_paths (
      path TEXT PRIMARY KEY, current_version INTEGER NOT NULL, deleted_at INTEGER
    );`,
    `CREATE TABLE IF NOT EXISTS secret_versions (
      path TEXT NOT NULL, version INTEGER NOT NULL, kid TEXT, wrapped TEXT, iv TEXT, ciphertext TEXT,
      encoding TEXT NOT NULL, size INTEGER NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL,
      state TEXT NOT NULL, copied_from INTEGER, aad INTEGER, compromised_at INTEGER, PRIMARY KEY (path, version)
    );`,
  ],
  // Stores created before the associated-data format was recorded: their rows stay NULL (format 1). Stores
  // created before leak quarantine: no version is compromised.
  added: [
    { table: "secret_versions", name: "aad", type: "INTEGER" },
    { table: "secret_versions", name: "compromised_at", type: "INTEGER" },
    // Rotation age (seconds), per path and kept across versions (docs/console.md, "Secrets").
    { table: "secret_paths", name: "max_age", type: "INTEGER" },
  ],
};

export class SecretStore extends DurableObject<Env> {
  readonly #sql: SqlStorage;
  #master: { text: string | undefined; keys: Promise<MasterKeys> } | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    applySchema(this.#sql, SECRET_STORE_SCHEMA);
  }

  /**
   * Master keys, parsed once per value of RUNPASS_MASTER_KEYS. The calling Worker passes its own setting, so the
   * store always uses the configuration of the request that reached it.
   */
  #keys(text: string | undefined): Promise<MasterKeys> {
    if (!this.#master || this.#master.text !== text) {
      const keys = parseMasterKeys(text);
      keys.catch(() => undefined);
      this.#master = { text, keys };
    }
    return this.#master.keys;
  }

  /** Stores a new version (numbered from 1); a soft-deleted path comes back to life with it. */
  async put(
    keysText: string | undefined,
    path: string,
    value: string,
    encoding: SecretEncoding,
    actor: string,
  ): Promise<{ ok: true; version: number } | PutFailure> {
    let keys: MasterKeys;
    try {
      keys = await this.#keys(keysText);
    } catch (e) {
      return { ok: false, code: "config", detail: errorMessage(e) };
    }
    return this.#store(keys, path, toBytes(value, encoding), encoding, actor, null);
  }

  /** Metadata of one path (never values). */
  async meta(path: string): Promise<SecretMeta | null> {
    const row = this.#path(path);
    if (!row) return null;
    const versions = this.#sql
      .exec<VersionRow>("SELECT * FROM secret_versions WHERE path = ? ORDER BY version", path)
      .toArray()
      .map(
        (v): VersionMeta => ({
          version: v.version,
          created_at: new Date(v.created_at).toISOString(),
          created_by: v.created_by,
          state: v.state,
          encoding: v.encoding,
          size: v.size,
          kid: v.kid,
          ...(v.copied_from !== null ? { copied_from: v.copied_from } : {}),
          ...(v.compromised_at !== null ? { compromised_at: new Date(v.compromised_at).toISOString() } : {}),
        }),
      );
    return {
      path,
      current_version: row.current_version,
      deleted: row.deleted_at !== null,
      ...(row.deleted_at !== null ? { deleted_at: new Date(row.deleted_at).toISOString() } : {}),
      ...(row.max_age !== null ? { max_age: row.max_age } : {}),
      versions,
    };
  }

  /** Sets (seconds) or clears (null) a path's rotation age; false when the path does not exist. */
  async setMaxAge(path: string, seconds: number | null): Promise<boolean> {
    if (!this.#path(path)) return false;
    this.#sql.exec("UPDATE secret_paths SET max_age = ? WHERE path = ?", seconds, path);
    return true;
  }

  /** Metadata of every path starting with `prefix`. */
  async list(prefix: string): Promise<SecretMeta[]> {
    const paths = this.#sql
      .exec<{ path: string }>(
        "SELECT path FROM secret_paths WHERE substr(path, 1, ?) = ? ORDER BY path",
        prefix.length,
        prefix,
      )
      .toArray();
    const out: SecretMeta[] = [];
    for (const { path } of paths) {
      const m = await this.meta(path);
      if (m) out.push(m);
    }
    return out;
  }

  /** Decrypts a version for delivery (the current one unless named). */
  async read(keysText: string | undefined, path: string, version?: number): Promise<ReadResult> {
    const p = this.#path(path);
    if (!p) return { ok: false, code: "not_found", detail: `no secret at ${path}` };
    if (p.deleted_at !== null) return { ok: false, code: "deleted", detail: `${path} is deleted` };
    const v = version ?? p.current_version;
    const row = this.#sql
      .exec<VersionRow>("SELECT * FROM secret_versions WHERE path = ? AND version = ?", path, v)
      .toArray()[0];
    if (!row) return { ok: false, code: "no_such_version", detail: `${path} has no version ${v}` };
    const sealed = sealedOf(row);
    if (row.state === "destroyed" || !sealed) {
      return { ok: false, code: "destroyed", detail: `${path}@${v} was destroyed` };
    }
    if (row.compromised_at !== null) {
      return {
        ok: false,
        code: "compromised",
        detail: `${path}@${v} was reported leaked; put a new version (docs/leaks.md)`,
      };
    }
    let keys: MasterKeys;
    try {
      keys = await this.#keys(keysText);
    } catch (e) {
      return { ok: false, code: "config", detail: errorMessage(e) };
    }
    try {
      if (formatOf(row) === undefined) throw new SecretDecryptError("the record names an unknown format");
      const bytes = await openValue(keys, { path, version: v, encoding: row.encoding }, sealed);
      return { ok: true, version: v, value: fromBytes(bytes, row.encoding), encoding: row.encoding };
    } catch (e) {
      const detail = e instanceof SecretDecryptError ? e.message : "the secret does not decrypt";
      return { ok: false, code: "undecryptable", detail: `${path}@${v}: ${detail}` };
    }
  }

  /** Makes a copy of version `from` the new current version. */
  async rollback(
    keysText: string | undefined,
    path: string,
    from: number,
    actor: string,
  ): Promise<{ ok: true; version: number } | { ok: false; code: string; detail: string }> {
    const read = await this.read(keysText, path, from);
    if (!read.ok && read.code === "compromised") {
      return {
        ok: false,
        code: "conflict",
        detail: `${path}@${from} was reported leaked and cannot be rolled back to`,
      };
    }
    if (!read.ok && read.code !== "deleted") return read;
    let value: { value: string; encoding: SecretEncoding };
    if (read.ok) value = read;
    else {
      // Rolling back a deleted path restores it: read the version directly.
      const row = this.#sql
        .exec<VersionRow>("SELECT * FROM secret_versions WHERE path = ? AND version = ?", path, from)
        .toArray()[0];
      const sealed = row ? sealedOf(row) : undefined;
      if (!row || !sealed)
        return { ok: false, code: "no_such_version", detail: `${path} has no version ${from}` };
      if (row.compromised_at !== null) {
        return {
          ok: false,
          code: "conflict",
          detail: `${path}@${from} was reported leaked and cannot be rolled back to`,
        };
      }
      const bytes = await openValue(
        await this.#keys(keysText),
        { path, version: from, encoding: row.encoding },
        sealed,
      );
      value = { value: fromBytes(bytes, row.encoding), encoding: row.encoding };
    }
    const keys = await this.#keys(keysText);
    return this.#store(keys, path, toBytes(value.value, value.encoding), value.encoding, actor, from);
  }

  /**
   * Marks a version compromised (a leak report matched its fingerprint): it is never delivered again, and a
   * rollback copy of it is compromised too. Says whether it already was, or undefined when it does not exist.
   */
  async quarantine(
    path: string,
    version: number,
    now: number,
  ): Promise<"quarantined" | "already" | undefined> {
    const row = this.#sql
      .exec<{ compromised_at: number | null }>(
        "SELECT compromised_at FROM secret_versions WHERE path = ? AND version = ?",
        path,
        version,
      )
      .toArray()[0];
    if (!row) return undefined;
    if (row.compromised_at !== null) return "already";
    this.#sql.exec(
      "UPDATE secret_versions SET compromised_at = ? WHERE path = ? AND version = ?",
      now,
      path,
      version,
    );
    return "quarantined";
  }

  /** Soft delete: the path stops delivering; versions stay for rollback. */
  async softDelete(path: string): Promise<boolean> {
    const p = this.#path(path);
    if (!p) return false;
    if (p.deleted_at === null)
      this.#sql.exec("UPDATE secret_paths SET deleted_at = ? WHERE path = ?", Date.now(), path);
    return true;
  }

  /**
   * Destroys a version's content for good: its ciphertext and wrapped key, and those of every version holding
   * the same content through rollback (copies of it, copies of copies, and the version it was copied from).
   * Returns the versions destroyed, or undefined when the version does not exist.
   */
  async destroy(path: string, version: number): Promise<number[] | undefined> {
    const rows = this.#sql
      .exec<{ version: number; copied_from: number | null }>(
        "SELECT version, copied_from FROM secret_versions WHERE path = ?",
        path,
      )
      .toArray();
    const parent = new Map(rows.map((r) => [r.version, r.copied_from]));
    if (!parent.has(version)) return undefined;
    const origin = (v: number): number => {
      const seen = new Set<number>();
      let at = v;
      // A copy always names an earlier version; the seen set guards against a tampered cycle.
      for (let up = parent.get(at); up != null && parent.has(up) && !seen.has(up); up = parent.get(at)) {
        seen.add(at);
        at = up;
      }
      return at;
    };
    const root = origin(version);
    const family = rows.map((r) => r.version).filter((v) => origin(v) === root);
    this.ctx.storage.transactionSync(() => {
      for (const v of family) {
        this.#sql.exec(
          "UPDATE secret_versions SET kid = NULL, wrapped = NULL, iv = NULL, ciphertext = NULL, state = 'destroyed' WHERE path = ? AND version = ?",
          path,
          v,
        );
      }
    });
    return family.sort((a, b) => a - b);
  }

  /**
   * Every path and version row as stored: ciphertexts and wrapped data keys, never a value (a backup is useless
   * without the master keys). docs/operations.md, "Backup and restore of the secret store".
   */
  async exportRows(): Promise<SecretStoreDump> {
    return {
      paths: this.#sql.exec<PathRow>("SELECT * FROM secret_paths ORDER BY path").toArray(),
      versions: this.#sql.exec<VersionRow>("SELECT * FROM secret_versions ORDER BY path, version").toArray(),
    };
  }

  /**
   * Restores exported rows. A path this store already has is left alone with all its versions (a restore never
   * overwrites newer state): it is counted as skipped. One transaction: a dump is restored whole or not at all.
   */
  async importRows(dump: SecretStoreDump): Promise<{ paths: number; versions: number; skipped: string[] }> {
    const skipped: string[] = [];
    let paths = 0;
    let versions = 0;
    this.ctx.storage.transactionSync(() => {
      for (const p of dump.paths) {
        if (this.#path(p.path)) {
          skipped.push(p.path);
          continue;
        }
        this.#sql.exec(
          "INSERT INTO secret_paths (path, current_version, deleted_at, max_age) VALUES (?, ?, ?, ?)",
          p.path,
          p.current_version,
          p.deleted_at,
          p.max_age ?? null,
        );
        paths++;
        for (const v of dump.versions.filter((row) => row.path === p.path)) {
          this.#sql.exec(
            `INSERT INTO secret_versions (path, version, kid, wrapped, iv, ciphertext, encoding, size, created_at,
               created_by, state, copied_from, aad, compromised_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            v.path,
            v.version,
            v.kid,
            v.wrapped,
            v.iv,
            v.ciphertext,
            v.encoding,
            v.size,
            v.created_at,
            v.created_by,
            v.state,
            v.copied_from,
            v.aad,
            v.compromised_at ?? null,
          );
          versions++;
        }
      }
    });
    return { paths, versions, skipped };
  }

  /**
   * The values of versions just imported, to rebuild their leak fingerprints (docs/operations.md, "Backup and
   * restore of the secret store"): each opened with the master keys as a rollback does, whether or not its path
   * is deleted. Destroyed and already-compromised versions are left out; versions that do not open are counted.
   */
  async openVersions(
    keysText: string | undefined,
    refs: ReadonlyArray<{ path: string; version: number }>,
  ): Promise<{ opened: Array<{ path: string; version: number; value: string }>; failed: number }> {
    const opened: Array<{ path: string; version: number; value: string }> = [];
    let failed = 0;
    let keys: MasterKeys;
    try {
      keys = await this.#keys(keysText);
    } catch {
      return { opened, failed: refs.length };
    }
    for (const { path, version } of refs) {
      const row = this.#sql
        .exec<VersionRow>("SELECT * FROM secret_versions WHERE path = ? AND version = ?", path, version)
        .toArray()[0];
      const sealed = row ? sealedOf(row) : undefined;
      if (!row || !sealed || row.state === "destroyed" || row.compromised_at !== null) continue;
      try {
        if (formatOf(row) === undefined) throw new SecretDecryptError("the record names an unknown format");
        const bytes = await openValue(keys, { path, version, encoding: row.encoding }, sealed);
        opened.push({ path, version, value: fromBytes(bytes, row.encoding) });
      } catch {
        failed++;
      }
    }
    return { opened, failed };
  }

  /** Re-wraps every data key not under the active master key. Records whose key is gone are reported by kid. */
  async rewrap(keysText: string | undefined): Promise<{
    rewrapped: number;
    current: number;
    failed: Array<{ path: string; version: number; kid: string; detail: string }>;
  }> {
    const keys = await this.#keys(keysText);
    const rows = this.#sql.exec<VersionRow>("SELECT * FROM secret_versions WHERE state = 'active'").toArray();
    let rewrapped = 0;
    let current = 0;
    const failed: Array<{ path: string; version: number; kid: string; detail: string }> = [];
    for (const row of rows) {
      const sealed = sealedOf(row);
      if (!sealed) continue;
      if (formatOf(row) === undefined) {
        failed.push({
          path: row.path,
          version: row.version,
          kid: sealed.kid,
          detail: "the record names an unknown format",
        });
        continue;
      }
      if (sealed.kid === keys.active && row.aad === CURRENT_AAD_FORMAT) {
        current++;
        continue;
      }
      try {
        const at = { path: row.path, version: row.version, encoding: row.encoding };
        const next = await rewrapValue(keys, at, sealed);
        // Guarded by the record read: a version destroyed or changed meanwhile is left alone.
        this.#sql.exec(
          "UPDATE secret_versions SET aad = ?, kid = ?, wrapped = ?, iv = ?, ciphertext = ? WHERE path = ? AND version = ? AND kid = ? AND ciphertext = ?",
          next.aad,
          next.kid,
          next.wrapped,
          next.iv,
          next.ciphertext,
          row.path,
          row.version,
          sealed.kid,
          sealed.ciphertext,
        );
        rewrapped++;
      } catch (e) {
        failed.push({ path: row.path, version: row.version, kid: sealed.kid, detail: errorMessage(e) });
      }
    }
    return { rewrapped, current, failed };
  }

  #path(path: string): PathRow | undefined {
    return this.#sql.exec<PathRow>("SELECT * FROM secret_paths WHERE path = ?", path).toArray()[0];
  }

  /** Seals and inserts the next version, unless the path already holds MAX_SECRET_VERSIONS with content. */
  #store(
    keys: MasterKeys,
    path: string,
    bytes: Uint8Array<ArrayBuffer>,
    encoding: SecretEncoding,
    actor: string,
    copiedFrom: number | null,
  ): Promise<{ ok: true; version: number } | PutFailure> {
    // Counting, numbering and insert must not interleave with another write while encryption awaits.
    return this.ctx.blockConcurrencyWhile(async () => {
      const live = this.#sql
        .exec<{ n: number }>(
          "SELECT COUNT(*) AS n FROM secret_versions WHERE path = ? AND ciphertext IS NOT NULL",
          path,
        )
        .one().n;
      if (live >= MAX_SECRET_VERSIONS) {
        const oldest = this.#sql
          .exec<{ version: number }>(
            "SELECT version FROM secret_versions WHERE path = ? AND ciphertext IS NOT NULL ORDER BY version LIMIT 1",
            path,
          )
          .one().version;
        return {
          ok: false as const,
          code: "conflict" as const,
          detail: `${path} holds ${MAX_SECRET_VERSIONS} versions, the most a path may keep; destroy old versions first (DELETE /v1/admin/secrets/${path}?version=${oldest}&destroy=1)`,
        };
      }
      const version = this.#maxVersion(path) + 1;
      const sealed = await sealValue(keys, { path, version, encoding }, bytes);
      this.#insert(path, version, sealed, encoding, bytes.length, actor, copiedFrom);
      return { ok: true as const, version };
    });
  }

  #maxVersion(path: string): number {
    const row = this.#sql
      .exec<{ v: number | null }>("SELECT MAX(version) AS v FROM secret_versions WHERE path = ?", path)
      .toArray()[0];
    return row?.v ?? 0;
  }

  #insert(
    path: string,
    version: number,
    sealed: SealedValue,
    encoding: SecretEncoding,
    size: number,
    actor: string,
    copiedFrom: number | null,
  ): void {
    this.ctx.storage.transactionSync(() => {
      this.#sql.exec(
        "INSERT INTO secret_versions (path, version, kid, wrapped, iv, ciphertext, encoding, size, created_at, created_by, state, copied_from, aad) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?)",
        path,
        version,
        sealed.kid,
        sealed.wrapped,
        sealed.iv,
        sealed.ciphertext,
        encoding,
        size,
        Date.now(),
        actor,
        copiedFrom,
        sealed.aad,
      );
      this.#sql.exec(
        "INSERT INTO secret_paths (path, current_version, deleted_at) VALUES (?, ?, NULL) ON CONFLICT(path) DO UPDATE SET current_version = excluded.current_version, deleted_at = NULL",
        path,
        version,
      );
    });
  }
}
