// Offline `runpass policy explain`: the decision the server would make for a token, without a server.

import { readFile } from "node:fs/promises";
import type { JWK } from "jose";
import { authorize } from "../core/authorize.ts";
import type { Clock } from "../core/clock.ts";
import type { Reason } from "../core/errors.ts";
import type { IssuerConfig } from "../core/oidc/issuers.ts";
import { KeySetCache } from "../core/oidc/key-source.ts";
import { compilePolicySet } from "../core/policy/compile.ts";
import type { PolicyBundle } from "../core/policy/types.ts";

export interface OfflineExplainOptions {
  bundle: PolicyBundle;
  policy: string;
  token: string;
  /** A key set to use for the token's issuer instead of fetching its JWKS. */
  jwks?: { keys: JWK[] };
  /** The clock to judge exp/iat/nbf by. */
  clock: Clock;
  /** RUNPASS_AUDIENCE as the server would have it. */
  audience?: string;
  fetch?: typeof fetch;
}

export interface OfflineExplainResult {
  decision: "allow" | "deny";
  error?: "invalid_token" | "access_denied" | "request_too_large" | "temporarily_unavailable";
  reasons: Reason[];
  claims: Record<string, unknown>;
}

/** Runs verification and matching exactly as the Worker does, minus the run ledger (replay and run-ended need the server). */
export async function offlineExplain(options: OfflineExplainOptions): Promise<OfflineExplainResult> {
  const issuers: IssuerConfig[] = options.jwks
    ? options.bundle.issuers.map((i) => ({ ...i, jwks: options.jwks as { keys: JWK[] } }))
    : options.bundle.issuers;
  const policies = compilePolicySet({ ...options.bundle, issuers });
  const audiences = new Set(policies.policyAudiences);
  if (options.audience) audiences.add(options.audience);
  const keys = new KeySetCache({
    clock: options.clock,
    dev: options.bundle.dev,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const auth = await authorize(
    { token: options.token, policy: options.policy },
    {
      policies,
      verifier: { issuers: policies.issuersByUrl, keys, audiences, clock: options.clock },
      defaultAudience: options.audience ?? "",
      explainFull: true,
    },
  );
  if (auth.ok) return { decision: "allow", reasons: [], claims: auth.value.token.claims };
  const code = auth.error.code as NonNullable<OfflineExplainResult["error"]>;
  return { decision: "deny", error: code, reasons: auth.error.reasons, claims: auth.token?.claims ?? {} };
}

/** Reads a JWKS file (a key set, or a single JWK). */
export async function readJwksFile(path: string): Promise<{ keys: JWK[] }> {
  const parsed = JSON.parse(await readFile(path, "utf8")) as { keys?: JWK[] } & JWK;
  if (Array.isArray(parsed.keys)) return { keys: parsed.keys };
  if (typeof parsed.kty === "string") return { keys: [parsed] };
  throw new Error(`${path} is neither a JWKS nor a JWK`);
}
