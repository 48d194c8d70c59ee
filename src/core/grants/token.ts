// The `token` grant: a runpass-signed JWT carrying the verified CI identity, for the policy's audience.

import * as z from "zod/mini";
import { DEFAULT_TOKEN_GRANT_TTL_SECONDS } from "../constants.ts";
import { randomId } from "../crypto.ts";
import { FORWARDED_CLAIMS } from "../oidc/claims.ts";
import type { IssuerConfig } from "../oidc/issuers.ts";
import type { TokenGrant } from "../policy/types.ts";
import { type GrantModule, iso } from "./module.ts";
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

/**
 * Why a token grant's audience is refused, or undefined: an audience a cloud's token exchange accepts (AWS STS,
 * Azure AD workload identity, Google IAM workload identity) would make a `token` grant a credential for that
 * cloud, outside the aws/gcp/azure grants and their checks. Hosts compare without case; any `sts.` host counts.
 */
export function cloudAudienceProblem(audience: string): string | undefined {
  const text = audience.trim().toLowerCase();
  let cloud: string | undefined;
  if (text.startsWith("api://azureadtokenexchange")) cloud = "Azure AD token exchange";
  else if (text.startsWith("//iam.googleapis.com/") || text.startsWith("https://iam.googleapis.com/"))
    cloud = "Google Cloud workload identity federation";
  else {
    // A bare host ("sts.amazonaws.com") or a URL of any scheme; URL parsing drops userinfo and port.
    let host = text.split(/[/?#]/, 1)[0] ?? "";
    if (/^[a-z][a-z0-9+.-]*:\/\//.test(text)) {
      try {
        host = new URL(text).hostname;
      } catch {
        host = "";
      }
    }
    if (host.startsWith("sts.")) cloud = host.endsWith("amazonaws.com") ? "AWS STS" : "an STS";
  }
  if (!cloud) return undefined;
  return `grants.token.audience ${JSON.stringify(audience)} is an audience ${cloud} accepts: a runpass token for it would be a cloud credential outside the cloud grants (a confused deputy). Use the aws grant for AWS, and an audience naming your own service for token grants`;
}

/** The token grant's credential in the exchange response. */
export interface TokenCredential {
  token: string;
  expires_at: string;
}

const TokenGrantSchema = z.strictObject({
  audience: z.string(),
  ttl: z.optional(z.string()),
});

/** The `token` grant module. */
export const tokenGrant: GrantModule<
  "token",
  z.infer<typeof TokenGrantSchema>,
  TokenGrant,
  TokenGrant,
  TokenCredential
> = {
  name: "token",
  schema: TokenGrantSchema,
  costly: false,
  renewable: true,
  load(raw, ctx) {
    if (raw.audience.length === 0) ctx.report(["grants", "token", "audience"], "audience must not be empty");
    const cloud = cloudAudienceProblem(raw.audience);
    if (cloud) ctx.report(["grants", "token", "audience"], cloud);
    return {
      audience: raw.audience,
      ttl: ctx.duration(["grants", "token", "ttl"], raw.ttl, DEFAULT_TOKEN_GRANT_TTL_SECONDS),
    };
  },
  plan: (def) => def,
  async mint(plan, ctx) {
    const t = await mintTokenGrant(plan, {
      signer: ctx.deps.signer,
      issuerUrl: ctx.deps.issuerUrl,
      source: ctx.subject,
      lease: ctx.lease,
      policy: ctx.policy,
      now: ctx.now,
    });
    return {
      credential: { token: t.token, expires_at: iso(t.expiresAt) },
      grants: [{ type: "token", id: await ctx.deps.hasher.digest(t.id), expires_at: iso(t.expiresAt) }],
    };
  },
  secretValues: (c) => [c.token],
};
