// Turns policy YAML sources into a validated PolicyBundle, with file:line:col problems for everything refused.

import {
  DEFAULT_LEASE_TTL_SECONDS,
  DEFAULT_MAX_TOKEN_AGE_SECONDS,
  MAX_CONFIGURABLE_TOKEN_AGE_SECONDS,
  MAX_PATTERN_LENGTH,
  MAX_POLICY_TTL_SECONDS,
} from "../constants.ts";
import { sha256 } from "../crypto.ts";
import { parseDuration } from "../duration.ts";
import { canonicalJson } from "../encoding.ts";
import type { LoadContext } from "../grants/module.ts";
import { GRANT_MODULES, MINT_ORDER } from "../grants/registry.ts";
import {
  ASYMMETRIC_ALGORITHMS,
  checkIssuerUrl,
  DEV_ISSUER_NAME,
  ISSUER_NAME,
  type IssuerConfig,
  type IssuerKind,
  PRESET_ISSUERS,
  RESERVED_ISSUER_NAMES,
} from "../oidc/issuers.ts";
import { globProblem, isGlob } from "./glob.ts";
import {
  type IssuersFile,
  IssuersFileSchema,
  type PolicyFile,
  PolicyFileSchema,
  TYPE_HINTS,
} from "./schema.ts";
import { reportSchemaIssues } from "./schema-problems.ts";
import type { ConditionMap, GrantName, Grants, PolicyBundle, PolicyDefinition, Scalar } from "./types.ts";
import { type Path, type Problem, type SourceFile, YamlSource } from "./yaml-source.ts";

export type { Problem, SourceFile } from "./yaml-source.ts";

export interface LoadOptions {
  /** RUNPASS_DEV=1 build: loopback http issuers and the dev issuer are allowed. */
  dev: boolean;
  /** The local dev issuer (dev builds only); policies with `issuer: dev` use it. */
  devIssuer?: IssuerConfig;
}

export interface LoadResult {
  /** Present only when there are no error-level problems. */
  bundle?: PolicyBundle;
  problems: Problem[];
  /** Informational lines (e.g. dev-only policies left out of a production build). */
  notices: string[];
}

/** Policy names are file names and appear in URLs, audit records and CLI flags. */
export const POLICY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Claim names usable in allow/deny. */
const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_.:/-]{0,127}$/;

/** Claims checked by verification itself; matching them in a policy would only confuse. */
const VERIFICATION_CLAIMS = new Set(["iss", "aud", "exp", "iat", "nbf"]);

/** The claim(s) a policy of each kind must pin exactly (docs/policies.md, Matching rules). */
export const REQUIRED_PINS: Record<IssuerKind, readonly string[]> = {
  github: ["repository_owner_id", "repository_id"],
  gitlab: ["namespace_id", "project_id"],
  generic: ["sub"],
};

function loadIssuers(src: YamlSource | undefined, options: LoadOptions): Map<string, IssuerConfig> {
  const issuers = new Map<string, IssuerConfig>(Object.entries(PRESET_ISSUERS));
  if (options.dev && options.devIssuer) issuers.set(DEV_ISSUER_NAME, options.devIssuer);
  if (!src || src.value === undefined || src.value === null) return issuers;
  const parsed = IssuersFileSchema.safeParse(src.value);
  if (!parsed.success) {
    reportSchemaIssues(src, parsed.error.issues, src.value);
    return issuers;
  }
  const file: IssuersFile = parsed.data;
  const urls = new Map<string, string>([...issuers.values()].map((i) => [i.url, i.name]));
  for (const [name, entry] of Object.entries(file)) {
    if (!ISSUER_NAME.test(name)) {
      src.error([name], `issuer name "${name}" must be lowercase letters, digits, "-" or "_"`, true);
      continue;
    }
    if (RESERVED_ISSUER_NAMES.has(name)) {
      src.error([name], `"${name}" is a built-in issuer name; choose another name`, true);
      continue;
    }
    const urlProblem = checkIssuerUrl(entry.url, options.dev);
    if (urlProblem) src.error([name, "url"], `issuer ${name}: ${urlProblem}`);
    if (entry.jwks_uri !== undefined) {
      const p = checkIssuerUrl(entry.jwks_uri, options.dev);
      if (p) src.error([name, "jwks_uri"], `issuer ${name}: ${p}`);
    }
    const clash = urls.get(entry.url);
    if (clash)
      src.error([name, "url"], `issuer ${name} has the same url as issuer ${clash}; one url, one issuer`);
    urls.set(entry.url, name);
    let maxTokenAge: number = DEFAULT_MAX_TOKEN_AGE_SECONDS[entry.kind];
    if (entry.max_token_age !== undefined) {
      const secs = parseDuration(entry.max_token_age);
      if (secs === undefined)
        src.error([name, "max_token_age"], `max_token_age: expected ${TYPE_HINTS.max_token_age}`);
      else if (secs > MAX_CONFIGURABLE_TOKEN_AGE_SECONDS)
        src.error([name, "max_token_age"], "max_token_age may be at most 24h");
      else maxTokenAge = secs;
    }
    let algorithms = entry.kind === "generic" ? ["RS256", "ES256"] : ["RS256"];
    if (entry.algorithms !== undefined) {
      if (entry.kind !== "generic") {
        src.error(
          [name, "algorithms"],
          `${entry.kind} issuers sign with RS256 only; algorithms is for generic issuers`,
        );
      } else {
        const bad = entry.algorithms.filter((a) => !ASYMMETRIC_ALGORITHMS.includes(a));
        if (bad.length || entry.algorithms.length === 0)
          src.error(
            [name, "algorithms"],
            `algorithms must be a non-empty list of ${ASYMMETRIC_ALGORITHMS.join(", ")}`,
          );
        else algorithms = entry.algorithms;
      }
    }
    issuers.set(name, {
      name,
      url: entry.url,
      kind: entry.kind,
      ...(entry.jwks_uri !== undefined ? { jwksUri: entry.jwks_uri } : {}),
      maxTokenAge,
      algorithms,
    });
  }
  return issuers;
}

/** Keys that would rewrite an object's prototype; schema parsing drops them silently, so they are refused first. */
const RESERVED_KEYS = new Set(["__proto__"]);

function reservedKeys(src: YamlSource): boolean {
  let found = false;
  const walk = (value: unknown, path: Path): void => {
    if (Array.isArray(value)) {
      for (const [i, v] of value.entries()) walk(v, [...path, i]);
    } else if (value !== null && typeof value === "object") {
      for (const key of Object.getOwnPropertyNames(value)) {
        if (RESERVED_KEYS.has(key)) {
          src.error([...path, key], `"${key}" is a reserved name, not a claim or setting`, true);
          found = true;
        } else {
          walk((value as Record<string, unknown>)[key], [...path, key]);
        }
      }
    }
  };
  walk(src.value, []);
  return found;
}

function normaliseConditions(
  src: YamlSource,
  path: Path,
  raw: Record<string, Scalar | Scalar[]>,
): ConditionMap {
  const out: ConditionMap = {};
  const keys = Object.keys(raw);
  if (keys.length === 0) src.error(path, `${path.join(".")} must name at least one claim`);
  for (const claim of keys) {
    const at = [...path, claim];
    if (!CLAIM_NAME.test(claim)) {
      src.error(at, `"${claim}" is not a valid claim name`, true);
      continue;
    }
    if (VERIFICATION_CLAIMS.has(claim)) {
      src.error(
        at,
        `"${claim}" is checked by token verification; use the policy's issuer/audience keys instead of matching it`,
        true,
      );
      continue;
    }
    const value = raw[claim] as Scalar | Scalar[];
    const values = Array.isArray(value) ? value : [value];
    if (values.length === 0) src.error(at, `${claim}: an empty list matches nothing`);
    for (const [i, v] of values.entries()) {
      const vAt = Array.isArray(value) ? [...at, i] : at;
      if (typeof v === "string") {
        if (v.length === 0) src.error(vAt, `${claim}: empty string`);
        if (v.length > MAX_PATTERN_LENGTH)
          src.error(vAt, `${claim}: longer than ${MAX_PATTERN_LENGTH} characters`);
        const gp = isGlob(v) ? globProblem(v) : undefined;
        if (gp) src.error(vAt, `${claim}: ${gp}`);
      } else if (typeof v === "number" && !Number.isFinite(v)) {
        src.error(vAt, `${claim}: not a finite number`);
      }
    }
    out[claim] = values;
  }
  return out;
}

function parseTtl(src: YamlSource, path: Path, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const secs = parseDuration(text);
  if (secs === undefined) {
    src.error(path, `${path.join(".")}: expected ${TYPE_HINTS.ttl}, got "${text}"`);
    return fallback;
  }
  if (secs > MAX_POLICY_TTL_SECONDS) src.error(path, `${path.join(".")}: at most 24h`);
  return secs;
}

/** Loads one grant's YAML with its module (typed by name: TypeScript cannot correlate the registry's entries). */
function loadGrant(name: GrantName, raw: unknown, context: LoadContext): unknown {
  return (GRANT_MODULES[name].load as (raw: unknown, context: LoadContext) => unknown)(raw, context);
}

function loadPolicy(
  name: string,
  src: YamlSource,
  issuers: Map<string, IssuerConfig>,
): Omit<PolicyDefinition, "version"> | undefined {
  if (src.value === undefined) return undefined;
  if (reservedKeys(src)) return undefined;
  const parsed = PolicyFileSchema.safeParse(src.value);
  if (!parsed.success) {
    reportSchemaIssues(src, parsed.error.issues, src.value);
    return undefined;
  }
  const file: PolicyFile = parsed.data;
  const before = src.problems.filter((p) => p.severity === "error").length;

  const issuer = issuers.get(file.issuer);
  if (!issuer) {
    src.error(
      ["issuer"],
      `unknown issuer "${file.issuer}": use github, gitlab, or declare it in issuers.yaml`,
    );
  }
  if (file.audience !== undefined && file.audience.length === 0)
    src.error(["audience"], "audience must not be empty");

  const allow = normaliseConditions(src, ["allow"], file.allow);
  const deny = (file.deny ?? []).map((d, i) => normaliseConditions(src, ["deny", i], d));
  const ttl = parseTtl(src, ["ttl"], file.ttl, DEFAULT_LEASE_TTL_SECONDS);

  const grants: Grants = {};
  const context: LoadContext = {
    policyName: name,
    leaseTtl: ttl,
    report: (path, message, atKey = false) => src.error(path, message, atKey),
    duration: (path, text, fallback) => parseTtl(src, path, text, fallback),
  };
  for (const name of MINT_ORDER) {
    const raw = file.grants[name];
    if (raw !== undefined) (grants as Record<GrantName, unknown>)[name] = loadGrant(name, raw, context);
  }
  if (file.deliver_once !== undefined && !file.grants.secrets) {
    src.error(["deliver_once"], "deliver_once applies to a secrets grant, and this policy has none");
  }
  if (Object.keys(grants).length === 0) src.error(["grants"], "a policy must have at least one grant");

  if (issuer) {
    const pins = REQUIRED_PINS[issuer.kind];
    const pinned = pins.some((claim) => {
      const values = allow[claim];
      return values?.every((v) => typeof v === "string" && !isGlob(v)) === true;
    });
    if (!pinned) {
      const what = pins.map((p) => `"${p}"`).join(" or ");
      src.error(
        ["allow"],
        `a ${issuer.kind}-kind policy must pin ${what} in allow with exact string values (IDs, not names: names can be re-registered)`,
        false,
        "error",
        "RP001",
      );
    }
  }

  if (src.problems.filter((p) => p.severity === "error").length > before || !issuer) return undefined;
  return {
    name,
    ...(file.description !== undefined ? { description: file.description } : {}),
    issuer: issuer.name,
    ...(file.audience !== undefined ? { audience: file.audience } : {}),
    allow,
    deny,
    ttl,
    ...(file.deliver_once ? { deliver_once: true } : {}),
    ...(file.sensitive ? { sensitive: true } : {}),
    grants,
  };
}

/** A policy's `policy_version`: `sha256:` of its compiled form and its issuer. */
export function policyVersion(def: Omit<PolicyDefinition, "version">, issuer: IssuerConfig): Promise<string> {
  return sha256(canonicalJson({ policy: def, issuer }));
}

/**
 * Loads one policy's YAML source against a fixed set of issuers (a built bundle's) with exactly the rules
 * `loadPolicySet` applies, so a record read back from a policy store is held to the bundled policies' standard.
 */
export async function loadPolicyRecord(
  name: string,
  text: string,
  issuers: readonly IssuerConfig[],
): Promise<{ def?: PolicyDefinition; problems: Problem[] }> {
  const problems: Problem[] = [];
  const file = `${name}.yaml`;
  if (!POLICY_NAME.test(name)) {
    problems.push({ file, line: 1, col: 1, severity: "error", message: `"${name}" is not a policy name` });
    return { problems };
  }
  const byName = new Map(issuers.map((i) => [i.name, i]));
  const def = loadPolicy(name, new YamlSource(file, text, problems), byName);
  if (!def || problems.some((p) => p.severity === "error")) return { problems };
  return {
    def: { ...def, version: await policyVersion(def, byName.get(def.issuer) as IssuerConfig) },
    problems,
  };
}

/** Validates policy sources and builds the bundle. Pure: the caller reads files. */
export async function loadPolicySet(
  input: { policies: SourceFile[]; issuers?: SourceFile },
  options: LoadOptions,
): Promise<LoadResult> {
  const problems: Problem[] = [];
  const notices: string[] = [];
  const issuersSrc = input.issuers
    ? new YamlSource(input.issuers.path, input.issuers.text, problems)
    : undefined;
  const issuers = loadIssuers(issuersSrc, options);

  const definitions: Array<Omit<PolicyDefinition, "version">> = [];
  const seen = new Set<string>();
  for (const file of [...input.policies].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    const base = file.path.split(/[\\/]/).pop() ?? file.path;
    const name = base.replace(/\.yaml$/, "");
    if (!POLICY_NAME.test(name)) {
      problems.push({
        file: file.path,
        line: 1,
        col: 1,
        severity: "error",
        message: `policy file name "${base}" must be <name>.yaml with letters, digits, ".", "_" or "-"`,
      });
      continue;
    }
    if (seen.has(name)) continue;
    seen.add(name);
    const src = new YamlSource(file.path, file.text, problems);
    const raw = src.value as Record<string, unknown> | undefined;
    if (raw && typeof raw === "object" && raw.issuer === DEV_ISSUER_NAME && !options.dev) {
      notices.push(`${file.path}: dev-only policy "${name}" (issuer: dev) is not part of a production build`);
      continue;
    }
    const def = loadPolicy(name, src, issuers);
    if (def) definitions.push(def);
  }

  if (problems.some((p) => p.severity === "error")) return { problems, notices };

  const referenced = new Map<string, IssuerConfig>();
  for (const d of definitions) referenced.set(d.issuer, issuers.get(d.issuer) as IssuerConfig);
  const policies: PolicyDefinition[] = [];
  for (const d of definitions) {
    policies.push({ ...d, version: await policyVersion(d, referenced.get(d.issuer) as IssuerConfig) });
  }
  const issuerList = [...referenced.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  const version = await sha256(
    canonicalJson({
      dev: options.dev,
      issuers: issuerList,
      policies: policies.map((p) => [p.name, p.version]),
    }),
  );
  return {
    bundle: { format: 1, dev: options.dev, version, issuers: issuerList, policies },
    problems,
    notices,
  };
}
