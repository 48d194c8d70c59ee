// Where an exchange's CPU goes: drives /v1/exchange against the bench Worker (as `npm run bench` builds and
// serves it) while V8's sampling profiler runs in workerd's isolates over the DevTools protocol, then
// writes .cpuprofile files (open them in Chrome DevTools or speedscope) and prints the top functions.
//
//   node bench/profile.ts [--policy token|secrets|aws|floor|secure] [--exchanges 1500] [--concurrency 8]
//                         [--run-size 4] [--no-profile]   (timing only: workerd CPU ms per exchange, no profiler)
//
// Two isolates matter: the Worker (request path, Durable Objects — they share the isolate locally) and
// Miniflare's D1 simulator (`d1:db`), which only exists locally: in production D1 runs elsewhere. `floor` and
// `secure` drive the two floors instead of /v1/exchange.

import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePort } from "../test/support/dev-broker.ts";
import { cpuMs, exchange, log, startHarness, waitIdle } from "./harness.ts";
import { counters, meterDelta } from "./http-bench.ts";
import { type CpuProfile, type ProfileNode, profileIsolates } from "./inspector.ts";

const { values: args } = parseArgs({
  options: {
    policy: { type: "string", default: "token" },
    exchanges: { type: "string", default: "1500" },
    concurrency: { type: "string", default: "8" },
    "run-size": { type: "string", default: "4" },
    "no-profile": { type: "boolean", default: false },
  },
});
const N = Number(args.exchanges);
const C = Number(args.concurrency);
const RUN_SIZE = Number(args["run-size"]);
const WARMUP = 200;

type Profile = CpuProfile;

/**
 * Busy time by the outermost frame of the bench bundle on the stack (module and function): the request
 * path (the `fetch` handler), each Durable Object method, alarms. esbuild marks every module with a
 * `// path` comment, which maps bundle lines back to source files.
 */
function byEntry(profile: Profile, bundle: string): Array<[string, number]> {
  const starts: Array<[number, string]> = [];
  bundle.split("\n").forEach((line, i) => {
    const m = /^\/\/ (?:\S*node_modules\/((?:@[^/\s]+\/)?[^/\s]+)\/\S*|((?:src|bench|generated)\/\S+))$/.exec(
      line,
    );
    if (m) starts.push([i, (m[1] ?? m[2]) as string]);
  });
  const moduleAt = (line: number) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] as [number, string])[0] <= line) lo = mid;
      else hi = mid - 1;
    }
    return starts[lo]?.[1] ?? "?";
  };
  const byId = new Map(profile.nodes.map((x) => [x.id, x]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const out = new Map<string, number>();
  profile.samples.forEach((sample, i) => {
    if (byId.get(sample)?.callFrame.functionName === "(idle)") return;
    let outer: ProfileNode | undefined;
    for (let id: number | undefined = sample; id !== undefined; id = parent.get(id)) {
      const node = byId.get(id);
      if (node?.callFrame.url.endsWith(".js") && !node.callFrame.url.startsWith("cloudflare")) outer = node;
    }
    const key = outer
      ? `${moduleAt(outer.callFrame.lineNumber)} ${outer.callFrame.functionName || "(anonymous)"}`
      : "(runtime: no bundle frame on the stack)";
    out.set(key, (out.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return [...out].sort((a, b) => b[1] - a[1]);
}

/** Self time per function (name, file, line), busy samples only. */
function top(profile: Profile, n: number): { busyMs: number; rows: Array<[string, number]> } {
  const byId = new Map(profile.nodes.map((x) => [x.id, x]));
  const self = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((sample, i) => {
    const frame = byId.get(sample)?.callFrame;
    const us = profile.timeDeltas[i] ?? 0;
    if (!frame || frame.functionName === "(idle)") return;
    busy += us;
    const key = `${frame.functionName || "(anonymous)"} ${frame.url.split("/").pop() || "(native)"}:${frame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + us);
  });
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, n) as Array<[string, number]>;
  return { busyMs: busy / 1000, rows: rows.map(([k, us]) => [k, us / 1000]) };
}

const profiling = !args["no-profile"];
const port = await freePort();
if (profiling) process.env.BENCH_INSPECTOR_PORT = String(port);
const h = await startHarness();
try {
  await h.seedSecrets();
  const claims = Array.from({ length: N + WARMUP }, (_, i) =>
    h.claims(3_000_000_000 + Math.floor(i / RUN_SIZE)),
  );
  const tokens = await h.mint(claims);
  let next = 0;
  const drive = async (until: number) => {
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (next < until) {
          const token = tokens[next++] as string;
          const res =
            args.policy === "floor" || args.policy === "secure"
              ? await fetch(`${h.base}/__bench/${args.policy === "floor" ? "floor" : "secure-floor"}`, {
                  headers: { authorization: `Bearer ${token}` },
                })
              : await exchange(h.base, token, args.policy);
          await res.arrayBuffer();
          if (res.status !== 200) throw new Error(`exchange answered ${res.status}`);
        }
      }),
    );
  };
  await drive(WARMUP);
  await waitIdle(h.workerdPid);

  const meter0 = await counters(h.base);
  const cpu0 = cpuMs(h.workerdPid);
  const t0 = performance.now();
  let ms = 0;
  const measured = async () => {
    await drive(WARMUP + N);
    ms = performance.now() - t0;
    await waitIdle(h.workerdPid);
  };
  let profiles: Awaited<ReturnType<typeof profileIsolates>> = {};
  if (profiling) profiles = await profileIsolates(port, measured);
  else await measured();
  const cpu = cpuMs(h.workerdPid) - cpu0;
  const meter = meterDelta(await counters(h.base), meter0);
  const each = (n: number) => (n / N).toFixed(2);
  log(
    `per exchange: ${each(meter.do_requests)} Durable Object calls (${Object.entries(meter.by_class)
      .map(([k, v]) => `${k} ${each(v.requests)}`)
      .join(
        ", ",
      )}), ${each(meter.do_alarms)} alarms, ${each(meter.d1_calls)} D1 calls writing ${each(meter.d1_rows_written)} rows`,
  );
  log(
    `${N} ${args.policy} exchanges, c=${C}, ${RUN_SIZE} per run: ${Math.round((N / ms) * 1000)}/s, workerd CPU ${(cpu / N).toFixed(2)} ms per exchange${profiling ? " (with the profiler running)" : ""}`,
  );
  const bundleFile = join(tmpdir(), "runpass-bench-worker.js");
  const bundle = await readFile(join(h.benchBuild.outdir, "worker.js"), "utf8");
  await writeFile(bundleFile, bundle);
  if (profiling) log(`the profiles' worker.js is ${bundleFile}`);
  for (const [name, profile] of Object.entries(profiles)) {
    const file = join(tmpdir(), `runpass-${args.policy}-${name}.cpuprofile`);
    await writeFile(file, JSON.stringify(profile));
    const { busyMs: busy, rows } = top(profile, 25);
    const line = (k: string, v: number) =>
      console.log(
        `${(v / N).toFixed(3).padStart(8)} ms  ${((v / busy) * 100).toFixed(1).padStart(5)}%  ${k}`,
      );
    console.log(`\n${name}: ${(busy / N).toFixed(2)} ms busy per request — ${file}`);
    if (name !== "d1") {
      console.log("by entry point (outermost bundle frame: request path, Durable Object methods, alarms):");
      for (const [k, v] of byEntry(profile, bundle).slice(0, 15)) line(k, v);
      console.log("by function (self time):");
    }
    for (const [k, v] of rows) line(k, v);
  }
} finally {
  await h.stop();
}
