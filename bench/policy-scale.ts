// Policy scale (docs/benchmarks.md, Targets): generate 100,000 policies, build them with the real loader, measure the
// compiled module's size, load it, and time decisions — by name (the exchange path) and by candidate index
// (explain --all). Prints one JSON object; numbers only, no assertions. Run with `npm run bench:policies`.

import { gzipSync } from "node:zlib";
import { bundleModule } from "../src/cli/build.ts";
import type { VerifiedToken } from "../src/core/oidc/verify.ts";
import { candidatesFor, compilePolicySet } from "../src/core/policy/compile.ts";
import { loadPolicySet } from "../src/core/policy/load.ts";
import { evaluatePolicy } from "../src/core/policy/match.ts";

const N = Number(process.env.BENCH_POLICIES || 100_000);
const DECISIONS = Number(process.env.BENCH_DECISIONS || 200_000);

function policyYaml(i: number): string {
  const owner = 1_000_000 + (i % 5_000);
  const repo = 500_000_000 + i;
  return `issuer: github
allow:
  repository_owner_id: "${owner}"
  repository_id: "${repo}"
  ref: ${i % 3 === 0 ? '"refs/tags/v*"' : "refs/heads/main"}
  event_name: [push, workflow_dispatch]
  job_workflow_ref: "org${owner}/repo${repo}/.github/workflows/*.yml@refs/heads/main"
deny:
  - runner_environment: self-hosted
ttl: 1h
grants:
  token: { audience: "https://svc${i % 97}.example", ttl: 10m }
`;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

function tokenFor(i: number, issuer: VerifiedToken["issuer"]): VerifiedToken {
  const owner = 1_000_000 + (i % 5_000);
  const repo = 500_000_000 + i;
  const claims: Record<string, unknown> = {
    iss: issuer.url,
    aud: `https://svc${i % 97}.example`,
    sub: `repo:org${owner}/repo${repo}:ref:refs/heads/main`,
    repository_owner_id: String(owner),
    repository_id: String(repo),
    repository: `org${owner}/repo${repo}`,
    ref: i % 3 === 0 ? "refs/tags/v1.2.3" : "refs/heads/main",
    event_name: "push",
    job_workflow_ref: `org${owner}/repo${repo}/.github/workflows/deploy.yml@refs/heads/main`,
    runner_environment: "github-hosted",
  };
  return {
    issuer,
    claims,
    standard: {
      iss: issuer.url,
      aud: "https://runpass.example",
      sub: String(claims.sub),
      exp: 0,
      iat: 0,
    } as never,
    identity: {} as never,
    singleUseId: `jti:${i}`,
  };
}

const mem = () => Math.round(process.memoryUsage().heapUsed / 1024 / 1024);
const t0 = performance.now();
const sources = Array.from({ length: N }, (_, i) => ({ path: `policies/p${i}.yaml`, text: policyYaml(i) }));
const tGen = performance.now();
const loaded = await loadPolicySet({ policies: sources }, { dev: false });
const tLoad = performance.now();
if (!loaded.bundle) throw new Error(`generated policies did not load: ${loaded.problems[0]?.message}`);
const module = bundleModule(loaded.bundle);
const gz = gzipSync(module).length;
const compact = JSON.stringify(loaded.bundle);
const compactGz = gzipSync(compact).length;
// What an isolate would hold: parse the compact bundle and compile it, measured alone (run with --expose-gc).
const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const heapBefore = process.memoryUsage().heapUsed;
const tParse0 = performance.now();
const set = compilePolicySet(JSON.parse(compact));
const tCompile = performance.now();
gc?.();
const isolateMb = Math.round((process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024);
const tCompile0 = tParse0;
const issuer = loaded.bundle.issuers[0] as VerifiedToken["issuer"];

// Decisions by name (what /v1/exchange does): Map lookup + evaluate every condition.
const byName = new Float64Array(DECISIONS);
let allowed = 0;
for (let k = 0; k < DECISIONS; k++) {
  const i = (k * 7919) % N;
  const token = tokenFor(i, issuer);
  const s = performance.now();
  const policy = set.policies.get(`p${i}`);
  const e = policy ? evaluatePolicy(policy, token, "https://runpass.example") : undefined;
  byName[k] = performance.now() - s;
  if (e?.allowed) allowed++;
}
// Candidate search (explain --all): index lookup + evaluate each candidate.
const byIndex = new Float64Array(DECISIONS);
let candidates = 0;
for (let k = 0; k < DECISIONS; k++) {
  const i = (k * 104729) % N;
  const token = tokenFor(i, issuer);
  const s = performance.now();
  const list = candidatesFor(set, issuer.name, token.claims);
  for (const p of list) evaluatePolicy(p, token, "https://runpass.example");
  byIndex[k] = performance.now() - s;
  candidates += list.length;
}
byName.sort();
byIndex.sort();
const us = (ms: number) => Math.round(ms * 1000 * 100) / 100;
console.log(
  JSON.stringify(
    {
      policies: N,
      decisions: DECISIONS,
      build: {
        generate_ms: Math.round(tGen - t0),
        load_and_validate_ms: Math.round(tLoad - tGen),
        module_bytes: module.length,
        module_gzip_bytes: gz,
        compact_bytes: compact.length,
        compact_gzip_bytes: compactGz,
        parse_and_compile_ms: Math.round(tCompile - tCompile0),
        compiled_set_heap_mb: gc ? isolateMb : "run with --expose-gc",
        heap_mb: mem(),
      },
      by_name_us: {
        p50: us(percentile(byName, 50)),
        p99: us(percentile(byName, 99)),
        max: us(percentile(byName, 100)),
      },
      by_index_us: {
        p50: us(percentile(byIndex, 50)),
        p99: us(percentile(byIndex, 99)),
        mean_candidates: Math.round((candidates / DECISIONS) * 100) / 100,
      },
      allowed_fraction: Math.round((allowed / DECISIONS) * 1000) / 1000,
    },
    null,
    2,
  ),
);
