// `runpass admin leak`: reports a leaked value, a gitleaks JSON report or trufflehog JSON output to the broker
// (POST /v1/admin/leaks, docs/leaks.md). A value is read from an environment variable, never from argv, so it
// does not land in shell history or the process list.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { adminCall, adminTarget } from "./admin.ts";
import { UsageError } from "./usage-error.ts";

/** trufflehog `--json` writes one object per line; a saved array is accepted too. */
export function parseTrufflehog(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) return JSON.parse(trimmed) as unknown[];
  return trimmed
    .split(/\r?\n/)
    .filter((line) => line.trim())
    .map((line, i) => {
      try {
        return JSON.parse(line) as unknown;
      } catch {
        throw new UsageError(`--trufflehog: line ${i + 1} is not JSON`);
      }
    });
}

/** The request body for one of --value-env, --gitleaks, --trufflehog (exactly one). */
export function leakBody(values: {
  "value-env"?: string;
  gitleaks?: string;
  trufflehog?: string;
  source?: string;
}): unknown {
  const given = [values["value-env"], values.gitleaks, values.trufflehog].filter((v) => v !== undefined);
  if (given.length !== 1) {
    throw new UsageError(
      "admin leak needs exactly one of --value-env VAR, --gitleaks FILE, --trufflehog FILE",
    );
  }
  if (values["value-env"] !== undefined) {
    const value = process.env[values["value-env"]];
    if (!value) throw new UsageError(`--value-env: ${values["value-env"]} is not set or empty`);
    return { values: [value], ...(values.source ? { source: values.source } : {}) };
  }
  if (values.gitleaks !== undefined) {
    const report = JSON.parse(readFileSync(values.gitleaks, "utf8")) as unknown;
    if (!Array.isArray(report)) throw new UsageError("--gitleaks: expected gitleaks' JSON report (an array)");
    return { gitleaks: report };
  }
  return { trufflehog: parseTrufflehog(readFileSync(values.trufflehog as string, "utf8")) };
}

/** `runpass admin leak`: prints the broker's {matches, unmatched}; exit 0. */
export async function adminLeak(root: string, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      url: { type: "string" },
      "value-env": { type: "string" },
      gitleaks: { type: "string" },
      trufflehog: { type: "string" },
      source: { type: "string" },
    },
    strict: true,
  });
  const body = leakBody(values);
  const target = adminTarget(root, values.url);
  const result = await adminCall(target, "/v1/admin/leaks", { method: "POST", body: JSON.stringify(body) });
  console.log(JSON.stringify(result, null, 2));
  return 0;
}
