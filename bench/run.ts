// `npm run bench` (and `npm run bench:quick`): every target of docs/benchmarks.md, in one run, side by side.
//   1. policy match at 100 and 100,000 policies (bench/policy-scale.ts; --quick: 100 and 10,000), pinned to
//      CPU 1, while CPU 0 builds the production bundle (`wrangler deploy --dry-run --outdir`, for its size)
//      and the bench Worker, and starts workerd;
//   2. the HTTP bench (bench/http-bench.ts): cold start, then the floor and three exchange variants at
//      concurrency 1, 8 and 32, workerd on CPU 0 and autocannon on CPU 1.
// Writes bench/results.json and prints a table. Numbers, not assertions: the targets are printed next to them.

import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
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

function table(http: HttpBenchResult): { rows: Array<Record<string, unknown>>; text: string } {
  const rows: Array<Record<string, unknown>> = [];
  const lines = [
    "| route | c | req/s | × floor | p50 ms | × floor | p99 ms | × floor | workerd CPU ms/req |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const c of http.options.concurrency) {
    const floor = http.phases.find((p) => p.route === "floor" && p.connections === c) as PhaseResult;
    for (const route of ROUTES) {
      const p = http.phases.find((q) => q.route === route.name && q.connections === c);
      if (!p) continue;
      const row = {
        route: route.name,
        connections: c,
        rps: p.rps,
        rps_x_floor: x(p.rps, floor.rps),
        p50_ms: p.p50_ms,
        p99_ms: p.p99_ms,
        p50_x_floor: x(p.p50_ms, floor.p50_ms),
        p99_x_floor: x(p.p99_ms, floor.p99_ms),
        server_cpu_ms_per_req: p.server_cpu_ms_per_req,
      };
      rows.push(row);
      const ratio = (v: number) => (route.name === "floor" ? "1" : v.toFixed(2));
      lines.push(
        `| ${route.label} | ${c} | ${p.rps} | ${ratio(row.rps_x_floor)} | ${p.p50_ms.toFixed(2)} | ${ratio(row.p50_x_floor)} | ${p.p99_ms.toFixed(2)} | ${ratio(row.p99_x_floor)} | ${p.server_cpu_ms_per_req.toFixed(2)} |`,
      );
    }
  }
  return { rows, text: lines.join("\n") };
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
  try {
    policyScaleResults = await scale;
    http = await httpBench(harness, httpOptions(quick));
  } finally {
    await harness.stop();
  }

  const { rows, text } = table(http);
  const at = (route: string, c: number) => rows.find((r) => r.route === route && r.connections === c);
  const token8 = at("token", 8);
  const largest = policyScaleResults[policyScaleResults.length - 1] as PolicyScale;
  const results = {
    date: new Date().toISOString(),
    mode: quick ? "quick" : "full",
    machine: { ...machine(), load_average_1m: { before: loadBefore, after: loadavg()[0] } },
    versions: await versions(),
    seconds: Math.round((performance.now() - t0) / 1000),
    http: { ...http, table: rows },
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
      exchange_rps_vs_floor_c8: { value: token8?.rps_x_floor, target: ">= 0.5" },
      exchange_p99_vs_floor_c8: { value: token8?.p99_x_floor, target: "<= 3" },
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
    ...policyScaleResults.map(
      (p) =>
        `policy match at ${p.policies.toLocaleString("en")} policies: by name p50 ${p.by_name_us.p50} µs / p99 ${p.by_name_us.p99} µs; candidate search p50 ${p.by_index_us.p50} µs / p99 ${p.by_index_us.p99} µs`,
    ),
    "",
    "targets (docs/benchmarks.md):",
    `  exchange (token) throughput at c=8: ${token8?.rps_x_floor} × floor (target ≥ 0.5)`,
    `  exchange (token) p99 at c=8: ${token8?.p99_x_floor} × floor p99 (target ≤ 3)`,
    `  JWKS fetches per 1,000 exchanges: ${http.jwks.per_1000} (target 0)`,
    `  policy match p50 at ${largest.policies.toLocaleString("en")} policies: ${largest.by_name_us.p50} µs (target ≤ 50 µs at 100,000)`,
    `  bundle: ${kib(production.gzip)} gzip (target < 1 MiB)`,
    "",
    `bench/results.json written (${results.seconds} s)`,
  ];
  console.log(out.join("\n"));
}

await main();
