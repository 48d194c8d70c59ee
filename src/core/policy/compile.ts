// Compiles a policy bundle once per isolate: globs tokenised, policies indexed by name, issuers by exact URL.

import { type Clock, systemClock } from "../clock.ts";
import { ConfigError } from "../errors.ts";
import type { IssuerConfig } from "../oidc/issuers.ts";
import { compileGlob, type Glob, isGlob } from "./glob.ts";
import { REQUIRED_PINS } from "./load.ts";
import { policyRecordKey, readPolicyRecord } from "./store-record.ts";
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

/** Where policies too many for the Worker bundle live: records by set version and name. */
export interface PolicyStore {
  /** The policy definition JSON stored under `key`, or null. */
  get(key: string): Promise<string | null>;
}

/** The runtime view of a bundle. Lookup is by name (a Map), so cost does not grow with the number of policies. */
export interface PolicySet {
  version: string;
  dev: boolean;
  /** Bundled policies (empty when the set lives in a policy store: use `lookup`). */
  policies: ReadonlyMap<string, CompiledPolicy>;
  /** Finds a policy by name, from the bundle or the policy store. */
  lookup(name: string): Promise<CompiledPolicy | undefined>;
  /** Trusted issuers keyed by their exact `iss`. */
  issuersByUrl: ReadonlyMap<string, IssuerConfig>;
  /** Audiences named explicitly by policies (RUNPASS_AUDIENCE is added at runtime). */
  policyAudiences: ReadonlySet<string>;
  /** Candidate index: issuer name → pinned claim → exact value → policy names (see candidatesFor). */
  index: ReadonlyMap<string, ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>>;
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
      // The owner pin, when present, decides alone: the owner is who may see reasons (docs/api.md, Redaction).
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

/**
 * Policies compiled on first use: an isolate pays (in time and memory) only for the policies its requests name,
 * which is what lets large sets start fast.
 */
class LazyPolicies implements ReadonlyMap<string, CompiledPolicy> {
  readonly #defs = new Map<string, { def: PolicyDefinition; issuer: IssuerConfig }>();
  readonly #compiled = new Map<string, CompiledPolicy>();

  add(def: PolicyDefinition, issuer: IssuerConfig): void {
    this.#defs.set(def.name, { def, issuer });
  }

  get(name: string): CompiledPolicy | undefined {
    let p = this.#compiled.get(name);
    if (!p) {
      const entry = this.#defs.get(name);
      if (!entry) return undefined;
      p = compilePolicy(entry.def, entry.issuer);
      this.#compiled.set(name, p);
    }
    return p;
  }

  has(name: string): boolean {
    return this.#defs.has(name);
  }

  get size(): number {
    return this.#defs.size;
  }

  *keys(): MapIterator<string> {
    yield* this.#defs.keys();
  }

  *values(): MapIterator<CompiledPolicy> {
    for (const name of this.#defs.keys()) yield this.get(name) as CompiledPolicy;
  }

  *entries(): MapIterator<[string, CompiledPolicy]> {
    for (const name of this.#defs.keys()) yield [name, this.get(name) as CompiledPolicy];
  }

  [Symbol.iterator](): MapIterator<[string, CompiledPolicy]> {
    return this.entries();
  }

  forEach(fn: (value: CompiledPolicy, key: string, map: ReadonlyMap<string, CompiledPolicy>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }

  /** The definitions, without compiling anything. */
  defs(): IterableIterator<{ def: PolicyDefinition; issuer: IssuerConfig }> {
    return this.#defs.values();
  }
}

const STORE_CACHE = 10_000;
/** How long "no such record" is believed: records uploaded after a miss are seen within this time. */
export const STORE_MISS_TTL_MS = 60_000;

/** A record in the policy store that does not verify against this deployment; never used, always a 503. */
export class PolicyRecordError extends ConfigError {
  constructor(name: string, why: string) {
    super(
      `the POLICY_KV record for policy "${name}" does not belong to this deployment's policy set; re-upload the set's records from this build (npm run deploy uploads generated/policy-kv.json)`,
    );
    this.name = "PolicyRecordError";
    this.annotate(`policy record ${name} refused: ${why}`);
  }
}

type StoreEntry = { policy: Promise<CompiledPolicy | undefined>; missUntil?: number };

/** Compiles a whole bundle. Throws if the bundle is inconsistent (a build bug: fail closed). */
export function compilePolicySet(
  bundle: PolicyBundle,
  store?: PolicyStore,
  clock: Clock = systemClock,
): PolicySet {
  const issuersByName = new Map(bundle.issuers.map((i) => [i.name, i]));
  const issuersByUrl = new Map(bundle.issuers.map((i) => [i.url, i]));
  const policies = new LazyPolicies();
  const audiences = new Set<string>();
  for (const def of bundle.policies) {
    const issuer = issuersByName.get(def.issuer);
    if (!issuer)
      throw new Error(`policy ${def.name} references issuer ${def.issuer}, which the bundle lacks`);
    policies.add(def, issuer);
    if (def.audience !== undefined) audiences.add(def.audience);
  }
  for (const a of bundle.audiences ?? []) audiences.add(a);
  if (bundle.store && !/^sha256:[0-9a-f]{64}$/.test(bundle.store.root)) {
    throw new Error("this policy set lives in POLICY_KV but the bundle has no Merkle root for its records");
  }
  const fromStore = new Map<string, StoreEntry>();
  const read = async (root: string, name: string): Promise<CompiledPolicy | undefined> => {
    if (!store) throw new Error("this policy set lives in POLICY_KV, which is not bound");
    const text = await store.get(policyRecordKey(root, name));
    if (text === null) return undefined;
    const record = await readPolicyRecord(text, name, root, bundle.issuers);
    if (!record.ok) throw new PolicyRecordError(name, record.error);
    return compilePolicy(record.value, issuersByName.get(record.value.issuer) as IssuerConfig);
  };
  const lookup = async (name: string): Promise<CompiledPolicy | undefined> => {
    const bundled = policies.get(name);
    if (bundled || !bundle.store) return bundled;
    const root = bundle.store.root;
    const cached = fromStore.get(name);
    if (cached && (cached.missUntil === undefined || clock() < cached.missUntil)) return cached.policy;
    const entry: StoreEntry = { policy: read(root, name) };
    entry.policy.then(
      (p) => {
        if (!p) entry.missUntil = clock() + STORE_MISS_TTL_MS;
      },
      // A failed read or a refused record is not cached: the next request reads again.
      () => {
        if (fromStore.get(name) === entry) fromStore.delete(name);
      },
    );
    fromStore.delete(name);
    if (fromStore.size >= STORE_CACHE) fromStore.delete(fromStore.keys().next().value as string);
    fromStore.set(name, entry);
    return entry.policy;
  };
  return {
    version: bundle.version,
    dev: bundle.dev,
    policies,
    lookup,
    issuersByUrl,
    policyAudiences: audiences,
    index: buildIndex(policies),
  };
}

/**
 * Every policy pins an owner, repository/project or subject exactly (a load-time rule), so indexing each
 * policy under its most selective pin (issuer → claim → value) finds all candidates for a token with a few map
 * lookups, whatever the number of policies.
 */
function buildIndex(policies: LazyPolicies): Map<string, Map<string, Map<string, string[]>>> {
  const index = new Map<string, Map<string, Map<string, string[]>>>();
  for (const { def, issuer } of policies.defs()) {
    const key = indexKey(def, issuer);
    if (!key) continue;
    const [claim, values] = key;
    let byClaim = index.get(issuer.name);
    if (!byClaim) {
      byClaim = new Map();
      index.set(issuer.name, byClaim);
    }
    let byValue = byClaim.get(claim);
    if (!byValue) {
      byValue = new Map();
      byClaim.set(claim, byValue);
    }
    for (const value of new Set(values)) {
      const list = byValue.get(value);
      if (list) list.push(def.name);
      else byValue.set(value, [def.name]);
    }
  }
  return index;
}

// The most selective exact pin a policy has: a repository or project beats its owner.
const INDEX_CLAIMS = ["repository_id", "project_id", "sub", "repository_owner_id", "namespace_id"];

function indexKey(def: PolicyDefinition, issuer: IssuerConfig): [string, readonly string[]] | undefined {
  for (const claim of [...INDEX_CLAIMS, ...REQUIRED_PINS[issuer.kind]]) {
    const values = def.allow[claim];
    if (values?.length && values.every((v) => typeof v === "string" && !isGlob(v))) {
      return [claim, values as string[]];
    }
  }
  return undefined;
}

/** The policies that could match claims from `issuerName`: those whose pin equals the claim's value. */
export function candidatesFor(
  set: Pick<PolicySet, "index" | "policies">,
  issuerName: string,
  claims: Record<string, unknown>,
): CompiledPolicy[] {
  const byClaim = set.index.get(issuerName);
  if (!byClaim) return [];
  const out: CompiledPolicy[] = [];
  for (const [claim, byValue] of byClaim) {
    const v = claims[claim];
    if (typeof v !== "string") continue;
    for (const name of byValue.get(v) ?? []) {
      const policy = set.policies.get(name);
      if (policy) out.push(policy);
    }
  }
  return out;
}
