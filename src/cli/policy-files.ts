// Reads a policies folder from disk for the loader (Node only): <name>.yaml files and issuers.yaml.

import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { SourceFile } from "../core/policy/load.ts";

export interface PolicySources {
  policies: SourceFile[];
  issuers?: SourceFile;
  /** Files that look like policies but will not load (e.g. `.yml`). */
  ignored: string[];
}

/** Lists policy sources in `dir` (top level only; subfolders such as tests/ are not policies). */
export async function readPolicyDir(dir: string): Promise<PolicySources> {
  const entries = await readdir(dir, { withFileTypes: true });
  const policies: SourceFile[] = [];
  const ignored: string[] = [];
  let issuers: SourceFile | undefined;
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!entry.isFile()) continue;
    const path = join(dir, entry.name);
    if (entry.name === "issuers.yaml") {
      issuers = { path, text: await readFile(path, "utf8") };
    } else if (entry.name.endsWith(".yaml")) {
      policies.push({ path, text: await readFile(path, "utf8") });
    } else if (entry.name.endsWith(".yml")) {
      ignored.push(path);
    }
  }
  return { policies, ...(issuers ? { issuers } : {}), ignored };
}
