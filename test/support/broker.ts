// Builds a runpass app inside workerd for one test: policies compiled from YAML strings, the real
// Durable Object and D1 bindings from the test env, optional env overrides and an injected clock.

import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { RUNNER_CLI, RUNNER_CLI_SHA256 } from "../../generated/cli-bundle.ts";
import { createApp } from "../../src/app.ts";
import type { Clock } from "../../src/core/clock.ts";
import { loadPolicySet } from "../../src/core/policy/load.ts";
import type { PolicyBundle } from "../../src/core/policy/types.ts";

export const ISSUER_BASE = env.TEST_ISSUER_BASE;
export const BROKER_URL = "https://runpass.test";
export const ADMIN_TOKEN = env.RUNPASS_ADMIN_TOKEN as string;

/** A unique issuer name at the test issuer, so tests that fault or rotate issuers never disturb each other. */
export function uniqueIssuer(prefix = "gh"): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Compiles policies (name → YAML) with an issuers.yaml; throws with the problems if they do not load. */
export async function buildBundle(
  policies: Record<string, string>,
  issuersYaml = "",
  dev = true,
): Promise<PolicyBundle> {
  const result = await loadPolicySet(
    {
      policies: Object.entries(policies).map(([name, text]) => ({ path: `policies/${name}.yaml`, text })),
      issuers: { path: "policies/issuers.yaml", text: issuersYaml },
    },
    { dev },
  );
  if (!result.bundle)
    throw new Error(result.problems.map((p) => `${p.file}:${p.line}: ${p.message}`).join("\n"));
  return result.bundle;
}

/** issuers.yaml entries for test issuer names (github-kind unless given as name:kind). */
export function issuersYaml(...names: string[]): string {
  return names
    .map((n) => {
      const [name, kind = "github"] = n.split(":");
      return `${name}: { url: "${ISSUER_BASE}/${name}", kind: ${kind} }`;
    })
    .join("\n");
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

/** A GitHub-kind policy for acme/api on `issuer` (extra YAML lines appended under allow). */
export function githubPolicy(
  issuer: string,
  extra = "",
  grants = 'token: { audience: "https://deploy.acme.dev", ttl: 10m }',
): string {
  return `issuer: ${issuer}
allow:
  repository_owner_id: "1342004"
  repository_id: "519345000"
  ref: refs/heads/main
  event_name: [push, workflow_dispatch]
${extra}
grants:
  ${grants}
`;
}
