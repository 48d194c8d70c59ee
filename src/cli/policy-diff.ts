// `runpass policy diff --from REF`: what a change to the policies folder does to access, in words a reviewer can check.

import { execFile } from "node:child_process";
import { parseArgs } from "node:util";
import type { IssuerConfig } from "../core/oidc/issuers.ts";
import { type Change, diffPolicy, summarisePolicy } from "../core/policy/diff.ts";
import { type LoadOptions, loadPolicySet, type SourceFile } from "../core/policy/load.ts";
import type { PolicyDefinition } from "../core/policy/types.ts";
import { devIssuerConfig, devPort, ensureDevKeys } from "./dev-keys.ts";
import { devMode, type PolicyToolContext } from "./policy-context.ts";
import { readPolicyDir } from "./policy-files.ts";
import { UsageError } from "./usage-error.ts";

export interface PolicyDiff {
  from: string;
  dir: string;
  /** The folder's path inside the repository. */
  path: string;
  added: Array<{ policy: string; summary: string }>;
  removed: string[];
  changed: Array<{ policy: string; changes: Change[] }>;
  unchanged: string[];
  notes: string[];
}

/** One side's policies, each loaded on its own so one broken file does not hide the others. */
interface Side {
  policies: Map<string, { def?: PolicyDefinition; issuer?: IssuerConfig; errors: number }>;
  /** Dev-only policies (issuer: dev) a production load leaves out. */
  devOnly: Set<string>;
  notes: string[];
}

async function loadSide(
  files: SourceFile[],
  issuers: SourceFile | undefined,
  options: LoadOptions,
  label: string,
): Promise<Side> {
  const side: Side = { policies: new Map(), devOnly: new Set(), notes: [] };
  if (issuers) {
    const only = await loadPolicySet({ policies: [], issuers }, options);
    const errors = only.problems.filter((p) => p.severity === "error").length;
    if (errors)
      side.notes.push(`${label}: issuers.yaml does not load (${errors} error${errors === 1 ? "" : "s"})`);
  }
  for (const file of files) {
    const base = file.path.split(/[\\/]/).pop() ?? file.path;
    const name = base.replace(/\.yaml$/, "");
    const result = await loadPolicySet({ policies: [file], ...(issuers ? { issuers } : {}) }, options);
    const def = result.bundle?.policies[0];
    if (def) {
      side.policies.set(name, {
        def,
        issuer: result.bundle?.issuers.find((i) => i.name === def.issuer),
        errors: 0,
      });
    } else if (result.notices.length) {
      side.devOnly.add(name);
    } else {
      const errors = result.problems.filter((p) => p.severity === "error" && p.file === file.path).length;
      side.policies.set(name, { errors: Math.max(errors, 1) });
    }
  }
  return side;
}

function git(cwd: string, args: string[]): Promise<string> {
  return new Promise((done, fail) => {
    execFile("git", args, { cwd, maxBuffer: 64 * 1024 * 1024, encoding: "utf8" }, (error, stdout, stderr) => {
      if (error) fail(Object.assign(new Error(stderr.trim() || error.message), { exitCode: error.code }));
      else done(stdout);
    });
  });
}

/** The policies folder as it was at `ref`: its `*.yaml` files and issuers.yaml (top level only, like the build). */
async function readPolicyDirAt(
  dir: string,
  ref: string,
): Promise<{ policies: SourceFile[]; issuers?: SourceFile; missing: boolean; prefix: string }> {
  const prefix = (await git(dir, ["rev-parse", "--show-prefix"])).trim();
  // From the top level: run in a subfolder, ls-tree would filter the listing by that subfolder's path.
  const top = (await git(dir, ["rev-parse", "--show-toplevel"])).trim();
  let listing: string;
  try {
    listing = await git(top, ["ls-tree", "-z", `${ref}:${prefix}`]);
  } catch {
    return { policies: [], missing: true, prefix };
  }
  const policies: SourceFile[] = [];
  let issuers: SourceFile | undefined;
  for (const entry of listing.split("\0")) {
    const tab = entry.indexOf("\t");
    if (tab < 0) continue;
    const [mode, type] = entry.slice(0, tab).split(" ");
    const name = entry.slice(tab + 1);
    if (type !== "blob" || mode === "120000" || !name.endsWith(".yaml")) continue;
    const text = await git(top, ["cat-file", "blob", `${ref}:${prefix}${name}`]);
    const file = { path: `${ref}:${prefix}${name}`, text };
    if (name === "issuers.yaml") issuers = file;
    else policies.push(file);
  }
  return { policies, ...(issuers ? { issuers } : {}), missing: false, prefix };
}

/** Compares the policies folder at `from` with the working tree. */
export async function diffPolicies(ctx: PolicyToolContext, dir: string, from: string): Promise<PolicyDiff> {
  try {
    await git(dir, ["rev-parse", "--show-toplevel"]);
  } catch {
    throw new UsageError(`${dir} is not inside a git repository`);
  }
  try {
    await git(dir, ["rev-parse", "--verify", "--quiet", `${from}^{commit}`]);
  } catch {
    throw new UsageError(`--from "${from}" is not a commit in this repository`);
  }
  const dev = devMode();
  const options: LoadOptions = {
    dev,
    ...(dev ? { devIssuer: devIssuerConfig(await ensureDevKeys(ctx.root), devPort()) } : {}),
  };
  const then = await readPolicyDirAt(dir, from);
  const now = await readPolicyDir(dir);
  const before = await loadSide(then.policies, then.issuers, options, from);
  const after = await loadSide(now.policies, now.issuers, options, "working tree");
  const result: PolicyDiff = {
    from,
    dir,
    path: then.prefix.replace(/\/$/, "") || ".",
    added: [],
    removed: [],
    changed: [],
    unchanged: [],
    notes: [...before.notes, ...after.notes],
  };
  for (const name of [...new Set([...before.devOnly, ...after.devOnly])].sort())
    result.notes.push(
      `${name}: dev-only policy (issuer: dev), not compared; set RUNPASS_DEV=1 to include it`,
    );
  if (then.missing) result.notes.push(`${from}: the policies folder did not exist; every policy is new`);
  const names = [...new Set([...before.policies.keys(), ...after.policies.keys()])].sort();
  for (const name of names) {
    const a = before.policies.get(name);
    const b = after.policies.get(name);
    if (!a && b) {
      result.added.push({
        policy: name,
        summary: b.def
          ? summarisePolicy(b.def)
          : `does not load (${b.errors} error${b.errors === 1 ? "" : "s"}; run policy check)`,
      });
    } else if (a && !b) {
      result.removed.push(name);
    } else if (a && b) {
      let changes: Change[];
      if (a.def && b.def) changes = diffPolicy(a.def, b.def, { before: a.issuer, after: b.issuer });
      else if (!b.def)
        changes = [
          {
            area: "load",
            effect: "changed",
            text: `does not load in the working tree (${b.errors} error${b.errors === 1 ? "" : "s"}; run policy check)`,
          },
        ];
      else changes = [{ area: "load", effect: "changed", text: `did not load at ${from}; it loads now` }];
      if (changes.length) result.changed.push({ policy: name, changes });
      else result.unchanged.push(name);
    }
  }
  return result;
}

/** The text report. */
export function formatDiff(d: PolicyDiff): string {
  const out: string[] = [`policy changes from ${d.from} to the working tree (${d.path})`];
  if (d.added.length) {
    out.push("", "added:");
    for (const a of d.added) out.push(`  + ${a.policy}: ${a.summary}`);
  }
  if (d.removed.length) {
    out.push("", "removed:");
    for (const r of d.removed) out.push(`  - ${r}`);
  }
  if (d.changed.length) {
    out.push("", "changed:");
    for (const c of d.changed)
      for (const ch of c.changes) out.push(`  ${c.policy}: ${ch.text} (${ch.effect})`);
  }
  if (d.notes.length) {
    out.push("", "notes:");
    for (const n of d.notes) out.push(`  ${n}`);
  }
  const wider = d.changed.filter((c) => c.changes.some((ch) => ch.effect === "wider")).map((c) => c.policy);
  out.push(
    "",
    `summary: ${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed, ${d.unchanged.length} unchanged`,
  );
  if (d.added.length || wider.length)
    out.push(`widens access: ${[...d.added.map((a) => `${a.policy} (new)`), ...wider].join(", ")}`);
  else if (d.changed.length || d.removed.length) out.push("widens access: nothing");
  return out.join("\n");
}

export async function policyDiffCommand(ctx: PolicyToolContext, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      from: { type: "string" },
      policies: { type: "string" },
      format: { type: "string", default: "text" },
    },
    strict: true,
  });
  if (!values.from) throw new UsageError("policy diff needs --from REF");
  if (values.format !== "text" && values.format !== "json")
    throw new UsageError(`--format must be text or json, not "${values.format}"`);
  const diff = await diffPolicies(ctx, ctx.policiesDir(values.policies), values.from);
  console.log(values.format === "json" ? JSON.stringify(diff, null, 2) : formatDiff(diff));
  return 0;
}
