// Evaluates a compiled policy against verified claims, reporting every failing condition (not just the first).

import type { Reason } from "../errors.ts";
import type { VerifiedToken } from "../oidc/verify.ts";
import type { CompiledCondition, CompiledPolicy, Matcher } from "./compile.ts";
import { matchGlob } from "./glob.ts";

export interface Evaluation {
  allowed: boolean;
  reasons: Reason[];
}

function matches(m: Matcher, value: unknown): boolean {
  if (m.kind === "glob") return typeof value === "string" && matchGlob(m.glob, value);
  return value === m.value;
}

/** Checks one condition: undefined when it matches, else why not. Types are strict: "1" never equals 1. */
export function checkCondition(cond: CompiledCondition, claims: Record<string, unknown>): Reason | undefined {
  const present = Object.hasOwn(claims, cond.claim);
  const value = present ? claims[cond.claim] : undefined;
  if (!present || value === undefined)
    return { code: "claim_absent", claim: cond.claim, expected: cond.expected };
  if (!cond.expected.some((e) => typeof e === typeof value)) {
    return { code: "type_mismatch", claim: cond.claim, expected: cond.expected };
  }
  if (cond.matchers.some((m) => matches(m, value))) return undefined;
  return { code: "claim_mismatch", claim: cond.claim, expected: cond.expected };
}

/** Evaluates `policy` for `token`. Deny by default; any matching deny rule wins over allow. */
export function evaluatePolicy(
  policy: CompiledPolicy,
  token: VerifiedToken,
  defaultAudience: string,
): Evaluation {
  const reasons: Reason[] = [];
  if (policy.issuer.name !== token.issuer.name) {
    reasons.push({ code: "issuer_mismatch", expected: [policy.issuer.name] });
  }
  const audience = policy.def.audience ?? defaultAudience;
  if (token.standard.aud !== audience) reasons.push({ code: "audience_mismatch", expected: [audience] });
  reasons.push(...claimReasons(policy, token.claims));
  return { allowed: reasons.length === 0, reasons };
}

/** The allow and deny rules alone, over a claim set (renewal re-checks a lease's stored claims with it). */
export function claimReasons(policy: CompiledPolicy, claims: Record<string, unknown>): Reason[] {
  const reasons: Reason[] = [];
  for (const cond of policy.allow) {
    const reason = checkCondition(cond, claims);
    if (reason) reasons.push(reason);
  }
  for (const [rule, conds] of policy.deny.entries()) {
    if (conds.every((c) => checkCondition(c, claims) === undefined)) {
      reasons.push({ code: "denied_by", rule, claims: conds.map((c) => c.claim) });
    }
  }
  return reasons;
}

/**
 * Whether the caller may see reasons (docs/api.md, Redaction): only a token from the owner/repository (GitHub, GitLab)
 * or subject (generic) the policy pins, or everyone when RUNPASS_EXPLAIN=full.
 */
export function reasonsVisible(
  policy: CompiledPolicy | undefined,
  token: VerifiedToken,
  explainFull: boolean,
): boolean {
  if (explainFull) return true;
  if (!policy || policy.issuer.name !== token.issuer.name) return false;
  for (const [claim, values] of policy.pins) {
    const v = token.claims[claim];
    if (typeof v === "string" && values.has(v)) return true;
  }
  return false;
}
