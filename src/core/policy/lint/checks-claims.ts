// Checks on the claims a policy matches: values of a type the issuer never sends (RP009, RP010), claims it does
// not send at all (RP011), and deny entries on claims some tokens omit (RP018).

import { ALWAYS_PRESENT_CLAIMS } from "../../oidc/claims.ts";
import { isGlob } from "../glob.ts";
import { nearest } from "../suggest.ts";
import { KNOWN_CLAIMS } from "./claims.ts";
import { type Cond, type Findings, type Policy, quote, valuePath } from "./model.ts";
import { type LintRule, lintRule, type Severity } from "./rules.ts";

export function types(p: Policy, f: Findings): void {
  if (p.kind === "generic") return;
  const known = KNOWN_CLAIMS[p.kind];
  const blocks: Array<[Map<string, Cond>, "allow" | "deny"]> = [
    [p.allow, "allow"],
    ...p.deny.map((d): [Map<string, Cond>, "deny"] => [d, "deny"]),
  ];
  for (const [block, kind] of blocks) {
    for (const cond of block.values()) {
      const type = known[cond.claim];
      if (!type) continue;
      const bad = cond.values.map((v) => type === "array" || typeof v !== type);
      if (!bad.some(Boolean)) continue;
      const all = bad.every(Boolean);
      const consequence = all
        ? kind === "allow"
          ? "this policy can never match"
          : "this deny entry can never fire"
        : "this value can never match (other values in the list can)";
      const severity: Severity = all ? "error" : "warning";
      if (type === "array") {
        f.add(
          p,
          "RP010",
          cond.path,
          true,
          `${cond.claim} is a list claim and runpass compares scalar claims only, so ${consequence}`,
          { severity, fix: `Remove ${cond.claim}; match a scalar claim instead.` },
        );
        continue;
      }
      for (const [i, v] of cond.values.entries()) {
        if (!bad[i]) continue;
        const boolForString = typeof v === "boolean" && type === "string";
        f.add(
          p,
          boolForString ? "RP009" : "RP010",
          valuePath(cond, i),
          false,
          `${cond.claim}: ${quote(v)} is a ${typeof v}, but ${p.kind} sends ${cond.claim} as a ${type}, so ${consequence}`,
          {
            severity,
            fix:
              type === "string"
                ? `Quote it: ${cond.claim}: ${JSON.stringify(String(v))}.`
                : `Use a ${type}: ${cond.claim}: ${typeof v === "string" && /^\d+$/.test(v) ? v : "<number>"}.`,
          },
        );
      }
    }
  }
}

export function unknownClaims(p: Policy, f: Findings): void {
  if (p.kind === "generic") return;
  const known = Object.keys(KNOWN_CLAIMS[p.kind]);
  const blocks: Array<[Map<string, Cond>, boolean]> = [
    [p.allow, false],
    ...p.deny.map((d): [Map<string, Cond>, boolean] => [d, true]),
  ];
  for (const [block, inDeny] of blocks) {
    for (const cond of block.values()) {
      if (known.includes(cond.claim)) continue;
      const near = nearest(cond.claim, known, Math.max(2, Math.floor(cond.claim.length / 4)));
      const hint = near ? ` (did you mean "${near}"?)` : "";
      const effect = inDeny ? "this deny entry never fires" : "this policy never matches";
      f.add(
        p,
        "RP011",
        cond.path,
        true,
        `"${cond.claim}" is not a claim ${p.kind} sends${hint}; while it is absent, ${effect}`,
        {
          severity: inDeny && near !== undefined ? "error" : "warning",
          fix: near ? `Rename it to ${near}.` : (lintRule("RP011") as LintRule).fix,
        },
      );
    }
  }
}

export function denyOnOptionalClaim(p: Policy, f: Findings): void {
  const always = ALWAYS_PRESENT_CLAIMS[p.kind];
  // A claim allow requires is present in every token the policy admits, so a deny on it sees it.
  const guaranteed = (claim: string) => always.includes(claim) || p.allow.has(claim);
  // For github and gitlab an unknown claim is RP011's finding (it never fires at all).
  const known = p.kind === "generic" ? undefined : KNOWN_CLAIMS[p.kind];
  for (const d of p.deny) {
    for (const cond of d.values()) {
      if (guaranteed(cond.claim) || (known && !Object.hasOwn(known, cond.claim))) continue;
      const values = cond.values.filter((v): v is string => typeof v === "string" && !isGlob(v));
      const example =
        cond.claim === "runner_environment"
          ? `${cond.claim}: ${p.kind === "gitlab" ? "gitlab-hosted" : "github-hosted"}`
          : `${cond.claim}: [<the values you trust>]`;
      f.add(
        p,
        "RP018",
        cond.path,
        true,
        `"${cond.claim}" is not in every ${p.kind} token: a token without it is not denied by this entry${
          values.length ? ` (only tokens that say ${values.map(quote).join(" or ")} are)` : ""
        }; the deny fails open`,
        { fix: `Allow-list the claim instead (allow: ${example}), or also require ${cond.claim} in allow.` },
      );
    }
  }
}
