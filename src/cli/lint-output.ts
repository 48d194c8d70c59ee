// `runpass policy check` output: loader problems and lint findings as text (file:line:col with why/fix) or as
// one SARIF 2.1.0 log, and the exit code (0 clean or warnings only, 1 errors or --strict warnings).

import { relative, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { type Finding, LINT_RULES, type LintRule, lintRule, type Severity } from "../core/policy/lint.ts";
import type { Problem } from "../core/policy/load.ts";
import { formatProblem } from "./build.ts";

/** The pseudo-rule for everything the loader (or the --admin-url secrets lookup) refuses. */
export const LOAD_RULE: LintRule = {
  id: "RP000",
  name: "invalid-policy",
  severity: "error",
  what: "The file does not load: YAML syntax, schema (unknown keys, wrong types), load-time rules, or — with --admin-url — a secrets grant the broker cannot deliver.",
  why: "A policy set that does not load cannot be built or deployed.",
  fix: "Fix the reported problem; the message says what the loader expected.",
};

const ALL_RULES: readonly LintRule[] = [LOAD_RULE, ...LINT_RULES];

/** One line of the report: a lint finding, or a loader problem (without why/fix). */
interface Entry {
  rule: string;
  severity: Severity;
  file: string;
  line: number;
  col: number;
  message: string;
  why?: string;
  fix?: string;
}

function byPosition(a: Entry, b: Entry): number {
  return (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) || a.line - b.line || a.col - b.col;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** Collects what `policy check` reports, prints text as it goes, and prints SARIF at the end. */
export class CheckReport {
  readonly format: "text" | "sarif";
  readonly entries: Entry[] = [];

  constructor(format: "text" | "sarif") {
    this.format = format;
  }

  #print(line: string): void {
    if (this.format === "text") console.log(line);
  }

  /** `.yml` files and the like, which would silently not load. */
  ignored(paths: string[]): void {
    for (const file of paths) {
      this.#print(`${file}: warning: ignored (policy files end in .yaml)`);
      this.entries.push({
        rule: LOAD_RULE.id,
        severity: "warning",
        file,
        line: 1,
        col: 1,
        message: "ignored: policy files end in .yaml",
      });
    }
  }

  /** Loader problems and lint findings, merged in file order; a loader problem that lint repeats with its rule id is shown once. */
  add(problems: Problem[], findings: Finding[] = []): void {
    const key = (e: { rule?: string; file: string; line: number; col: number }) =>
      `${e.rule}\0${e.file}\0${e.line}\0${e.col}`;
    const linted = new Set(findings.map(key));
    const entries: Entry[] = [
      ...problems
        .filter((p) => !(p.rule && linted.has(key(p))))
        .map((p): Entry => {
          const rule = p.rule ? lintRule(p.rule) : undefined;
          return {
            ...p,
            rule: rule?.id ?? LOAD_RULE.id,
            ...(rule ? { why: rule.why, fix: rule.fix } : {}),
          };
        }),
      ...findings,
    ].sort(byPosition);
    for (const e of entries) {
      if (e.rule === LOAD_RULE.id) {
        this.#print(formatProblem({ ...e, rule: undefined } as Problem));
      } else {
        this.#print(`${e.file}:${e.line}:${e.col}: ${e.severity} ${e.rule}: ${e.message}`);
        if (e.why) this.#print(`  why: ${e.why}`);
        if (e.fix) this.#print(`  fix: ${e.fix}`);
      }
      this.entries.push(e);
    }
  }

  /** Informational lines: stdout in text mode, stderr with SARIF (stdout is the log). */
  note(text: string): void {
    if (this.format === "text") console.log(`note: ${text}`);
    else console.error(`note: ${text}`);
  }

  count(severity: Severity): number {
    return this.entries.filter((e) => e.severity === severity).length;
  }

  /**
   * Prints the summary (text) or the log (SARIF) and returns the exit code. `ok` is the success line, absent
   * when the set did not load; `where` qualifies the error summary.
   */
  finish(options: { dir: string; strict: boolean; ok?: string; where?: string; cwd?: string }): number {
    const errors = this.count("error");
    const warnings = this.count("warning");
    const failed = errors > 0 || options.ok === undefined;
    if (this.format === "sarif") {
      console.log(JSON.stringify(sarifLog(this.entries, options.cwd ?? process.cwd()), null, 2));
    } else if (failed) {
      const also = warnings ? ` (and ${plural(warnings, "warning")})` : "";
      console.log(`${plural(errors, "error")} in ${options.dir}${options.where ?? ""}${also}`);
    } else if (warnings && options.strict) {
      console.log(`${plural(warnings, "warning")} in ${options.dir} (--strict: warnings fail the check)`);
    } else {
      if (warnings) console.log(`${plural(warnings, "warning")} (policy check --strict fails on warnings)`);
      console.log(options.ok);
    }
    return failed || (options.strict && warnings > 0) ? 1 : 0;
  }
}

/** A SARIF 2.1.0 log of the entries, with artifact URIs relative to `cwd` (%SRCROOT%). */
export function sarifLog(entries: readonly Entry[], cwd: string): Record<string, unknown> {
  const index = new Map(ALL_RULES.map((r, i) => [r.id, i]));
  return {
    $schema: "https://json.schemastore.org/sarif-2.1.0.json",
    version: "2.1.0",
    runs: [
      {
        tool: {
          driver: {
            name: "runpass",
            rules: ALL_RULES.map((r) => ({
              id: r.id,
              name: r.name,
              shortDescription: { text: r.name.replace(/-/g, " ") },
              fullDescription: { text: r.what },
              help: { text: `${r.why} Fix: ${r.fix}`, markdown: `${r.why}\n\n**Fix:** ${r.fix}` },
              defaultConfiguration: { level: r.severity },
              properties: { tags: ["security"] },
            })),
          },
        },
        originalUriBaseIds: { "%SRCROOT%": { uri: pathToFileURL(`${cwd}${sep}`).href } },
        results: entries.map((e) => ({
          ruleId: e.rule,
          ruleIndex: index.get(e.rule) ?? 0,
          level: e.severity,
          message: { text: e.message },
          locations: [
            {
              physicalLocation: {
                artifactLocation: {
                  uri: relative(cwd, e.file).split(sep).map(encodeURIComponent).join("/"),
                  uriBaseId: "%SRCROOT%",
                },
                region: { startLine: e.line, startColumn: e.col },
              },
            },
          ],
          ...(e.why || e.fix ? { properties: { why: e.why, fix: e.fix } } : {}),
        })),
      },
    ],
  };
}
