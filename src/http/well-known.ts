// runpass's own issuer identity: discovery and JWKS for the JWTs it signs; plus liveness.

import type { Hono } from "hono";
import { JWT_CLAIMS } from "../core/oidc/claims.ts";
import type { AppEnv } from "./types.ts";

/** RFC 8693's grant type, the only one /oauth/token serves. */
export const TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";

/**
 * runpass's discovery document: RFC 8414 authorization-server metadata plus the OpenID Provider fields a
 * relying party uses to verify its tokens. There is no authorization endpoint (no user ever logs in here), and
 * no RFC 7009 revocation endpoint: a lease ends through DELETE /v1/leases/{id} with its revoke token.
 */
export function serverMetadata(issuer: string, signingAlgs: readonly string[]): Record<string, unknown> {
  return {
    issuer,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    token_endpoint: `${issuer}/oauth/token`,
    // Public clients: the CI token in subject_token is the credential; client_id is accepted and not trusted.
    token_endpoint_auth_methods_supported: ["none"],
    grant_types_supported: [TOKEN_EXCHANGE_GRANT],
    introspection_endpoint: `${issuer}/v1/introspect`,
    introspection_endpoint_auth_methods_supported: ["none"],
    response_types_supported: ["id_token"],
    subject_types_supported: ["public"],
    // The active key's algorithm, and RS256 when an RS256 key signs gcp/azure assertions (docs/grants.md).
    id_token_signing_alg_values_supported: [...signingAlgs],
    claims_supported: [...JWT_CLAIMS, "policy", "lease_id", "run", "ci_issuer"],
  };
}

/** Registers /.well-known/* and /healthz. */
export function wellKnownRoutes(app: Hono<AppEnv>): void {
  // The same document at both addresses: OIDC clients look for openid-configuration, RFC 8414 clients for
  // oauth-authorization-server (docs/api.md, Discovery).
  for (const path of ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]) {
    app.get(path, async (c) => {
      const ctx = c.get("runtime").context(c.env);
      const signer = await ctx.signer();
      return c.json(serverMetadata(ctx.config.issuerUrl, signer.algorithms), 200, {
        "cache-control": "public, max-age=300",
      });
    });
  }

  app.get("/.well-known/jwks.json", async (c) => {
    const signer = await c.get("runtime").context(c.env).signer();
    return c.json(signer.jwks(), 200, { "cache-control": "public, max-age=300" });
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }, 200, { "cache-control": "no-store" }));
}
