// /v1/admin/connections…: store, list, show, verify, rotate-root, sweep and delete the database connections the
// postgres grant uses (docs/api.md, "Connections"). The URL holds the admin password: it is sealed under the master
// keys and never returned, logged or audited; every call is audited by name.

import type { Context, Hono } from "hono";
import { DurableLedger } from "../adapters/ledger-client.ts";
import {
  deleteConnection,
  listConnections,
  readConnection,
  rotateRoot,
  storeConnection,
  withConnection,
} from "../adapters/postgres.ts";
import {
  ConnectionBody,
  checkConnection,
  connectionMeta,
  type StoredConnection,
} from "../core/connections.ts";
import { ConfigError, RunpassError } from "../core/errors.ts";
import { CONNECTION_NAME, dropRoleIn } from "../core/grants/postgres.ts";
import { LIST_RUNPASS_ROLES_SQL, parseRoleComment } from "../core/grants/postgres-sql.ts";
import { UpstreamError, upstreamFailure } from "../core/grants/upstream.ts";
import { auditSink, requestRecord } from "./audit.ts";
import { jsonBody } from "./request.ts";
import { NO_STORE } from "./respond.ts";
import type { AppEnv } from "./types.ts";

function checkedName(c: Context<AppEnv>): string {
  const name = c.req.param("name") ?? "";
  if (!CONNECTION_NAME.test(name)) {
    throw new RunpassError(
      "invalid_request",
      "a connection name is 1–63 of a-z 0-9 _ - (starting with a letter or digit)",
    );
  }
  return name;
}

async function audit(
  c: Context<AppEnv>,
  detail: string,
  decision: "allow" | "deny" = "allow",
): Promise<void> {
  auditSink(c).write(
    await requestRecord(c, "admin", { decision, reasons: [] }, { detail: `connection ${detail}` }),
  );
}

async function load(c: Context<AppEnv>, name: string): Promise<StoredConnection> {
  const read = await readConnection(c.env, name);
  if (read.ok) return read.connection;
  if (read.code === "not_found") throw new RunpassError("not_found", read.detail);
  throw new ConfigError(read.detail);
}

/** An unreachable or refusing database as a 502 with a generic reason; the server's own text is audited only. */
async function upstreamRefusal(c: Context<AppEnv>, name: string, what: string, e: unknown): Promise<unknown> {
  if (!(e instanceof UpstreamError)) return e;
  // The server's own text (names of roles, tables, settings) stays in the audit record.
  await audit(c, `${what} ${name} failed: ${e.detail}`, "deny");
  const failure = upstreamFailure("PostgreSQL", e, e.detail);
  const reason = e.retryable ? "the database could not be reached" : "the database refused";
  return new RunpassError("upstream_error", `${what} failed: ${reason} (the audit record has the details)`, {
    extra: { retryable: e.retryable },
    ...(failure.auditDetail ? { auditDetail: failure.auditDetail } : {}),
  });
}

/** Runs `fn` in a session; an unreachable or refusing database is a 502 with a reason, audited. */
async function session<T>(
  c: Context<AppEnv>,
  name: string,
  connection: StoredConnection,
  what: string,
  fn: Parameters<typeof withConnection<T>>[2],
): Promise<T> {
  try {
    return await withConnection(c.env, connection, fn);
  } catch (e) {
    throw await upstreamRefusal(c, name, what, e);
  }
}

/** Registers the connection routes (behind requireAdmin, mounted by adminRoutes). */
export function connectionRoutes(app: Hono<AppEnv>): void {
  app.put("/v1/admin/connections/:name", async (c) => {
    const name = checkedName(c);
    const body = await jsonBody(c, ConnectionBody);
    const rt = c.get("runtime");
    const checked = checkConnection(body, rt.bundle.dev || c.env.RUNPASS_DEV === "1");
    if (typeof checked === "string") throw new RunpassError("invalid_request", checked);
    const stored = await storeConnection(c.env, name, checked, "admin");
    if (!stored.ok)
      throw stored.code === "config"
        ? new ConfigError(stored.detail)
        : new RunpassError("conflict", stored.detail);
    await audit(c, `put ${name}`);
    return c.json(connectionMeta(name, checked), 201, NO_STORE);
  });

  app.get("/v1/admin/connections", async (c) => {
    return c.json({ connections: await listConnections(c.env) }, 200, NO_STORE);
  });

  app.get("/v1/admin/connections/:name", async (c) => {
    const name = checkedName(c);
    return c.json(connectionMeta(name, await load(c, name)), 200, NO_STORE);
  });

  app.delete("/v1/admin/connections/:name", async (c) => {
    const name = checkedName(c);
    const rt = c.get("runtime");
    const users = rt.bundle.policies.filter((p) => p.grants.postgres?.connection === name).map((p) => p.name);
    if (users.length > 0) {
      throw new RunpassError(
        "conflict",
        `policies in the deployed set use connection "${name}": ${users.slice(0, 5).join(", ")}`,
      );
    }
    const connection = await load(c, name);
    // A runpass role still on the database is a live lease's or one whose drop is pending (or an orphan sweep
    // drops): lease end reaches it only through this connection (docs/api.md, "Connections").
    const unreachable = c.req.query("unreachable") === "true";
    let held: string[] | undefined;
    try {
      held = await withConnection(c.env, connection, async (s) =>
        ((await s.query(LIST_RUNPASS_ROLES_SQL)) as Array<{ rolname: string; comment: string | null }>)
          .filter((r) => parseRoleComment(r.comment) !== undefined)
          .map((r) => r.rolname),
      );
    } catch (e) {
      if (!(e instanceof UpstreamError)) throw e;
      if (!unreachable) {
        await audit(c, `delete ${name} refused: its runpass roles cannot be listed: ${e.detail}`, "deny");
        throw new RunpassError(
          "upstream_error",
          "delete refused: the database could not be listed for runpass roles; retry, or add ?unreachable=true for a database that is gone",
          { extra: { retryable: e.retryable } },
        );
      }
    }
    if (held !== undefined && held.length > 0) {
      await audit(c, `delete ${name} refused: ${held.length} runpass role(s) on the database`, "deny");
      throw new RunpassError(
        "conflict",
        `the database still holds ${held.length} runpass role(s) (live leases or pending drops); wait for their leases to end, or sweep, then delete`,
      );
    }
    if (!(await deleteConnection(c.env, name)))
      throw new RunpassError("not_found", `no connection named "${name}"`);
    await audit(c, `delete ${name}${held === undefined ? " (database unreachable, roles not checked)" : ""}`);
    return c.body(null, 204);
  });

  app.post("/v1/admin/connections/:name/verify", async (c) => {
    const name = checkedName(c);
    const connection = await load(c, name);
    const out = await session(c, name, connection, "verify", async (s) => {
      const rows = await s.query(
        "SELECT current_setting('server_version') AS server_version, r.rolcreaterole AS createrole, r.rolsuper AS superuser FROM pg_roles r WHERE r.rolname = current_user",
      );
      return rows[0] as { server_version: string; createrole: boolean; superuser: boolean };
    });
    if (!out.createrole && !out.superuser) {
      await audit(c, `verify ${name}: the role cannot create roles`, "deny");
      throw new RunpassError("upstream_error", "verify failed: the connection's role lacks CREATEROLE", {
        extra: { retryable: false },
      });
    }
    await audit(c, `verify ${name}`);
    // A superuser works but is more than the grant needs (docs/grants.md, "postgres": least privilege).
    return c.json({ ok: true, server_version: out.server_version, superuser: out.superuser }, 200, NO_STORE);
  });

  app.post("/v1/admin/connections/:name/rotate-root", async (c) => {
    const name = checkedName(c);
    const connection = await load(c, name);
    if (connection.hyperdrive) {
      throw new RunpassError(
        "conflict",
        "rotate-root is refused for a Hyperdrive connection: Hyperdrive holds the admin credential (rotate it there)",
      );
    }
    let next: StoredConnection;
    try {
      next = await rotateRoot(c.env, name, connection);
    } catch (e) {
      throw await upstreamRefusal(c, name, "rotate-root", e);
    }
    await audit(c, `rotate-root ${name}`);
    return c.json(connectionMeta(name, next), 200, NO_STORE);
  });

  app.post("/v1/admin/connections/:name/sweep", async (c) => {
    const name = checkedName(c);
    const connection = await load(c, name);
    const rt = c.get("runtime");
    const ids = rt.context(c.env).leaseIds();
    const ledger = new DurableLedger(c.env.RUN_LEDGER);
    const now = rt.clock();
    const dropped: string[] = [];
    const kept: string[] = [];
    await session(c, name, connection, "sweep", async (s) => {
      const roles = (await s.query(LIST_RUNPASS_ROLES_SQL)) as Array<{
        rolname: string;
        comment: string | null;
      }>;
      for (const role of roles) {
        const parsed = parseRoleComment(role.comment);
        // Roles runpass did not comment are not runpass's to drop.
        if (!parsed) continue;
        const run = await ids.open(parsed.leaseId);
        const lease = run ? await ledger.lease(run, parsed.leaseId) : null;
        const live = lease !== null && lease.ended_at === null && lease.expires_at > now;
        if (live) {
          kept.push(role.rolname);
          continue;
        }
        await dropRoleIn(s, role.rolname, parsed.heir);
        dropped.push(role.rolname);
      }
    });
    await audit(
      c,
      `sweep ${name}: dropped ${dropped.length}${dropped.length ? ` (${dropped.join(", ")})` : ""}`,
    );
    return c.json({ dropped, kept }, 200, NO_STORE);
  });
}
