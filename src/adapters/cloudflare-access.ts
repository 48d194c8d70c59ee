// Cloudflare Access JWTs (`Cf-Access-Jwt-Assertion`): verified with jose against the team's certs (docs/console.md,
// "Behind Cloudflare Access"). Used by the console and, under its own audience, the admin API (docs/deploy.md).

import { createRemoteJWKSet, type JWTVerifyGetKey, jwtVerify } from "jose";
import { ACCESS_JWKS_COOLDOWN_MS, MAX_ACCESS_JWT_BYTES } from "../core/constants.ts";
import { ConfigError, RunpassError } from "../core/errors.ts";
import { isLoopbackHost } from "../core/loopback.ts";

/**
 * Who Cloudflare Access let through: a person's email, or `access-service:<common_name>` for an Access service
 * token (those JWTs carry `common_name` and no email) — the audit actor either way.
 */
export interface AccessIdentity {
  actor: string;
  sub: string;
}

/** Where a team's tokens come from: `iss` and the certs URL. */
export interface AccessTeam {
  issuer: string;
  certsUrl: string;
}

/**
 * The team from RUNPASS_ACCESS_TEAM_DOMAIN: `acme.cloudflareaccess.com` or `https://acme.cloudflareaccess.com`.
 * Plain `http://` is accepted only for a loopback host in dev mode (a local JWKS stand-in in tests).
 */
export function accessTeam(domain: string, dev: boolean): AccessTeam {
  const text = /^[a-z]+:\/\//i.test(domain) ? domain : `https://${domain}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError("RUNPASS_ACCESS_TEAM_DOMAIN is not a host name such as acme.cloudflareaccess.com");
  }
  const loopbackDev = dev && url.protocol === "http:" && isLoopbackHost(url.hostname);
  if ((url.protocol !== "https:" && !loopbackDev) || url.pathname !== "/" || url.search || url.hash) {
    throw new ConfigError(
      "RUNPASS_ACCESS_TEAM_DOMAIN must be a bare https host such as acme.cloudflareaccess.com",
    );
  }
  return { issuer: url.origin, certsUrl: `${url.origin}/cdn-cgi/access/certs` };
}

/** Key sets per certs URL, shared by every request of the isolate (jose caches and refetches on unknown kids). */
const keySets = new Map<string, JWTVerifyGetKey>();

function keySet(certsUrl: string): JWTVerifyGetKey {
  let set = keySets.get(certsUrl);
  if (!set) {
    set = createRemoteJWKSet(new URL(certsUrl), { cooldownDuration: ACCESS_JWKS_COOLDOWN_MS });
    keySets.set(certsUrl, set);
  }
  return set;
}

/**
 * Verifies an Access application token: RS256 signature by the team's certs, `iss` = the team, `aud` contains
 * `audience` (the application's AUD tag), not expired, and an `email` (a person) or `common_name` (a service token)
 * claim. Throws RunpassError `invalid_token`.
 */
export async function verifyAccessJwt(
  token: string | undefined,
  team: AccessTeam,
  audience: string,
  now: number,
): Promise<AccessIdentity> {
  if (!token) {
    throw new RunpassError("invalid_token", "this console is behind Cloudflare Access: no Access token", {
      reasons: [{ code: "token_missing" }],
    });
  }
  if (token.length > MAX_ACCESS_JWT_BYTES) {
    throw new RunpassError("invalid_token", "the Access token is too large", {
      reasons: [{ code: "token_too_large" }],
    });
  }
  try {
    const { payload } = await jwtVerify(token, keySet(team.certsUrl), {
      algorithms: ["RS256"],
      issuer: team.issuer,
      audience,
      currentDate: new Date(now),
      clockTolerance: 60,
    });
    if (typeof payload.sub !== "string") throw new Error("no sub");
    if (typeof payload.email === "string" && payload.email) return { actor: payload.email, sub: payload.sub };
    // Service tokens: Access still attaches a JWT, naming the token's client id and no person.
    const service = payload.common_name;
    if (typeof service === "string" && service) {
      return { actor: `access-service:${service}`, sub: payload.sub };
    }
    throw new Error("no email or common_name");
  } catch {
    throw new RunpassError("invalid_token", "the Cloudflare Access token did not verify", {
      reasons: [{ code: "signature_invalid" }],
    });
  }
}
