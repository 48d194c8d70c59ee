// Shared set-up for `npm run bench` and `npm run soak`: scratch copies of the project, the production and
// bench builds (`wrangler deploy --dry-run --outdir`), the upstreams process (OIDC issuer + fake STS), the
// bench Worker under workerd, CPU pinning, token minting and the admin API.
//
// Why Miniflare: D1, KV and SQLite-backed Durable Objects (with alarms) under plain `workerd serve` need the
// wrapped-binding plumbing Miniflare generates. Miniflare writes that workerd config and spawns the same
// `workerd serve` binary wrangler uses; with `unsafeDirectSockets` the Worker gets a socket of its own
// inside workerd, so load goes straight to workerd — no wrangler dev proxy, no Miniflare entry worker, no
// Node.js in the request path (Node only supervises the process and drains its log pipe).

import { execFile, spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { Worker } from "node:worker_threads";
import { gzipSync } from "node:zlib";
import { exportJWK, generateKeyPair } from "jose";
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare } from "miniflare";
import { unstable_readConfig } from "wrangler";
import { githubClaims } from "../test/support/claims.ts";
import { scratchProject } from "../test/support/dev-broker.ts";
import { STS_ACCESS_KEY_ID, STS_SECRET_ACCESS_KEY } from "../test/support/fake-sts.ts";
import { PG_READONLY, PostgresServer } from "../test/support/postgres-server.ts";

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, "..");
const BIN = join(ROOT, "node_modules/.bin");

/** Identity of the bench tokens: the ids the bench policies pin (the test suite's acme/api). */
export const REPO = { ownerId: "1342004", repoId: "519345000" } as const;
export const BROKER_ISSUER = "https://runpass.bench";
export const TOKEN_AUDIENCE = BROKER_ISSUER;
export const ROLE_ARN = "arn:aws:iam::111111111111:role/bench-deploy";
export const SECRET_PATHS = { API_KEY: "bench/api-key", SIGNING_KEY: "bench/signing-key" } as const;

export const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------- CPU pinning

/** `taskset` and at least two CPUs: server on CPU 0, load generator (and upstreams) on CPU 1. */
export const CAN_PIN =
  process.platform === "linux" && availableParallelism() >= 2 && existsSync("/usr/bin/taskset");

/** Sets the CPU affinity of every thread of `pid` (`taskset -a -p -c`). No-op without taskset. */
export async function pin(pid: number, cpus: string): Promise<void> {
  if (!CAN_PIN) return;
  await run("taskset", ["-a", "-p", "-c", cpus, String(pid)]);
}

/** User+system CPU time of a process so far, in ms (Linux /proc; 0 elsewhere). */
export function cpuMs(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    // After "pid (comm) ": state is field 0; utime and stime are fields 11 and 12 (clock ticks, 100/s).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

/** Waits until `pid` has been (nearly) idle for 300 ms, e.g. until audit outboxes finished shipping. */
export async function waitIdle(pid: number | undefined, timeoutMs = 15_000): Promise<void> {
  if (!pid) {
    await sleep(500);
    return;
  }
  const deadline = Date.now() + timeoutMs;
  let quiet = 0;
  while (Date.now() < deadline && quiet < 2) {
    const before = cpuMs(pid);
    await sleep(150);
    quiet = cpuMs(pid) - before <= 10 ? quiet + 1 : 0;
  }
}

/** Children of this process named `comm` (workerd, spawned by Miniflare). */
function childPids(comm: string): number[] {
  const out: number[] = [];
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    let children = "";
    try {
      children = readFileSync(`/proc/${process.pid}/task/${task}/children`, "utf8");
    } catch {
      continue;
    }
    for (const pid of children.split(" ").filter(Boolean).map(Number)) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() === comm) out.push(pid);
      } catch {
        // gone
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------- scratch + builds

/** A scratch copy of the project (node_modules symlinked) so builds never touch the working tree's generated/. */
function scratchCopy(prefix: string): Promise<string> {
  return scratchProject(`runpass-${prefix}-`, [
    "src",
    "scripts",
    "policies",
    "bench",
    "test",
    "wrangler.toml",
    "package.json",
    "tsconfig.json",
  ]);
}

export interface BuildResult {
  ms: number;
  outdir: string;
  /** Every file wrangler wrote, with raw and gzip sizes. */
  files: Array<{ name: string; bytes: number; gzip: number }>;
  bytes: number;
  gzip: number;
}

/** `wrangler deploy --dry-run --outdir` in a scratch project (its [build] step compiles the policy folder). */
export async function wranglerBuild(
  scratch: string,
  options: { outdir: string; config?: string; env?: Record<string, string | undefined> },
): Promise<BuildResult> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    WRANGLER_SEND_METRICS: "false",
    PATH: `${BIN}:${process.env.PATH}`,
    ...options.env,
  };
  for (const [k, v] of Object.entries(options.env ?? {})) if (v === undefined) delete env[k];
  const args = ["deploy", "--dry-run", "--outdir", options.outdir];
  if (options.config) args.push("--config", options.config);
  const t0 = performance.now();
  try {
    await run(join(BIN, "wrangler"), args, { cwd: scratch, env, maxBuffer: 64 * 1024 * 1024 });
  } catch (e) {
    const f = e as { stdout?: string; stderr?: string };
    throw new Error(
      `wrangler ${args.join(" ")} failed:\n${(f.stdout ?? "").slice(-2000)}\n${(f.stderr ?? "").slice(-2000)}`,
    );
  }
  const ms = Math.round(performance.now() - t0);
  const files = [];
  for (const name of (await readdir(options.outdir)).sort()) {
    const path = join(options.outdir, name);
    if (!(await stat(path)).isFile() || name.endsWith(".map") || name.endsWith(".md")) continue;
    const body = await readFile(path);
    files.push({ name, bytes: body.length, gzip: gzipSync(body).length });
  }
  return {
    ms,
    outdir: options.outdir,
    files,
    bytes: files.reduce((a, f) => a + f.bytes, 0),
    gzip: files.reduce((a, f) => a + f.gzip, 0),
  };
}

/** The entry module wrangler wrote (named after the entry file: index.js, worker.js). */
export function mainModule(build: BuildResult): string {
  const js = build.files.filter((f) => /\.m?js$/.test(f.name));
  if (js.length !== 1)
    throw new Error(`expected one module in ${build.outdir}, found ${js.map((f) => f.name).join(", ")}`);
  return (js[0] as { name: string }).name;
}

/** The production Worker as deployed: the shipped policies/, no RUNPASS_DEV, wrangler.toml as is. */
export async function productionBuild(): Promise<BuildResult> {
  const scratch = await scratchCopy("bench-prod");
  try {
    return await wranglerBuild(scratch, {
      outdir: join(scratch, "out"),
      env: { RUNPASS_DEV: undefined, RUNPASS_POLICIES_DIR: join(scratch, "policies") },
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

const POLICY_HEAD = `issuer: bench
allow:
  repository_owner_id: "${REPO.ownerId}"
  repository_id: "${REPO.repoId}"
  ref: refs/heads/main
  event_name: [push, workflow_dispatch]
deny:
  - runner_environment: self-hosted
ttl: 1h
`;

/** The connection the bench's postgres policy names. */
const PG_CONNECTION = "bench";

/** The bench policies: token, token + secrets, aws (static-key AssumeRole at the fake STS), postgres. */
export async function writeBenchPolicies(dir: string, issuerUrl: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "issuers.yaml"), `bench: { url: "${issuerUrl}", kind: github }\n`);
  await writeFile(
    join(dir, "token.yaml"),
    `${POLICY_HEAD}grants:\n  token: { audience: "https://deploy.bench", ttl: 10m }\n`,
  );
  await writeFile(
    join(dir, "secrets.yaml"),
    `${POLICY_HEAD}grants:\n  token: { audience: "https://deploy.bench", ttl: 10m }\n  secrets:\n${Object.entries(
      SECRET_PATHS,
    )
      .map(([k, v]) => `    ${k}: ${v}\n`)
      .join("")}`,
  );
  await writeFile(
    join(dir, "postgres.yaml"),
    `${POLICY_HEAD}grants:\n  postgres: { connection: ${PG_CONNECTION}, roles: [${PG_READONLY}], ttl: 10m }\n`,
  );
  await writeFile(
    join(dir, "aws.yaml"),
    `${POLICY_HEAD}grants:
  aws:
    role_arn: ${ROLE_ARN}
    region: us-east-1
    duration: 15m
    session_name: "bench-\${run_id}"
    session_tags: { repository: "\${repository}", run: "\${run_id}" }
`,
  );
}

// ------------------------------------------------------------------------------------------------ upstreams

export interface Upstreams {
  /** The bench issuer's exact `iss`. */
  issuer: string;
  sts: string;
  stats(): Promise<{ discovery: number; jwks: number; sts: number }>;
  stop(): Promise<void>;
}

async function startUpstreams(publicJwk: Record<string, unknown>): Promise<Upstreams> {
  const cmd = CAN_PIN ? "taskset" : process.execPath;
  const args = [...(CAN_PIN ? ["-c", "1", process.execPath] : []), join(ROOT, "bench/upstreams.ts")];
  const child = spawn(cmd, args, {
    env: { ...process.env, BENCH_ISSUER_JWK: JSON.stringify(publicJwk) },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const line = await new Promise<string>((done, fail) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once("line", done);
    child.once("exit", (code) => fail(new Error(`upstreams exited with ${code}`)));
  });
  const { issuer, sts } = JSON.parse(line) as { issuer: string; sts: string };
  const base = new URL(issuer).origin;
  return {
    issuer,
    sts,
    stats: async () => (await (await fetch(`${base}/__stats`)).json()) as never,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
    },
  };
}

// ------------------------------------------------------------------------------------------------- harness

/** The parts of wrangler's parsed config the harness reads. */
interface WranglerConfig {
  compatibility_date?: string;
  compatibility_flags?: string[];
  vars: Record<string, unknown>;
  migrations: Array<{ new_sqlite_classes?: string[] }>;
  durable_objects: { bindings: Array<{ name: string; class_name: string }> };
  d1_databases: Array<{ binding: string; database_name?: string }>;
  kv_namespaces: Array<{ binding: string }>;
}

/**
 * wrangler.toml's [vars] with every RUNPASS_RATE_LIMITS count raised to 100,000,000 (windows kept): the bench
 * sends thousands of exchanges per minute for one repository, which the deployed limits would refuse; with
 * huge limits the limiter still runs on every request, so its cost stays in the numbers.
 */
export function benchVars(vars: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(vars)) out[k] = typeof v === "string" ? v : JSON.stringify(v);
  if (out.RUNPASS_RATE_LIMITS) {
    try {
      const limits = JSON.parse(out.RUNPASS_RATE_LIMITS) as Record<string, string>;
      for (const [name, rule] of Object.entries(limits)) {
        if (typeof rule === "string") limits[name] = rule.replace(/^\s*\d+\s*\//, "100000000/");
      }
      out.RUNPASS_RATE_LIMITS = JSON.stringify(limits);
    } catch {
      log("RUNPASS_RATE_LIMITS in wrangler.toml is not JSON; using it unchanged");
    }
  }
  return out;
}

/** The secure floor's Durable Object (bench/worker.ts): only the generated bench config declares it. */
const BENCH_ONLY_TOML = `# Bench only: the secure floor's per-run objects (bench/worker.ts).
[[durable_objects.bindings]]
name = "BENCH_FLOOR_LEDGER"
class_name = "SecureFloorLedger"

[[migrations]]
tag = "bench-v1"
new_sqlite_classes = ["SecureFloorLedger"]
`;

export interface Harness {
  /** The bench Worker's own socket inside workerd. */
  base: string;
  upstreams: Upstreams;
  adminToken: string;
  /** workerd's pid (pinned to CPU 0 when possible). */
  workerdPid: number | undefined;
  /** Spawn → socket ready, ms. */
  startMs: number;
  /** The bench bundle (the production entry + the floor route, dev-flagged policy bundle). */
  benchBuild: BuildResult;
  /** RS256-signs claim sets as the bench issuer, on every core. */
  mint(claims: Array<Record<string, unknown>>): Promise<string[]>;
  /** GitHub Actions claims for acme/api on main, run `runId`, fresh jti, valid 10 min. */
  claims(runId: string | number, overrides?: Record<string, unknown>): Record<string, unknown>;
  admin(path: string, init?: RequestInit): Promise<Response>;
  /** Pins this process (and its threads) to CPU 1 for measuring, or frees it for minting. */
  pinLoadGenerator(on: boolean): Promise<void>;
  webhookSecret: string;
  /**
   * Stores the secrets the token+secrets policy grants and the connection the postgres policy names (after the
   * cold-start measurement).
   */
  seedSecrets(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts upstreams, builds the bench Worker in a scratch copy (RUNPASS_DEV=1: its issuer is a loopback http
 * server), and serves it under workerd with in-memory-backed (tmpfs) Durable Objects, D1 and KV.
 */
export async function startHarness(
  options: {
    /** Diagnostics only: edits the scratch copy before the build (never the working tree). */
    patchScratch?: (scratch: string) => Promise<void>;
  } = {},
): Promise<Harness> {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const kid = "bench-k1";
  const publicJwk = { ...publicKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" };
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  const upstreams = await startUpstreams(publicJwk);

  const scratch = await scratchCopy("bench");
  // The postgres grant's real server (test/support/postgres-server.ts), on this machine like the other upstreams.
  const postgres = new PostgresServer();
  const cleanups: Array<() => Promise<unknown>> = [
    () => upstreams.stop(),
    () => postgres.stop(),
    () => rm(scratch, { recursive: true, force: true }),
  ];
  try {
    const pg = await postgres.start();
    await options.patchScratch?.(scratch);
    const policies = join(scratch, "bench-policies");
    await writeBenchPolicies(policies, upstreams.issuer);
    // The bench Worker is a development bundle served locally, never deployed: its policies are compiled here
    // the way `npm start` compiles them (the deploy guard refuses RUNPASS_DEV=1 under `wrangler deploy`), and
    // the dry run only bundles them, with no [build] step of its own.
    const toml = (await readFile(join(ROOT, "wrangler.toml"), "utf8"))
      .replace(/^name = .*$/m, 'name = "runpass-bench"')
      .replace(/^main = .*$/m, 'main = "bench/worker.ts"')
      .replace(/^\[build\]\n(?:(?!\[)[^\n]*\n)*/m, "");
    await writeFile(join(scratch, "wrangler.bench.toml"), `${toml}\n${BENCH_ONLY_TOML}`);
    await run(process.execPath, ["scripts/build-policies.ts"], {
      cwd: scratch,
      env: { ...process.env, RUNPASS_DEV: "1", RUNPASS_DEV_SERVER: "1", RUNPASS_POLICIES_DIR: policies },
      maxBuffer: 64 * 1024 * 1024,
    });
    const benchBuild = await wranglerBuild(scratch, {
      outdir: join(scratch, "out-bench"),
      config: "wrangler.bench.toml",
      env: { RUNPASS_DEV: "1", RUNPASS_POLICIES_DIR: policies },
    });

    // Test-only broker secrets, generated per run.
    const signing = await generateKeyPair("ES256", { extractable: true });
    const adminToken = randomBytes(24).toString("base64url");
    const webhookSecret = randomBytes(24).toString("base64url");
    // Bindings and vars as wrangler.toml declares them (the lead's config, whatever it grows into).
    const config = unstable_readConfig({
      config: join(scratch, "wrangler.bench.toml"),
    }) as unknown as WranglerConfig;
    const sqlite = new Set(config.migrations.flatMap((m) => m.new_sqlite_classes ?? []));
    const vars = {
      ...benchVars(config.vars),
      RUNPASS_DEV: "1",
      RUNPASS_ISSUER_URL: BROKER_ISSUER,
      RUNPASS_SIGNING_KEYS: JSON.stringify([
        { ...(await exportJWK(signing.privateKey)), kid: "bench-es256", alg: "ES256" },
      ]),
      RUNPASS_AUDIT_KEY: randomBytes(32).toString("base64url"),
      RUNPASS_ADMIN_TOKEN: adminToken,
      RUNPASS_MASTER_KEYS: JSON.stringify({ active: "m1", keys: { m1: randomBytes(32).toString("base64") } }),
      AWS_ACCESS_KEY_ID: STS_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: STS_SECRET_ACCESS_KEY,
      AWS_STS_ENDPOINT: upstreams.sts,
      GITHUB_WEBHOOK_SECRET: webhookSecret,
      BENCH_FLOOR_ISSUER: upstreams.issuer,
      BENCH_FLOOR_AUDIENCE: TOKEN_AUDIENCE,
    };
    // Storage on tmpfs when there is one: measure the Worker, not this machine's disk.
    const persist = await mkdtemp(
      join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "runpass-bench-state-"),
    );
    cleanups.push(() => rm(persist, { recursive: true, force: true }));
    const errors: string[] = [];
    const t0 = performance.now();
    const mf = new Miniflare(
      convertV4MiniflareOptions({
        host: "127.0.0.1",
        port: 0,
        log: new Log(LogLevel.WARN),
        cf: false,
        // Set BENCH_INSPECTOR_PORT to profile the Worker over the DevTools protocol (bench/profile.ts).
        ...(process.env.BENCH_INSPECTOR_PORT
          ? { inspectorPort: Number(process.env.BENCH_INSPECTOR_PORT) }
          : {}),
        resourcePersistencePath: persist,
        // The Worker logs one audit line per decision; keep only errors (for diagnostics).
        handleStructuredLogs: (entry) => {
          if (entry.level === "error" && errors.length < 20) errors.push(entry.message.slice(0, 500));
        },
        name: "runpass-bench",
        modules: [{ type: "ESModule", path: join(benchBuild.outdir, mainModule(benchBuild)) }],
        modulesRoot: benchBuild.outdir,
        compatibilityDate: config.compatibility_date,
        compatibilityFlags: config.compatibility_flags,
        bindings: vars,
        durableObjects: Object.fromEntries(
          config.durable_objects.bindings.map((b) => [
            b.name,
            { className: b.class_name, useSQLite: sqlite.has(b.class_name) },
          ]),
        ),
        d1Databases: Object.fromEntries(
          config.d1_databases.map((d) => [d.binding, d.database_name ?? d.binding]),
        ),
        kvNamespaces: Object.fromEntries(config.kv_namespaces.map((k) => [k.binding, k.binding])),
        unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
      }),
    );
    cleanups.unshift(() => mf.dispose());
    await mf.ready;
    const base = (await mf.unsafeGetDirectURL()).origin;
    const startMs = Math.round(performance.now() - t0);
    const workerdPid = process.platform === "linux" ? childPids("workerd")[0] : undefined;
    if (workerdPid) await pin(workerdPid, "0");

    const admin = (path: string, init: RequestInit = {}) =>
      fetch(`${base}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${adminToken}`, ...(init.headers ?? {}) },
      });
    const harness: Harness = {
      base,
      upstreams,
      adminToken,
      workerdPid,
      startMs,
      benchBuild,
      webhookSecret,
      admin,
      claims: (runId, overrides = {}) => {
        const c = githubClaims(upstreams.issuer, TOKEN_AUDIENCE, { run_id: String(runId), ...overrides });
        c.exp = (c.iat as number) + 600;
        return c as Record<string, unknown>;
      },
      mint: async (claims) => {
        const workers = Math.max(1, Math.min(availableParallelism(), 4, Math.ceil(claims.length / 200)));
        const per = Math.ceil(claims.length / workers);
        const parts = await Promise.all(
          Array.from({ length: workers }, (_, w) => {
            const slice = claims.slice(w * per, (w + 1) * per);
            return new Promise<string[]>((done, fail) => {
              const worker = new Worker(join(ROOT, "bench/mint.ts"), {
                workerData: { pem, kid, claims: slice },
              });
              worker.once("message", done);
              worker.once("error", fail);
            });
          }),
        );
        return parts.flat();
      },
      seedSecrets: async () => {
        for (const [name, path] of Object.entries(SECRET_PATHS)) {
          const res = await admin(`/v1/admin/secrets/${path}`, {
            method: "PUT",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ value: `bench-${name}-${randomBytes(16).toString("hex")}` }),
          });
          if (res.status !== 201) throw new Error(`secret put ${path}: ${res.status} ${await res.text()}`);
        }
        const res = await admin(`/v1/admin/connections/${PG_CONNECTION}`, {
          method: "PUT",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ kind: "postgres", url: pg.adminUrl, tls: "disable" }),
        });
        if (res.status !== 201) throw new Error(`connection put: ${res.status} ${await res.text()}`);
      },
      pinLoadGenerator: (on) => pin(process.pid, on ? "1" : "0-1"),
      stop: async () => {
        if (errors.length) log(`worker errors (first ${errors.length}):\n  ${errors.join("\n  ")}`);
        for (const c of cleanups) await c().catch(() => undefined);
      },
    };
    return harness;
  } catch (e) {
    for (const c of cleanups) await c().catch(() => undefined);
    throw e;
  }
}

/** POST /v1/exchange. */
export function exchange(base: string, token: string, policy: string): Promise<Response> {
  return fetch(`${base}/v1/exchange`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ policy }),
  });
}
