// `runpass policy test`: YAML test cases (claims or real tokens → expected decision and reasons) run against a policy set.

import { readdir, readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { JWK } from "jose";
import { LineCounter, parseDocument } from "yaml";
import type { Reason } from "../core/errors.ts";
import { identityOf } from "../core/oidc/claims.ts";
import type { VerifiedToken } from "../core/oidc/verify.ts";
import { type CompiledPolicy, compilePolicySet, type PolicySet } from "../core/policy/compile.ts";
import { evaluatePolicy } from "../core/policy/match.ts";
import type { PolicyBundle } from "../core/policy/types.ts";
import { offlineExplain, readJwksFile } from "./explain.ts";
import { loadBundle, type PolicyToolContext, readTokenFile } from "./policy-context.ts";
import { UsageError } from "./usage-error.ts";

/** One expected failing condition: `claim` omitted matches any reason with that code. */
export interface ExpectedReason {
  code: string;
  claim?: string;
  /** Deny rule index (denied_by only). */
  rule?: number;
}

export interface PolicyTestCase {
  file: string;
  line: number;
  name: string;
  policy: string;
  /** Claims matched without signature verification. */
  claims?: Record<string, unknown>;
  /** A real token (absolute path), verified offline. */
  token?: string;
  jwks?: string;
  /** ISO 8601 time to judge the token's exp/iat/nbf by. */
  at?: string;
  expect: "allow" | "deny";
  reasons?: ExpectedReason[];
}

export interface TestFileProblem {
  file: string;
  line: number;
  col: number;
  message: string;
}

export interface CaseResult {
  case: PolicyTestCase;
  got: "allow" | "deny" | "error";
  reasons: Reason[];
  ok: boolean;
  /** Expected reasons no actual reason matched. */
  missing: ExpectedReason[];
  /** Actual reasons no expected reason matched (only when `reasons` was given). */
  unexpected: Reason[];
  /** Why the case could not be decided (keys unavailable, unreadable token …). */
  error?: string;
}

const CASE_KEYS = new Set(["name", "policy", "claims", "token", "jwks", "at", "expect", "reasons"]);
const REASON_KEYS = new Set(["code", "claim", "rule"]);

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Parses and validates one test file. Paths in cases are resolved relative to the file. */
export function parseTestFile(
  file: string,
  text: string,
): { cases: PolicyTestCase[]; problems: TestFileProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    uniqueKeys: true,
    version: "1.2",
    prettyErrors: false,
  });
  const problems: TestFileProblem[] = [];
  const at = (path: Array<string | number>, key = false) => {
    let node = doc.getIn(path, true) as { range?: [number, number] } | undefined;
    if (key && path.length) {
      // The key's own position: look the pair up in the parent map.
      const parent = doc.getIn(path.slice(0, -1), true) as
        | { items?: Array<{ key?: { value?: unknown; range?: [number, number] } }> }
        | undefined;
      const pair = parent?.items?.find((p) => p.key?.value === path[path.length - 1]);
      if (pair?.key?.range) node = pair.key;
    }
    for (let i = path.length; !node?.range && i > 0; i--) {
      node = doc.getIn(path.slice(0, i - 1), true) as { range?: [number, number] } | undefined;
    }
    return lines.linePos(node?.range?.[0] ?? 0);
  };
  const problem = (path: Array<string | number>, message: string, key = false) => {
    const { line, col } = at(path, key);
    problems.push({ file, line, col, message });
  };
  for (const e of doc.errors) {
    const pos = lines.linePos(e.pos[0]);
    problems.push({ file, line: pos.line, col: pos.col, message: `YAML: ${e.message.split("\n")[0]}` });
  }
  if (problems.length) return { cases: [], problems };
  const root = doc.toJS({ maxAliasCount: 50 }) as unknown;
  if (!isMap(root) || !Array.isArray(root.cases)) {
    problem([], 'a test file is a map with a "cases:" list');
    return { cases: [], problems };
  }
  for (const key of Object.keys(root)) if (key !== "cases") problem([key], `unknown key "${key}"`, true);
  const cases: PolicyTestCase[] = [];
  const names = new Set<string>();
  for (const [i, raw] of root.cases.entries()) {
    const path = ["cases", i];
    if (!isMap(raw)) {
      problem(path, `cases[${i}]: expected a map with name, policy, claims or token, and expect`);
      continue;
    }
    const before = problems.length;
    const where = typeof raw.name === "string" ? `case "${raw.name}"` : `cases[${i}]`;
    for (const key of Object.keys(raw))
      if (!CASE_KEYS.has(key)) problem([...path, key], `${where}: unknown key "${key}"`, true);
    if (typeof raw.name !== "string" || raw.name.length === 0)
      problem([...path, "name"], `${where}: "name" must be a non-empty string`);
    else if (names.has(raw.name))
      problem([...path, "name"], `${where}: another case in this file has this name`);
    else names.add(raw.name);
    if (typeof raw.policy !== "string" || raw.policy.length === 0)
      problem([...path, "policy"], `${where}: "policy" must be a policy name`);
    if (raw.expect !== "allow" && raw.expect !== "deny")
      problem([...path, "expect"], `${where}: "expect" must be allow or deny`);
    const hasClaims = raw.claims !== undefined;
    const hasToken = raw.token !== undefined;
    if (hasClaims === hasToken) problem(path, `${where}: give exactly one of "claims" and "token"`);
    if (hasClaims && !isMap(raw.claims)) problem([...path, "claims"], `${where}: "claims" must be a map`);
    if (hasToken && (typeof raw.token !== "string" || raw.token.length === 0))
      problem([...path, "token"], `${where}: "token" must be a file path (relative to this file)`);
    for (const key of ["jwks", "at"] as const) {
      if (raw[key] === undefined) continue;
      if (!hasToken) problem([...path, key], `${where}: "${key}" applies to token cases only`, true);
      else if (typeof raw[key] !== "string") problem([...path, key], `${where}: "${key}" must be a string`);
    }
    if (typeof raw.at === "string" && Number.isNaN(Date.parse(raw.at)))
      problem([...path, "at"], `${where}: "at" must be an ISO 8601 time`);
    let reasons: ExpectedReason[] | undefined;
    if (raw.reasons !== undefined) {
      if (!Array.isArray(raw.reasons)) {
        problem([...path, "reasons"], `${where}: "reasons" must be a list of {code, claim?}`);
      } else {
        reasons = [];
        for (const [j, r] of raw.reasons.entries()) {
          const rp = [...path, "reasons", j];
          if (!isMap(r) || typeof r.code !== "string") {
            problem(rp, `${where}: reasons[${j}] must be a map with a "code"`);
            continue;
          }
          for (const key of Object.keys(r))
            if (!REASON_KEYS.has(key))
              problem([...rp, key], `${where}: unknown key "${key}" in a reason`, true);
          if (r.claim !== undefined && typeof r.claim !== "string")
            problem([...rp, "claim"], `${where}: a reason's "claim" must be a string`);
          if (r.rule !== undefined && !Number.isInteger(r.rule))
            problem([...rp, "rule"], `${where}: a reason's "rule" must be a deny rule index`);
          reasons.push({
            code: r.code,
            ...(typeof r.claim === "string" ? { claim: r.claim } : {}),
            ...(typeof r.rule === "number" ? { rule: r.rule } : {}),
          });
        }
        if (raw.expect === "allow" && reasons.length > 0)
          problem([...path, "reasons"], `${where}: an allow case has no failing reasons`);
      }
    }
    if (problems.length > before) continue;
    const base = dirname(file);
    cases.push({
      file,
      line: at(path).line,
      name: raw.name as string,
      policy: raw.policy as string,
      expect: raw.expect as "allow" | "deny",
      ...(hasClaims ? { claims: raw.claims as Record<string, unknown> } : {}),
      ...(hasToken ? { token: resolve(base, raw.token as string) } : {}),
      ...(typeof raw.jwks === "string" ? { jwks: resolve(base, raw.jwks) } : {}),
      ...(typeof raw.at === "string" ? { at: raw.at } : {}),
      ...(reasons ? { reasons } : {}),
    });
  }
  return { cases, problems };
}

/** The claim a reason is about, for matching: a deny rule's claims joined by ",". */
function reasonClaim(r: Reason): string | undefined {
  if (r.claim !== undefined) return r.claim;
  if (r.code === "denied_by" && r.claims) return r.claims.join(",");
  return undefined;
}

function reasonMatches(e: ExpectedReason, r: Reason): boolean {
  if (e.code !== r.code) return false;
  if (e.claim !== undefined && e.claim !== reasonClaim(r)) return false;
  if (e.rule !== undefined && e.rule !== r.rule) return false;
  return true;
}

/** Compares decisions, and reasons as a set on code + claim when the case lists them. */
export function judge(c: PolicyTestCase, got: "allow" | "deny", reasons: Reason[]): Omit<CaseResult, "case"> {
  const missing = c.reasons ? c.reasons.filter((e) => !reasons.some((r) => reasonMatches(e, r))) : [];
  const unexpected = c.reasons
    ? reasons.filter((r) => !(c.reasons as ExpectedReason[]).some((e) => reasonMatches(e, r)))
    : [];
  return {
    got,
    reasons,
    ok: got === c.expect && missing.length === 0 && unexpected.length === 0,
    missing,
    unexpected,
  };
}

/** Stand-in for RUNPASS_AUDIENCE when none is configured and the case names no `aud`. */
const PLACEHOLDER_AUDIENCE = "urn:runpass:test-audience";

/** Matches a claims case: no signature, the issuer from the policy (or the case's `iss`), `aud` defaulted. */
export function evaluateClaims(
  set: PolicySet,
  policy: CompiledPolicy,
  given: Record<string, unknown>,
  audience: string | undefined,
): { decision: "allow" | "deny"; reasons: Reason[] } {
  const claims: Record<string, unknown> = { ...given };
  let issuer = policy.issuer;
  if (claims.iss !== undefined) {
    const named = typeof claims.iss === "string" ? set.issuersByUrl.get(claims.iss) : undefined;
    if (!named) return { decision: "deny", reasons: [{ code: "issuer_untrusted" }] };
    issuer = named;
  } else {
    claims.iss = issuer.url;
  }
  if (claims.aud === undefined) claims.aud = policy.def.audience ?? audience ?? PLACEHOLDER_AUDIENCE;
  // Offline, RUNPASS_AUDIENCE is whatever --audience/RUNPASS_AUDIENCE says; without either, the case's aud stands in.
  const defaultAudience = audience ?? (typeof claims.aud === "string" ? claims.aud : "");
  const token: VerifiedToken = {
    issuer,
    claims,
    standard: {
      iss: String(claims.iss),
      sub: typeof claims.sub === "string" ? claims.sub : "",
      aud: claims.aud as string,
      exp: 0,
      iat: 0,
    },
    identity: identityOf(issuer, claims),
    singleUseId: "policy-test",
  };
  const evaluation = evaluatePolicy(policy, token, defaultAudience);
  return { decision: evaluation.allowed ? "allow" : "deny", reasons: evaluation.reasons };
}

/** Runs every case against the bundle. Throws UsageError for a case naming a policy the set lacks. */
export async function runCases(
  bundle: PolicyBundle,
  cases: PolicyTestCase[],
  options: { audience?: string },
): Promise<CaseResult[]> {
  const set = compilePolicySet(bundle);
  const unknown = cases.filter((c) => !set.policies.has(c.policy));
  if (unknown.length) {
    const list = unknown.map((c) => `${c.file}:${c.line}: case "${c.name}": no policy "${c.policy}"`);
    const hint = bundle.dev ? "" : " (dev-only policies load only with RUNPASS_DEV=1)";
    throw new UsageError(`${list.join("\n")}\ntest cases name policies that are not in the set${hint}`);
  }
  const jwksCache = new Map<string, { keys: JWK[] }>();
  const results: CaseResult[] = [];
  for (const c of cases) {
    const policy = set.policies.get(c.policy) as CompiledPolicy;
    if (c.claims) {
      const { decision, reasons } = evaluateClaims(set, policy, c.claims, options.audience);
      results.push({ case: c, ...judge(c, decision, reasons) });
      continue;
    }
    let token: string;
    let jwks: { keys: JWK[] } | undefined;
    try {
      token = await readTokenFile(c.token as string);
      if (c.jwks) {
        jwks = jwksCache.get(c.jwks) ?? (await readJwksFile(c.jwks));
        jwksCache.set(c.jwks, jwks);
      }
    } catch (e) {
      results.push(errorResult(c, e instanceof Error ? e.message : String(e)));
      continue;
    }
    const now = c.at !== undefined ? Date.parse(c.at) : Date.now();
    const result = await offlineExplain({
      bundle,
      policy: c.policy,
      token,
      clock: () => now,
      ...(jwks ? { jwks } : {}),
      ...(options.audience ? { audience: options.audience } : {}),
    });
    if (result.error === "temporarily_unavailable") {
      results.push(errorResult(c, `the issuer's keys could not be fetched; give the case a "jwks:" file`));
      continue;
    }
    results.push({ case: c, ...judge(c, result.decision, result.reasons) });
  }
  return results;
}

function errorResult(c: PolicyTestCase, error: string): CaseResult {
  return { case: c, got: "error", reasons: [], ok: false, missing: [], unexpected: [], error };
}

/** Lists `*.yaml` test files in `dir` (sorted; subfolders are not read). */
export async function listTestFiles(dir: string): Promise<string[]> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new UsageError(`no tests folder at ${dir}`);
    throw e;
  }
  return entries
    .filter((e) => e.isFile() && (e.name.endsWith(".yaml") || e.name.endsWith(".yml")))
    .map((e) => join(dir, e.name))
    .sort();
}

function formatReason(r: { code: string; claim?: string; rule?: number; claims?: string[] }): string {
  const claim = r.claim ?? (r.claims ? r.claims.join(",") : undefined);
  return `${r.code}${claim !== undefined ? `:${claim}` : ""}${r.rule !== undefined ? `#${r.rule}` : ""}`;
}

/** Renders the results table, the failures' details and the summary line. */
export function formatResults(results: CaseResult[]): string {
  const rows = [
    ["case", "policy", "expected", "got", "ok"],
    ...results.map((r) => [r.case.name, r.case.policy, r.case.expect, r.got, r.ok ? "ok" : "FAIL"]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] as string).length)));
  const out = rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] as number)))
      .join("  ")
      .trimEnd(),
  );
  const failed = results.filter((r) => !r.ok);
  if (failed.length) out.push("");
  for (const r of failed) {
    const c = r.case;
    const head = `FAIL ${c.file}:${c.line}: ${c.name} (policy ${c.policy})`;
    if (r.error) {
      out.push(`${head}: ${r.error}`);
      continue;
    }
    const details: string[] = [];
    if (r.got !== c.expect) details.push(`expected ${c.expect}, got ${r.got}`);
    details.push(`reasons: ${r.reasons.length ? r.reasons.map(formatReason).join(", ") : "none"}`);
    if (r.missing.length) details.push(`missing: ${r.missing.map(formatReason).join(", ")}`);
    if (r.unexpected.length) details.push(`unexpected: ${r.unexpected.map(formatReason).join(", ")}`);
    out.push(`${head}: ${details.join("; ")}`);
  }
  const passed = results.length - failed.length;
  out.push("");
  out.push(
    `${results.length} case${results.length === 1 ? "" : "s"}: ${passed} passed, ${failed.length} failed`,
  );
  return out.join("\n");
}

/** The CLI command. Exit 0 when every case passes, 1 on any mismatch, 2 on usage, load or key errors. */
export async function policyTestCommand(ctx: PolicyToolContext, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { policies: { type: "string" }, tests: { type: "string" }, audience: { type: "string" } },
    strict: true,
  });
  const dir = ctx.policiesDir(values.policies);
  const testsDir = resolve(values.tests ?? join(dir, "tests"));
  const files = await listTestFiles(testsDir);
  if (files.length === 0) throw new UsageError(`no test files (*.yaml) in ${testsDir}`);
  const cases: PolicyTestCase[] = [];
  const problems: TestFileProblem[] = [];
  for (const file of files) {
    const parsed = parseTestFile(file, await readFile(file, "utf8"));
    cases.push(...parsed.cases);
    problems.push(...parsed.problems);
  }
  if (problems.length) {
    for (const p of problems) console.error(`${p.file}:${p.line}:${p.col}: error: ${p.message}`);
    throw new UsageError(`${problems.length} problem${problems.length === 1 ? "" : "s"} in the test files`);
  }
  if (cases.length === 0) throw new UsageError(`the test files in ${testsDir} have no cases`);
  const bundle = await loadBundle(ctx, dir);
  const audience = values.audience ?? process.env.RUNPASS_AUDIENCE;
  const results = await runCases(bundle, cases, audience ? { audience } : {});
  console.log(formatResults(results));
  if (results.some((r) => r.got === "error")) return 2;
  return results.every((r) => r.ok) ? 0 : 1;
}
