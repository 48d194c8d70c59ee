// The postgres grant from the runner's side, against the real test server: the credential exported the way the
// action and runner CLI export it (PG* variables, GRANT_EXPORTS) drives a real `psql`, the role's privileges are the
// listed role's, lease end drops it, and the server's statement log (log_statement = all) never sees a password.

import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import postgres from "postgres";
import { afterAll, describe, expect, inject, it } from "vitest";
import type { Env } from "../../src/adapters/env.ts";
import { withConnection } from "../../src/adapters/postgres.ts";
import { GRANT_EXPORTS } from "../../src/client/grant-exports.ts";
import { AuditHasher } from "../../src/core/crypto.ts";
import type { IssueDeps } from "../../src/core/grants/module.ts";
import {
  dropPostgresRole,
  type PostgresCredential,
  type PostgresHandle,
  type PostgresPort,
  postgresGrant,
} from "../../src/core/grants/postgres.ts";
import { roleNameFor } from "../../src/core/grants/postgres-sql.ts";
import { Sealer } from "../../src/core/grants/seal.ts";
import { PG_MIGRATOR, PG_READONLY } from "../support/postgres-server.ts";

const pg = inject("postgres");
const KEY = "unit-audit-key-0123456789abcdef0123456789";
const su = postgres(pg.superUrl, { max: 1, onnotice: () => undefined });
afterAll(() => su.end({ timeout: 1 }));

// The adapter's session code over the connection the admin API would store (Node's own sockets here).
const port: PostgresPort = {
  withSession: (name, fn) => {
    expect(name).toBe("unit-db");
    return withConnection(
      { RUNPASS_DEV: "1" } as Env,
      { kind: "postgres", url: pg.adminUrl, tls: "disable" },
      fn,
    );
  },
};
const deps = {
  postgres: () => port,
  hasher: new AuditHasher(KEY),
  sealer: new Sealer(KEY),
} as unknown as IssueDeps;

async function mintFor(
  leaseId: string,
  roles: string[] = [PG_READONLY],
  with_: IssueDeps = deps,
): Promise<{ credential: PostgresCredential; handle: PostgresHandle }> {
  const report = (_p: unknown, m: string) => {
    throw new Error(m);
  };
  const def = postgresGrant.load(
    {
      connection: "unit-db",
      roles,
      statements: ["ALTER ROLE {{name}} SET search_path = {{expires_at}}"],
      ttl: "10m",
    },
    { leaseTtl: 3600, report, duration: () => 600, policyName: "db" } as never,
  );
  const now = Math.floor(Date.now() / 1000);
  const lease = { id: leaseId, run: "github:test", expiresAt: now + 3600 };
  const plan = postgresGrant.plan(def, { subject: {} as never, lease, now, inputs: {} });
  const minted = await postgresGrant.mint(plan, {
    subject: {} as never,
    lease,
    now,
    policy: { name: "db", version: "v" },
    deps: with_,
  });
  const sealed = minted.grants[0]?.revocation as string;
  const handle = JSON.parse((await new Sealer(KEY).open(sealed, leaseId)) as string) as PostgresHandle;
  return { credential: minted.credential, handle };
}

function psql(env: Record<string, string>, sql: string) {
  // Only what the runner exports: no URL or flags on argv, so `ps` on the runner shows no password either.
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PG")));
  return spawnSync("psql", ["-XtAc", sql], { env: { ...clean, ...env }, encoding: "utf8" });
}

describe("the postgres grant with a real psql", () => {
  it("psql logs in with the exported PG* variables alone; the role reads what its group reads and no more", async () => {
    const leaseId = `lse_${crypto.randomUUID()}`;
    const { credential, handle } = await mintFor(leaseId);
    const env = Object.fromEntries(GRANT_EXPORTS.postgres.env(credential));
    expect(Object.keys(env)).toEqual([
      "PGHOST",
      "PGPORT",
      "PGDATABASE",
      "PGUSER",
      "PGPASSWORD",
      "PGSSLMODE",
      "RUNPASS_POSTGRES_URL",
    ]);
    const me = psql(env, "SELECT current_user || ' ' || (SELECT name FROM public.widgets)");
    expect(me.stderr).toBe("");
    expect(me.stdout.trim()).toBe(`${credential.username} sprocket`);
    // The URL form works with psql too.
    const viaUrl = execFileSync("psql", ["-XtAc", "SELECT 1", env.RUNPASS_POSTGRES_URL as string], {
      encoding: "utf8",
    });
    expect(viaUrl.trim()).toBe("1");
    expect(psql(env, "CREATE TABLE public.nope (x int)").stderr).toMatch(/permission denied/);
    // {{expires_at}} was filled as a literal.
    const [setting] = await su`
      SELECT s.setconfig::text AS c FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
      WHERE r.rolname = ${credential.username}`;
    expect(setting?.c).toContain(credential.expires_at);

    await dropPostgresRole(port, handle);
    expect(await su`SELECT 1 FROM pg_roles WHERE rolname = ${credential.username}`).toHaveLength(0);
    expect(psql(env, "SELECT 1").stderr).toMatch(/password authentication failed|does not exist/);
    // Dropping again is a no-op (revocations are retried and must be idempotent).
    await dropPostgresRole(port, handle);

    const log = readFileSync(pg.logFile, "utf8");
    expect(log).toContain(`CREATE ROLE "${credential.username}"`);
    expect(log.includes(credential.password)).toBe(false);
    expect(log.includes(encodeURIComponent(credential.password))).toBe(false);
    expect(log.includes(new URL(pg.adminUrl).password)).toBe(false);
  });
});

/** A promise and the function that settles it (the lib target predates Promise.withResolvers). */
function resolvers(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** What a role may do and who it is: memberships, limit, expiry, password verifier, login flag. */
async function roleState(role: string) {
  const [row] = await su`
    SELECT a.rolcanlogin, a.rolconnlimit, a.rolvaliduntil, a.rolpassword,
           (SELECT string_agg(b.rolname, ',' ORDER BY b.rolname) FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = a.oid) AS member_of
    FROM pg_authid a WHERE a.rolname = ${role}`;
  return row;
}

describe("the postgres grant's lease lifecycle against a real server", () => {
  it("renewal under a changed grant is refused (conflict, grant_changed) and leaves the role untouched", async () => {
    const leaseId = `lse_${crypto.randomUUID()}`;
    const { credential, handle } = await mintFor(leaseId, [PG_READONLY, PG_MIGRATOR]);
    const before = await roleState(credential.username);
    expect(before?.member_of).toBe(`${PG_MIGRATOR},${PG_READONLY}`);
    // The policy now lists fewer roles: renewing must not keep app_migrator behind its back.
    await expect(mintFor(leaseId, [PG_READONLY])).rejects.toMatchObject({
      code: "conflict",
      reasons: [{ code: "grant_changed", grant: "postgres" }],
    });
    expect(await roleState(credential.username)).toEqual(before);
    // The same definition still renews: a new verifier on the same role.
    const renewed = await mintFor(leaseId, [PG_READONLY, PG_MIGRATOR]);
    expect(renewed.credential.username).toBe(credential.username);
    expect((await roleState(credential.username))?.rolpassword).not.toBe(before?.rolpassword);
    await dropPostgresRole(port, handle);
  });

  it("a sealer that fails leaves no role behind (the handle is sealed before the role exists)", async () => {
    const leaseId = `lse_${crypto.randomUUID()}`;
    const failing = {
      ...deps,
      sealer: {
        seal: () => Promise.reject(new Error("sealing failed")),
      },
    } as unknown as IssueDeps;
    await expect(mintFor(leaseId, [PG_READONLY], failing)).rejects.toThrow(/sealing failed/);
    expect(await roleState(await roleNameFor(leaseId))).toBeUndefined();
  });

  it("lease end locks the role out first: a lock held elsewhere fails only the drop, and the retry completes it", async () => {
    const leaseId = `lse_${crypto.randomUUID()}`;
    const { credential, handle } = await mintFor(leaseId, [PG_MIGRATOR]);
    const table = `t_${crypto.randomUUID().slice(0, 8)}`;
    const runner = postgres(credential.url, { max: 1, onnotice: () => undefined });
    await runner.unsafe(`CREATE TABLE public.${table} (x int)`);
    await runner.end({ timeout: 1 });
    // Another session holds a lock on the table the role owns, so REASSIGN OWNED cannot take it.
    const holder = postgres(pg.superUrl, { max: 1, onnotice: () => undefined });
    const release = resolvers();
    const locked = resolvers();
    const held = holder.begin(async (tx) => {
      await tx.unsafe(`LOCK TABLE public.${table} IN ACCESS EXCLUSIVE MODE`);
      locked.resolve();
      await release.promise;
    });
    await locked.promise;
    try {
      await expect(dropPostgresRole(port, handle)).rejects.toMatchObject({ retryable: true });
      const state = await roleState(credential.username);
      expect(state?.rolcanlogin).toBe(false);
      expect(state?.rolpassword).toBeNull();
      const again = postgres(credential.url, { max: 1, onnotice: () => undefined });
      await expect(again`SELECT 1`).rejects.toThrow(/not permitted to log in|password authentication failed/);
      await again.end({ timeout: 1 }).catch(() => undefined);
    } finally {
      release.resolve();
      await held;
      await holder.end({ timeout: 1 });
    }
    await dropPostgresRole(port, handle);
    expect(await roleState(credential.username)).toBeUndefined();
    const [owner] = await su.unsafe(`SELECT tableowner FROM pg_tables WHERE tablename = '${table}'`);
    expect(owner?.tableowner).toBe(PG_MIGRATOR);
    await su.unsafe(`DROP TABLE public.${table}`);
  });
});
