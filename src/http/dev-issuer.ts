// The local dev issuer's discovery and JWKS (dev builds with RUNPASS_DEV=1 only), so dev tokens verify with any OIDC tool.

import type { Hono } from "hono";
import { codeResponse } from "./respond.ts";
import type { AppEnv } from "./types.ts";

/** Registers /dev/oidc/.well-known/* (404 outside dev). */
export function devIssuerRoutes(app: Hono<AppEnv>): void {
  app.get("/dev/oidc/.well-known/openid-configuration", (c) => {
    const dev = c.get("runtime").devIssuer(c.env);
    if (!dev) return codeResponse(c.get("requestId"), "not_found", "no such endpoint");
    return c.json({
      issuer: dev.url,
      jwks_uri: `${dev.url}/.well-known/jwks`,
      response_types_supported: ["id_token"],
      subject_types_supported: ["public"],
      id_token_signing_alg_values_supported: ["RS256"],
    });
  });
  app.get("/dev/oidc/.well-known/jwks", (c) => {
    const dev = c.get("runtime").devIssuer(c.env);
    if (!dev?.jwks) return codeResponse(c.get("requestId"), "not_found", "no such endpoint");
    return c.json(dev.jwks);
  });
}
