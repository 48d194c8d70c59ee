// Schema (zod) refusals of a policy or issuers file, reported at the YAML position they concern, in words that
// say what was expected instead of zod's generic messages.

import type * as z from "zod/mini";
import { TYPE_HINTS } from "./schema.ts";
import { policyKeyHint } from "./suggest.ts";
import type { Path, YamlSource } from "./yaml-source.ts";

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a map";
  return `a ${typeof v}`;
}

/** Reports zod issues against YAML positions, with hints instead of zod's generic messages. */
export function reportSchemaIssues(src: YamlSource, issues: z.core.$ZodIssue[], root: unknown): void {
  for (const issue of issues) {
    const path = issue.path as Path;
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys)
        src.error([...path, key], `unknown key "${key}"${policyKeyHint(key, path)}`, true);
      continue;
    }
    const last = path[path.length - 1];
    const actual = path.reduce<unknown>(
      (v, seg) => (v && typeof v === "object" ? (v as Record<string, unknown>)[seg as string] : undefined),
      root,
    );
    const where = path.length ? `${path.join(".")}: ` : "";
    if (actual === undefined) {
      src.error(path.slice(0, -1), `missing required key "${String(last)}"`);
      continue;
    }
    const hint =
      typeof last === "string" && TYPE_HINTS[last]
        ? TYPE_HINTS[last]
        : issue.code === "invalid_union"
          ? "a string, number, boolean, or a list of them"
          : issue.code === "invalid_type"
            ? `${issue.expected}`
            : issue.message;
    src.error(path, `${where}expected ${hint}, got ${typeName(actual)}`);
  }
}
