// Deciding, shared by exchange, explain and the offline CLI: the token verifies, the named policy exists and
// matches, the requested grants are the policy's. Never touches the ledger and never issues anything.

import { ConfigError, RunpassError } from "./errors.ts";
import { type VerifiedToken, type VerifierOptions, verifyToken } from "./oidc/verify.ts";
import type { CompiledPolicy, PolicySet } from "./policy/compile.ts";
import { type Evaluation, evaluatePolicy, reasonsVisible } from "./policy/match.ts";
import type { GrantName } from "./policy/types.ts";

/** A request that may be served, and what was decided about it. */
export interface Authorized {
  token: VerifiedToken;
  policy: CompiledPolicy;
  grants: GrantName[];
  evaluation: Evaluation;
  visible: boolean;
}

export type Authorization =
  | { ok: true; value: Authorized }
  | { ok: false; error: RunpassError; token?: VerifiedToken; policy?: CompiledPolicy };

/** The same sentence for "no such policy" and "not matched", so policies cannot be enumerated. */
function deniedDescription(policy: string): string {
  return `access denied: this token may not use policy "${policy}"`;
}

/** What deciding needs (the offline CLI has only this). */
export interface DecisionDeps {
  policies: PolicySet;
  verifier: VerifierOptions;
  /** RUNPASS_AUDIENCE (policies without `audience` use it). */
  defaultAudience: string;
  explainFull: boolean;
}

/** Verification and matching, shared by exchange, explain and the offline CLI. Never touches the ledger. */
export async function authorize(
  input: { token: string | undefined; policy: string; grants?: GrantName[] },
  deps: DecisionDeps,
): Promise<Authorization> {
  if (!input.token) {
    return {
      ok: false,
      error: new RunpassError(
        "invalid_token",
        "an OIDC token is required as `Authorization: Bearer <token>`",
        {
          reasons: [{ code: "token_missing" }],
          reasonsVisible: deps.explainFull,
        },
      ),
    };
  }
  const verified = await verifyToken(input.token, deps.verifier);
  if (!verified.ok) {
    const f = verified.error;
    return {
      ok: false,
      error: new RunpassError(f.code, f.description, {
        reasons: [f.reason],
        reasonsVisible: deps.explainFull,
        ...(f.retryAfter !== undefined ? { retryAfter: f.retryAfter } : {}),
      }),
    };
  }
  const token = verified.value;
  let policy: CompiledPolicy | undefined;
  try {
    policy = await deps.policies.lookup(input.policy);
  } catch (e) {
    if (e instanceof ConfigError) return { ok: false, token, error: e };
    return {
      ok: false,
      token,
      error: new RunpassError("temporarily_unavailable", "the policy store is unavailable; retry shortly", {
        retryAfter: 5,
      }),
    };
  }
  if (!policy) {
    return {
      ok: false,
      token,
      error: new RunpassError("access_denied", deniedDescription(input.policy), {
        reasons: [{ code: "policy_unknown" }],
        reasonsVisible: deps.explainFull,
      }),
    };
  }
  const visible = reasonsVisible(policy, token, deps.explainFull);
  const evaluation = evaluatePolicy(policy, token, deps.defaultAudience);
  const offered = Object.keys(policy.def.grants) as GrantName[];
  const grants = input.grants ?? offered;
  for (const g of grants) {
    if (!offered.includes(g)) evaluation.reasons.push({ code: "grant_not_allowed", grant: g });
  }
  evaluation.allowed = evaluation.reasons.length === 0;
  if (!evaluation.allowed) {
    return {
      ok: false,
      token,
      policy,
      error: new RunpassError("access_denied", deniedDescription(input.policy), {
        reasons: evaluation.reasons,
        reasonsVisible: visible,
      }),
    };
  }
  return { ok: true, value: { token, policy, grants, evaluation, visible } };
}
