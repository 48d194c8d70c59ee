// The `postgres` grant (docs/grants.md, "postgres"): a LOGIN role that exists only while the run does — created
// through a stored connection with a random password sent only as a SCRAM verifier, member of the policy's roles,
// VALID UNTIL its expiry; renewal extends the same role while the policy grants it what it was created with; lease
// end locks it out, terminates its sessions and drops it (src/adapters/revokers.ts).

import * as z from "zod/mini";
import {
  DEFAULT_POSTGRES_CONNECTION_LIMIT,
  DEFAULT_POSTGRES_TTL_SECONDS,
  MAX_POSTGRES_CONNECTION_LIMIT,
  MAX_POSTGRES_ROLES,
  MAX_POSTGRES_STATEMENTS,
  POSTGRES_DROP_LOCK_TIMEOUT_MS,
  POSTGRES_TERMINATE_WAIT_MS,
} from "../constants.ts";
import { checksummedCredential, POSTGRES_PASSWORD_PREFIX } from "../credential-format.ts";
import { RunpassError } from "../errors.ts";
import { type GrantModule, type IssuePorts, iso } from "./module.ts";
import {
  createRoleSql,
  dropRoleSql,
  grantDigest,
  parseRoleComment,
  renewRoleSql,
  roleComment,
  roleLookupSql,
  roleNameFor,
  scramVerifier,
  statementProblem,
} from "./postgres-sql.ts";
import { UpstreamError } from "./upstream.ts";

/** grants.postgres, normalised. */
export interface PostgresGrant {
  /** A connection stored with `PUT /v1/admin/connections/{name}`. */
  connection: string;
  /** Existing roles the lease's role joins (≥ 1); the first inherits what the role owned at lease end. */
  roles: string[];
  /** Run after CREATE ROLE in the same transaction; only {{name}} and {{expires_at}} are filled. */
  statements: string[];
  /** Seconds; capped to the lease. */
  ttl: number;
  connection_limit: number;
}

/** Where runners connect (the connection's runner_host/runner_port, else its URL's). */
export interface PostgresEndpoint {
  host: string;
  port: number;
  database: string;
  /** libpq's sslmode for the runner: `verify-full`, or `disable` for a loopback dev database. */
  sslmode: "verify-full" | "disable";
}

/** One session as the connection's admin role. Throws UpstreamError for anything the database refuses. */
export interface PostgresSession {
  readonly endpoint: PostgresEndpoint;
  query(sql: string): Promise<Array<Record<string, unknown>>>;
  /**
   * Runs the statements in one transaction (all or nothing); `beforeCommit` runs after them, and its failure rolls
   * them back (rotate-root stores the new password there).
   */
  transaction(statements: readonly string[], beforeCommit?: () => Promise<void>): Promise<void>;
}

/** The stored connections as the grant needs them. */
export interface PostgresPort {
  /**
   * Opens a session through connection `name`, runs `fn`, closes it. Throws ConnectionMissingError for an unknown
   * connection, UpstreamError when the database cannot be reached or refuses.
   */
  withSession<T>(name: string, fn: (session: PostgresSession) => Promise<T>): Promise<T>;
}

/**
 * The connection a grant or a role's handle names is not stored (deleted, or never put): at lease end this means a
 * role nothing can drop until the connection is put back (docs/grants.md, "postgres").
 */
export class ConnectionMissingError extends UpstreamError {
  override name = "ConnectionMissingError";
}

/** The postgres grant's port in IssueDeps. */
export interface PostgresPorts {
  /** Returns the connections port (throws ConfigError when the store is not configured). */
  postgres: () => PostgresPort;
}

/** credentials.postgres in the exchange response. */
export interface PostgresCredential {
  username: string;
  password: string;
  host: string;
  port: number;
  database: string;
  /** postgresql://user:password@host:port/database?sslmode=… (percent-encoded). */
  url: string;
  sslmode: string;
  expires_at: string;
}

/** What the lease keeps to drop the role later (sealed: it names the connection and role, never the password). */
export interface PostgresHandle {
  connection: string;
  role: string;
  heir: string;
}

interface PostgresPlan {
  def: PostgresGrant;
  expiresAt: number;
  leaseId: string;
}

// Connection names: what an admin types on the CLI and a URL path segment carries.
export const CONNECTION_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
// Role names the policy lists: any PostgreSQL name would quote safely, but a policy naming an odd one is a typo.
const ROLE_NAME = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/;

const PostgresSchema = z.strictObject({
  connection: z.string(),
  roles: z.array(z.string()),
  statements: z.optional(z.array(z.string())),
  ttl: z.optional(z.string()),
  connection_limit: z.optional(z.number()),
});

function percent(text: string): string {
  return encodeURIComponent(text);
}

/** The URL a runner hands to psql or a driver. */
export function postgresUrl(user: string, password: string, e: PostgresEndpoint): string {
  const host = e.host.includes(":") ? `[${e.host}]` : e.host;
  return `postgresql://${percent(user)}:${percent(password)}@${host}:${e.port}/${percent(e.database)}?sslmode=${e.sslmode}`;
}

/**
 * Creates (or, on renewal, extends) the lease's role. Returns "changed", with nothing altered, when the role exists
 * but was created under another grant definition: extending it would keep memberships, a connection limit or
 * statements' effects the current policy no longer grants.
 */
async function provision(
  session: PostgresSession,
  plan: PostgresPlan & { role: string },
  verifier: string,
): Promise<"provisioned" | "changed"> {
  const existing = (await session.query(roleLookupSql(plan.role)))[0];
  const until = iso(plan.expiresAt);
  const digest = await grantDigest(plan.def);
  if (existing) {
    const comment = parseRoleComment(existing.comment as string | null);
    // Derived names make this the lease's own role; a comment naming another lease means a name collision.
    if (comment?.leaseId !== plan.leaseId) {
      throw new UpstreamError(`role ${plan.role} exists and belongs to another lease`, { retryable: false });
    }
    if (comment.grant !== digest) return "changed";
    await session.transaction(renewRoleSql(plan.role, verifier, until));
    return "provisioned";
  }
  await session.transaction(
    createRoleSql({
      role: plan.role,
      verifier,
      validUntil: until,
      connectionLimit: plan.def.connection_limit,
      roles: plan.def.roles,
      comment: roleComment(plan.leaseId, plan.def.roles[0] as string, digest),
      statements: plan.def.statements,
    }),
  );
  return "provisioned";
}

/**
 * Ends a lease's role in a session (docs/grants.md, "postgres"): logins ended and committed first, sessions
 * terminated, then what it owns handed to `heir` and the role dropped in one transaction. A failure of that last
 * step (a lock held elsewhere) leaves a role nobody can log in as, for the retry to drop.
 */
export async function dropRoleIn(session: PostgresSession, role: string, heir: string): Promise<void> {
  const sql = dropRoleSql(role, heir, POSTGRES_TERMINATE_WAIT_MS, POSTGRES_DROP_LOCK_TIMEOUT_MS);
  await session.transaction(sql.lockOut);
  await session.query(sql.terminate);
  await session.transaction(sql.drop);
}

/** Drops a lease's role through its connection (lease end, recall, sweep). Idempotent: a missing role is done. */
export async function dropPostgresRole(port: PostgresPort, handle: PostgresHandle): Promise<void> {
  await port.withSession(handle.connection, async (s) => {
    const found = await s.query(roleLookupSql(handle.role));
    if (found.length === 0) return;
    await dropRoleIn(s, handle.role, handle.heir);
  });
}

/** The `postgres` grant module. */
export const postgresGrant: GrantModule<
  "postgres",
  z.infer<typeof PostgresSchema>,
  PostgresGrant,
  PostgresPlan,
  PostgresCredential
> = {
  name: "postgres",
  schema: PostgresSchema,
  upstream: "PostgreSQL",
  costly: true,
  renewable: true,
  load(raw, ctx) {
    const at = (...p: Array<string | number>) => ["grants", "postgres", ...p];
    if (!CONNECTION_NAME.test(raw.connection)) {
      ctx.report(at("connection"), `connection: "${raw.connection}" is not a connection name (a-z 0-9 _ -)`);
    }
    if (raw.roles.length === 0) {
      ctx.report(
        at("roles"),
        "roles: name at least one existing role (the first inherits what the role owned)",
      );
    }
    if (raw.roles.length > MAX_POSTGRES_ROLES)
      ctx.report(at("roles"), `roles: at most ${MAX_POSTGRES_ROLES}`);
    const seen = new Set<string>();
    for (const [i, role] of raw.roles.entries()) {
      if (!ROLE_NAME.test(role)) ctx.report(at("roles", i), `"${role}" is not a role name`);
      else if (role.startsWith("rp_") || role.startsWith("pg_")) {
        ctx.report(at("roles", i), `"${role}": rp_ roles are runpass's own and pg_ roles PostgreSQL's`);
      }
      if (seen.has(role)) ctx.report(at("roles", i), `"${role}" is listed twice`);
      seen.add(role);
    }
    const statements = raw.statements ?? [];
    if (statements.length > MAX_POSTGRES_STATEMENTS) {
      ctx.report(at("statements"), `statements: at most ${MAX_POSTGRES_STATEMENTS}`);
    }
    for (const [i, s] of statements.entries()) {
      const problem = statementProblem(s);
      if (problem) ctx.report(at("statements", i), problem);
    }
    const ttl = ctx.duration(at("ttl"), raw.ttl, Math.min(DEFAULT_POSTGRES_TTL_SECONDS, ctx.leaseTtl));
    if (ttl > ctx.leaseTtl)
      ctx.report(at("ttl"), `ttl is longer than the policy's lease (${ctx.leaseTtl} s)`);
    const limit = raw.connection_limit ?? DEFAULT_POSTGRES_CONNECTION_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_POSTGRES_CONNECTION_LIMIT) {
      ctx.report(
        at("connection_limit"),
        `connection_limit: an integer from 1 to ${MAX_POSTGRES_CONNECTION_LIMIT}`,
      );
    }
    return { connection: raw.connection, roles: raw.roles, statements, ttl, connection_limit: limit };
  },
  // Nothing from the claims is used: the role name comes from the lease id, SQL from the policy alone.
  plan: (def, { lease, now }) => ({
    def,
    expiresAt: Math.min(now + def.ttl, lease.expiresAt),
    leaseId: lease.id,
  }),
  async mint(plan, { deps }) {
    const role = await roleNameFor(plan.leaseId);
    const full = { ...plan, role };
    const handle: PostgresHandle = {
      connection: plan.def.connection,
      role,
      heir: plan.def.roles[0] as string,
    };
    // Hashed and sealed before the role exists: a failure here must not leave a role nothing can drop.
    const id = await deps.hasher.digest(`postgres:${plan.def.connection}:${role}`);
    const revocation = await deps.sealer.seal(JSON.stringify(handle), plan.leaseId);
    // Checksummed with a prefix, like runpass's other opaque credentials, so secret scanners find a leaked one.
    const password = checksummedCredential(POSTGRES_PASSWORD_PREFIX);
    const verifier = await scramVerifier(password);
    const port = deps.postgres();
    const out = await port.withSession(plan.def.connection, async (s) => ({
      result: await provision(s, full, verifier),
      endpoint: s.endpoint,
    }));
    if (out.result === "changed") {
      throw new RunpassError(
        "conflict",
        "the policy's postgres grant changed since this lease's role was created; exchange a new token for a role with the current grant",
        { reasons: [{ code: "grant_changed", grant: "postgres" }], reasonsVisible: true },
      );
    }
    const endpoint = out.endpoint;
    const expires = iso(plan.expiresAt);
    const credential: PostgresCredential = {
      username: role,
      password,
      host: endpoint.host,
      port: endpoint.port,
      database: endpoint.database,
      url: postgresUrl(role, password, endpoint),
      sslmode: endpoint.sslmode,
      expires_at: expires,
    };
    recallHandles.set(credential, handle);
    return {
      credential,
      grants: [{ type: "postgres", id, expires_at: expires, revocation }],
    };
  },
  recall: (c, deps) => recallPostgres(deps, c),
  secretValues: (c) => [c.password, c.url],
};

/** Drops the role of a credential whose response will not be sent. The connection comes from the sealed plan. */
async function recallPostgres(deps: IssuePorts, c: PostgresCredential): Promise<string> {
  const handle = recallHandles.get(c);
  if (!handle) return "PostgreSQL role not recalled (no handle)";
  try {
    await dropPostgresRole(deps.postgres(), handle);
    return "PostgreSQL role dropped";
  } catch {
    return "PostgreSQL role drop FAILED (lease end or sweep will retry)";
  }
}

// Credentials minted in this isolate → their handle, for recall (the credential itself carries no connection name).
const recallHandles = new WeakMap<PostgresCredential, PostgresHandle>();
