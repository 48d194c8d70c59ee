// Builds a runpass app inside workerd for one test: policies compiled from YAML strings, the real
// Durable Object and D1 bindings from the test env, optional env overrides and an injected clock.

import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { RUNNER_CLI, RUNNER_CLI_SHA256 } from "../../generated/cli-bundle.ts";
import { createApp } from "../../src/app.ts";
import type { Clock } from "../../src/core/clock.ts";
import type { PolicyBundle } from "../../src/core/policy/types.ts";
import { buildBundle, issuerLines } from "./policies.ts";

export { buildBundle, githubPolicy, gitlabPolicy, TOKEN_GRANT } from "./policies.ts";

export const ISSUER_BASE = env.TEST_ISSUER_BASE;
export const BROKER_URL = "https://runpass.test";
export const ADMIN_TOKEN = env.RUNPASS_ADMIN_TOKEN as string;

/** A unique issuer name at the test issuer, so tests that fault or rotate issuers never disturb each other. */
export function uniqueIssuer(prefix = "gh"): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** issuers.yaml entries for test issuer names at the test issuer (github-kind unless given as name:kind). */
export function issuersYaml(...names: string[]): string {
  return issuerLines(ISSUER_BASE, ...names);
}

export interface BrokerOptions {
  policies: Record<string, string>;
  /** A prebuilt bundle instead of compiling `policies` (e.g. a policy-store bundle). */
  bundle?: PolicyBundle;
  issuers?: string;
  env?: Partial<Cloudflare.Env>;
  clock?: Clock;
  fetch?: typeof fetch;
  dev?: boolean;
}

export interface TestBroker {
  bundle: PolicyBundle;
  env: Cloudflare.Env;
  fetch(path: string, init?: RequestInit): Promise<Response>;
  exchange(token: string | undefined, body: unknown): Promise<Response>;
  explain(token: string | undefined, body: unknown): Promise<Response>;
  admin(path: string, init?: RequestInit): Promise<Response>;
}

/** A broker app over the test env's real bindings; waits for waitUntil work so audit writes are visible. */
export async function makeBroker(options: BrokerOptions): Promise<TestBroker> {
  const dev = options.dev ?? true;
  const bundle = options.bundle ?? (await buildBundle(options.policies, options.issuers ?? "", dev));
  const app = createApp({
    bundle,
    runnerCli: { text: RUNNER_CLI, sha256: RUNNER_CLI_SHA256 },
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const testEnv = { ...env, ...(dev ? { RUNPASS_DEV: "1" } : {}), ...options.env } as Cloudflare.Env;
  const doFetch = async (path: string, init?: RequestInit): Promise<Response> => {
    const ctx = createExecutionContext();
    const res = await app.fetch(new Request(`${BROKER_URL}${path}`, init), testEnv, ctx);
    await waitOnExecutionContext(ctx);
    return res;
  };
  const post = (path: string) => (token: string | undefined, body: unknown) =>
    doFetch(path, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
      },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  return {
    bundle,
    env: testEnv,
    fetch: doFetch,
    exchange: post("/v1/exchange"),
    explain: post("/v1/explain"),
    admin: (path, init) =>
      doFetch(path, {
        ...init,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(init?.headers ?? {}) },
      }),
  };
}
