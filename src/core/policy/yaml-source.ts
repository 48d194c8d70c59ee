// A policy or issuers file as parsed YAML that remembers positions, so the loader and the linter can report
// every problem at file:line:col. Strict YAML 1.2: duplicate keys and anything the parser warns about are errors.

import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";

/** A source file handed to the loader (the caller does the reading). */
export interface SourceFile {
  /** Path shown in problems. */
  path: string;
  text: string;
}

/** A finding at a file position: a loader refusal or warning. */
export interface Problem {
  file: string;
  line: number;
  col: number;
  severity: "error" | "warning";
  message: string;
  /** Lint rule id (lint.ts LINT_RULES) when the problem is also a lint rule, e.g. RP001 for a missing pin. */
  rule?: string;
}

/** A path into the parsed document: map keys and list indexes. */
export type Path = ReadonlyArray<string | number>;

/** A parsed YAML document that can point at any path's line and column (the linter re-parses with it too). */
export class YamlSource {
  readonly file: string;
  readonly problems: Problem[];
  readonly value: unknown;
  readonly #contents: Node | null;
  readonly #lines = new LineCounter();

  constructor(file: string, text: string, problems: Problem[]) {
    this.file = file;
    this.problems = problems;
    const doc = parseDocument(text, {
      lineCounter: this.#lines,
      uniqueKeys: true,
      strict: true,
      version: "1.2",
      prettyErrors: false,
    });
    for (const e of [...doc.errors, ...doc.warnings]) {
      const pos = this.#lines.linePos(e.pos[0]);
      problems.push({
        file,
        line: pos.line,
        col: pos.col,
        severity: "error",
        message: `YAML: ${e.message.split("\n")[0]}`,
      });
    }
    this.#contents = doc.contents as Node | null;
    this.value = doc.errors.length === 0 ? doc.toJS({ maxAliasCount: 50 }) : undefined;
  }

  /** Records a problem at `path` (at the key when `atKey`). */
  error(
    path: Path,
    message: string,
    atKey = false,
    severity: Problem["severity"] = "error",
    rule?: string,
  ): void {
    const { line, col } = this.locate(path, atKey);
    this.problems.push({ file: this.file, line, col, severity, message, ...(rule ? { rule } : {}) });
  }

  /** Line and column (1-based) of the deepest node on `path` that exists (its key when `atKey`). */
  locate(path: Path, atKey: boolean): { line: number; col: number } {
    let node: Node | null | undefined = this.#contents;
    let found: Node | null | undefined = node;
    for (let i = 0; i < path.length && node; i++) {
      const seg = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        node = (last && atKey ? pair.key : pair.value) as Node | null;
      } else if (isSeq(node) && typeof seg === "number") {
        node = node.items[seg] as Node | null;
      } else {
        break;
      }
      if (node) found = node;
    }
    const offset = found?.range?.[0] ?? 0;
    return this.#lines.linePos(offset);
  }
}
