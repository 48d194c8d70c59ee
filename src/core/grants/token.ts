// The `token` grant: a runpass-signed JWT carrying the verified CI identity, for the policy's audience.

import { randomId } from "../crypto.ts";
import { FORWARDED_CLAIMS } from "../oidc/claims.ts";
import type { IssuerConfig } from "../oidc/issuers.ts";
import type { TokenGrant } from "../policy/types.ts";
import type { Signer } from "./signer.ts";

export interface MintedToken {
  token: string;
  /** The issued token's jti (audit records carry its digest). */
  id: string;
  /** Seconds since the epoch; never after the lease. */
  expiresAt: number;
}

export interface TokenGrantContext {
  signer: Signer;
  /** RUNPASS_ISSUER_URL: the `iss` of every runpass token. */
  issuerUrl: string;
  /** The verified CI identity the token vouches for. */
  source: { issuer: IssuerConfig; claims: Record<string, unknown>; sub: string };
  lease: { id: string; run: string; expiresAt: number };
  policy: { name: string; version: string };
  /** Seconds since the epoch. */
  now: number;
}

/** Mints the token grant. `sub` is prefixed with the issuer name so github.com and a GHES `repo:…` can never collide. */
export async function mintTokenGrant(grant: TokenGrant, ctx: TokenGrantContext): Promise<MintedToken> {
  const expiresAt = Math.min(ctx.now + grant.ttl, ctx.lease.expiresAt);
  const id = randomId("tok");
  const forwarded: Record<string, unknown> = {};
  for (const claim of FORWARDED_CLAIMS[ctx.source.issuer.kind]) {
    const v = ctx.source.claims[claim];
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") forwarded[claim] = v;
  }
  const token = await ctx.signer.sign("token", {
    ...forwarded,
    iss: ctx.issuerUrl,
    sub: `${ctx.source.issuer.name}:${ctx.source.sub}`,
    aud: grant.audience,
    iat: ctx.now,
    nbf: ctx.now,
    exp: expiresAt,
    jti: id,
    ci_issuer: ctx.source.issuer.url,
    policy: ctx.policy.name,
    policy_version: ctx.policy.version,
    lease_id: ctx.lease.id,
    run: ctx.lease.run,
  });
  return { token, id, expiresAt };
}
