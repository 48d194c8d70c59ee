// `runpass policy explain --all`: verify a token offline once, then evaluate only the candidate policies for it.

import { parseArgs } from "node:util";
import type { JWK } from "jose";
import type { Clock } from "../core/clock.ts";
import type { Reason } from "../core/errors.ts";
import type { IssuerConfig } from "../core/oidc/issuers.ts";
import { KeySetCache } from "../core/oidc/key-source.ts";
import { verifyToken } from "../core/oidc/verify.ts";
import { candidatesFor, compilePolicySet } from "../core/policy/compile.ts";
import { evaluatePolicy } from "../core/policy/match.ts";
import type { PolicyBundle } from "../core/policy/types.ts";
import { readJwksFile } from "./explain.ts";
import { loadBundle, type PolicyToolContext, parseAt, readTokenFile } from "./policy-context.ts";
import { UsageError } from "./usage-error.ts";

export interface ExplainAllResult {
  /** Set when the token itself does not verify (then nothing is evaluated). */
  error?: "invalid_token" | "request_too_large" | "temporarily_unavailable";
  /** Verification reasons when `error` is set. */
  reasons?: Reason[];
  claims: Record<string, unknown>;
  /** Names of the policies that would allow this token. */
  allowed: string[];
  /** The candidate policies that would not, with every failing condition. */
  denied: Array<{ policy: string; reasons: Reason[] }>;
}

export interface ExplainAllOptions {
  bundle: PolicyBundle;
  token: string;
  clock: Clock;
  jwks?: { keys: JWK[] };
  /** RUNPASS_AUDIENCE as the server would have it. */
  audience?: string;
  fetch?: typeof fetch;
}

/**
 * Which policies would allow `token`. Candidates come from the pin index (candidatesFor), so only policies
 * pinning this token's owner/repository/subject are evaluated, never the whole set.
 */
export async function explainAll(options: ExplainAllOptions): Promise<ExplainAllResult> {
  const issuers: IssuerConfig[] = options.jwks
    ? options.bundle.issuers.map((i) => ({ ...i, jwks: options.jwks as { keys: JWK[] } }))
    : options.bundle.issuers;
  const set = compilePolicySet({ ...options.bundle, issuers });
  const audiences = new Set(set.policyAudiences);
  if (options.audience) audiences.add(options.audience);
  const keys = new KeySetCache({
    clock: options.clock,
    dev: options.bundle.dev,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const verified = await verifyToken(options.token, {
    issuers: set.issuersByUrl,
    keys,
    audiences,
    clock: options.clock,
  });
  if (!verified.ok) {
    return {
      error: verified.error.code,
      reasons: [verified.error.reason],
      claims: {},
      allowed: [],
      denied: [],
    };
  }
  const token = verified.value;
  const allowed: string[] = [];
  const denied: ExplainAllResult["denied"] = [];
  const seen = new Set<string>();
  for (const policy of candidatesFor(set, token.issuer.name, token.claims)) {
    if (seen.has(policy.def.name)) continue;
    seen.add(policy.def.name);
    const evaluation = evaluatePolicy(policy, token, options.audience ?? "");
    if (evaluation.allowed) allowed.push(policy.def.name);
    else denied.push({ policy: policy.def.name, reasons: evaluation.reasons });
  }
  allowed.sort();
  denied.sort((a, b) => (a.policy < b.policy ? -1 : a.policy > b.policy ? 1 : 0));
  return { claims: token.claims, allowed, denied };
}

/** The CLI command: exit 0 when some policy allows, 1 when none does, 2 on usage or key errors. */
export async function policyExplainAllCommand(ctx: PolicyToolContext, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      all: { type: "boolean", default: false },
      policies: { type: "string" },
      policy: { type: "string" },
      token: { type: "string" },
      jwks: { type: "string" },
      at: { type: "string" },
      audience: { type: "string" },
    },
    strict: true,
  });
  if (values.policy !== undefined)
    throw new UsageError("policy explain takes --policy NAME or --all, not both");
  if (!values.token) throw new UsageError("policy explain --all needs --token FILE");
  const now = parseAt(values.at);
  const bundle = await loadBundle(ctx, ctx.policiesDir(values.policies));
  const token = await readTokenFile(values.token);
  const audience = values.audience ?? process.env.RUNPASS_AUDIENCE;
  const result = await explainAll({
    bundle,
    token,
    clock: () => now,
    ...(values.jwks ? { jwks: await readJwksFile(values.jwks) } : {}),
    ...(audience ? { audience } : {}),
  });
  console.log(JSON.stringify(result, null, 2));
  if (result.error === "temporarily_unavailable") return 2;
  return result.allowed.length > 0 ? 0 : 1;
}
