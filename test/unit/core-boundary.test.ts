// The core boundary (docs/architecture.md): src/core is pure TypeScript on web-standard APIs. It imports nothing
// from Hono, the Workers runtime ("cloudflare:*"), Node ("node:*"), or the layers built on it (src/adapters,
// src/http, src/cli, src/client), and names no Workers type. tsconfig.core.json (run by `npm run typecheck`)
// compiles it without the Workers and Node types; this test names the offending file and line.

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/run-cli.ts";

const CORE = join(ROOT, "src/core");

/** Packages and URL schemes the core must not import. */
const FORBIDDEN_PACKAGES = [/^hono(\/|$)/, /^cloudflare:/, /^@cloudflare\//, /^node:/, /^wrangler(\/|$)/];
/** Folders the core sits below: importing from them turns the layering upside down. */
const OUTER_LAYERS = [
  "src/adapters",
  "src/http",
  "src/cli",
  "src/client",
  "src/shims",
  "src/app.ts",
  "src/index.ts",
];
/** Workers runtime types and globals. */
const WORKERS_NAMES =
  /\b(DurableObject\w*|KVNamespace\w*|D1\w+|R2\w+|ExecutionContext|SqlStorage\w*|Fetcher|ScheduledController|HTMLRewriter|WebSocketPair|ExportedHandler\w*|MessageBatch|Cloudflare)\b/;

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** The file without comments, line numbers kept, so prose about Durable Objects does not count. */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " "))
    .replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

/** Every violation in one core file, as `path:line: what`. */
function violations(file: string, text: string): string[] {
  const out: string[] = [];
  const rel = relative(ROOT, file);
  for (const [i, line] of code(text).split("\n").entries()) {
    const at = `${rel}:${i + 1}`;
    for (const m of line.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']/g)) {
      const spec = m[1] as string;
      if (FORBIDDEN_PACKAGES.some((p) => p.test(spec))) out.push(`${at}: imports "${spec}"`);
      if (spec.startsWith(".")) {
        const target = relative(ROOT, resolve(dirname(file), spec));
        if (OUTER_LAYERS.some((l) => target === l || target.startsWith(`${l}/`)))
          out.push(`${at}: imports ${target}, outside the core`);
      }
    }
    const name = WORKERS_NAMES.exec(line);
    if (name) out.push(`${at}: names the Workers type or global ${name[1]}`);
  }
  return out;
}

describe("the core boundary", () => {
  it("no file under src/core imports Hono, Workers, Node or an outer layer, or names a Workers type", () => {
    const files = tsFiles(CORE);
    expect(files.length).toBeGreaterThan(20);
    expect(files.flatMap((f) => violations(f, readFileSync(f, "utf8")))).toEqual([]);
  });

  it("catches each kind of violation (so an empty list above means something)", () => {
    const file = join(CORE, "example.ts");
    const bad = [
      'import { Hono } from "hono";',
      'import { DurableObject } from "cloudflare:workers";',
      'import { readFile } from "node:fs/promises";',
      'import type { Env } from "../adapters/env.ts";',
      'const x = await import("../http/respond.ts");',
      "function f(ns: KVNamespace, db: D1Database) {}",
      "// a comment about DurableObjectState is fine",
    ].join("\n");
    expect(violations(file, bad)).toEqual([
      'src/core/example.ts:1: imports "hono"',
      'src/core/example.ts:2: imports "cloudflare:workers"',
      "src/core/example.ts:2: names the Workers type or global DurableObject",
      'src/core/example.ts:3: imports "node:fs/promises"',
      "src/core/example.ts:4: imports src/adapters/env.ts, outside the core",
      "src/core/example.ts:5: imports src/http/respond.ts, outside the core",
      "src/core/example.ts:6: names the Workers type or global KVNamespace",
    ]);
  });
});
