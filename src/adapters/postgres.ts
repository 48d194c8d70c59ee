// The postgres grant's adapter (docs/grants.md, "postgres"): stored connections — sealed under the master keys in
// their own SecretStore object, which no secret path can name — and sessions to them with Postgres.js, over
// `cloudflare:sockets` (verify-full TLS, or none for a loopback dev database) or a Hyperdrive binding.

import postgres from "postgres";
import {
  type ConnectionMeta,
  connectionMeta,
  parsePostgresUrl,
  runnerEndpoint,
  type StoredConnection,
  withPassword,
} from "../core/connections.ts";
import { POSTGRES_CONNECT_TIMEOUT_SECONDS } from "../core/constants.ts";
import { errorMessage } from "../core/errors.ts";
import { ConnectionMissingError, type PostgresPort, type PostgresSession } from "../core/grants/postgres.ts";
import { randomPassword, rotateRootSql, scramVerifier } from "../core/grants/postgres-sql.ts";
import { UpstreamError } from "../core/grants/upstream.ts";
import { isLoopbackHost } from "../core/loopback.ts";
import type { Env } from "./env.ts";
import { openPgSocket, type PgSocket } from "./pg-socket.ts";
import type { SecretStore } from "./secret-store.ts";

/** The one SecretStore object holding connections; its name is not `shard:…`, so the secrets API never reaches it. */
export function connectionStore(env: Env): DurableObjectStub<SecretStore> {
  return env.SECRET_STORE.get(env.SECRET_STORE.idFromName("connections"));
}

/** Why a stored connection could not be read. */
export type ConnectionFailure = { ok: false; code: "not_found" | "config" | "undecryptable"; detail: string };

/** A stored connection, decrypted. */
export async function readConnection(
  env: Env,
  name: string,
): Promise<{ ok: true; connection: StoredConnection } | ConnectionFailure> {
  const read = await connectionStore(env).read(env.RUNPASS_MASTER_KEYS, name);
  if (!read.ok) {
    const code = read.code === "config" || read.code === "undecryptable" ? read.code : "not_found";
    return { ok: false, code, detail: code === "not_found" ? `no connection named "${name}"` : read.detail };
  }
  return { ok: true, connection: JSON.parse(read.value) as StoredConnection };
}

/** Stores a connection as a new version and destroys the versions before it (they hold old admin passwords). */
export async function storeConnection(
  env: Env,
  name: string,
  connection: StoredConnection,
  actor: string,
): Promise<{ ok: true } | { ok: false; code: "config" | "conflict"; detail: string }> {
  const put = await putConnectionVersion(env, name, connection, actor);
  if (!put.ok) return put;
  await destroyOtherVersions(env, name, put.version);
  return { ok: true };
}

async function putConnectionVersion(env: Env, name: string, connection: StoredConnection, actor: string) {
  return connectionStore(env).put(env.RUNPASS_MASTER_KEYS, name, JSON.stringify(connection), "utf8", actor);
}

async function destroyOtherVersions(env: Env, name: string, keep: number): Promise<void> {
  const store = connectionStore(env);
  const meta = await store.meta(name);
  for (const v of meta?.versions ?? []) {
    if (v.version !== keep && v.state !== "destroyed") await store.destroy(name, v.version);
  }
}

/** How rotateRoot opens sessions (withConnection; a test may wrap it). */
export type OpenSession = typeof withConnection;

/**
 * Rotate-root (docs/api.md, "Connections"): a random password, sent as a SCRAM verifier, on the connection's own
 * role, stored as a new version before the ALTER commits. The previous version (the old password) is destroyed only
 * once a session with the new password succeeds: if the new one does not log in but the old one does (the ALTER
 * never committed), the old one is stored again; if neither does, both are kept. Throws UpstreamError on failure.
 */
export async function rotateRoot(
  env: Env,
  name: string,
  connection: StoredConnection,
  open: OpenSession = withConnection,
): Promise<StoredConnection> {
  const password = randomPassword();
  const next: StoredConnection = { ...connection, url: withPassword(connection.url, password) };
  const verifier = await scramVerifier(password);
  let version: number | undefined;
  let failure: UpstreamError | undefined;
  try {
    await open(env, connection, (s) =>
      s.transaction([rotateRootSql(verifier)], async () => {
        const put = await putConnectionVersion(env, name, next, "admin:rotate-root");
        if (!put.ok) {
          throw new UpstreamError(`storing the new password failed: ${put.detail}`, { retryable: false });
        }
        version = put.version;
      }),
    );
  } catch (e) {
    failure = postgresFailure(e);
  }
  // Nothing stored: the ALTER rolled back with it, the old password is still current.
  if (version === undefined)
    throw failure ?? new UpstreamError("rotate-root stored nothing", { retryable: true });
  const logsIn = (c: StoredConnection) =>
    open(env, c, (s) => s.query("SELECT 1")).then(
      () => true,
      () => false,
    );
  if (await logsIn(next)) {
    await destroyOtherVersions(env, name, version);
    return next;
  }
  const why = failure?.detail ?? "the new password does not log in";
  if (await logsIn(connection)) {
    await storeConnection(env, name, connection, "admin:rotate-root-undo");
    throw new UpstreamError(`rotate-root did not take effect (${why}); the previous password is kept`, {
      retryable: true,
    });
  }
  throw new UpstreamError(
    `rotate-root: neither the new nor the previous password logs in (${why}); both versions are kept`,
    { retryable: false },
  );
}

/** Deletes a connection for good: every version destroyed, the name no longer resolves. */
export async function deleteConnection(env: Env, name: string): Promise<boolean> {
  const store = connectionStore(env);
  const meta = await store.meta(name);
  if (!meta || meta.deleted) return false;
  for (const v of meta.versions) if (v.state !== "destroyed") await store.destroy(name, v.version);
  await store.softDelete(name);
  return true;
}

/** Every connection's metadata (never a password). */
export async function listConnections(env: Env): Promise<ConnectionMeta[]> {
  const metas = await connectionStore(env).list("");
  const out: ConnectionMeta[] = [];
  for (const m of metas) {
    if (m.deleted) continue;
    const read = await readConnection(env, m.path);
    if (read.ok) out.push(connectionMeta(m.path, read.connection));
  }
  return out;
}

// SQLSTATE classes worth another attempt: connection exceptions, insufficient resources, operator intervention
// (shutdown, crash recovery, statement timeout), serialization failures, and a lock held elsewhere (lease end's
// lock_timeout).
const RETRYABLE_SQLSTATE = /^(08|53|57P|57014|40001|40P01|55P03)/;

/** Maps a Postgres.js or socket failure to an UpstreamError: the server's message, never a query or a URL. */
export function postgresFailure(e: unknown): UpstreamError {
  if (e instanceof UpstreamError) return e;
  const err = e as { code?: unknown; name?: unknown; message?: unknown };
  const code = typeof err.code === "string" ? err.code : "";
  if (err.name === "PostgresError") {
    return new UpstreamError(`PostgreSQL ${code}: ${String(err.message ?? "").slice(0, 200)}`, {
      retryable: RETRYABLE_SQLSTATE.test(code),
    });
  }
  // Anything else is the network: refused, reset, timed out, TLS.
  return new UpstreamError(`PostgreSQL could not be reached (${code || errorMessage(e).slice(0, 120)})`, {
    retryable: true,
  });
}

/** Postgres.js options for a stored connection (Hyperdrive's own connection string when it has a binding). */
function clientFor(env: Env, c: StoredConnection): postgres.Sql {
  const common = {
    max: 1,
    prepare: false,
    fetch_types: false,
    connect_timeout: POSTGRES_CONNECT_TIMEOUT_SECONDS,
    idle_timeout: 1,
    onnotice: () => undefined,
    connection: { application_name: "runpass", statement_timeout: POSTGRES_CONNECT_TIMEOUT_SECONDS * 2000 },
  } as const;
  if (c.hyperdrive) {
    const binding = (env as unknown as Record<string, { connectionString?: unknown } | undefined>)[
      c.hyperdrive
    ];
    if (typeof binding?.connectionString !== "string") {
      throw new UpstreamError(`the Hyperdrive binding ${c.hyperdrive} is not configured`, {
        retryable: false,
      });
    }
    const u = new URL(binding.connectionString);
    return postgres(binding.connectionString, {
      ...common,
      ...socketOption(u.hostname, Number(u.port || 5432), false),
    });
  }
  const p = parsePostgresUrl(c.url);
  if (typeof p === "string")
    throw new UpstreamError(`the stored connection is invalid: ${p}`, { retryable: false });
  // Checked when stored (loopback under RUNPASS_DEV=1), and the host again here: plaintext never leaves the machine.
  // (The run's Durable Object, which drops roles, does not see the request's RUNPASS_DEV.)
  if (c.tls === "disable" && !isLoopbackHost(p.host)) {
    throw new UpstreamError('tls "disable" is for loopback hosts only', { retryable: false });
  }
  return postgres({
    ...common,
    host: p.host.replace(/^\[|\]$/g, ""),
    port: p.port,
    database: p.database,
    username: p.username,
    password: p.password,
    ssl: c.tls === "disable" ? false : "verify-full",
    ...socketOption(p.host.replace(/^\[|\]$/g, ""), p.port, c.tls !== "disable"),
  });
}

// On workerd the driver gets our socket (src/adapters/pg-socket.ts); Node (the CLI, unit tests) keeps its own.
const ON_WORKERD = typeof navigator !== "undefined" && navigator.userAgent === "Cloudflare-Workers";

function socketOption(host: string, port: number, tls: boolean): { socket?: () => Promise<PgSocket> } {
  return ON_WORKERD ? { socket: () => openPgSocket(host, port, tls) } : {};
}

/** One session over `c`, closed after `fn`. */
export async function withConnection<T>(
  env: Env,
  c: StoredConnection,
  fn: (session: PostgresSession) => Promise<T>,
): Promise<T> {
  let sql: postgres.Sql | undefined;
  try {
    sql = clientFor(env, c);
    const client = sql;
    const session: PostgresSession = {
      endpoint: runnerEndpoint(c),
      query: async (text) => [...(await client.unsafe(text))] as Array<Record<string, unknown>>,
      transaction: async (statements, beforeCommit) => {
        await client.begin(async (tx) => {
          for (const s of statements) await tx.unsafe(s);
          await beforeCommit?.();
        });
      },
    };
    return await fn(session);
  } catch (e) {
    throw postgresFailure(e);
  } finally {
    await sql?.end({ timeout: 1 }).catch(() => undefined);
  }
}

/** The grant's port: sessions through stored connections. */
export function postgresPortFor(env: Env): PostgresPort {
  return {
    async withSession(name, fn) {
      const read = await readConnection(env, name);
      if (!read.ok && read.code === "not_found") {
        throw new ConnectionMissingError(`connection "${name}": ${read.detail}`, { retryable: false });
      }
      if (!read.ok) {
        throw new UpstreamError(`connection "${name}": ${read.detail}`, {
          retryable: read.code === "config",
        });
      }
      return withConnection(env, read.connection, fn);
    },
  };
}
