// Emergency revocation rules (docs/security.md, "Emergency revoke is complete"): an admin revoke by policy,
// repository, project or issuer is recorded as a rule before the lease index is searched, so a lease the
// index does not show yet is still ended by its run's object on that object's next action.

/** What an admin revoke names. */
export type RevocationRuleKind = "policy" | "repository_id" | "project_id" | "issuer";

export interface RevocationRule {
  kind: RevocationRuleKind;
  value: string;
  /** The revoke's time (ms): the rule ends leases created before it, never later ones. */
  before: number;
}

/** The fields of a lease a rule is matched against (as the lease index records them). */
export interface RuleTarget {
  policy: string;
  issuer: string;
  repository_id?: string;
  project_id?: string;
  /** ms */
  created_at: number;
}

/** Whether `rule` ends a lease with these fields. */
export function ruleMatches(rule: RevocationRule, lease: RuleTarget): boolean {
  if (lease.created_at >= rule.before) return false;
  return lease[rule.kind] === rule.value;
}
