// POST /v1/exchange and POST /v1/explain: edge validation, then the core pipeline.

import type { Context, Hono } from "hono";
import * as z from "zod/mini";
import { DurableLedger } from "../adapters/ledger-client.ts";
import { MAX_KEY_MATERIAL_CHARS } from "../core/constants.ts";
import { parseDuration } from "../core/duration.ts";
import { RunpassError } from "../core/errors.ts";
import { type ExchangeDeps, type ExchangeInput, exchange, explain } from "../core/exchange.ts";
import { withoutKidRefetch } from "../core/oidc/key-source.ts";
import { verifyToken } from "../core/oidc/verify.ts";
import { GRANT_NAMES } from "../core/policy/types.ts";
import { decisionObserver } from "./alerts.ts";
import { auditRefusal, auditSink } from "./audit.ts";
import {
  chargeFailure,
  clientBlocked,
  clientRefusal,
  refuseOrCharge,
  repositoryLimit,
} from "./rate-limit.ts";
import { bearer, checkDeclaredLength, parseJson, readBodyBytes, requireMediaType } from "./request.ts";
import { NO_STORE } from "./respond.ts";
import type { AppEnv } from "./types.ts";

const ExchangeBody = z.strictObject({
  policy: z.string().check(z.minLength(1), z.maxLength(128)),
  grants: z.optional(z.array(z.enum(GRANT_NAMES)).check(z.minLength(1), z.maxLength(GRANT_NAMES.length))),
  ttl: z.optional(z.string().check(z.maxLength(16))),
  // Accepted whatever the policy (docs/api.md): only the grants that use them read them.
  ssh_public_key: z.optional(z.string().check(z.minLength(1), z.maxLength(MAX_KEY_MATERIAL_CHARS))),
  csr: z.optional(z.string().check(z.minLength(1), z.maxLength(MAX_KEY_MATERIAL_CHARS))),
});

/** The core pipeline's dependencies for this request (shared by /v1/exchange, /v1/explain and /oauth/token). */
export async function exchangeDeps(c: Context<AppEnv>, event: "exchange" | "explain"): Promise<ExchangeDeps> {
  const rt = c.get("runtime");
  const ctx = rt.context(c.env);
  const hasher = ctx.hasher();
  const audit = auditSink(c);
  const rateLimit = repositoryLimit(c);
  return {
    policies: rt.policies,
    verifier: ctx.verifier,
    issuerUrl: ctx.config.issuerUrl,
    defaultAudience: ctx.config.audience,
    explainFull: ctx.config.explainFull,
    maxLeaseTtl: ctx.config.maxLeaseTtl,
    signer: event === "exchange" ? await ctx.signer() : (undefined as never),
    hasher,
    leaseIds: ctx.leaseIds(),
    fingerprinter: ctx.fingerprinter(),
    observe: decisionObserver(c),
    grants: ctx.grants,
    ledger: new DurableLedger(c.env.RUN_LEDGER),
    audit,
    clock: rt.clock,
    ...(rateLimit ? { rateLimit } : {}),
  };
}

/**
 * For a client over its failure limit: the token must verify (an unknown `kid` never causes a key fetch) before
 * anything else happens; otherwise the 429, with no record of its own (docs/security.md, "Shared addresses").
 */
export async function proveOrRefuse(c: Context<AppEnv>, token: string | undefined): Promise<void> {
  const { verifier } = c.get("runtime").context(c.env);
  const proof = token
    ? await verifyToken(token, { ...verifier, keys: withoutKidRefetch(verifier.keys) })
    : undefined;
  if (proof?.ok) return;
  const refusal = clientRefusal(c);
  if (refusal) throw refusal;
}

async function handle(c: Context<AppEnv>, event: "exchange" | "explain"): Promise<Response> {
  const rt = c.get("runtime");
  const requestId = c.get("requestId");
  rt.context(c.env).hasher(); // no audit key, no decisions: fail closed before reading anything
  // A client over its failure limit is not refused yet: its token may verify (a shared egress address).
  const blocked = clientBlocked(c);

  let input: ExchangeInput;
  let policyName: string | undefined;
  try {
    // Size caps come first, before the media type, the JSON parser or any crypto.
    checkDeclaredLength(c);
    const token = bearer(c);
    requireMediaType(c, "application/json");
    const body = parseJson(await readBodyBytes(c), ExchangeBody);
    policyName = body.policy;
    let ttl: number | undefined;
    if (body.ttl !== undefined) {
      ttl = parseDuration(body.ttl);
      if (ttl === undefined)
        throw new RunpassError("invalid_request", '"ttl" must be a duration such as 15m');
    }
    input = {
      requestId,
      token,
      policy: body.policy,
      ...(body.grants ? { grants: [...new Set(body.grants)] } : {}),
      ...(ttl !== undefined ? { ttl } : {}),
      inputs: {
        ...(body.ssh_public_key !== undefined ? { ssh_public_key: body.ssh_public_key } : {}),
        ...(body.csr !== undefined ? { csr: body.csr } : {}),
      },
    };
  } catch (e) {
    const refusal = await refuseOrCharge(c, blocked, e);
    if (refusal) throw refusal;
    if (e instanceof RunpassError)
      throw await auditRefusal(c, event, e, policyName ? { policy: policyName } : {});
    throw e;
  }
  if (blocked) await proveOrRefuse(c, input.token);

  const deps = await exchangeDeps(c, event);
  try {
    if (event === "exchange") return c.json(await exchange(input, deps), 200, NO_STORE);
    const decision = await explain(input, deps);
    await chargeFailure(c, decision.error);
    return c.json({ ...decision, request_id: requestId }, 200, NO_STORE);
  } catch (e) {
    await chargeFailure(c, e);
    throw e;
  }
}

/** Registers the exchange and explain routes. */
export function exchangeRoutes(app: Hono<AppEnv>): void {
  app.post("/v1/exchange", (c) => handle(c, "exchange"));
  app.post("/v1/explain", (c) => handle(c, "explain"));
}
