// runpass's own issuer identity: discovery and JWKS for the JWTs it signs; plus liveness.

import type { Hono } from "hono";
import { JWT_CLAIMS } from "../core/oidc/claims.ts";
import type { AppEnv } from "./types.ts";

/** Registers /.well-known/* and /healthz. */
export function wellKnownRoutes(app: Hono<AppEnv>): void {
  app.get("/.well-known/openid-configuration", async (c) => {
    const ctx = c.get("runtime").context(c.env);
    const signer = await ctx.signer();
    const issuer = ctx.config.issuerUrl;
    return c.json(
      {
        issuer,
        jwks_uri: `${issuer}/.well-known/jwks.json`,
        introspection_endpoint: `${issuer}/v1/introspect`,
        response_types_supported: ["id_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: [signer.algorithm],
        claims_supported: [...JWT_CLAIMS, "policy", "lease_id", "run", "ci_issuer"],
      },
      200,
      { "cache-control": "public, max-age=300" },
    );
  });

  app.get("/.well-known/jwks.json", async (c) => {
    const signer = await c.get("runtime").context(c.env).signer();
    return c.json(signer.jwks(), 200, { "cache-control": "public, max-age=300" });
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }, 200, { "cache-control": "no-store" }));
}
