// `${claim}` templates in grants, filled from verified claims only, and sanitisers for where the result goes.

import { RunpassError } from "../errors.ts";
import type { GrantName } from "../policy/types.ts";
import { err, ok, type Result } from "../result.ts";
import type { GrantSubject, Report } from "./module.ts";

const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_.:/-]{0,127})\}/g;

/** Claim names a template refers to (for load-time checks). */
export function templateClaims(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1] as string);
}

/** A `${` that does not form a placeholder (load-time error: almost certainly a typo). */
export function templateProblem(template: string): string | undefined {
  const stripped = template.replace(PLACEHOLDER, "");
  if (stripped.includes("${")) return `"${template}": a "\${" that is not a \${claim} placeholder`;
  return undefined;
}

/**
 * Fills a template from verified claims. A referenced claim that is absent, or not a string/number/boolean,
 * makes the whole fill fail (the caller refuses the grant rather than issue one with a hole in it).
 */
export function fillTemplate(
  template: string,
  claims: Record<string, unknown>,
): Result<string, { claim: string }> {
  let missing: string | undefined;
  const value = template.replace(PLACEHOLDER, (_m, name: string) => {
    const v = Object.hasOwn(claims, name) ? claims[name] : undefined;
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return String(v);
    missing ??= name;
    return "";
  });
  return missing === undefined ? ok(value) : err({ claim: missing });
}

/** STS RoleSessionName / SourceIdentity: 2–64 chars of [\w+=,.@-]; others become "-". */
export function sanitiseSessionName(value: string): string {
  let out = value.replace(/[^\w+=,.@-]/g, "-").slice(0, 64);
  while (out.length < 2) out += "-";
  return out;
}

// AWS tag keys and values: Unicode letters, digits, white space and _ . : / = + - @.
const TAG_CHAR = /[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu;

/** An STS session tag key: allowed charset, 1–128 characters (code points). */
export function sanitiseTagKey(value: string): string {
  const out = Array.from(value.replace(TAG_CHAR, "_")).slice(0, 128).join("");
  return out.length > 0 ? out : "_";
}

/** An STS session tag value: allowed charset, at most 256 characters (code points). */
export function sanitiseTagValue(value: string): string {
  return Array.from(value.replace(TAG_CHAR, "_")).slice(0, 256).join("");
}

/** Reports a template with a stray `${` at load time. */
export function checkTemplate(
  report: Report,
  path: ReadonlyArray<string | number>,
  value: string | undefined,
): void {
  if (value === undefined) return;
  const problem = templateProblem(value);
  if (problem) report(path, problem);
}

/** Fills a grant's template, or refuses the grant (403 `claim_absent`) when the token lacks a claim it names. */
export function fillOrDeny(template: string, subject: GrantSubject, grant: GrantName): string {
  const r = fillTemplate(template, subject.claims);
  if (r.ok) return r.value;
  throw new RunpassError(
    "access_denied",
    `the ${grant} grant needs the claim "${r.error.claim}", which the token lacks`,
    {
      reasons: [{ code: "claim_absent", claim: r.error.claim, grant }],
    },
  );
}
