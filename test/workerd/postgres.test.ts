// The postgres grant end to end inside workerd against the real test server (test/support/postgres-server.ts),
// through Postgres.js over cloudflare:sockets: connections in the admin API, login with the issued credentials,
// privileges, renewal, session termination and DROP ROLE at run end, an outage failing closed, rotate-root,
// sweep, and no password in responses or audit records.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { openPgSocket } from "../../src/adapters/pg-socket.ts";
import { readConnection, rotateRoot, withConnection } from "../../src/adapters/postgres.ts";
import { credentialChecksumValid } from "../../src/core/credential-format.ts";
import type { PostgresCredential } from "../../src/core/grants/postgres.ts";
import { BROKER_URL, ISSUER_BASE, issuersYaml, makeBroker, uniqueIssuer } from "../support/broker.ts";
import { ACME, githubClaims, mint } from "../support/claims.ts";
import type { PostgresInfo } from "../support/postgres-server.ts";
import { PG_MIGRATOR, PG_READONLY } from "../support/postgres-server.ts";
import { auditRecords, ledgerFor, movableClock, ship } from "../support/run-ledger.ts";
import { GITHUB_SECRET, signGitHub, workflowRun } from "../support/webhooks.ts";

const pg = JSON.parse(env.TEST_POSTGRES) as PostgresInfo;
/** A Postgres.js client over runpass's own workerd socket (src/adapters/pg-socket.ts), as the Worker connects. */
function client(url: string, max = 1) {
  const u = new URL(url);
  return postgres(url.replace(/\?sslmode=disable$/, ""), {
    max,
    fetch_types: false,
    onnotice: () => undefined,
    // Postgres.js takes a socket factory; its types do not list the option.
    ...{ socket: () => openPgSocket(u.hostname, Number(u.port), false) },
  });
}
const su = client(pg.superUrl, 2);
afterAll(() => su.end({ timeout: 1 }));

type PgCredential = PostgresCredential;
interface Exchanged {
  lease: { id: string; run: string; expires_at: string; revoke_token: string };
  credentials: { postgres?: PgCredential };
  error?: string;
  retryable?: boolean;
}

const loginAs = (c: PgCredential) => client(c.url);

async function roleExists(role: string): Promise<boolean> {
  return (await su`SELECT 1 FROM pg_roles WHERE rolname = ${role}`).length === 1;
}

async function setup(options: { grant?: string; ttl?: string; clock?: () => number } = {}) {
  const gh = uniqueIssuer();
  const conn = `pg-${crypto.randomUUID().slice(0, 8)}`;
  const grant =
    options.grant ??
    `  postgres:
    connection: ${conn}
    roles: [${PG_READONLY}]
    statements:
      - ALTER ROLE {{name}} SET statement_timeout = '7s'
    ttl: 20m
    connection_limit: 3`;
  const broker = await makeBroker({
    policies: {
      db: `issuer: ${gh}
allow:
  repository_id: "${ACME.repoId}"
ttl: ${options.ttl ?? "30m"}
grants:
${grant.replaceAll("{{conn}}", conn)}
`,
    },
    issuers: issuersYaml(gh),
    env: { GITHUB_WEBHOOK_SECRET: GITHUB_SECRET },
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const runId = Math.floor(Math.random() * 9e9) + 1e9;
  const token = () =>
    mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, { run_id: String(runId) }));
  const exchange = async (t: string) => {
    const res = await broker.exchange(t, { policy: "db" });
    return { status: res.status, body: (await res.json()) as Exchanged };
  };
  const putConnection = (body: Record<string, unknown>, name = conn) =>
    broker.admin(`/v1/admin/connections/${name}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  return { gh, conn, broker, runId, token, exchange, putConnection };
}

/** A connection whose admin is a fresh role of its own (rotate-root changes that role's password). */
async function rotatableConnection() {
  const admin = `rot_${crypto.randomUUID().slice(0, 8)}`;
  const oldPassword = crypto.randomUUID();
  await su.unsafe(`CREATE ROLE ${admin} LOGIN CREATEROLE PASSWORD '${oldPassword}'`);
  await su.unsafe(`GRANT ${PG_READONLY} TO ${admin} WITH ADMIN OPTION`);
  const s = await setup();
  const url = `postgres://${admin}:${oldPassword}@${pg.host}:${pg.port}/${pg.database}`;
  expect((await s.putConnection({ kind: "postgres", url, tls: "disable" })).status).toBe(201);
  return { s, url, oldPassword };
}

describe("connections", () => {
  it("are stored without ever returning the password; unknown names 404; bad TLS choices are refused", async () => {
    const s = await setup();
    const put = await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    expect(put.status).toBe(201);
    const adminPassword = new URL(pg.adminUrl).password;
    const text = await put.text();
    expect(text.includes(adminPassword)).toBe(false);
    expect(JSON.parse(text)).toMatchObject({
      name: s.conn,
      kind: "postgres",
      host: "127.0.0.1",
      port: pg.port,
      database: pg.database,
      username: "runpass_admin",
      tls: "disable",
    });
    const shown = await (await s.broker.admin(`/v1/admin/connections/${s.conn}`)).text();
    const listed = await (await s.broker.admin("/v1/admin/connections")).text();
    for (const t of [shown, listed]) expect(t.includes(adminPassword)).toBe(false);
    expect(JSON.parse(listed).connections.map((c: { name: string }) => c.name)).toContain(s.conn);
    expect((await s.broker.admin("/v1/admin/connections/nope-none")).status).toBe(404);

    const verify = await s.broker.admin(`/v1/admin/connections/${s.conn}/verify`, { method: "POST" });
    expect(verify.status).toBe(200);
    expect(await verify.json()).toMatchObject({ ok: true, superuser: false });

    // verify-full is what Workers offer; "disable" only for loopback in dev, private hosts only through Hyperdrive.
    const prod = await makeBroker({ policies: {}, dev: false });
    const put2 = (body: Record<string, unknown>) =>
      prod.admin(`/v1/admin/connections/${s.conn}-x`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const noDev = await put2({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    expect(noDev.status).toBe(400);
    expect((await put2({ kind: "postgres", url: "postgres://a:b@10.1.2.3/db" })).status).toBe(400);
    expect(
      (await put2({ kind: "postgres", url: "postgres://a:b@db.example.com/db?sslmode=disable" })).status,
    ).toBe(400);
    expect(
      (await s.putConnection({ kind: "postgres", url: "postgres://a:b@db.example.com/db", tls: "disable" }))
        .status,
    ).toBe(400);
    const hd = await put2({ kind: "postgres", url: "postgres://a:b@10.1.2.3/db", hyperdrive: "HYPERDRIVE" });
    expect(hd.status).toBe(201);
    const rotate = await prod.admin(`/v1/admin/connections/${s.conn}-x/rotate-root`, { method: "POST" });
    expect(rotate.status).toBe(409);
    // A connection a deployed policy names cannot be deleted; one no policy names can, for good.
    expect((await s.broker.admin(`/v1/admin/connections/${s.conn}`, { method: "DELETE" })).status).toBe(409);
    // Its database cannot be listed for runpass roles (the binding is absent): refused unless the admin says it is gone.
    expect((await prod.admin(`/v1/admin/connections/${s.conn}-x`, { method: "DELETE" })).status).toBe(502);
    expect(
      (await prod.admin(`/v1/admin/connections/${s.conn}-x?unreachable=true`, { method: "DELETE" })).status,
    ).toBe(204);
    expect((await prod.admin(`/v1/admin/connections/${s.conn}-x`)).status).toBe(404);
    expect((await prod.admin(`/v1/admin/connections/${s.conn}-x`, { method: "DELETE" })).status).toBe(404);
    // No record carries the admin password.
    await new Promise((r) => setTimeout(r, 50));
    const records = await auditRecords(s.broker, { event: "admin" });
    expect(records.some((r) => String(r.detail).includes(`connection put ${s.conn}`))).toBe(true);
    expect(JSON.stringify(records).includes(adminPassword)).toBe(false);
  });
});

describe("connection errors", () => {
  it("say only whether the database refused or could not be reached; the server's text is audited", async () => {
    const s = await setup();
    const wrong = new URL(pg.adminUrl);
    wrong.password = "not-the-password";
    await s.putConnection({ kind: "postgres", url: wrong.toString(), tls: "disable" });
    const res = await s.broker.admin(`/v1/admin/connections/${s.conn}/verify`, { method: "POST" });
    expect(res.status).toBe(502);
    const text = await res.text();
    expect(text).toContain("the database refused");
    expect(text.includes("password authentication failed")).toBe(false);
    expect(text.includes("runpass_admin")).toBe(false);
    const records = await auditRecords(s.broker, { event: "admin" });
    expect(
      records.some(
        (r) =>
          String(r.detail).includes(`verify ${s.conn} failed`) &&
          String(r.detail).includes("password authentication failed"),
      ),
    ).toBe(true);
  });
});

describe("the postgres grant", () => {
  it("issues a role a real client logs in with: member of the listed role only, VALID UNTIL its expiry", async () => {
    const s = await setup();
    expect((await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" })).status).toBe(201);
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(200);
    const c = res.body.credentials.postgres as PgCredential;
    expect(c.username).toMatch(/^rp_[a-z2-7]{20}$/);
    expect(c).toMatchObject({ host: "127.0.0.1", port: pg.port, database: pg.database, sslmode: "disable" });
    // Scanner-recognisable: rpg_ + 40 base62 + a CRC32 checksum (docs/scanners/gitleaks.toml).
    expect(c.password).toMatch(/^rpg_[0-9A-Za-z]{46}$/);
    expect(credentialChecksumValid(c.password)).toBe(true);
    expect(Date.parse(c.expires_at)).toBeLessThanOrEqual(Date.parse(res.body.lease.expires_at));

    const db = loginAs(c);
    try {
      const [me] = await db`SELECT current_user AS u, current_setting('statement_timeout') AS t`;
      expect(me).toEqual({ u: c.username, t: "7s" });
      expect(await db`SELECT name FROM widgets`).toEqual([{ name: "sprocket" }]);
      await expect(db`CREATE TABLE public.nope (x int)`).rejects.toThrow(/permission denied/);
      await expect(db`SELECT * FROM secrets_only_owner_reads`).rejects.toThrow(/permission denied/);
    } finally {
      await db.end({ timeout: 1 });
    }
    const [role] = await su`
      SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolconnlimit, rolvaliduntil,
             shobj_description(oid, 'pg_authid') AS comment,
             (SELECT string_agg(b.rolname, ',' ORDER BY b.rolname) FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid) AS member_of
      FROM pg_roles r WHERE rolname = ${c.username}`;
    expect(role).toMatchObject({
      rolcanlogin: true,
      rolsuper: false,
      rolcreaterole: false,
      rolcreatedb: false,
      rolconnlimit: 3,
      member_of: PG_READONLY,
    });
    expect(new Date(role?.rolvaliduntil as Date).toISOString()).toBe(c.expires_at);
    // The comment binds the role to its grant definition (a SHA-256 digest), which renewal compares.
    expect(role?.comment).toMatch(
      new RegExp(
        `^runpass lease ${res.body.lease.id.replace(/\./g, "\\.")} heir ${PG_READONLY} grant [0-9a-f]{64}$`,
      ),
    );
    // The response's only copies of the password are the credential's own fields.
    const records = await auditRecords(s.broker, { run: res.body.lease.run });
    expect(JSON.stringify(records).includes(c.password)).toBe(false);
  });

  it("renewal extends VALID UNTIL of the same role with a new password; the old one stops working", async () => {
    const time = movableClock();
    const s = await setup({
      grant: `  postgres: { connection: {{conn}}, roles: [${PG_READONLY}], ttl: 5m }`,
      clock: time.clock,
    });
    await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    const first = await s.exchange(await s.token());
    expect(first.status).toBe(200);
    const a = first.body.credentials.postgres as PgCredential;
    // Renewal is spaced at half the shortest lifetime (docs/security.md, "Renewal is bounded").
    time.advance(3 * 60_000);
    const renew = await s.broker.fetch(`/v1/leases/${encodeURIComponent(first.body.lease.id)}/renew`, {
      method: "POST",
      headers: { authorization: `Bearer ${first.body.lease.revoke_token}` },
    });
    expect(renew.status).toBe(200);
    const b = ((await renew.json()) as Exchanged).credentials.postgres as PgCredential;
    expect(b.username).toBe(a.username);
    expect(b.password).not.toBe(a.password);
    expect(Date.parse(b.expires_at)).toBeGreaterThan(Date.parse(a.expires_at));
    const [role] = await su`SELECT rolvaliduntil FROM pg_roles WHERE rolname = ${b.username}`;
    expect(new Date(role?.rolvaliduntil as Date).toISOString()).toBe(b.expires_at);
    const oldLogin = loginAs(a);
    await expect(oldLogin`SELECT 1`).rejects.toThrow(/password authentication failed/);
    await oldLogin.end({ timeout: 1 });
    const newLogin = loginAs(b);
    expect(await newLogin`SELECT current_user AS u`).toEqual([{ u: b.username }]);
    await newLogin.end({ timeout: 1 });
  });

  it("the run's completion webhook terminates a live session and drops the role; a migration's table survives", async () => {
    const s = await setup({ grant: `  postgres: { connection: {{conn}}, roles: [${PG_MIGRATOR}] }` });
    await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(200);
    const c = res.body.credentials.postgres as PgCredential;
    const db = loginAs(c);
    const table = `t_${crypto.randomUUID().slice(0, 8)}`;
    // Owned by the lease's role itself: REASSIGN OWNED must hand it to the first listed role.
    await db.unsafe(`CREATE TABLE public.${table} (x int)`);
    const [pid] = await db`SELECT pg_backend_pid() AS pid`;
    const body = JSON.stringify(workflowRun({ repositoryId: Number(ACME.repoId), runId: s.runId }));
    const hook = await s.broker.fetch(`/v1/webhooks/github/${s.gh}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-github-event": "workflow_run",
        "x-github-delivery": crypto.randomUUID(),
        "x-hub-signature-256": await signGitHub(body),
      },
      body,
    });
    expect(hook.status).toBe(202);
    await ship(res.body.lease.run);
    expect(await roleExists(c.username)).toBe(false);
    expect(await su`SELECT 1 FROM pg_stat_activity WHERE pid = ${pid?.pid as number}`).toHaveLength(0);
    await expect(db`SELECT 1`).rejects.toThrow();
    await db.end({ timeout: 1 }).catch(() => undefined);
    const [owner] = await su.unsafe(`SELECT tableowner FROM pg_tables WHERE tablename = '${table}'`);
    expect(owner?.tableowner).toBe(PG_MIGRATOR);
    await su.unsafe(`DROP TABLE public.${table}`);

    // The revocation is audited, and the lease listing says it is done.
    await ship(res.body.lease.run);
    const revocations = await auditRecords(s.broker, { run: res.body.lease.run, event: "revocation" });
    expect(revocations).toEqual([expect.objectContaining({ decision: "allow" })]);
    expect(JSON.stringify(revocations).includes(c.password)).toBe(false);
  });

  it("an unreachable database at lease end is retried from the run's object, every attempt audited, pending then done", async () => {
    const s = await setup();
    await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(200);
    const c = res.body.credentials.postgres as PgCredential;
    const { run, id, revoke_token } = res.body.lease;
    // The database goes away (the stored connection now points at a closed port), then the job's post step ends it.
    await s.putConnection({
      kind: "postgres",
      url: pg.adminUrl.replace(`:${pg.port}/`, ":1/"),
      tls: "disable",
    });
    const del = await s.broker.fetch(`/v1/leases/${encodeURIComponent(id)}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${revoke_token}` },
    });
    expect(del.status).toBe(204);
    await ship(run);
    expect(await roleExists(c.username)).toBe(true);
    const listing = async () => {
      const body = (await (
        await s.broker.admin(`/v1/admin/leases?run=${encodeURIComponent(run)}`)
      ).json()) as {
        leases: Array<{ id: string; upstream_revoke?: Array<{ type: string; upstream_revoke: string }> }>;
      };
      return body.leases.find((l) => l.id === id)?.upstream_revoke?.find((g) => g.type === "postgres")
        ?.upstream_revoke;
    };
    expect(await listing()).toBe("pending");
    const attempts = await auditRecords(s.broker, { run, event: "revocation" });
    expect(attempts).toEqual([expect.objectContaining({ decision: "deny", upstream_revoke: "pending" })]);

    // The database is back; the backoff is over (the queued attempt lives in the run object's storage).
    await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    await runInDurableObject(ledgerFor(run), (_o, state) => {
      state.storage.sql.exec("UPDATE pending_revocations SET next_at = 0");
    });
    await ship(run);
    await ship(run);
    expect(await roleExists(c.username)).toBe(false);
    expect(await listing()).toBe("done");
    expect(await auditRecords(s.broker, { run, event: "revocation" })).toHaveLength(2);
  });

  it("renewal after the policy narrowed the grant's roles is refused (409 grant_changed, audited); the role is unchanged", async () => {
    const time = movableClock();
    const grant = (roles: string) => `  postgres: { connection: {{conn}}, roles: [${roles}], ttl: 5m }`;
    const s = await setup({ grant: grant(`${PG_READONLY}, ${PG_MIGRATOR}`), clock: time.clock });
    await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    const first = await s.exchange(await s.token());
    expect(first.status).toBe(200);
    const role = (first.body.credentials.postgres as PgCredential).username;
    const state = () =>
      su`SELECT rolvaliduntil, (SELECT string_agg(b.rolname, ',' ORDER BY b.rolname) FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid) AS member_of FROM pg_roles r WHERE rolname = ${role}`;
    const before = await state();
    // The same policy name, deployed again without app_migrator.
    const narrowed = await makeBroker({
      policies: {
        db: `issuer: ${s.gh}\nallow:\n  repository_id: "${ACME.repoId}"\nttl: 30m\ngrants:\n${grant(PG_READONLY).replaceAll("{{conn}}", s.conn)}\n`,
      },
      issuers: issuersYaml(s.gh),
      env: { GITHUB_WEBHOOK_SECRET: GITHUB_SECRET },
      clock: time.clock,
    });
    time.advance(3 * 60_000);
    const renew = await narrowed.fetch(`/v1/leases/${encodeURIComponent(first.body.lease.id)}/renew`, {
      method: "POST",
      headers: { authorization: `Bearer ${first.body.lease.revoke_token}` },
    });
    expect(renew.status).toBe(409);
    const body = (await renew.json()) as Exchanged & { reasons?: Array<{ code: string }> };
    expect(body.error).toBe("conflict");
    expect(body.credentials).toBeUndefined();
    expect(body.reasons).toEqual([expect.objectContaining({ code: "grant_changed", grant: "postgres" })]);
    expect(await state()).toEqual(before);
    const records = await auditRecords(narrowed, { run: first.body.lease.run, event: "renew" });
    expect(records).toEqual([expect.objectContaining({ decision: "deny", error: "conflict" })]);
  });

  it("a connection whose database holds a lease's role cannot be deleted, even when no deployed policy names it", async () => {
    const s = await setup();
    await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    const res = await s.exchange(await s.token());
    const c = res.body.credentials.postgres as PgCredential;
    // A later policy set no longer names the connection; the lease minted under the old one still holds a role.
    const later = await makeBroker({ policies: {} });
    const del = await later.admin(`/v1/admin/connections/${s.conn}`, { method: "DELETE" });
    expect(del.status).toBe(409);
    expect(((await del.json()) as { error: string }).error).toBe("conflict");
    expect((await later.admin(`/v1/admin/connections/${s.conn}`)).status).toBe(200);
    expect(await roleExists(c.username)).toBe(true);
    const denied = await auditRecords(later, { event: "admin" });
    expect(
      denied.some((r) => r.decision === "deny" && String(r.detail).includes(`delete ${s.conn} refused`)),
    ).toBe(true);
  });

  it("a connection gone at lease end is a loud revocation failure, retried until the connection is back", async () => {
    const s = await setup();
    await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    const res = await s.exchange(await s.token());
    const c = res.body.credentials.postgres as PgCredential;
    const { run, id, revoke_token } = res.body.lease;
    // Removed behind the check's back: a database declared gone (an absent Hyperdrive binding stands in for it).
    const later = await makeBroker({ policies: {} });
    await s.putConnection({ kind: "postgres", url: "postgres://a:b@10.1.2.3/db", hyperdrive: "ABSENT" });
    expect(
      (await later.admin(`/v1/admin/connections/${s.conn}?unreachable=true`, { method: "DELETE" })).status,
    ).toBe(204);
    await s.broker.fetch(`/v1/leases/${encodeURIComponent(id)}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${revoke_token}` },
    });
    await ship(run);
    expect(await roleExists(c.username)).toBe(true);
    const [attempt] = await auditRecords(s.broker, { run, event: "revocation" });
    expect(attempt).toMatchObject({ decision: "deny", upstream_revoke: "pending" });
    expect(String(attempt?.detail)).toContain(`role ${c.username} NOT dropped: connection "${s.conn}"`);
    // Put back, the retry drops the role.
    await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    await runInDurableObject(ledgerFor(run), (_o, state) => {
      state.storage.sql.exec("UPDATE pending_revocations SET next_at = 0");
    });
    await ship(run);
    await ship(run);
    expect(await roleExists(c.username)).toBe(false);
  });

  it("an admin revoke of the run drops the role too", async () => {
    const s = await setup();
    await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    const res = await s.exchange(await s.token());
    const c = res.body.credentials.postgres as PgCredential;
    const revoke = await s.broker.admin("/v1/admin/revoke", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ run: res.body.lease.run }),
    });
    expect(revoke.status).toBe(200);
    await ship(res.body.lease.run);
    expect(await roleExists(c.username)).toBe(false);
  });

  it("a database outage fails closed (502, nothing issued) and leaves the CI token usable", async () => {
    const s = await setup();
    await s.putConnection({
      kind: "postgres",
      url: pg.adminUrl.replace(`:${pg.port}/`, ":1/"),
      tls: "disable",
    });
    const t = await s.token();
    const down = await s.exchange(t);
    expect(down.status).toBe(502);
    expect(down.body).toMatchObject({ error: "upstream_error", retryable: true });
    expect(down.body.credentials).toBeUndefined();
    await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    const up = await s.exchange(t);
    expect(up.status).toBe(200);
    expect(await roleExists((up.body.credentials.postgres as PgCredential).username)).toBe(true);
  });

  it("statements that try to smuggle SQL or claims are refused when the policy loads", async () => {
    for (const bad of [
      'statements: ["GRANT x TO {{name}}; DROP TABLE widgets"]',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the claim template the loader must refuse
      'statements: ["GRANT x TO ${repository}"]',
      'statements: ["GRANT x TO {{repository}}"]',
      "roles: []",
      'roles: ["app_readonly\\"; DROP ROLE x; --"]',
      "ttl: 2h",
    ]) {
      const roles = bad.startsWith("roles") ? "" : `roles: [${PG_READONLY}], `;
      await expect(
        setup({ grant: `  postgres: { connection: {{conn}}, ${roles}${bad} }` }),
        bad,
      ).rejects.toThrow();
    }
  });

  it("rotate-root sets a password nobody knows: the old admin password no longer logs in, exchanges still work", async () => {
    const { s, url, oldPassword } = await rotatableConnection();
    const rotated = await s.broker.admin(`/v1/admin/connections/${s.conn}/rotate-root`, { method: "POST" });
    expect(rotated.status).toBe(200);
    expect((await rotated.text()).includes(oldPassword)).toBe(false);
    const old = client(url);
    await expect(old`SELECT 1`).rejects.toThrow(/password authentication failed/);
    await old.end({ timeout: 1 });
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(200);
  });

  it("rotate-root whose COMMIT is lost keeps the previous password stored (no lock-out), and exchanges still work", async () => {
    const { s, url, oldPassword } = await rotatableConnection();
    const stored = await readConnection(s.broker.env, s.conn);
    if (!stored.ok) throw new Error(stored.detail);
    // The real server rolls the ALTER back after the new password was stored: what a failed COMMIT does.
    const commitLost: typeof withConnection = (e, c, fn) =>
      withConnection(e, c, (session) =>
        fn({
          ...session,
          transaction: (statements, beforeCommit) =>
            session.transaction(statements, async () => {
              await beforeCommit?.();
              throw new Error("COMMIT lost");
            }),
        }),
      );
    await expect(rotateRoot(s.broker.env, s.conn, stored.connection, commitLost)).rejects.toMatchObject({
      retryable: true,
    });
    const after = await readConnection(s.broker.env, s.conn);
    expect(after.ok && new URL(after.connection.url).password).toBe(oldPassword);
    expect((await s.exchange(await s.token())).status).toBe(200);
    // Without the fault the rotation completes and only the new version is kept.
    expect(new URL((await rotateRoot(s.broker.env, s.conn, stored.connection)).url).password).not.toBe(
      oldPassword,
    );
    const old = client(url);
    await expect(old`SELECT 1`).rejects.toThrow(/password authentication failed/);
    await old.end({ timeout: 1 });
  });

  it("sweep drops runpass roles whose lease ended or is unknown and keeps live ones", async () => {
    const s = await setup();
    await s.putConnection({ kind: "postgres", url: pg.adminUrl, tls: "disable" });
    const live = await s.exchange(await s.token());
    expect(live.status).toBe(200);
    const liveRole = (live.body.credentials.postgres as PgCredential).username;
    const orphan = `rp_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`;
    await su.unsafe(`CREATE ROLE ${orphan} LOGIN IN ROLE ${PG_READONLY}`);
    await su.unsafe(
      `COMMENT ON ROLE ${orphan} IS 'runpass lease lse_Zm9v.AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB heir ${PG_READONLY}'`,
    );
    const foreign = `rp_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`;
    await su.unsafe(`CREATE ROLE ${foreign} NOLOGIN`);
    const res = await s.broker.admin(`/v1/admin/connections/${s.conn}/sweep`, { method: "POST" });
    expect(res.status).toBe(200);
    const out = (await res.json()) as { dropped: string[]; kept: string[] };
    expect(out.dropped).toContain(orphan);
    expect(out.kept).toContain(liveRole);
    expect(await roleExists(orphan)).toBe(false);
    expect(await roleExists(liveRole)).toBe(true);
    // A role without runpass's comment is not runpass's to drop.
    expect(await roleExists(foreign)).toBe(true);
    await su.unsafe(`DROP ROLE ${foreign}`);
  });
});
