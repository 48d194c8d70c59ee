// Reaching the secret store: the shard object for a path, and the D1 list of shards (so listing by a
// prefix that spans namespaces does not need to know every shard in advance).

import { shardOf } from "../core/secrets/paths.ts";
import type { Env } from "./env.ts";
import type { SecretStore } from "./secret-store.ts";

const SHARD_TABLE = "CREATE TABLE IF NOT EXISTS secret_shards (shard TEXT PRIMARY KEY)";

/** The shard object holding `path`. */
export function storeFor(env: Env, path: string): DurableObjectStub<SecretStore> {
  return env.SECRET_STORE.get(env.SECRET_STORE.idFromName(`shard:${shardOf(path)}`));
}

/** Remembers that a shard exists (idempotent). */
export async function recordShard(env: Env, path: string): Promise<void> {
  await env.AUDIT_DB.batch([
    env.AUDIT_DB.prepare(SHARD_TABLE),
    env.AUDIT_DB.prepare("INSERT OR IGNORE INTO secret_shards (shard) VALUES (?)").bind(shardOf(path)),
  ]);
}

/** Shards that may hold paths starting with `prefix`. */
export async function shardsFor(env: Env, prefix: string): Promise<string[]> {
  if (prefix.includes("/")) return [shardOf(prefix)];
  await env.AUDIT_DB.prepare(SHARD_TABLE).run();
  const rows = await env.AUDIT_DB.prepare(
    "SELECT shard FROM secret_shards WHERE substr(shard, 1, ?) = ? ORDER BY shard",
  )
    .bind(prefix.length, prefix)
    .all<{ shard: string }>();
  return rows.results.map((r) => r.shard);
}

/** The stub for a named shard. */
export function shardStub(env: Env, shard: string): DurableObjectStub<SecretStore> {
  return env.SECRET_STORE.get(env.SECRET_STORE.idFromName(`shard:${shard}`));
}
