// Leak reports (docs/leaks.md, Reporting a leak): plain values, a gitleaks JSON report or trufflehog JSON objects,
// read into the candidate values to fingerprint and where each was found. Values never leave this module except
// to be fingerprinted; what is kept for audit and alerts is only the `source` text (file, rule, detector).

import * as z from "zod/mini";
import { MAX_LEAK_VALUE_CHARS, MAX_LEAK_VALUES } from "../constants.ts";
import { RunpassError } from "../errors.ts";

const Source = z.string().check(z.maxLength(512));

/** gitleaks `--report-format json`: an array of findings (Secret is the captured credential, Match the line part). */
const GitleaksFinding = z.looseObject({
  Secret: z.optional(z.string()),
  Match: z.optional(z.string()),
  File: z.optional(z.string()),
  RuleID: z.optional(z.string()),
  StartLine: z.optional(z.number()),
  Commit: z.optional(z.string()),
});

/** trufflehog `--json`: one object per line (Raw the credential, RawV2 a detector's fuller form, e.g. AWS id+secret). */
const TrufflehogFinding = z.looseObject({
  Raw: z.optional(z.string()),
  RawV2: z.optional(z.string()),
  DetectorName: z.optional(z.string()),
  SourceMetadata: z.optional(z.unknown()),
});

/** The body of POST /v1/admin/leaks: exactly one of the three forms. */
export const LeakReportSchema = z.union([
  z.strictObject({ values: z.array(z.string()).check(z.minLength(1)), source: z.optional(Source) }),
  z.strictObject({ gitleaks: z.array(GitleaksFinding) }),
  z.strictObject({ trufflehog: z.array(TrufflehogFinding) }),
]);
export type LeakReport = z.infer<typeof LeakReportSchema>;

/** One value to look up and where it was found (never the value in `source`). */
export interface LeakCandidate {
  value: string;
  source: string;
}

/**
 * Printable, single-line, bounded, and without URL credentials (`https://user:token@host/…`, as trufflehog
 * prints repository URLs): `source` ends up in audit records and alert text.
 */
export function cleanSource(text: string): string {
  return text
    .replace(/\p{Cc}+/gu, " ")
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]*@/gi, "$1")
    .trim()
    .slice(0, 200);
}

/** The first `file`/`link`/`repository` string anywhere in trufflehog's SourceMetadata (its shape varies per source). */
function trufflehogWhere(meta: unknown, depth = 0): string | undefined {
  if (depth > 4 || meta === null || typeof meta !== "object") return undefined;
  const obj = meta as Record<string, unknown>;
  for (const key of ["file", "link", "repository"]) {
    const v = obj[key];
    if (typeof v === "string" && v) {
      const line = obj.line;
      return typeof line === "number" ? `${v}:${line}` : v;
    }
  }
  for (const v of Object.values(obj)) {
    const found = trufflehogWhere(v, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/**
 * The candidate values of a report, deduplicated, each with its source. Throws 400 `invalid_request` when it
 * names no value or too many. A value longer than any credential of ours is never looked up (see `lookable`).
 */
export function leakCandidates(report: LeakReport): LeakCandidate[] {
  const out: LeakCandidate[] = [];
  if ("values" in report) {
    const source = cleanSource(report.source ?? "reported values") || "reported values";
    for (const value of report.values) out.push({ value, source });
  } else if ("gitleaks" in report) {
    for (const f of report.gitleaks) {
      const value = f.Secret || f.Match;
      if (!value) continue;
      const where = [f.File, f.StartLine !== undefined ? String(f.StartLine) : undefined]
        .filter(Boolean)
        .join(":");
      out.push({ value, source: cleanSource(`gitleaks ${f.RuleID ?? "rule"}${where ? ` ${where}` : ""}`) });
    }
  } else {
    for (const f of report.trufflehog) {
      const where = trufflehogWhere(f.SourceMetadata);
      const source = cleanSource(`trufflehog ${f.DetectorName ?? "detector"}${where ? ` ${where}` : ""}`);
      for (const value of [f.Raw, f.RawV2]) if (value) out.push({ value, source });
    }
  }
  const seen = new Set<string>();
  const unique = out.filter((c) => {
    const v = c.value.trim();
    if (!v || seen.has(v)) return false;
    seen.add(v);
    return true;
  });
  if (unique.length === 0) throw new RunpassError("invalid_request", "the report names no value");
  if (unique.length > MAX_LEAK_VALUES) {
    throw new RunpassError(
      "invalid_request",
      `a report may name at most ${MAX_LEAK_VALUES} values; split it`,
    );
  }
  return unique;
}

/** Whether a candidate can be a credential of ours at all (longer ones count as unmatched, unlooked-up). */
export function lookable(candidate: LeakCandidate): boolean {
  return candidate.value.trim().length <= MAX_LEAK_VALUE_CHARS;
}
