// POST /oauth/token: RFC 8693 token exchange over the same pipeline as /v1/exchange (one code path for
// verification, replay, lease and audit). Errors in the RFC 6749 §5.2 shape.

import type { Context, Hono } from "hono";
import { ConfigError, RunpassError } from "../core/errors.ts";
import { exchange } from "../core/exchange.ts";
import type { GrantName } from "../core/policy/types.ts";
import { decodeUtf8 } from "../core/read-capped.ts";
import { auditRefusal } from "./audit.ts";
import { exchangeDeps, proveOrRefuse } from "./exchange.ts";
import { chargeFailure, clientBlocked, refuseOrCharge } from "./rate-limit.ts";
import { readBodyBytes } from "./request.ts";
import type { AppEnv } from "./types.ts";
import { TOKEN_EXCHANGE_GRANT as TOKEN_EXCHANGE } from "./well-known.ts";

const SUBJECT_TYPES = new Set([
  "urn:ietf:params:oauth:token-type:id_token",
  "urn:ietf:params:oauth:token-type:jwt",
]);
const JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt";
const GITHUB_TYPE = "urn:runpass:token-type:github";

type OAuthError = "invalid_request" | "invalid_grant" | "invalid_target" | "unsupported_grant_type";

const HEADERS = { "content-type": "application/json", "cache-control": "no-store", pragma: "no-cache" };

function oauthError(
  c: Context<AppEnv>,
  status: number,
  error: string,
  description: string,
  retryAfter?: number,
) {
  return new Response(
    JSON.stringify({ error, error_description: description, request_id: c.get("requestId") }),
    {
      status,
      headers: {
        ...HEADERS,
        "x-request-id": c.get("requestId"),
        ...(retryAfter ? { "retry-after": String(retryAfter) } : {}),
      },
    },
  );
}

/** A form-level refusal, audited like any bad request to /v1/exchange. */
class FormError extends Error {
  readonly code: OAuthError;
  constructor(code: OAuthError, message: string) {
    super(message);
    this.code = code;
  }
}

/** RFC 8693 §2.2.2 / RFC 6749 §5.2 for what the shared pipeline refused. */
function mapError(e: RunpassError): { status: number; error: string } {
  switch (e.code) {
    case "token_replayed":
      return { status: 400, error: "invalid_grant" };
    case "access_denied":
      // A run that ended revoked the grant; an audience judged after the token verified and matched is a
      // target runpass does not serve; any other denial is an unacceptable subject_token.
      if (e.reasons.some((r) => r.code === "run_ended")) return { status: 400, error: "invalid_grant" };
      if (e.reasons.some((r) => r.code === "target_invalid")) return { status: 400, error: "invalid_target" };
      return { status: 400, error: "invalid_request" };
    case "upstream_error":
      return { status: 502, error: "server_error" };
    case "temporarily_unavailable":
    case "rate_limited":
      return { status: e.status, error: "temporarily_unavailable" };
    default:
      return { status: 400, error: "invalid_request" };
  }
}

/** Registers POST /oauth/token. */
export function oauthRoutes(app: Hono<AppEnv>): void {
  app.post("/oauth/token", async (c) => {
    const rt = c.get("runtime");
    rt.context(c.env).hasher();
    // A client over its failure limit is not refused yet: its token may verify (a shared egress address).
    const blocked = clientBlocked(c);
    let form: URLSearchParams;
    let policy: string | undefined;
    let grants: GrantName[];
    let subject: string;
    let audience: string | undefined;
    try {
      const bytes = await readBodyBytes(c);
      const type = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
      if (type !== "application/x-www-form-urlencoded") {
        throw new FormError("invalid_request", "the body must be application/x-www-form-urlencoded");
      }
      try {
        form = new URLSearchParams(decodeUtf8(bytes));
      } catch {
        throw new FormError("invalid_request", "the body is not a UTF-8 form");
      }
      for (const [k] of form) {
        if (form.getAll(k).length > 1) throw new FormError("invalid_request", `"${k}" is repeated`);
      }
      if (form.get("grant_type") !== TOKEN_EXCHANGE) {
        throw new FormError("unsupported_grant_type", `grant_type must be ${TOKEN_EXCHANGE}`);
      }
      subject = form.get("subject_token") ?? "";
      if (!subject) throw new FormError("invalid_request", "subject_token is required");
      if (!SUBJECT_TYPES.has(form.get("subject_token_type") ?? "")) {
        throw new FormError(
          "invalid_request",
          "subject_token_type must be urn:ietf:params:oauth:token-type:id_token or :jwt",
        );
      }
      if (form.has("actor_token")) throw new FormError("invalid_request", "actor_token is not supported");
      policy = form.get("scope") ?? undefined;
      if (!policy || /\s/.test(policy))
        throw new FormError("invalid_request", "scope must name exactly one policy");
      if (form.has("resource")) throw new FormError("invalid_target", "runpass does not serve resources");
      const requested = form.get("requested_token_type") ?? JWT_TYPE;
      if (requested === JWT_TYPE) grants = ["token"];
      else if (requested === GITHUB_TYPE) grants = ["github"];
      else
        throw new FormError("invalid_request", `requested_token_type must be ${JWT_TYPE} or ${GITHUB_TYPE}`);
      // Judged by the pipeline once the subject token verified (no enumeration of policies or audiences).
      audience = form.get("audience") ?? undefined;
    } catch (e) {
      const refusal = await refuseOrCharge(c, blocked, e instanceof FormError ? "invalid_request" : e);
      if (refusal) return oauthError(c, 429, "temporarily_unavailable", refusal.message, refusal.retryAfter);
      if (e instanceof FormError) {
        await auditRefusal(
          c,
          "exchange",
          new RunpassError("invalid_request", e.message),
          policy ? { policy, detail: `oauth ${e.code}` } : { detail: `oauth ${e.code}` },
        );
        return oauthError(c, 400, e.code, e.message);
      }
      if (e instanceof RunpassError && !(e instanceof ConfigError)) {
        await auditRefusal(c, "exchange", e, { detail: "oauth" });
        return oauthError(c, e.code === "request_too_large" ? 413 : 400, "invalid_request", e.message);
      }
      throw e;
    }

    try {
      if (blocked) await proveOrRefuse(c, subject);
      const deps = await exchangeDeps(c, "exchange");
      const out = await exchange(
        {
          requestId: c.get("requestId"),
          token: subject,
          policy,
          grants,
          ...(audience !== undefined ? { audience } : {}),
        },
        deps,
      );
      const now = Math.floor(rt.clock() / 1000);
      const issued = grants[0] === "github" ? out.credentials.github : out.credentials.token;
      if (!issued) throw new RunpassError("access_denied", "this scope does not issue that token type");
      return new Response(
        JSON.stringify({
          access_token: issued.token,
          issued_token_type: grants[0] === "github" ? GITHUB_TYPE : JWT_TYPE,
          token_type: "Bearer",
          expires_in: Math.max(0, Math.floor(Date.parse(issued.expires_at) / 1000) - now),
          // Not in RFC 8693, but a client needs them to end the lease early (DELETE /v1/leases/{id}).
          lease_id: out.lease.id,
          revoke_token: out.lease.revoke_token,
        }),
        { status: 200, headers: { ...HEADERS, "x-request-id": c.get("requestId") } },
      );
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      if (e instanceof RunpassError) {
        if (e.code !== "rate_limited") await chargeFailure(c, e);
        const mapped = mapError(e);
        return oauthError(c, mapped.status, mapped.error, e.message, e.retryAfter);
      }
      throw e;
    }
  });
}
