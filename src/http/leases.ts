// DELETE /v1/leases/{id} (the job's post step) and POST /v1/introspect (RFC 7662 for runpass-signed tokens).

import type { Context, Hono } from "hono";
import { createLocalJWKSet, jwtVerify } from "jose";
import { DurableLedger } from "../adapters/ledger-client.ts";
import { type AuditRecord, auditGrants } from "../core/audit/record.ts";
import { sha256 } from "../core/crypto.ts";
import { type Reason, RunpassError } from "../core/errors.ts";
import { type Issued, issueGrants, planGrants, recallIssued } from "../core/grants/issue.ts";
import { grantModule } from "../core/grants/registry.ts";
import { credentialFingerprints } from "../core/leaks/fingerprint.ts";
import { runKeyOfSignedLeaseId } from "../core/lease.ts";
import { claimReasons } from "../core/policy/match.ts";
import { decodeUtf8 } from "../core/read-capped.ts";
import { auditRefusal, auditSink, requestRecord } from "./audit.ts";
import { clientBlocked, limitIntrospection, refuseOrCharge } from "./rate-limit.ts";
import { bearer, readBodyBytes, requireMediaType } from "./request.ts";
import { NO_STORE } from "./respond.ts";
import type { AppEnv } from "./types.ts";

/** The same answer for "no such lease" and "not your revoke token", so lease ids cannot be probed. */
function noSuchLease(): RunpassError {
  return new RunpassError("not_found", "no lease matches this id and revoke token", {
    reasons: [{ code: "revoke_token_invalid" }],
  });
}

/** The lease a DELETE or renewal names, with its revoke token; a forged or altered id never reaches storage. */
async function openLease(
  c: Context<AppEnv>,
): Promise<{ id: string; run: string; revokeToken: string } | RunpassError> {
  let revokeToken: string | undefined;
  try {
    revokeToken = bearer(c, 256);
  } catch (e) {
    if (e instanceof RunpassError) return e;
    throw e;
  }
  if (!revokeToken) {
    return new RunpassError(
      "invalid_token",
      "the lease's revoke token is required as `Authorization: Bearer <revoke_token>`",
      { reasons: [{ code: "token_missing" }] },
    );
  }
  const id = c.req.param("id") ?? "";
  const run = await c.get("runtime").context(c.env).leaseIds().open(id);
  // Same answer as a wrong revoke token; charged to the client's failure limit like any invalid token.
  if (!run) {
    return new RunpassError("not_found", "no lease matches this id and revoke token", {
      reasons: [{ code: "lease_id_invalid" }],
    });
  }
  return { id, run, revokeToken };
}

/** Claims introspection may disclose: what the holder of the token can already read in it, minus identity data. */
const INTROSPECTION_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "policy", "lease_id", "run"];

/** Registers the lease and introspection routes. */
export function leaseRoutes(app: Hono<AppEnv>): void {
  app.delete("/v1/leases/:id", async (c) => {
    const rt = c.get("runtime");
    const blocked = clientBlocked(c);
    const fail = async (e: RunpassError, fields: Partial<AuditRecord> = {}) =>
      (await refuseOrCharge(c, blocked, e)) ?? (await auditRefusal(c, "lease_delete", e, fields));
    const found = await openLease(c);
    if (found instanceof RunpassError) throw await fail(found);
    const { id, run, revokeToken } = found;
    const outcome = await new DurableLedger(c.env.RUN_LEDGER).endLease(
      id,
      {
        run,
        requestId: c.get("requestId"),
        policySetVersion: rt.policies.version,
        reason: "revoked_by_client",
      },
      await sha256(revokeToken),
    );
    if (outcome === "not_found") throw await fail(noSuchLease(), { run });
    return c.body(null, 204, { ...NO_STORE });
  });

  app.post("/v1/leases/:id/renew", async (c) => {
    const rt = c.get("runtime");
    const ctx = rt.context(c.env);
    const blocked = clientBlocked(c);
    const fail = (e: RunpassError, fields: Partial<AuditRecord> = {}) => auditRefusal(c, "renew", e, fields);
    const found = await openLease(c);
    if (found instanceof RunpassError) throw (await refuseOrCharge(c, blocked, found)) ?? (await fail(found));
    const { id, run, revokeToken } = found;
    const ledger = new DurableLedger(c.env.RUN_LEDGER);
    const lease = await ledger.renewable(run, id, await sha256(revokeToken), rt.clock());
    if (lease === "not_found")
      throw (await refuseOrCharge(c, blocked, noSuchLease())) ?? (await fail(noSuchLease(), { run }));
    if (typeof lease === "object" && "retryAfterMs" in lease) {
      const seconds = Math.max(1, Math.ceil(lease.retryAfterMs / 1000));
      throw await fail(
        new RunpassError("rate_limited", `this lease was renewed recently; retry after ${seconds} s`, {
          retryAfter: seconds,
          reasons: [{ code: "renewed_too_soon" }],
          reasonsVisible: true,
        }),
        { run, lease_id: id },
      );
    }
    const ended = () =>
      new RunpassError("access_denied", "the lease or its run has ended; exchange a new OIDC token", {
        reasons: [{ code: "run_ended" }],
        reasonsVisible: true,
      });
    if (lease === "ended") throw await fail(ended(), { run, lease_id: id });

    // The policy as deployed now: renewal never outlives a policy change that would refuse the lease.
    const policy = await rt.policies.lookup(lease.policy);
    const issuer = rt.bundle.issuers.find((i) => i.name === lease.subject.issuer);
    const denied = (reasons: Reason[]) =>
      new RunpassError(
        "access_denied",
        `access denied: this lease may no longer use policy "${lease.policy}"`,
        {
          reasons,
          reasonsVisible: true,
        },
      );
    if (!policy || !issuer || policy.issuer.name !== issuer.name) {
      throw await fail(denied([{ code: "policy_unknown" }]), { run, lease_id: id, policy: lease.policy });
    }
    const reasons = claimReasons(policy, lease.subject.claims);
    if (reasons.length > 0) throw await fail(denied(reasons), { run, lease_id: id, policy: lease.policy });

    const now = Math.floor(rt.clock() / 1000);
    const leaseRef = { id, run, expiresAt: Math.floor(lease.expires_at / 1000) };
    const subject = { issuer, claims: lease.subject.claims, sub: lease.subject.sub };
    // Secrets are delivered at exchange only: renewal re-mints credentials, it does not re-deliver bundles.
    const names = lease.grant_types.filter(
      (g) => grantModule(g).renewable && Object.hasOwn(policy.def.grants, g),
    );
    const policyRef = { name: policy.def.name, version: policy.def.version };
    const hasher = ctx.hasher();
    let issued: Issued;
    try {
      const plan = planGrants(policy.def.grants, names, subject, leaseRef, now, lease.inputs);
      issued = await issueGrants(
        plan,
        subject,
        leaseRef,
        policyRef,
        { ...ctx.grants, signer: await ctx.signer(), issuerUrl: ctx.config.issuerUrl, hasher },
        now,
      );
    } catch (e) {
      if (e instanceof RunpassError) {
        throw await fail(e, {
          run,
          lease_id: id,
          policy: policy.def.name,
          ...(e.auditDetail ? { detail: e.auditDetail } : {}),
        });
      }
      throw e;
    }
    const record = await requestRecord(
      c,
      "renew",
      { decision: "allow", reasons: [] },
      {
        run,
        lease_id: id,
        policy: policy.def.name,
        policy_version: policy.def.version,
        issuer: issuer.name,
        grants: auditGrants(issued.grants),
        fingerprints: await credentialFingerprints(
          ctx.fingerprinter(),
          issued.credentials,
          undefined,
          (ref) => ctx.grants.sealer.seal(ref, id),
        ),
      },
    );
    if (!(await ledger.addGrants(run, id, issued.grants, record, rt.clock()))) {
      const recalled = await recallIssued(ctx.grants, issued.credentials);
      throw await fail(ended(), { run, lease_id: id, detail: recalled });
    }
    return c.json(
      {
        policy: policy.def.name,
        policy_version: policy.def.version,
        policy_set_version: rt.policies.version,
        lease: { id, run, expires_at: new Date(lease.expires_at).toISOString() },
        credentials: issued.credentials,
      },
      200,
      NO_STORE,
    );
  });

  app.post("/v1/introspect", async (c) => {
    const rt = c.get("runtime");
    const ctx = rt.context(c.env);
    // Junk from an address must not lock out valid introspections from it (resource servers share addresses
    // too): a client over its failure limit is refused only when its token does not verify.
    const blocked = clientBlocked(c);
    let token: string | undefined;
    try {
      const bytes = await readBodyBytes(c);
      requireMediaType(c, "application/x-www-form-urlencoded");
      let form: URLSearchParams;
      try {
        form = new URLSearchParams(decodeUtf8(bytes));
      } catch {
        throw new RunpassError("invalid_request", "the body is not a UTF-8 form");
      }
      token = form.get("token") ?? undefined;
      if (!token) throw new RunpassError("invalid_request", 'the form field "token" is required');
    } catch (e) {
      const refusal = await refuseOrCharge(c, blocked, e);
      if (refusal) throw refusal;
      if (e instanceof RunpassError) throw await auditRefusal(c, "introspect", e);
      throw e;
    }
    const inactive = async (why: string, fields: { run?: string; lease_id?: string } = {}) => {
      auditSink(c).write(
        await requestRecord(c, "introspect", { decision: "deny", reasons: [] }, { ...fields, detail: why }),
      );
      return c.json({ active: false }, 200, NO_STORE);
    };
    const signer = await ctx.signer();
    let claims: Record<string, unknown>;
    try {
      const { payload } = await jwtVerify(token, createLocalJWKSet(signer.jwks()), {
        issuer: ctx.config.issuerUrl,
        requiredClaims: ["exp", "iat", "lease_id"],
        currentDate: new Date(rt.clock()),
      });
      claims = payload as Record<string, unknown>;
    } catch {
      const refusal = await refuseOrCharge(c, blocked, "invalid_token");
      if (refusal) throw refusal;
      return inactive("not a valid runpass token");
    }
    const leaseId = typeof claims.lease_id === "string" ? claims.lease_id : "";
    // The id comes from a token runpass signed, so its MAC is not needed (ids minted before it had none).
    const run = runKeyOfSignedLeaseId(leaseId);
    if (!run) return inactive("no lease");
    await limitIntrospection(c, run);
    const lease = await new DurableLedger(c.env.RUN_LEDGER).lease(run, leaseId);
    if (!lease || lease.ended_at !== null || lease.expires_at <= rt.clock()) {
      return inactive(lease?.end_reason ?? "lease ended", { run, lease_id: leaseId });
    }
    const out: Record<string, unknown> = { active: true, token_type: "Bearer" };
    for (const name of INTROSPECTION_CLAIMS) if (claims[name] !== undefined) out[name] = claims[name];
    auditSink(c).write(
      await requestRecord(c, "introspect", { decision: "allow", reasons: [] }, { run, lease_id: leaseId }),
    );
    return c.json(out, 200, NO_STORE);
  });
}
