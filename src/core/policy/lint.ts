// Security lint for policy files (`runpass policy check`, docs/policy-tooling.md "Lint rules"): rules RP001–RP018,
// each pointing at file:line:col. Pure: the caller reads the files; the YAML is re-parsed with the loader's own
// parser so findings can name positions. Findings warn about policies the loader accepts but that trust more than
// their authors probably meant (or can never match); RP001 repeats the loader's refusal with a rule id. The rule
// table is in lint/rules.ts, the policy model in lint/model.ts, and the checks, by theme, in lint/checks-*.ts.

import { x509Identity } from "./lint/checks-certificates.ts";
import { denyOnOptionalClaim, types, unknownClaims } from "./lint/checks-claims.ts";
import { cloudGrants, grantBreadth, postgresGrant, sharedSecrets } from "./lint/checks-grants.ts";
import { globInOwner, missingPin, nameWithoutId } from "./lint/checks-identity.ts";
import { deadPolicy, duplicates } from "./lint/checks-redundancy.ts";
import { sshGrant } from "./lint/checks-ssh.ts";
import { events, gitlabMergeRequests, selfHosted, workflowTrust } from "./lint/checks-triggers.ts";
import { Findings, readPolicies } from "./lint/model.ts";
import type { Finding } from "./lint/rules.ts";
import type { LoadOptions } from "./load.ts";
import type { SourceFile } from "./yaml-source.ts";

export { type Finding, LINT_RULES, type LintRule, lintRule, type Severity } from "./lint/rules.ts";

/**
 * Lints a policy set. Takes the same sources and options as loadPolicySet; files the loader refuses for
 * syntax or schema reasons, or whose issuer it does not know, are skipped (the loader reports them).
 * Findings are sorted by file, line, column.
 */
export function lintPolicySet(
  input: { policies: SourceFile[]; issuers?: SourceFile },
  options: LoadOptions,
): Finding[] {
  const policies = readPolicies(input, options);
  const f = new Findings();
  for (const p of policies) {
    missingPin(p, f);
    nameWithoutId(p, f);
    globInOwner(p, f);
    events(p, f);
    workflowTrust(p, f);
    gitlabMergeRequests(p, f);
    types(p, f);
    unknownClaims(p, f);
    selfHosted(p, f);
    grantBreadth(p, f);
    cloudGrants(p, f);
    postgresGrant(p, f);
    sshGrant(p, f);
    x509Identity(p, f);
    deadPolicy(p, f);
    denyOnOptionalClaim(p, f);
  }
  sharedSecrets(policies, f);
  duplicates(policies, f);
  return f.list.sort(
    (a, b) =>
      (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) ||
      a.line - b.line ||
      a.col - b.col ||
      (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0),
  );
}
