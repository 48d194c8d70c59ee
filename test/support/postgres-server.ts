// A real PostgreSQL server for the test suites (README, Development): initdb into a fresh directory owned by the
// `postgres` OS user, `postgres` started through runuser on a free loopback port with every statement logged to a
// file (tests assert no password ever reaches it), and the roles the postgres grant's docs prescribe: a
// least-privilege admin (CREATEROLE, not superuser, ADMIN OPTION on the group roles) plus group roles and a
// database. Stopped and removed at teardown.

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { randomPassword, scramVerifier } from "../../src/core/grants/postgres-sql.ts";
import { ensureSystemTools, POSTGRESQL } from "./system-tools.ts";

/** The database, admin role and group roles every suite finds in the server. */
export const PG_DATABASE = "app";
export const PG_ADMIN = "runpass_admin";
export const PG_READONLY = "app_readonly";
export const PG_MIGRATOR = "app_migrator";

/** What the suites get (provided through vitest's `inject`). */
export interface PostgresInfo {
  host: string;
  port: number;
  database: string;
  /** postgres://runpass_admin:…@127.0.0.1:port/app — the connection runpass is given. */
  adminUrl: string;
  /** The superuser's URL, for tests that inspect or stage server state (never given to runpass). */
  superUrl: string;
  /** The server log (log_statement = all). */
  logFile: string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function uidOf(user: string): { uid: number; gid: number } {
  const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
  return { uid, gid };
}

/** One PostgreSQL server in a temporary directory. */
export class PostgresServer {
  #dir: string | undefined;
  #proc: ChildProcess | undefined;
  #info: PostgresInfo | undefined;

  get info(): PostgresInfo {
    if (!this.#info) throw new Error("the PostgreSQL server is not started");
    return this.#info;
  }

  /** initdb, start, and create the roles and database; resolves once the server accepts the admin's login. */
  async start(): Promise<PostgresInfo> {
    const [postgresBin] = ensureSystemTools(POSTGRESQL);
    const bin = dirname(postgresBin as string);
    const asPostgres = process.getuid?.() === 0;
    const dir = mkdtempSync(join(tmpdir(), "runpass-pg-"));
    this.#dir = dir;
    const data = join(dir, "data");
    const superPassword = randomPassword();
    const adminPassword = randomPassword();
    // Both passwords reach initdb and the server only as SCRAM verifiers (the server log must hold no password).
    writeFileSync(join(dir, "pwfile"), `${await scramVerifier(superPassword)}\n`);
    const logFile = join(dir, "server.log");
    writeFileSync(logFile, "");
    chmodSync(dir, 0o755);
    if (asPostgres) {
      const { uid, gid } = uidOf("postgres");
      chownSync(dir, uid, gid);
      chownSync(join(dir, "pwfile"), uid, gid);
      chownSync(logFile, uid, gid);
    }
    const run = (cmd: string, args: string[]) =>
      asPostgres ? (["runuser", ["-u", "postgres", "--", cmd, ...args]] as const) : ([cmd, args] as const);
    const [initCmd, initArgs] = run(join(bin, "initdb"), [
      "-D",
      data,
      "-U",
      "postgres",
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      `--pwfile=${join(dir, "pwfile")}`,
      "--no-sync",
      "-E",
      "UTF8",
      "--locale=C",
    ]);
    execFileSync(initCmd, [...initArgs], { stdio: "ignore" });
    rmSync(join(dir, "pwfile"));

    const port = await freePort();
    const log = openSync(logFile, "a");
    const [pgCmd, pgArgs] = run(join(bin, "postgres"), [
      "-D",
      data,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      `port=${port}`,
      "-c",
      `unix_socket_directories=${dir}`,
      "-c",
      "log_statement=all",
      "-c",
      "log_connections=on",
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "max_connections=200",
      "-c",
      "password_encryption=scram-sha-256",
    ]);
    this.#proc = spawn(pgCmd, [...pgArgs], { stdio: ["ignore", log, log] });
    closeSync(log);
    await this.#waitReady(bin, dir, port, asPostgres);

    const setup = [
      `CREATE ROLE ${PG_ADMIN} WITH LOGIN CREATEROLE NOSUPERUSER NOCREATEDB PASSWORD '${await scramVerifier(adminPassword)}'`,
      `CREATE ROLE ${PG_READONLY} NOLOGIN`,
      `CREATE ROLE ${PG_MIGRATOR} NOLOGIN`,
      `GRANT ${PG_READONLY}, ${PG_MIGRATOR} TO ${PG_ADMIN} WITH ADMIN OPTION`,
      `CREATE DATABASE ${PG_DATABASE}`,
    ];
    this.#psql(bin, dir, port, "postgres", setup, asPostgres);
    this.#psql(
      bin,
      dir,
      port,
      PG_DATABASE,
      [
        "REVOKE ALL ON SCHEMA public FROM PUBLIC",
        `GRANT USAGE ON SCHEMA public TO ${PG_READONLY}, ${PG_MIGRATOR}`,
        `GRANT CREATE ON SCHEMA public TO ${PG_MIGRATOR}`,
        "CREATE TABLE public.widgets (id int PRIMARY KEY, name text NOT NULL)",
        "INSERT INTO public.widgets VALUES (1, 'sprocket')",
        `GRANT SELECT ON public.widgets TO ${PG_READONLY}`,
        "CREATE TABLE public.secrets_only_owner_reads (v text)",
      ],
      asPostgres,
    );
    const host = "127.0.0.1";
    this.#info = {
      host,
      port,
      database: PG_DATABASE,
      adminUrl: `postgres://${PG_ADMIN}:${adminPassword}@${host}:${port}/${PG_DATABASE}`,
      superUrl: `postgres://postgres:${superPassword}@${host}:${port}/${PG_DATABASE}`,
      logFile,
    };
    return this.#info;
  }

  /** The server log so far. */
  log(): string {
    return readFileSync(this.info.logFile, "utf8");
  }

  async stop(): Promise<void> {
    const proc = this.#proc;
    if (proc && proc.exitCode === null) {
      const exited = new Promise<void>((r) => proc.once("exit", () => r()));
      // SIGINT to the postmaster itself (runuser does not pass SIGINT on): PostgreSQL's "fast shutdown", which
      // disconnects clients instead of waiting for them.
      const pid = Number(
        readFileSync(join(this.#dir as string, "data", "postmaster.pid"), "utf8").split("\n")[0],
      );
      process.kill(pid, "SIGINT");
      await exited;
    }
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
    this.#proc = undefined;
    this.#dir = undefined;
  }

  async #waitReady(bin: string, dir: string, port: number, asPostgres: boolean): Promise<void> {
    for (let i = 0; i < 300; i++) {
      if (this.#proc?.exitCode !== null && this.#proc?.exitCode !== undefined) {
        throw new Error(
          `PostgreSQL exited (${this.#proc.exitCode}): ${readFileSync(join(dir, "server.log"), "utf8").slice(-2000)}`,
        );
      }
      try {
        const args = ["-h", dir, "-p", String(port), "-q"];
        if (asPostgres) execFileSync("runuser", ["-u", "postgres", "--", join(bin, "pg_isready"), ...args]);
        else execFileSync(join(bin, "pg_isready"), args);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error("PostgreSQL did not become ready");
  }

  /** Runs statements as the superuser over the Unix socket (trust), stopping at the first error. */
  #psql(bin: string, dir: string, port: number, db: string, statements: string[], asPostgres: boolean): void {
    const args = ["-h", dir, "-p", String(port), "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-q"];
    for (const s of statements) args.push("-c", s);
    const psql = join(bin, "psql");
    if (asPostgres) execFileSync("runuser", ["-u", "postgres", "--", psql, ...args], { stdio: "pipe" });
    else execFileSync(psql, args, { stdio: "pipe" });
  }
}
