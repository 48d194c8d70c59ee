// Cloudflare Access JWTs (`Cf-Access-Jwt-Assertion`): verified with jose against the team's certs (docs/console.md,
// "Behind Cloudflare Access"). Used by the console; the admin API may use the same verifier.

import { createRemoteJWKSet, type JWTVerifyGetKey, jwtVerify } from "jose";
import { ACCESS_JWKS_COOLDOWN_MS, MAX_ACCESS_JWT_BYTES } from "../core/constants.ts";
import { ConfigError, RunpassError } from "../core/errors.ts";
import { isLoopbackHost } from "../core/loopback.ts";

/** Who Cloudflare Access let through: the email is the audit actor. */
export interface AccessIdentity {
  email: string;
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
 * `audience` (the application's AUD tag), not expired, and an `email` claim. Throws RunpassError `invalid_token`.
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
    if (typeof payload.email !== "string" || !payload.email || typeof payload.sub !== "string") {
      throw new Error("no email");
    }
    return { email: payload.email, sub: payload.sub };
  } catch {
    throw new RunpassError("invalid_token", "the Cloudflare Access token did not verify", {
      reasons: [{ code: "signature_invalid" }],
    });
  }
}
