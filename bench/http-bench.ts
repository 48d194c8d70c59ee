// The HTTP half of `npm run bench`: the bench Worker under workerd, driven over loopback by autocannon.
// Side by side at each concurrency: the verify floor (one jwtVerify), the secure floor (jwtVerify + one
// single-use insert into a SQLite-backed Durable Object per run), /v1/exchange with the token grant, with
// token + secrets, and with an AWS grant against the fake STS. Every exchange and every secure-floor request
// uses a fresh token (fresh jti), minted before the phase, grouped into runs the same way; every phase is
// bounded by a request count and a time limit. Each phase also reads the bench Worker's metering counters
// (bench/metering.ts) before and after, for the cost table.

import autocannon, { type Request as LoadRequest, type Result as LoadResult } from "autocannon";
import { cpuMs, exchange, type Harness, log, waitIdle } from "./harness.ts";
import type { MeterCounts } from "./metering.ts";

export type RouteName = "floor" | "secure" | "token" | "secrets" | "aws" | "postgres";

interface Route {
  name: RouteName;
  label: string;
  /** Policy for /v1/exchange; none for the floors. */
  policy?: string;
  /** GET path of a floor route. */
  path?: string;
  /** Whether every request needs a fresh token (single-use), minted before the phase. */
  fresh: boolean;
}

export const ROUTES: Route[] = [
  { name: "floor", label: "verify floor (jwtVerify only)", path: "/__bench/floor", fresh: false },
  {
    name: "secure",
    label: "secure floor (jwtVerify + DO insert)",
    path: "/__bench/secure-floor",
    fresh: true,
  },
  { name: "token", label: "exchange: token", policy: "token", fresh: true },
  { name: "secrets", label: "exchange: token + secrets", policy: "secrets", fresh: true },
  { name: "aws", label: "exchange: aws (fake STS)", policy: "aws", fresh: true },
  { name: "postgres", label: "exchange: postgres (real server)", policy: "postgres", fresh: true },
];

export interface PhaseResult {
  route: RouteName;
  connections: number;
  requests: number;
  /** Responses with the expected status (200). */
  ok: number;
  statuses: Record<string, number>;
  errors: number;
  seconds: number;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  mean_ms: number;
  /** workerd CPU per request, including the phase's background work (audit outbox → D1) until idle. */
  server_cpu_ms_per_req: number;
  /** This process (load generator) CPU use during the phase, % of one core. */
  client_cpu_pct: number;
  /** What the bench Worker's metering counted during the phase, until idle (alarms and shipping included). */
  meter: MeterCounts;
}

export interface HttpBenchOptions {
  quick: boolean;
  concurrency: number[];
  /** Requests per exchange phase (each needs a fresh token), per verify-floor and per secure-floor phase. */
  exchangeRequests: number;
  floorRequests: number;
  secureRequests: number;
  /** Time limit per phase. */
  phaseMs: number;
  /** Unmeasured requests per route before the first phase. */
  warmup: number;
  /** Exchanges per CI run (tokens sharing a run_id, so a run object sees several). */
  runSize: number;
}

export function httpOptions(quick: boolean): HttpBenchOptions {
  const env = (name: string, fallback: number) => Number(process.env[name] || fallback);
  return {
    quick,
    concurrency: (process.env.BENCH_CONCURRENCY || "1,8,32").split(",").map(Number),
    exchangeRequests: env("BENCH_EXCHANGES", quick ? 300 : 2500),
    floorRequests: env("BENCH_FLOOR_REQUESTS", quick ? 2000 : 20_000),
    secureRequests: env("BENCH_SECURE_REQUESTS", quick ? 400 : 6000),
    phaseMs: env("BENCH_PHASE_MS", quick ? 1500 : 8000),
    warmup: env("BENCH_WARMUP", quick ? 60 : 300),
    runSize: env("BENCH_RUN_SIZE", 4),
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

/** One autocannon run: `amount` requests (one token each, or `fixedToken` for all), at most `maxMs`. */
async function load(
  base: string,
  route: Route,
  connections: number,
  amount: number,
  maxMs: number,
  tokens: { pool?: string[]; fixed?: string },
): Promise<Omit<PhaseResult, "server_cpu_ms_per_req" | "route" | "connections" | "meter">> {
  const latencies = new Float64Array(amount + connections * 2);
  let n = 0;
  const statuses: Record<string, number> = {};
  let next = 0;
  const pool = tokens.pool;
  const request: LoadRequest = route.policy
    ? {
        method: "POST",
        path: "/v1/exchange",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ policy: route.policy }),
      }
    : {
        method: "GET",
        path: route.path ?? "/__bench/floor",
        headers: tokens.fixed ? { authorization: `Bearer ${tokens.fixed}` } : {},
      };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let t1 = t0;
  const result = await new Promise<LoadResult>((done, fail) => {
    const instance = autocannon(
      {
        url: base,
        connections,
        amount,
        timeout: 30,
        requests: [
          pool
            ? {
                ...request,
                setupRequest: (req) => {
                  // Never reuse a token: past the pool's end the request is a (counted) replay.
                  req.headers.authorization = `Bearer ${pool[Math.min(next++, pool.length - 1)]}`;
                  return req;
                },
              }
            : request,
        ],
      },
      (error, res) => {
        clearTimeout(timer);
        if (error) fail(error);
        else done(res);
      },
    );
    instance.on("response", (_client: unknown, status: number, _bytes: number, ms: number) => {
      t1 = performance.now();
      if (n < latencies.length) latencies[n++] = ms;
      statuses[status] = (statuses[status] ?? 0) + 1;
    });
    const timer = setTimeout(() => instance.stop(), maxMs);
  });
  const cpu = process.cpuUsage(cpu0);
  const seconds = (t1 - t0) / 1000;
  const sorted = latencies.slice(0, n).sort();
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    requests: n,
    ok: statuses["200"] ?? 0,
    statuses,
    errors: result.errors + result.timeouts,
    seconds: round(seconds, 3),
    rps: Math.round(n / seconds),
    p50_ms: round(percentile(sorted, 50), 3),
    p99_ms: round(percentile(sorted, 99), 3),
    mean_ms: round(sum / Math.max(1, n), 3),
    client_cpu_pct: Math.round(((cpu.user + cpu.system) / 1000 / (t1 - t0)) * 100),
  };
}

export interface HttpBenchResult {
  options: HttpBenchOptions;
  cold: {
    /** Miniflare → workerd listening on the Worker's socket. */
    start_ms: number;
    /** First request after start: POST /v1/exchange (token grant), including the issuer's discovery + JWKS fetch. */
    first_exchange_ms: number;
    /** The next exchange (new run object, keys cached). */
    second_exchange_ms: number;
    /** First floor request (its own JWKS fetch through jose). */
    first_floor_ms: number;
  };
  phases: PhaseResult[];
  /** Discovery + JWKS requests the issuer saw during the measured exchange phases, per 1,000 exchanges. */
  jwks: { fetches: number; exchanges: number; per_1000: number; discovery: number; jwks: number };
  /** Fake STS calls during the measured aws phases vs aws exchanges answered 200. */
  sts: { calls: number; aws_ok: number };
}

/** The bench Worker's metering counters (bench/metering.ts). */
export async function counters(base: string): Promise<MeterCounts> {
  const res = await fetch(`${base}/__bench/counters`);
  if (res.status !== 200) throw new Error(`GET /__bench/counters answered ${res.status}`);
  return (await res.json()) as MeterCounts;
}

/** after − before, field by field (per class too). */
export function meterDelta(after: MeterCounts, before: MeterCounts): MeterCounts {
  const by_class: MeterCounts["by_class"] = {};
  for (const [name, a] of Object.entries(after.by_class)) {
    const b = before.by_class[name] ?? { requests: 0, rows_written: 0 };
    if (a.requests === b.requests && a.rows_written === b.rows_written) continue;
    by_class[name] = { requests: a.requests - b.requests, rows_written: a.rows_written - b.rows_written };
  }
  return {
    worker_requests: after.worker_requests - before.worker_requests,
    do_requests: after.do_requests - before.do_requests,
    do_alarms: after.do_alarms - before.do_alarms,
    do_active_ms: after.do_active_ms - before.do_active_ms,
    do_rows_written: after.do_rows_written - before.do_rows_written,
    do_alarm_writes: after.do_alarm_writes - before.do_alarm_writes,
    d1_rows_written: after.d1_rows_written - before.d1_rows_written,
    d1_calls: after.d1_calls - before.d1_calls,
    kv_reads: after.kv_reads - before.kv_reads,
    by_class,
  };
}

/** Runs the cold-start probe, then every route at every concurrency; the harness must be fresh. */
export async function httpBench(h: Harness, options: HttpBenchOptions): Promise<HttpBenchResult> {
  const pid = h.workerdPid;
  // Cold start: the first requests this workerd ever sees.
  const [cold1, cold2] = await h.mint([h.claims("9000000001"), h.claims("9000000002")]);
  const timed = async (f: () => Promise<Response>) => {
    const t = performance.now();
    const res = await f();
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`cold-start request answered ${res.status}`);
    return round(performance.now() - t, 1);
  };
  const first_exchange_ms = await timed(() => exchange(h.base, cold1 as string, "token"));
  const second_exchange_ms = await timed(() => exchange(h.base, cold2 as string, "token"));
  const first_floor_ms = await timed(() =>
    fetch(`${h.base}/__bench/floor`, { headers: { authorization: `Bearer ${cold1}` } }),
  );
  await h.seedSecrets();

  // Token pools: warm-up + one pool per (exchange route, concurrency), minted on every core up front.
  let runSeq = 0;
  const claimsFor = (count: number) => {
    const out: Array<Record<string, unknown>> = [];
    for (let i = 0; i < count; i++) {
      if (i % options.runSize === 0) runSeq++;
      out.push(h.claims(1_000_000_000 + runSeq));
    }
    return out;
  };
  const plan: Array<{ route: Route; connections: number; warmup: boolean }> = [];
  for (const route of ROUTES) plan.push({ route, connections: 8, warmup: true });
  for (const connections of options.concurrency) {
    for (const route of ROUTES) plan.push({ route, connections, warmup: false });
  }
  const sizes = plan.map((p) =>
    !p.route.fresh
      ? 0
      : p.warmup
        ? options.warmup
        : (p.route.policy ? options.exchangeRequests : options.secureRequests) + p.connections,
  );
  const total = sizes.reduce((a, b) => a + b, 0);
  const t0 = performance.now();
  const minted = await h.mint(claimsFor(total));
  log(`minted ${total} tokens in ${Math.round(performance.now() - t0)} ms`);
  let offset = 0;
  const pools = sizes.map((size) => {
    const pool = minted.slice(offset, offset + size);
    offset += size;
    return pool;
  });

  await h.pinLoadGenerator(true);
  await waitIdle(pid);
  const phases: PhaseResult[] = [];
  let before = await h.upstreams.stats();
  let exchanges = 0;
  let awsOk = 0;
  let stsCalls = 0;
  let fetches = { discovery: 0, jwks: 0 };
  try {
    for (const [i, step] of plan.entries()) {
      const { route, connections, warmup } = step;
      const amount = warmup
        ? route.fresh
          ? options.warmup
          : options.warmup * 4
        : route.policy
          ? options.exchangeRequests
          : route.fresh
            ? options.secureRequests
            : options.floorRequests;
      const meter0 = await counters(h.base);
      const cpu0 = cpuMs(pid);
      const r = await load(h.base, route, connections, amount, options.phaseMs, {
        ...(route.fresh ? { pool: pools[i] } : { fixed: cold1 }),
      });
      await waitIdle(pid);
      const serverCpu = cpuMs(pid) - cpu0;
      const meter = meterDelta(await counters(h.base), meter0);
      const after = await h.upstreams.stats();
      if (!warmup) {
        if (route.policy) {
          exchanges += r.requests;
          fetches = {
            discovery: fetches.discovery + after.discovery - before.discovery,
            jwks: fetches.jwks + after.jwks - before.jwks,
          };
        }
        if (route.name === "aws") {
          awsOk += r.ok;
          stsCalls += after.sts - before.sts;
        }
        const result: PhaseResult = {
          route: route.name,
          connections,
          ...r,
          server_cpu_ms_per_req: round(serverCpu / Math.max(1, r.requests), 3),
          meter,
        };
        phases.push(result);
        log(
          `${route.name.padEnd(7)} c=${String(connections).padEnd(2)} ${String(r.rps).padStart(6)} req/s  p50 ${r.p50_ms} ms  p99 ${r.p99_ms} ms  (${r.requests} req, ${r.ok} ok, server ${result.server_cpu_ms_per_req} ms/req, client ${r.client_cpu_pct}%)`,
        );
        if (r.ok !== r.requests) log(`  unexpected statuses: ${JSON.stringify(r.statuses)}`);
      } else if (r.ok !== r.requests) {
        throw new Error(`warm-up of ${route.name} answered ${JSON.stringify(r.statuses)}`);
      }
      before = after;
    }
  } finally {
    await h.pinLoadGenerator(false);
  }
  const fetchCount = fetches.discovery + fetches.jwks;
  return {
    options,
    cold: { start_ms: h.startMs, first_exchange_ms, second_exchange_ms, first_floor_ms },
    phases,
    jwks: {
      fetches: fetchCount,
      exchanges,
      per_1000: round((fetchCount / Math.max(1, exchanges)) * 1000, 3),
      ...fetches,
    },
    sts: { calls: stsCalls, aws_ok: awsOk },
  };
}
