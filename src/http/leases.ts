// DELETE /v1/leases/{id} (the job's post step) and POST /v1/introspect (RFC 7662 for runpass-signed tokens).

import type { Hono } from "hono";
import { createLocalJWKSet, jwtVerify } from "jose";
import { DurableLedger } from "../adapters/ledger-client.ts";
import { sha256 } from "../core/crypto.ts";
import { runKeyOfLeaseId } from "../core/lease.ts";
import { decodeUtf8 } from "../core/read-capped.ts";
import { RunpassError } from "../errors.ts";
import { auditRefusal, auditSink, requestRecord } from "./audit.ts";
import { bearer, readBodyBytes, requireMediaType } from "./request.ts";
import { NO_STORE } from "./respond.ts";
import type { AppEnv } from "./types.ts";

/** The same answer for "no such lease" and "not your revoke token", so lease ids cannot be probed. */
function noSuchLease(): RunpassError {
  return new RunpassError("not_found", "no lease matches this id and revoke token", {
    reasons: [{ code: "revoke_token_invalid" }],
  });
}

/** Claims introspection may disclose: what the holder of the token can already read in it, minus identity data. */
const INTROSPECTION_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "policy", "lease_id", "run"];

/** Registers the lease and introspection routes. */
export function leaseRoutes(app: Hono<AppEnv>): void {
  app.delete("/v1/leases/:id", async (c) => {
    const rt = c.get("runtime");
    const id = c.req.param("id");
    let revokeToken: string | undefined;
    try {
      revokeToken = bearer(c, 256);
      if (!revokeToken) {
        throw new RunpassError(
          "invalid_token",
          "the lease's revoke token is required as `Authorization: Bearer <revoke_token>`",
          { reasons: [{ code: "token_missing" }] },
        );
      }
    } catch (e) {
      if (e instanceof RunpassError) throw await auditRefusal(c, "lease_delete", e);
      throw e;
    }
    const run = runKeyOfLeaseId(id);
    if (!run) throw await auditRefusal(c, "lease_delete", noSuchLease());
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
    if (outcome === "not_found") throw await auditRefusal(c, "lease_delete", noSuchLease(), { run });
    return c.body(null, 204, { ...NO_STORE });
  });

  app.post("/v1/introspect", async (c) => {
    const rt = c.get("runtime");
    const ctx = rt.context(c.env);
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
      return inactive("not a valid runpass token");
    }
    const leaseId = typeof claims.lease_id === "string" ? claims.lease_id : "";
    const run = runKeyOfLeaseId(leaseId);
    if (!run) return inactive("no lease");
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
