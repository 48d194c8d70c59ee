// `npm run bench` (and `npm run bench:quick`): every target of docs/benchmarks.md, in one run, side by side.
//   1. policy match at 100 and 100,000 policies (bench/policy-scale.ts; --quick: 100 and 10,000), pinned to
//      CPU 1, while CPU 0 builds the production bundle (`wrangler deploy --dry-run --outdir`, for its size)
//      and the bench Worker, and starts workerd;
//   2. the HTTP bench (bench/http-bench.ts): cold start, then both floors (verify; verify + a single-use
//      Durable Object insert) and three exchange variants at concurrency 1, 8 and 32, workerd on CPU 0 and
//      autocannon on CPU 1, with the bench Worker's metering counters read around each phase;
//   3. the cost per million exchanges (bench/cost.ts) from those counts;
//   4. the GitHub Action's own overhead and bundle size (bench/action-overhead.ts).
// Writes bench/results.json and prints a table. Numbers, not assertions: the targets are printed next to them.

import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type ActionOverhead, actionOverhead } from "./action-overhead.ts";
import { type CostTable, costPerMillion, PRICES, type UsageCounts } from "./cost.ts";
import { type BuildResult, CAN_PIN, log, pin, productionBuild, ROOT, startHarness } from "./harness.ts";
import { type HttpBenchResult, httpBench, httpOptions, type PhaseResult, ROUTES } from "./http-bench.ts";

const quick = process.argv.includes("--quick");
const run = promisify(execFile);
const t0 = performance.now();

interface PolicyScale {
  policies: number;
  decisions: number;
  build: Record<string, unknown>;
  by_name_us: { p50: number; p99: number; max: number };
  by_index_us: { p50: number; p99: number; mean_candidates: number };
}

/** bench/policy-scale.ts for one size, in its own process (pinned to CPU 1 when possible). */
function policyScale(policies: number): Promise<PolicyScale> {
  const decisions = process.env.BENCH_DECISIONS || (quick ? "100000" : "200000");
  const args = ["--expose-gc", join(ROOT, "bench/policy-scale.ts")];
  const child = CAN_PIN
    ? spawn("taskset", ["-c", "1", process.execPath, ...args], {
        env: { ...process.env, BENCH_POLICIES: String(policies), BENCH_DECISIONS: decisions },
        stdio: ["ignore", "pipe", "inherit"],
      })
    : spawn(process.execPath, args, {
        env: { ...process.env, BENCH_POLICIES: String(policies), BENCH_DECISIONS: decisions },
        stdio: ["ignore", "pipe", "inherit"],
      });
  let out = "";
  child.stdout.on("data", (d) => {
    out += String(d);
  });
  return new Promise((done, fail) =>
    child.on("exit", (code) =>
      code === 0
        ? done(JSON.parse(out) as PolicyScale)
        : fail(new Error(`policy-scale ${policies} exited ${code}`)),
    ),
  );
}

function machine() {
  const model = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim();
  return {
    cpus: availableParallelism(),
    cpu_model: model ?? "unknown",
    node: process.version,
    pinned: CAN_PIN ? "workerd on CPU 0; autocannon, upstreams and policy-scale on CPU 1" : "not pinned",
  };
}

async function versions() {
  const workerd = await run(join(ROOT, "node_modules/.bin/workerd"), ["--version"]).catch(() => ({
    stdout: "?",
  }));
  const pkg = (name: string) =>
    (
      JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as {
        version: string;
      }
    ).version;
  return {
    workerd: workerd.stdout.trim(),
    wrangler: pkg("wrangler"),
    miniflare: pkg("miniflare"),
    autocannon: pkg("autocannon"),
  };
}

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
const x = (a: number, b: number) => Math.round((a / b) * 100) / 100;

interface Row {
  route: string;
  connections: number;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  server_cpu_ms_per_req: number;
  /** Against the verify floor (one jwtVerify). */
  rps_x_floor: number;
  p50_x_floor: number;
  p99_x_floor: number;
  cpu_x_floor: number;
  /** Against the secure floor (jwtVerify + one single-use Durable Object insert per request). */
  rps_x_secure: number;
  p99_x_secure: number;
  cpu_x_secure: number;
}

function table(http: HttpBenchResult): { rows: Row[]; text: string } {
  const rows: Row[] = [];
  const lines = [
    "| route | c | req/s | × verify | × secure | p50 ms | p99 ms | p99 × verify | p99 × secure | workerd CPU ms/req | CPU × verify |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const c of http.options.concurrency) {
    const floor = http.phases.find((p) => p.route === "floor" && p.connections === c) as PhaseResult;
    const secure = http.phases.find((p) => p.route === "secure" && p.connections === c) as PhaseResult;
    for (const route of ROUTES) {
      const p = http.phases.find((q) => q.route === route.name && q.connections === c);
      if (!p) continue;
      const row: Row = {
        route: route.name,
        connections: c,
        rps: p.rps,
        p50_ms: p.p50_ms,
        p99_ms: p.p99_ms,
        server_cpu_ms_per_req: p.server_cpu_ms_per_req,
        rps_x_floor: x(p.rps, floor.rps),
        p50_x_floor: x(p.p50_ms, floor.p50_ms),
        p99_x_floor: x(p.p99_ms, floor.p99_ms),
        cpu_x_floor: x(p.server_cpu_ms_per_req, floor.server_cpu_ms_per_req),
        rps_x_secure: x(p.rps, secure.rps),
        p99_x_secure: x(p.p99_ms, secure.p99_ms),
        cpu_x_secure: x(p.server_cpu_ms_per_req, secure.server_cpu_ms_per_req),
      };
      rows.push(row);
      const r = (v: number, self: boolean) => (self ? "1" : v.toFixed(2));
      lines.push(
        `| ${route.label} | ${c} | ${p.rps} | ${r(row.rps_x_floor, route.name === "floor")} | ${r(row.rps_x_secure, route.name === "secure")} | ${p.p50_ms.toFixed(2)} | ${p.p99_ms.toFixed(2)} | ${r(row.p99_x_floor, route.name === "floor")} | ${r(row.p99_x_secure, route.name === "secure")} | ${p.server_cpu_ms_per_req.toFixed(2)} | ${r(row.cpu_x_floor, route.name === "floor")} |`,
      );
    }
  }
  return { rows, text: lines.join("\n") };
}

/** The measured counts of one route over all its phases (every concurrency), for the cost table. */
function usage(http: HttpBenchResult, route: string): UsageCounts {
  const phases = http.phases.filter((p) => p.route === route);
  const sum = (f: (p: PhaseResult) => number) => phases.reduce((a, p) => a + f(p), 0);
  return {
    exchanges: sum((p) => p.requests),
    worker_requests: sum((p) => p.meter.worker_requests),
    worker_cpu_ms: sum((p) => p.server_cpu_ms_per_req * p.requests),
    do_requests: sum((p) => p.meter.do_requests),
    do_alarms: sum((p) => p.meter.do_alarms),
    do_active_ms: sum((p) => p.meter.do_active_ms),
    do_rows_written: sum((p) => p.meter.do_rows_written),
    do_alarm_writes: sum((p) => p.meter.do_alarm_writes),
    d1_rows_written: sum((p) => p.meter.d1_rows_written),
    d1_calls: sum((p) => p.meter.d1_calls),
    kv_reads: sum((p) => p.meter.kv_reads),
  };
}

/** Where the Durable Object requests and rows of one route came from, per exchange, by class. */
function byClass(
  http: HttpBenchResult,
  route: string,
): Record<string, { requests: number; rows_written: number }> {
  const phases = http.phases.filter((p) => p.route === route);
  const n = phases.reduce((a, p) => a + p.requests, 0) || 1;
  const out: Record<string, { requests: number; rows_written: number }> = {};
  for (const p of phases) {
    for (const [name, c] of Object.entries(p.meter.by_class)) {
      const o = out[name] ?? { requests: 0, rows_written: 0 };
      out[name] = o;
      o.requests += c.requests;
      o.rows_written += c.rows_written;
    }
  }
  for (const o of Object.values(out)) {
    o.requests = Math.round((o.requests / n) * 100) / 100;
    o.rows_written = Math.round((o.rows_written / n) * 100) / 100;
  }
  return out;
}

const COST_LABELS: Record<string, string> = {
  worker_requests: "Worker requests",
  worker_cpu_ms: "Worker CPU ms (workerd total: upper bound)",
  do_requests: "Durable Object requests (incl. alarms)",
  do_duration: "Durable Object duration, GB-s (estimate)",
  do_rows_written: "Durable Object rows written (incl. setAlarm)",
  d1_rows_written: "D1 rows written (incl. index rows)",
  kv_reads: "KV reads",
};

function costText(costs: Record<string, CostTable>): string {
  const routes = Object.keys(costs);
  const lines = [
    `| line item | ${routes.map((r) => `${r}: per exchange | ${r}: $ per 1M`).join(" | ")} |`,
    `|---|${routes.map(() => "---:|---:").join("|")}|`,
  ];
  const items = (costs[routes[0] as string] as CostTable).lines.map((l) => l.item);
  for (const item of items) {
    const cells = routes.map((r) => {
      const l = (costs[r] as CostTable).lines.find((q) => q.item === item);
      return `${(l?.per_exchange ?? 0).toFixed(item === "do_duration" ? 6 : 2)} | ${(l?.usd_per_million ?? 0).toFixed(3)}`;
    });
    lines.push(`| ${COST_LABELS[item] ?? item} | ${cells.join(" | ")} |`);
  }
  lines.push(
    `| **total** | ${routes.map((r) => ` | **$${(costs[r] as CostTable).total_usd.toFixed(2)}**`).join(" | ")} |`,
  );
  return lines.join("\n");
}

async function main(): Promise<void> {
  const loadBefore = loadavg()[0] as number;
  if (loadBefore > 1) {
    log(
      `warning: load average ${loadBefore.toFixed(2)} before starting — other work on this machine will skew the numbers`,
    );
  }
  const sizes = quick ? [100, 10_000] : [100, 100_000];
  log(
    `${quick ? "quick" : "full"} run: policy scale at ${sizes.join(" and ")} policies, HTTP bench at c=${httpOptions(quick).concurrency.join("/")}`,
  );
  // CPU 0 builds and starts the server while CPU 1 times policy decisions.
  await pin(process.pid, "0");
  const scale = (async () => {
    const out: PolicyScale[] = [];
    for (const n of sizes) {
      const t = performance.now();
      out.push(await policyScale(n));
      log(`policy scale ${n}: ${Math.round((performance.now() - t) / 1000)} s`);
    }
    return out;
  })();
  let production: BuildResult;
  let harness: Awaited<ReturnType<typeof startHarness>>;
  try {
    production = await productionBuild();
    log(`production bundle: ${kib(production.bytes)} (${kib(production.gzip)} gzip)`);
    harness = await startHarness();
  } finally {
    await pin(process.pid, "0-1");
  }
  let http: HttpBenchResult;
  let policyScaleResults: PolicyScale[];
  let action: ActionOverhead;
  try {
    policyScaleResults = await scale;
    http = await httpBench(harness, httpOptions(quick));
    action = await actionOverhead(harness, Number(process.env.BENCH_ACTION_RUNS || (quick ? 3 : 15)));
    log(`action: own time p50 ${action.own_ms.p50} ms over ${action.runs} runs`);
  } finally {
    await harness.stop();
  }

  const { rows, text } = table(http);
  const at = (route: string, c: number) => rows.find((r) => r.route === route && r.connections === c);
  const token8 = at("token", 8);
  const costs: Record<string, CostTable> = {};
  const costSources: Record<string, { counts: UsageCounts; by_class: ReturnType<typeof byClass> }> = {};
  for (const route of ["secure", "token", "secrets", "aws", "postgres"]) {
    const counts = usage(http, route);
    if (counts.exchanges === 0) continue;
    costs[route] = costPerMillion(counts);
    costSources[route] = { counts, by_class: byClass(http, route) };
  }
  const tokenCost = costs.token;
  const largest = policyScaleResults[policyScaleResults.length - 1] as PolicyScale;
  const results = {
    date: new Date().toISOString(),
    mode: quick ? "quick" : "full",
    machine: { ...machine(), load_average_1m: { before: loadBefore, after: loadavg()[0] } },
    versions: await versions(),
    seconds: Math.round((performance.now() - t0) / 1000),
    http: { ...http, table: rows },
    cost_per_million_exchanges: {
      note: "marginal prices (monthly allowances left out); counts measured in this run by bench/metering.ts",
      prices: PRICES,
      routes: Object.fromEntries(
        Object.entries(costs).map(([route, table]) => [route, { ...table, ...costSources[route] }]),
      ),
    },
    action,
    policy_scale: policyScaleResults.map((p) => ({
      policies: p.policies,
      decisions: p.decisions,
      match_by_name_us: p.by_name_us,
      candidate_search_us: p.by_index_us,
      build: p.build,
    })),
    bundle: {
      production: {
        bytes: production.bytes,
        gzip: production.gzip,
        files: production.files,
        build_ms: production.ms,
      },
      bench: { bytes: harness.benchBuild.bytes, gzip: harness.benchBuild.gzip },
    },
    targets: {
      exchange_rps_vs_secure_floor_c8: { value: token8?.rps_x_secure, target: ">= 0.5" },
      exchange_p99_vs_secure_floor_c8: { value: token8?.p99_x_secure, target: "<= 3" },
      exchange_cpu_vs_verify_floor_c8: { value: token8?.cpu_x_floor, target: "<= 3" },
      exchange_rps_vs_verify_floor_c8: { value: token8?.rps_x_floor, target: "reported" },
      exchange_p99_vs_verify_floor_c8: { value: token8?.p99_x_floor, target: "reported" },
      cost_per_million_token_exchanges_usd: { value: tokenCost?.total_usd, largest: tokenCost?.largest },
      action_own_ms_p50: { value: action.own_ms.p50, target: "<= 300" },
      jwks_fetches_per_1000_exchanges: { value: http.jwks.per_1000, target: "0" },
      policy_match_p50_us: {
        policies: largest.policies,
        value: largest.by_name_us.p50,
        target: "<= 50 (100,000 policies)",
      },
      bundle_gzip_bytes: { value: production.gzip, target: "< 1048576" },
    },
  };
  await writeFile(join(ROOT, "bench/results.json"), `${JSON.stringify(results, null, 2)}\n`);

  const m = results.machine;
  const out = [
    "",
    `runpass bench (${results.mode}) — ${m.cpus} CPUs, ${m.cpu_model}, node ${m.node}, workerd ${results.versions.workerd}; ${m.pinned}`,
    "",
    text,
    "",
    `cold start: workerd ready in ${http.cold.start_ms} ms; first request (POST /v1/exchange, token grant, incl. discovery + JWKS) ${http.cold.first_exchange_ms} ms; second ${http.cold.second_exchange_ms} ms; first floor request ${http.cold.first_floor_ms} ms`,
    `JWKS/discovery fetches during ${http.jwks.exchanges} measured exchanges: ${http.jwks.fetches} (${http.jwks.per_1000} per 1,000)`,
    `STS calls during the aws phases: ${http.sts.calls} for ${http.sts.aws_ok} aws exchanges answered 200 (the rest were in flight when a phase hit its time limit)`,
    `Worker bundle (production, wrangler deploy --dry-run): ${kib(production.bytes)} raw, ${kib(production.gzip)} gzip; bench bundle ${kib(harness.benchBuild.bytes)} (${kib(harness.benchBuild.gzip)} gzip)`,
    `the action (action/dist/main.js, token policy, ${action.runs} runs against the bench Worker): spawn → exit p50 ${action.total_ms.p50} ms, of which broker + ID-token endpoint ${action.upstream_ms.p50} ms; own time p50 ${action.own_ms.p50} ms (${action.own_ms.min}–${action.own_ms.max}); bare \`node -e 0\` ${action.node_startup_ms.p50} ms, node importing the bundle's shared chunk and exiting ${action.bundle_load_ms.p50} ms`,
    `action bundle: ${kib(action.bundle.bytes)} raw, ${kib(action.bundle.gzip)} gzip (${action.bundle.files.map((f) => `${f.name} ${kib(f.bytes)}`).join(", ")}); for comparison ${action.others.map((o) => `${o.action} ${kib(o.bytes)}`).join(", ")}`,
    ...policyScaleResults.map(
      (p) =>
        `policy match at ${p.policies.toLocaleString("en")} policies: by name p50 ${p.by_name_us.p50} µs / p99 ${p.by_name_us.p99} µs; candidate search p50 ${p.by_index_us.p50} µs / p99 ${p.by_index_us.p99} µs`,
    ),
    "",
    `cost per million exchanges (Workers Paid list prices read ${PRICES.worker_requests.read_on}, allowances left out; counts measured in this run):`,
    "",
    costText(costs),
    "",
    ...Object.entries(costSources).map(
      ([route, s]) =>
        `  ${route}: per request ${Object.entries(s.by_class)
          .map(([name, c]) => `${name} ${c.requests} calls / ${c.rows_written} rows`)
          .join(
            ", ",
          )}; ${(s.counts.do_alarms / Math.max(1, s.counts.exchanges)).toFixed(2)} alarms, ${(s.counts.d1_rows_written / Math.max(1, s.counts.exchanges)).toFixed(1)} D1 rows in ${(s.counts.d1_calls / Math.max(1, s.counts.exchanges)).toFixed(2)} D1 calls`,
    ),
    tokenCost ? `  largest line item (token): ${COST_LABELS[tokenCost.largest]}` : "",
    "",
    "targets (docs/benchmarks.md):",
    `  exchange (token) throughput at c=8: ${token8?.rps_x_secure} × secure floor (target ≥ 0.5); ${token8?.rps_x_floor} × verify floor`,
    `  exchange (token) p99 at c=8: ${token8?.p99_x_secure} × secure floor p99 (target ≤ 3); ${token8?.p99_x_floor} × verify floor`,
    `  exchange (token) workerd CPU per exchange at c=8: ${token8?.cpu_x_floor} × verify floor (target ≤ 3)`,
    `  action own time: p50 ${action.own_ms.p50} ms (target ≤ 300)`,
    `  JWKS fetches per 1,000 exchanges: ${http.jwks.per_1000} (target 0)`,
    `  policy match p50 at ${largest.policies.toLocaleString("en")} policies: ${largest.by_name_us.p50} µs (target ≤ 50 µs at 100,000)`,
    `  bundle: ${kib(production.gzip)} gzip (target < 1 MiB)`,
    "",
    `bench/results.json written (${results.seconds} s)`,
  ];
  console.log(out.join("\n"));
}

await main();
