// The linter's view of a policy set: each policy with its issuer kind, its allow/deny conditions and their YAML
// positions, read the way the loader reads them; plus the helpers the checks share and the findings collector.

import {
  DEV_ISSUER_NAME,
  type IssuerKind,
  PRESET_ISSUERS,
  RESERVED_ISSUER_NAMES,
} from "../../oidc/issuers.ts";
import { compileGlob, isGlob, matchGlob } from "../glob.ts";
import { type LoadOptions, POLICY_NAME } from "../load.ts";
import { IssuersFileSchema, type PolicyFile, PolicyFileSchema } from "../schema.ts";
import type { Scalar } from "../types.ts";
import { type Path, type SourceFile, YamlSource } from "../yaml-source.ts";
import { type Finding, type LintRule, lintRule } from "./rules.ts";

export type { Path } from "../yaml-source.ts";

export interface Cond {
  claim: string;
  values: Scalar[];
  /** The YAML path of the condition's key. */
  path: Path;
  /** True when the YAML value is a list (value i lives at [...path, i]). */
  list: boolean;
}

export interface Policy {
  name: string;
  file: string;
  src: YamlSource;
  raw: PolicyFile;
  kind: IssuerKind;
  issuerName: string;
  issuerUrl: string;
  allow: Map<string, Cond>;
  deny: Array<Map<string, Cond>>;
}

export function conditions(raw: Record<string, Scalar | Scalar[]>, path: Path): Map<string, Cond> {
  const out = new Map<string, Cond>();
  for (const [claim, value] of Object.entries(raw)) {
    const list = Array.isArray(value);
    out.set(claim, { claim, values: list ? value : [value], path: [...path, claim], list });
  }
  return out;
}

export function valuePath(cond: Cond, i: number): Path {
  return cond.list ? [...cond.path, i] : cond.path;
}

/** True when a policy value (exact or glob) matches the string `value`. */
export function valueMatches(pattern: Scalar, value: string): boolean {
  if (typeof pattern !== "string") return false;
  return isGlob(pattern) ? matchGlob(compileGlob(pattern), value) : pattern === value;
}

export function exactStrings(cond: Cond | undefined): cond is Cond {
  return cond?.values.every((v) => typeof v === "string" && !isGlob(v)) === true;
}

/** Whether a token whose `claim` is `value` passes this claim's allow condition and every deny entry on that claim alone. */
export function permits(p: Policy, claim: string, value: string): boolean {
  const cond = p.allow.get(claim);
  if (cond && !cond.values.some((v) => valueMatches(v, value))) return false;
  return !p.deny.some((d) => {
    const only = d.size === 1 ? d.get(claim) : undefined;
    return only?.values.some((v) => valueMatches(v, value)) === true;
  });
}

export function quote(v: Scalar): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

export class Findings {
  readonly list: Finding[] = [];

  add(
    p: Policy,
    rule: string,
    path: Path,
    atKey: boolean,
    message: string,
    extra: Partial<Finding> = {},
  ): void {
    const r = lintRule(rule) as LintRule;
    const { line, col } = p.src.locate(path, atKey);
    this.list.push({
      rule,
      severity: r.severity,
      file: p.file,
      line,
      col,
      message,
      why: r.why,
      fix: r.fix,
      ...extra,
    });
  }
}

/** Issuer name → kind and URL: presets, issuers.yaml (when it parses), and the dev issuer in dev checks. */
export function issuerTable(
  issuers: SourceFile | undefined,
  options: LoadOptions,
): Map<string, { kind: IssuerKind; url: string }> {
  const out = new Map<string, { kind: IssuerKind; url: string }>(
    Object.values(PRESET_ISSUERS).map((i) => [i.name, { kind: i.kind, url: i.url }]),
  );
  if (options.dev && options.devIssuer) {
    out.set(DEV_ISSUER_NAME, { kind: options.devIssuer.kind, url: options.devIssuer.url });
  }
  if (issuers) {
    const src = new YamlSource(issuers.path, issuers.text, []);
    const parsed = IssuersFileSchema.safeParse(src.value ?? {});
    if (parsed.success) {
      for (const [name, entry] of Object.entries(parsed.data)) {
        if (!RESERVED_ISSUER_NAMES.has(name)) out.set(name, { kind: entry.kind, url: entry.url });
      }
    }
  }
  return out;
}

/** The policies the loader would look at, parsed and schema-valid (the loader reports everything else). */
export function readPolicies(
  input: { policies: SourceFile[]; issuers?: SourceFile },
  options: LoadOptions,
): Policy[] {
  const issuers = issuerTable(input.issuers, options);
  const out: Policy[] = [];
  const seen = new Set<string>();
  for (const file of [...input.policies].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    const base = file.path.split(/[\\/]/).pop() ?? file.path;
    const name = base.replace(/\.yaml$/, "");
    if (!POLICY_NAME.test(name) || seen.has(name)) continue;
    seen.add(name);
    const src = new YamlSource(file.path, file.text, []);
    if (src.value === undefined) continue;
    const parsed = PolicyFileSchema.safeParse(src.value);
    if (!parsed.success) continue;
    const raw = parsed.data;
    const issuer = issuers.get(raw.issuer);
    if (!issuer) continue;
    out.push({
      name,
      file: file.path,
      src,
      raw,
      kind: issuer.kind,
      issuerName: raw.issuer,
      issuerUrl: issuer.url,
      allow: conditions(raw.allow, ["allow"]),
      deny: (raw.deny ?? []).map((d, i) => conditions(d, ["deny", i])),
    });
  }
  return out;
}

/** Grants that can change things or read secrets: aws, secrets, and github with a write/admin permission. */
export function writeCapable(p: Policy): string[] {
  const g = p.raw.grants;
  const out: string[] = [];
  if (g.aws) out.push("aws");
  if (g.secrets) out.push("secrets");
  if (g.github && Object.values(g.github.permissions).some((l) => l === "write" || l === "admin"))
    out.push("github write");
  return out;
}
