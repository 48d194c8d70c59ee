// What the policy tooling commands (test, claims, explain --all, diff) share: where things are, and loading the set.

import { readFile } from "node:fs/promises";
import { decodeJwt } from "jose";
import { isCompactJws } from "../core/oidc/jws.ts";
import type { PolicyBundle } from "../core/policy/types.ts";
import { formatProblem, loadPolicyFolder } from "./build.ts";
import { devPort } from "./dev-keys.ts";
import { UsageError } from "./usage-error.ts";

export interface PolicyToolContext {
  /** Project root (for .dev/ keys in dev builds). */
  root: string;
  /** Resolves --policies (or RUNPASS_POLICIES_DIR, or the default folder). */
  policiesDir(flag: string | undefined): string;
}

/** Whether this is a RUNPASS_DEV=1 run (dev-only policies and loopback issuers load). */
export function devMode(): boolean {
  return process.env.RUNPASS_DEV === "1";
}

/** Loads and validates a policies folder as the build would; problems go to stderr and make it a usage error. */
export async function loadBundle(ctx: PolicyToolContext, dir: string): Promise<PolicyBundle> {
  const loaded = await loadPolicyFolder({
    root: ctx.root,
    dir,
    dev: devMode(),
    port: devPort(),
  });
  if (!loaded.bundle) {
    for (const p of loaded.problems) console.error(formatProblem(p));
    throw new UsageError(`the policies in ${dir} do not load (run \`runpass policy check\`)`);
  }
  return loaded.bundle;
}

/** Parses --at into epoch milliseconds (default now). */
export function parseAt(value: string | undefined, what = "--at"): number {
  if (value === undefined) return Date.now();
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new UsageError(`${what} "${value}" is not an ISO 8601 time`);
  return ms;
}

/** Reads a token file (surrounding whitespace trimmed). */
export async function readTokenFile(path: string): Promise<string> {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch (e) {
    throw new UsageError(`cannot read token file ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
  }
}

/** Decodes a JWT's payload without verifying it. The message never quotes the token. */
export function decodeUnverified(token: string, path: string): Record<string, unknown> {
  if (!isCompactJws(token))
    throw new UsageError(`${path} does not hold a compact JWT (header.payload.signature)`);
  try {
    return decodeJwt(token) as Record<string, unknown>;
  } catch {
    throw new UsageError(`${path}: the JWT payload is not a JSON object`);
  }
}
