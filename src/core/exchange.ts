// The exchange and explain pipelines: verify → policy → (ledger) → grants → durable audit → response.

import { type AuditBase, type AuditRecord, auditGrants, auditRecord } from "./audit/record.ts";
import { type Authorization, authorize } from "./authorize.ts";
import type { Clock } from "./clock.ts";
import { CLOCK_SKEW_SECONDS } from "./constants.ts";
import { checksummedCredential, REVOKE_TOKEN_PREFIX } from "./credential-format.ts";
import { type AuditHasher, sha256 } from "./crypto.ts";
import { type ErrorCode, type Reason, RunpassError } from "./errors.ts";
import {
  type Credentials,
  type ExchangeInputs,
  type GrantPlan,
  type GrantSubject,
  type Issued,
  type IssuePorts,
  issueGrants,
  planGrants,
  planIsCostly,
  recallIssued,
} from "./grants/issue.ts";
import type { Signer } from "./grants/signer.ts";
import { credentialFingerprints, type Fingerprinter } from "./leaks/fingerprint.ts";
import type { LeaseIds } from "./lease.ts";
import type { AuditSink, Ledger } from "./ledger.ts";
import type { VerifiedToken, VerifierOptions } from "./oidc/verify.ts";
import type { CompiledPolicy, PolicySet } from "./policy/compile.ts";
import type { GrantName } from "./policy/types.ts";
import { windowStart } from "./rate-limit.ts";

export type { DecisionDeps } from "./authorize.ts";

export interface ExchangeDeps {
  policies: PolicySet;
  verifier: VerifierOptions;
  /** runpass's own issuer URL. */
  issuerUrl: string;
  /** RUNPASS_AUDIENCE (policies without `audience` use it). */
  defaultAudience: string;
  explainFull: boolean;
  /** Hard cap on any lease, seconds. */
  maxLeaseTtl: number;
  signer: Signer;
  hasher: AuditHasher;
  /** Mints MAC'd lease ids. */
  leaseIds: LeaseIds;
  /** Leak fingerprints of every credential value returned (docs/leaks.md). */
  fingerprinter: Fingerprinter;
  /** Sees every decision's audit record once it is final (alert counting, docs/leaks.md); must not throw. */
  observe?: DecisionObserver;
  /** Upstream clients and the revocation-handle sealer. */
  grants: IssuePorts;
  ledger: Ledger;
  audit: AuditSink;
  clock: Clock;
  /** Charges a verified token to its repository's rate limit; throws 429 `rate_limited` over it (refusals are audited in aggregate by the limiter). */
  rateLimit?: (token: VerifiedToken) => Promise<void>;
}

/** What the alert counters learn from a final decision (docs/leaks.md, Alerts). */
export interface DecisionFacts {
  sensitive: boolean;
  /** For an allow with a run: this run's leases within the observer's `runWindowMs`, this one included. */
  runIssued?: number;
}

/** Sees every decision's audit record once it is final; `runWindowMs` asks the run ledger to count the run's leases. */
export interface DecisionObserver {
  runWindowMs?: number;
  decided(record: AuditRecord, facts: DecisionFacts): void;
}

export interface ExchangeInput {
  requestId: string;
  token: string | undefined;
  policy: string;
  grants?: GrantName[];
  /** Requested lease length, seconds (can only shorten). */
  ttl?: number;
  /** RFC 8693 `audience`: judged only once the token verified and the policy matched, so it reveals nothing. */
  audience?: string;
  /** Runner-supplied key material (`ssh_public_key`, `csr`); grants that do not use it ignore it. */
  inputs?: ExchangeInputs;
}

export interface ExchangeResponse {
  policy: string;
  policy_version: string;
  policy_set_version: string;
  lease: { id: string; run: string; expires_at: string; revoke_token: string };
  credentials: Credentials;
  /** Secrets delivered base64-encoded (stored as binary). */
  secret_encodings?: Record<string, "base64">;
}

export interface ExplainResponse {
  decision: "allow" | "deny";
  error?: ErrorCode;
  policy: string;
  reasons?: Reason[];
  claims?: Record<string, unknown>;
}

function auditBase(
  input: ExchangeInput,
  deps: ExchangeDeps,
  event: AuditBase["event"],
  policy?: CompiledPolicy,
): AuditBase {
  return {
    requestId: input.requestId,
    event,
    policySetVersion: deps.policies.version,
    now: deps.clock(),
    ...(policy ? { policy: { name: policy.def.name, version: policy.def.version } } : {}),
  };
}

async function recordDenial(
  input: ExchangeInput,
  deps: ExchangeDeps,
  event: AuditBase["event"],
  failure: { error: RunpassError; token?: VerifiedToken; policy?: CompiledPolicy },
): Promise<void> {
  const record = await auditRecord(
    auditBase(input, deps, event, failure.policy),
    deps.hasher,
    { decision: "deny", error: failure.error.code, reasons: failure.error.reasons },
    failure.token,
  );
  if (!failure.policy && input.policy) record.policy = input.policy;
  if (failure.error.auditDetail) record.detail = failure.error.auditDetail;
  deps.audit.write(record);
  deps.observe?.decided(record, { sensitive: failure.policy?.def.sensitive === true });
}

/** The run ledger key (docs/architecture.md, State); tokens that name no run get a key of their own from issuer + single-use id. */
export async function ledgerKey(token: VerifiedToken): Promise<string> {
  if (token.identity.runKey) return token.identity.runKey;
  const digest = await sha256(`${token.issuer.url}\n${token.singleUseId}`);
  return `token:${token.issuer.name}:${digest.slice("sha256:".length)}`;
}

/** Charges a request whose token verified (allowed or not) to its repository's rate limit. */
async function chargeVerified(auth: Authorization, deps: ExchangeDeps): Promise<void> {
  const token = auth.ok ? auth.value.token : auth.token;
  if (token && deps.rateLimit) await deps.rateLimit(token);
}

/** POST /v1/exchange: issues credentials or throws a RunpassError (after auditing it). */
export async function exchange(input: ExchangeInput, deps: ExchangeDeps): Promise<ExchangeResponse> {
  const auth = await authorize(input, deps);
  await chargeVerified(auth, deps);
  if (!auth.ok) {
    await recordDenial(input, deps, "exchange", auth);
    throw auth.error;
  }
  const { token, policy, grants, visible } = auth.value;
  if (
    input.audience !== undefined &&
    (!grants.includes("token") || policy.def.grants.token?.audience !== input.audience)
  ) {
    const error = new RunpassError(
      "access_denied",
      "runpass does not issue tokens for that audience under this policy",
      {
        reasons: [{ code: "target_invalid" }],
        reasonsVisible: visible,
      },
    );
    await recordDenial(input, deps, "exchange", { error, token, policy });
    throw error;
  }
  const nowMs = deps.clock();
  const now = Math.floor(nowMs / 1000);
  const runKey = await ledgerKey(token);
  const leaseTtl = Math.min(policy.def.ttl, deps.maxLeaseTtl, input.ttl ?? Number.POSITIVE_INFINITY);
  const lease = { id: await deps.leaseIds.mint(runKey), run: runKey, expiresAt: now + leaseTtl };
  // A prefix and checksum secret scanners recognise (docs/leaks.md, Scanner rules).
  const revokeToken = checksummedCredential(REVOKE_TOKEN_PREFIX);
  const subject: GrantSubject = { issuer: token.issuer, claims: token.claims, sub: token.standard.sub };
  const singleUse = await sha256(token.singleUseId);
  const policyRef = { name: policy.def.name, version: policy.def.version };
  const deny = (error: RunpassError) => recordDenial(input, deps, "exchange", { error, token, policy });

  let plan: GrantPlan;
  try {
    plan = planGrants(policy.def.grants, grants, subject, lease, now, input.inputs);
  } catch (e) {
    if (e instanceof RunpassError) {
      const error = new RunpassError(e.code, e.message, {
        reasons: e.reasons,
        reasonsVisible: visible || e.reasonsVisible,
      });
      await deny(error);
      throw error;
    }
    throw e;
  }

  // Upstream credentials cost quota and cannot all be recalled: refuse a known replay or ended run first.
  const deliverOnce = plan.secrets && policy.def.deliver_once ? policy.def.name : undefined;
  if (planIsCostly(plan)) {
    const state = await peekLedger(deps, runKey, singleUse, deny, deliverOnce);
    if (state.replayed || state.runEnded || state.delivered) {
      const reason = state.replayed ? "replayed" : state.runEnded ? "run_ended" : "already_delivered";
      throw await refuse(reason, visible, deny);
    }
  }

  let issued: Issued;
  try {
    issued = await issueGrants(
      plan,
      subject,
      lease,
      policyRef,
      { ...deps.grants, signer: deps.signer, issuerUrl: deps.issuerUrl, hasher: deps.hasher },
      now,
    );
  } catch (e) {
    if (e instanceof RunpassError) {
      await recordDenial(input, deps, "exchange", { error: e, token, policy });
    }
    throw e;
  }

  const record = await auditRecord(
    auditBase(input, deps, "exchange", policy),
    deps.hasher,
    { decision: "allow", reasons: [] },
    token,
  );
  record.run = runKey;
  record.lease_id = lease.id;
  record.lease_expires_at = new Date(lease.expiresAt * 1000).toISOString();
  record.grants = auditGrants(issued.grants);
  record.fingerprints = await credentialFingerprints(
    deps.fingerprinter,
    issued.credentials,
    revokeToken,
    (ref) => deps.grants.sealer.seal(ref, lease.id),
  );

  let outcome: Awaited<ReturnType<Ledger["commit"]>>;
  try {
    outcome = await deps.ledger.commit(runKey, {
      singleUse,
      singleUseExpiresAt: (token.standard.exp + CLOCK_SKEW_SECONDS) * 1000,
      lease: {
        id: lease.id,
        revokeHash: await sha256(revokeToken),
        policy: policy.def.name,
        createdAt: nowMs,
        expiresAt: lease.expiresAt * 1000,
        grants: issued.grants,
        subject: { issuer: token.issuer.name, claims: token.claims, sub: token.standard.sub },
      },
      audit: record,
      ...(deliverOnce ? { deliverOnce } : {}),
      // A fixed window, like the other burst counters: the threshold is reached once per window.
      ...(deps.observe?.runWindowMs !== undefined
        ? { countSince: windowStart(nowMs, deps.observe.runWindowMs) }
        : {}),
    });
  } catch {
    const recalled = await recallIssued(deps.grants, issued.credentials);
    const error = new RunpassError(
      "temporarily_unavailable",
      "the run ledger is unavailable, so nothing was issued; retry shortly",
      { retryAfter: 5, auditDetail: recalled },
    );
    await deny(error);
    throw error;
  }
  if (!outcome.ok) {
    // The ledger wrote the refusal record; credentials minted for it must not survive.
    await recallIssued(deps.grants, issued.credentials);
    throw await refuse(outcome.reason, visible);
  }
  deps.observe?.decided(record, {
    sensitive: policy.def.sensitive === true,
    ...(outcome.recent !== undefined ? { runIssued: outcome.recent } : {}),
  });

  return {
    policy: policy.def.name,
    policy_version: policy.def.version,
    policy_set_version: deps.policies.version,
    lease: {
      id: lease.id,
      run: runKey,
      expires_at: new Date(lease.expiresAt * 1000).toISOString(),
      revoke_token: revokeToken,
    },
    credentials: issued.credentials,
    ...(Object.keys(issued.encodings).length ? { secret_encodings: issued.encodings } : {}),
  };
}

async function peekLedger(
  deps: ExchangeDeps,
  runKey: string,
  singleUse: string,
  deny: (e: RunpassError) => Promise<void>,
  deliverOnce?: string,
): Promise<{ replayed: boolean; runEnded: boolean; delivered?: boolean }> {
  try {
    return await deps.ledger.peek(runKey, singleUse, deliverOnce);
  } catch {
    const error = new RunpassError(
      "temporarily_unavailable",
      "the run ledger is unavailable, so nothing was issued; retry shortly",
      { retryAfter: 5 },
    );
    await deny(error);
    throw error;
  }
}

/** The error for a replayed token or an ended run (recorded by `deny` when given; the ledger records its own). */
async function refuse(
  reason: "replayed" | "run_ended" | "already_delivered",
  visible: boolean,
  deny?: (e: RunpassError) => Promise<void>,
): Promise<RunpassError> {
  if (reason === "already_delivered") {
    const error = new RunpassError(
      "access_denied",
      "access denied: this policy's secrets were already delivered to this run (deliver_once)",
      { reasons: [{ code: "secrets_already_delivered" }], reasonsVisible: visible },
    );
    if (deny) await deny(error);
    return error;
  }
  const error =
    reason === "replayed"
      ? new RunpassError(
          "token_replayed",
          "this token has already been exchanged; request a fresh OIDC token",
          {
            reasons: [{ code: "replayed" }],
            reasonsVisible: visible,
          },
        )
      : new RunpassError("access_denied", "access denied: the CI run this token belongs to has ended", {
          reasons: [{ code: "run_ended" }],
          reasonsVisible: visible,
        });
  if (deny) await deny(error);
  return error;
}

/** POST /v1/explain: the decision exchange would make, without issuing anything or consuming the token. */
export async function explain(input: ExchangeInput, deps: ExchangeDeps): Promise<ExplainResponse> {
  const auth = await authorize(input, deps);
  await chargeVerified(auth, deps);
  let response: ExplainResponse;
  if (!auth.ok) {
    // Request-level problems stay errors; decisions about the token become a deny document.
    if (!["invalid_token", "access_denied"].includes(auth.error.code)) throw auth.error;
    await recordDenial(input, deps, "explain", auth);
    response = { decision: "deny", error: auth.error.code, policy: input.policy };
    if (auth.error.reasonsVisible) {
      response.reasons = auth.error.reasons;
      if (auth.token) response.claims = auth.token.claims;
    }
    return response;
  }
  const { token, policy, visible } = auth.value;
  const runKey = await ledgerKey(token);
  const state = await deps.ledger.peek(runKey, await sha256(token.singleUseId));
  const reasons: Reason[] = [];
  if (state.runEnded) reasons.push({ code: "run_ended" });
  if (state.replayed) reasons.push({ code: "replayed" });
  const decision = reasons.length === 0 ? "allow" : "deny";
  const record = await auditRecord(
    auditBase(input, deps, "explain", policy),
    deps.hasher,
    {
      decision,
      ...(decision === "deny" ? { error: state.runEnded ? "access_denied" : "token_replayed" } : {}),
      reasons,
    },
    token,
  );
  deps.audit.write(record);
  response = { decision, policy: policy.def.name };
  if (decision === "deny") response.error = state.runEnded ? "access_denied" : "token_replayed";
  if (visible) {
    response.reasons = reasons;
    response.claims = token.claims;
  }
  return response;
}
