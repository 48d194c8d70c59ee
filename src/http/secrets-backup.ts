// GET /v1/admin/secrets-export and POST /v1/admin/secrets-import: backup and restore of the secret store as
// ciphertexts and wrapped data keys only — useless without the master keys (docs/operations.md, "Backup and
// restore of the secret store").

import type { Hono } from "hono";
import * as z from "zod/mini";
import { D1AuditStore } from "../adapters/audit-store.ts";
import type { SecretStoreDump } from "../adapters/secret-store.ts";
import { recordShard, shardStub, shardsFor } from "../adapters/secrets-client.ts";
import { MAX_SECRETS_IMPORT_BYTES } from "../core/constants.ts";
import { RunpassError } from "../core/errors.ts";
import { pathProblem, shardOf } from "../core/secrets/paths.ts";
import { auditSink, requestRecord } from "./audit.ts";
import { parseJson, readBodyBytes, requireMediaType } from "./request.ts";
import { NO_STORE } from "./respond.ts";
import type { AppEnv } from "./types.ts";

/** The export format's name and version: an import refuses anything else. */
export const SECRETS_EXPORT_FORMAT = "runpass-secret-store/1";

const nullableString = z.nullable(z.string());
const nullableInt = z.nullable(z.number().check(z.int()));
const PathRow = z.strictObject({
  path: z.string(),
  current_version: z.number().check(z.int(), z.minimum(0)),
  deleted_at: nullableInt,
  max_age: z.optional(nullableInt),
});
const VersionRow = z.strictObject({
  path: z.string(),
  version: z.number().check(z.int(), z.minimum(1)),
  kid: nullableString,
  wrapped: nullableString,
  iv: nullableString,
  ciphertext: nullableString,
  encoding: z.enum(["utf8", "base64"]),
  size: z.number().check(z.int(), z.minimum(0)),
  created_at: z.number().check(z.int()),
  created_by: z.string(),
  state: z.enum(["active", "destroyed"]),
  copied_from: nullableInt,
  aad: nullableInt,
  compromised_at: z.optional(nullableInt),
});
const ExportSchema = z.strictObject({
  format: z.literal(SECRETS_EXPORT_FORMAT),
  exported_at: z.string(),
  shards: z.array(
    z.strictObject({ shard: z.string(), paths: z.array(PathRow), versions: z.array(VersionRow) }),
  ),
});

async function audit(c: Parameters<typeof requestRecord>[0], detail: string): Promise<void> {
  auditSink(c).write(await requestRecord(c, "secret_admin", { decision: "allow", reasons: [] }, { detail }));
}

/** Registers the backup routes (behind requireAdmin). */
export function secretBackupRoutes(app: Hono<AppEnv>): void {
  app.get("/v1/admin/secrets-export", async (c) => {
    const shards = await shardsFor(c.env, "");
    const dumps = await Promise.all(
      shards.map(async (shard) => ({
        shard,
        ...((await shardStub(c.env, shard).exportRows()) as SecretStoreDump),
      })),
    );
    const versions = dumps.reduce((n, d) => n + d.versions.length, 0);
    await audit(c, `export ${dumps.length} shards, ${versions} versions`);
    return c.json(
      {
        format: SECRETS_EXPORT_FORMAT,
        exported_at: new Date(c.get("runtime").clock()).toISOString(),
        shards: dumps,
      },
      200,
      NO_STORE,
    );
  });

  app.post("/v1/admin/secrets-import", async (c) => {
    requireMediaType(c, "application/json");
    const dump = parseJson(await readBodyBytes(c, MAX_SECRETS_IMPORT_BYTES), ExportSchema);
    // Every row must belong to the shard it is listed under and name a valid path: a dump edited to move a
    // record elsewhere is refused whole (and its AAD would not open there anyway).
    for (const s of dump.shards) {
      for (const row of [...s.paths, ...s.versions]) {
        const problem = pathProblem(row.path);
        if (problem || shardOf(row.path) !== s.shard) {
          throw new RunpassError("invalid_request", `the export lists ${row.path} under shard ${s.shard}`);
        }
      }
    }
    let paths = 0;
    let versions = 0;
    let indexed = 0;
    let unindexed = 0;
    const skipped: string[] = [];
    const rt = c.get("runtime");
    const fingerprinter = rt.context(c.env).fingerprinter();
    const leakIndex = new D1AuditStore(c.env.AUDIT_DB);
    for (const s of dump.shards) {
      if (s.paths.length === 0) continue;
      await recordShard(c.env, s.paths[0]?.path as string);
      const stub = shardStub(c.env, s.shard);
      const result = await stub.importRows({
        paths: s.paths.map((p) => ({ ...p, max_age: p.max_age ?? null })),
        versions: s.versions.map((v) => ({ ...v, compromised_at: v.compromised_at ?? null })),
      });
      paths += result.paths;
      versions += result.versions;
      skipped.push(...result.skipped);
      // The leak index lives in D1, not in the dump: without fingerprints a leaked restored value would match
      // nothing (docs/leaks.md). Imported versions are opened and fingerprinted as a put does.
      const skippedHere = new Set(result.skipped);
      const refs = s.versions
        .filter((v) => !skippedHere.has(v.path))
        .map((v) => ({ path: v.path, version: v.version }));
      if (refs.length === 0) continue;
      const { opened, failed } = await stub.openVersions(c.env.RUNPASS_MASTER_KEYS, refs);
      unindexed += failed;
      for (const v of opened) {
        await leakIndex.indexSecret(await fingerprinter.digest(v.value), v.path, v.version, rt.clock());
        indexed++;
      }
    }
    await audit(
      c,
      `import ${paths} paths, ${versions} versions, ${skipped.length} existing paths skipped; leak index: ${indexed} fingerprinted, ${unindexed} did not open`,
    );
    return c.json({ paths, versions, skipped, indexed, unindexed }, 200, NO_STORE);
  });
}
