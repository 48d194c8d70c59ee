// Checks relative Markdown links the way GitHub renders them: the target file must exist and, when the link
// names an anchor, the target must have a heading with that slug. Used by test/unit/docs.test.ts.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

/** A link that does not resolve, with where it is written. */
export interface BrokenLink {
  file: string;
  line: number;
  target: string;
  problem: "missing file" | "missing anchor";
}

/** GitHub's heading slug: lower case, punctuation dropped (hyphens and underscores kept), spaces to hyphens. */
export function headingSlug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_\- ]/gu, "")
    .replace(/ /g, "-");
}

/** Lines outside fenced code blocks, with their 1-based numbers. */
function proseLines(text: string): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  let fenced = false;
  text.split("\n").forEach((line, i) => {
    if (line.startsWith("```")) fenced = !fenced;
    else if (!fenced) out.push([i + 1, line]);
  });
  return out;
}

/** Every anchor a Markdown file's headings produce, with GitHub's -1, -2 … suffixes for repeats. */
export function headingAnchors(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const [, line] of proseLines(text)) {
    const m = /^#{1,6} (.*)$/.exec(line);
    if (!m?.[1]) continue;
    const slug = headingSlug(m[1]);
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

/** The relative links of `files` (paths under `root`) that point at a missing file or heading. */
export function brokenLinks(root: string, files: string[]): BrokenLink[] {
  const broken: BrokenLink[] = [];
  const anchorsOf = new Map<string, Set<string>>();
  const anchors = (path: string) => {
    let set = anchorsOf.get(path);
    if (!set) {
      set = headingAnchors(readFileSync(path, "utf8"));
      anchorsOf.set(path, set);
    }
    return set;
  };
  for (const file of files) {
    const source = join(root, file);
    for (const [line, text] of proseLines(readFileSync(source, "utf8"))) {
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1] ?? "";
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …
        const hash = target.indexOf("#");
        const path = hash === -1 ? target : target.slice(0, hash);
        const anchor = hash === -1 ? "" : target.slice(hash + 1);
        const resolved = path ? resolve(dirname(source), path) : source;
        if (!existsSync(resolved)) {
          broken.push({ file, line, target, problem: "missing file" });
        } else if (anchor && (!resolved.endsWith(".md") || !anchors(resolved).has(anchor))) {
          broken.push({ file, line, target, problem: "missing anchor" });
        }
      }
    }
  }
  return broken;
}
