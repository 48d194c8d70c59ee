// Compiles a policy bundle once per isolate: globs tokenised, policies indexed by name, issuers by exact URL.

import type { IssuerConfig } from "../oidc/issuers.ts";
import { compileGlob, type Glob, isGlob } from "./glob.ts";
import { REQUIRED_PINS } from "./load.ts";
import type { ConditionMap, PolicyBundle, PolicyDefinition, Scalar } from "./types.ts";

export type Matcher = { kind: "exact"; value: Scalar } | { kind: "glob"; glob: Glob };

export interface CompiledCondition {
  claim: string;
  expected: Scalar[];
  matchers: Matcher[];
}

export interface CompiledPolicy {
  def: PolicyDefinition;
  issuer: IssuerConfig;
  allow: CompiledCondition[];
  deny: CompiledCondition[][];
  /**
   * Who may see this policy's reasons: the exact values of the owner pin (repository_owner_id /
   * namespace_id) or, when the policy pins no owner, of the repository/project (or generic `sub`) pin.
   */
  pins: Map<string, Set<string>>;
}

/** The runtime view of a bundle. Lookup is by name (a Map), so cost does not grow with the number of policies. */
export interface PolicySet {
  version: string;
  dev: boolean;
  policies: ReadonlyMap<string, CompiledPolicy>;
  /** Trusted issuers keyed by their exact `iss`. */
  issuersByUrl: ReadonlyMap<string, IssuerConfig>;
  /** Audiences named explicitly by policies (RUNPASS_AUDIENCE is added at runtime). */
  policyAudiences: ReadonlySet<string>;
  /** Candidate index: issuer name → pinned claim → exact value → policies (see candidatesFor). */
  index: ReadonlyMap<string, ReadonlyMap<string, ReadonlyMap<string, readonly CompiledPolicy[]>>>;
}

function compileConditions(map: ConditionMap): CompiledCondition[] {
  return Object.entries(map).map(([claim, expected]) => ({
    claim,
    expected,
    matchers: expected.map(
      (v): Matcher =>
        typeof v === "string" && isGlob(v)
          ? { kind: "glob", glob: compileGlob(v) }
          : { kind: "exact", value: v },
    ),
  }));
}

/** Compiles one policy against its issuer. */
export function compilePolicy(def: PolicyDefinition, issuer: IssuerConfig): CompiledPolicy {
  const pins = new Map<string, Set<string>>();
  for (const claim of REQUIRED_PINS[issuer.kind]) {
    const values = def.allow[claim];
    if (values?.every((v) => typeof v === "string" && !isGlob(v))) {
      pins.set(claim, new Set(values as string[]));
      // The owner pin, when present, decides alone: the owner is who DESIGN §2 lets see reasons.
      break;
    }
  }
  return {
    def,
    issuer,
    allow: compileConditions(def.allow),
    deny: def.deny.map(compileConditions),
    pins,
  };
}

/** Compiles a whole bundle. Throws if the bundle is inconsistent (a build bug: fail closed). */
export function compilePolicySet(bundle: PolicyBundle): PolicySet {
  const issuersByName = new Map(bundle.issuers.map((i) => [i.name, i]));
  const issuersByUrl = new Map(bundle.issuers.map((i) => [i.url, i]));
  const policies = new Map<string, CompiledPolicy>();
  const audiences = new Set<string>();
  for (const def of bundle.policies) {
    const issuer = issuersByName.get(def.issuer);
    if (!issuer)
      throw new Error(`policy ${def.name} references issuer ${def.issuer}, which the bundle lacks`);
    policies.set(def.name, compilePolicy(def, issuer));
    if (def.audience !== undefined) audiences.add(def.audience);
  }
  return {
    version: bundle.version,
    dev: bundle.dev,
    policies,
    issuersByUrl,
    policyAudiences: audiences,
    index: buildIndex(policies.values()),
  };
}

/**
 * Every policy pins an owner, repository/project or subject exactly (a load-time rule), so indexing each
 * policy under its first pin (issuer → claim → value) finds all candidates for a token with a few map
 * lookups, whatever the number of policies.
 */
function buildIndex(
  policies: Iterable<CompiledPolicy>,
): Map<string, Map<string, Map<string, CompiledPolicy[]>>> {
  const index = new Map<string, Map<string, Map<string, CompiledPolicy[]>>>();
  for (const policy of policies) {
    const first = policy.pins.entries().next();
    if (first.done) continue;
    const [claim, values] = first.value;
    let byClaim = index.get(policy.issuer.name);
    if (!byClaim) index.set(policy.issuer.name, (byClaim = new Map()));
    let byValue = byClaim.get(claim);
    if (!byValue) byClaim.set(claim, (byValue = new Map()));
    for (const value of values) {
      const list = byValue.get(value);
      if (list) list.push(policy);
      else byValue.set(value, [policy]);
    }
  }
  return index;
}

/** The policies that could match claims from `issuerName`: those whose pin equals the claim's value. */
export function candidatesFor(
  set: Pick<PolicySet, "index">,
  issuerName: string,
  claims: Record<string, unknown>,
): CompiledPolicy[] {
  const byClaim = set.index.get(issuerName);
  if (!byClaim) return [];
  const out: CompiledPolicy[] = [];
  for (const [claim, byValue] of byClaim) {
    const v = claims[claim];
    if (typeof v !== "string") continue;
    const list = byValue.get(v);
    if (list) out.push(...list);
  }
  return out;
}
