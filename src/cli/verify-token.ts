// `runpass token verify`: checks a runpass-signed JWT the way a downstream service should, against the
// broker's published /.well-known/jwks.json. Prints the verified claims, never the token.

import { createRemoteJWKSet, jwtVerify } from "jose";

export interface VerifyRemoteOptions {
  /** The broker's base URL (its issuer). */
  url: string;
  audience: string;
  /** A compact JWT, or an exchange response JSON (its credentials.token.token is used). */
  input: string;
}

export interface VerifyRemoteResult {
  valid: boolean;
  error?: string;
  claims?: Record<string, unknown>;
}

/** Extracts the JWT from raw input: either the token itself or a /v1/exchange response body. */
export function tokenFromInput(input: string): string {
  const text = input.trim();
  if (!text.startsWith("{")) return text;
  const parsed = JSON.parse(text) as { credentials?: { token?: { token?: unknown } } };
  const token = parsed.credentials?.token?.token;
  if (typeof token !== "string") throw new Error("the JSON input has no credentials.token.token");
  return token;
}

/** Verifies a runpass token against the broker's discovery document and JWKS. */
export async function verifyRemote(options: VerifyRemoteOptions): Promise<VerifyRemoteResult> {
  const base = options.url.replace(/\/+$/, "");
  const res = await fetch(`${base}/.well-known/openid-configuration`, { redirect: "error" });
  if (!res.ok) return { valid: false, error: `discovery answered ${res.status}` };
  const discovery = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
  if (typeof discovery.issuer !== "string" || typeof discovery.jwks_uri !== "string")
    return { valid: false, error: "discovery document lacks issuer or jwks_uri" };
  const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
  try {
    const { payload } = await jwtVerify(tokenFromInput(options.input), jwks, {
      issuer: discovery.issuer,
      algorithms: ["ES256", "RS256", "EdDSA"],
      requiredClaims: ["exp", "iat", "sub", "aud"],
    });
    // jose accepts an aud array containing the audience; runpass tokens carry exactly one.
    if (payload.aud !== options.audience)
      return { valid: false, error: `audience is not exactly "${options.audience}"` };
    return { valid: true, claims: payload as Record<string, unknown> };
  } catch (e) {
    return { valid: false, error: (e as { code?: string }).code ?? "invalid token" };
  }
}
