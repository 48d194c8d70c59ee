// Grant planning and issuance for one lease, over the grant registry: every requested grant is planned (templates
// filled, limits checked) before any upstream call; then each is minted in registry order, and a failure recalls
// what was already minted.

import { RunpassError } from "../errors.ts";
import type { LeaseGrant } from "../lease.ts";
import type { GrantName, Grants } from "../policy/types.ts";
import type {
  ExchangeInputs,
  GrantSubject,
  IssueDeps,
  IssuePorts,
  LeaseRef,
  Minted,
  PlanContext,
} from "./module.ts";
import { type Credentials, type GrantPlan, grantModule, MINT_ORDER } from "./registry.ts";
import { UpstreamError, upstreamFailure } from "./upstream.ts";

export type { ExchangeInputs, GrantSubject, IssueDeps, IssuePorts, LeaseRef } from "./module.ts";
export type { Credentials, GrantPlan } from "./registry.ts";

export interface Issued {
  credentials: Credentials;
  grants: LeaseGrant[];
  /** ENV_NAME → "base64" for secrets stored as binary (delivered base64-encoded). */
  encodings: Record<string, "base64">;
}

function planOne<K extends GrantName>(name: K, def: NonNullable<Grants[K]>, ctx: PlanContext): unknown {
  return grantModule(name).plan(def, ctx);
}

/** Resolves templates and limits for the requested grants the policy has. Throws RunpassError (nothing called upstream). */
export function planGrants(
  grants: Grants,
  names: GrantName[],
  subject: GrantSubject,
  lease: LeaseRef,
  now: number,
  inputs: ExchangeInputs = {},
): GrantPlan {
  const plan: GrantPlan = {};
  const ctx = { subject, lease, now, inputs };
  for (const name of MINT_ORDER) {
    const def = grants[name];
    if (def === undefined || !names.includes(name)) continue;
    (plan as Record<GrantName, unknown>)[name] = planOne(name, def, ctx);
  }
  return plan;
}

/** Whether a plan mints a grant that costs upstream quota or reads the store (see GrantModule.costly). */
export function planIsCostly(plan: GrantPlan): boolean {
  return MINT_ORDER.some((name) => plan[name] !== undefined && grantModule(name).costly);
}

function mintOne<K extends GrantName>(
  name: K,
  plan: NonNullable<GrantPlan[K]>,
  ctx: Parameters<ReturnType<typeof grantModule<K>>["mint"]>[1],
): Promise<Minted<unknown>> {
  return grantModule(name).mint(plan, ctx);
}

/**
 * Mints every planned grant. On any failure, what was already minted is recalled where its grant can recall it,
 * nothing is returned, and the thrown RunpassError carries what happened for the audit record.
 */
export async function issueGrants(
  plan: GrantPlan,
  subject: GrantSubject,
  lease: LeaseRef,
  policy: { name: string; version: string },
  deps: IssueDeps,
  now: number,
): Promise<Issued> {
  const issued: Issued = { credentials: {}, grants: [], encodings: {} };
  const minted: GrantName[] = [];
  let current: GrantName | undefined;
  const ctx = { subject, lease, policy, deps, now };
  try {
    for (const name of MINT_ORDER) {
      const p = plan[name];
      if (p === undefined) continue;
      current = name;
      const m = await mintOne(name, p, ctx);
      (issued.credentials as Record<GrantName, unknown>)[name] = m.credential;
      issued.grants.push(...m.grants);
      Object.assign(issued.encodings, m.encodings ?? {});
      minted.push(name);
    }
  } catch (e) {
    const what = minted.length
      ? `minted before the failure: ${minted.join(", ")}; ${await recallIssued(deps, issued.credentials)}`
      : "nothing minted";
    if (e instanceof UpstreamError && current) {
      const service = grantModule(current).upstream ?? current;
      throw upstreamFailure(service, e, `${service}: ${e.detail.slice(0, 300)} (${what})`);
    }
    if (e instanceof RunpassError) throw minted.length || !e.auditDetail ? e.annotate(what) : e;
    throw e;
  }
  return issued;
}

function recallOne<K extends GrantName>(
  name: K,
  credential: NonNullable<Credentials[K]>,
  deps: IssuePorts,
): Promise<string> | undefined {
  return grantModule(name).recall?.(credential, deps);
}

/** Recalls what can be recalled of credentials that will not be handed out; says what happened. */
export async function recallIssued(deps: IssuePorts, credentials: Credentials): Promise<string> {
  const results: string[] = [];
  for (const name of MINT_ORDER) {
    const credential = credentials[name];
    if (credential === undefined) continue;
    const recalled = recallOne(name, credential as NonNullable<Credentials[typeof name]>, deps);
    if (recalled) results.push(await recalled);
  }
  return results.length ? results.join("; ") : "nothing to recall";
}

/** Every credential value in a response's credentials (what clients mask and leak checks recognise). */
export function credentialValues(credentials: Credentials): string[] {
  return MINT_ORDER.flatMap((name) => {
    const credential = credentials[name];
    return credential === undefined
      ? []
      : grantModule(name).secretValues(credential as NonNullable<Credentials[typeof name]>);
  });
}
