// The `gcp` grant (docs/grants.md, "gcp"): a runpass-signed JWT exchanged at Google STS (workload identity
// federation, RFC 8693), then optionally a service account's token from IAM Credentials, never past the lease:
// Google access tokens cannot be revoked early.

import * as z from "zod/mini";
import {
  DEFAULT_GCP_LIFETIME_SECONDS,
  DEFAULT_GCP_SCOPE,
  GCP_EXCHANGE_ASSERTION_SECONDS,
  GCP_EXPIRY_SKEW_SECONDS,
  GCP_MAX_LIFETIME_SECONDS,
  GCP_MAX_POLICY_NAME,
  GCP_MAX_SCOPES,
  GCP_MAX_SUBJECT_BYTES,
  GCP_MIN_LIFETIME_SECONDS,
} from "../constants.ts";
import { randomId, sha256 } from "../crypto.ts";
import { RunpassError } from "../errors.ts";
import type { GcpGrant } from "../policy/types.ts";
import { type GrantModule, iso } from "./module.ts";
import { UpstreamError } from "./upstream.ts";

/** Google's own ceiling for generateAccessToken lifetimes (with an organisation policy allowing it). */
const GOOGLE_MAX_LIFETIME_SECONDS = 12 * 60 * 60;
const PROVIDER =
  /^projects\/\d{1,20}\/locations\/global\/workloadIdentityPools\/[a-z0-9-]{4,32}\/providers\/[a-z0-9-]{4,32}$/;
const IAM_PREFIX = "//iam.googleapis.com/";
/** A service account's email (user-managed or Google-managed), or its numeric unique id. */
const SERVICE_ACCOUNT =
  /^(?:[a-z0-9][a-z0-9._-]{0,99}@[a-z0-9][a-z0-9.-]{0,200}\.gserviceaccount\.com|\d{21})$/;
const SCOPE = /^(?:https:\/\/[a-z0-9.-]+\/[\w./-]+|openid|email|profile)$/;

/** One STS token exchange, fully resolved. */
export interface GcpExchangeRequest {
  /** `//iam.googleapis.com/projects/…/providers/…`, also the assertion's `aud`. */
  audience: string;
  /** Space-separated OAuth scopes for the federated token. */
  scope: string;
  subjectToken: string;
}

/** One generateAccessToken call, fully resolved. */
export interface GcpImpersonationRequest {
  serviceAccount: string;
  scopes: string[];
  lifetimeSeconds: number;
  /** The federated token from STS, the call's bearer. */
  federatedToken: string;
}

/** STS's federated token and its lifetime from now (seconds, STS's `expires_in`). */
export interface GcpFederatedToken {
  accessToken: string;
  expiresIn: number;
}

/** A service account's access token and when it expires (seconds since the epoch, Google's `expireTime`). */
export interface GcpServiceAccountToken {
  accessToken: string;
  expiresAt: number;
}

/** Google STS and IAM Credentials as the core needs them. Throws UpstreamError. */
export interface GcpPort {
  exchange(request: GcpExchangeRequest): Promise<GcpFederatedToken>;
  generateAccessToken(request: GcpImpersonationRequest): Promise<GcpServiceAccountToken>;
}

/** The gcp grant's port in IssueDeps. */
export interface GcpPorts {
  gcp: () => GcpPort;
}

/** The gcp grant's credential in the exchange response. */
export interface GcpCredential {
  access_token: string;
  expires_at: string;
  service_account?: string;
}

/** What minting needs: everything but the signature. */
export interface GcpPlan {
  audience: string;
  serviceAccount?: string;
  scopes: string[];
  lifetimeSeconds: number;
}

const GcpGrantSchema = z.strictObject({
  workload_identity_provider: z.string(),
  service_account: z.optional(z.string()),
  scopes: z.optional(z.array(z.string())),
  lifetime: z.optional(z.string()),
});

/**
 * The assertion's subject, `policy:<name>:run:<run>`. Google's `google.subject` holds 127 bytes: a run key too
 * long for it (a long issuer name, a token-keyed run) is replaced by its digest, so the prefix a provider's
 * condition checks stays the same.
 */
export async function gcpSubject(policy: string, run: string): Promise<string> {
  const plain = `policy:${policy}:run:${run}`;
  if (new TextEncoder().encode(plain).length <= GCP_MAX_SUBJECT_BYTES) return plain;
  const digest = (await sha256(run)).slice("sha256:".length, "sha256:".length + 40);
  return `policy:${policy}:run:sha256-${digest}`;
}

/** The `gcp` grant module. */
export const gcpGrant: GrantModule<
  "gcp",
  z.infer<typeof GcpGrantSchema>,
  GcpGrant,
  GcpPlan,
  GcpCredential
> = {
  name: "gcp",
  schema: GcpGrantSchema,
  upstream: "Google Cloud",
  costly: true,
  renewable: true,
  load(raw, ctx) {
    const at = (...p: string[]) => ["grants", "gcp", ...p];
    if (ctx.policyName.length > GCP_MAX_POLICY_NAME) {
      ctx.report(
        ["grants", "gcp"],
        `a policy with a gcp grant has a name of at most ${GCP_MAX_POLICY_NAME} characters (Google's google.subject holds 127 bytes); rename the file`,
        true,
      );
    }
    const provider = raw.workload_identity_provider.startsWith(IAM_PREFIX)
      ? raw.workload_identity_provider.slice(IAM_PREFIX.length)
      : raw.workload_identity_provider;
    if (!PROVIDER.test(provider)) {
      ctx.report(
        at("workload_identity_provider"),
        "workload_identity_provider: expected projects/<project number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>",
      );
    }
    if (raw.service_account !== undefined && !SERVICE_ACCOUNT.test(raw.service_account)) {
      ctx.report(
        at("service_account"),
        `service_account: "${raw.service_account}" is not a service account email (…@….gserviceaccount.com) or unique id`,
      );
    }
    const scopes = raw.scopes ?? [DEFAULT_GCP_SCOPE];
    if (scopes.length === 0 || scopes.length > GCP_MAX_SCOPES) {
      ctx.report(at("scopes"), `scopes: from 1 to ${GCP_MAX_SCOPES} OAuth scopes`);
    }
    for (const [i, scope] of scopes.entries()) {
      if (!SCOPE.test(scope)) ctx.report([...at("scopes"), i], `"${scope}" is not an OAuth scope URL`);
    }
    const lifetime = ctx.duration(
      at("lifetime"),
      raw.lifetime,
      Math.min(DEFAULT_GCP_LIFETIME_SECONDS, ctx.leaseTtl),
    );
    if (lifetime < GCP_MIN_LIFETIME_SECONDS || lifetime > GOOGLE_MAX_LIFETIME_SECONDS) {
      ctx.report(
        at("lifetime"),
        "lifetime: Google access tokens last from 1m to 12h (runpass asks for 1h at most)",
      );
    } else if (lifetime > ctx.leaseTtl) {
      ctx.report(
        at("lifetime"),
        "lifetime: longer than the policy's lease ttl; the token could outlive the lease",
      );
    }
    return {
      workload_identity_provider: provider,
      ...(raw.service_account !== undefined ? { service_account: raw.service_account } : {}),
      scopes,
      lifetime,
    };
  },
  plan(def, { lease, now }) {
    const remaining = lease.expiresAt - now;
    if (remaining < GCP_MIN_LIFETIME_SECONDS) {
      throw new RunpassError(
        "invalid_request",
        "the lease has less than a minute left, too little for a Google access token; ask for a longer ttl",
        { reasons: [{ code: "lease_too_short", grant: "gcp" }], reasonsVisible: true },
      );
    }
    return {
      audience: `${IAM_PREFIX}${def.workload_identity_provider}`,
      ...(def.service_account !== undefined ? { serviceAccount: def.service_account } : {}),
      scopes: def.scopes,
      // Never past the lease nor past 1 h: a Google access token cannot be revoked early.
      lifetimeSeconds: Math.min(def.lifetime, remaining, GCP_MAX_LIFETIME_SECONDS),
    };
  },
  async mint(plan, { deps, policy, lease, now }) {
    const gcp = deps.gcp();
    // Google's federated token expires with the assertion (at most 1 h), so without a service account the
    // assertion's own lifetime is the cap; with one, runpass redeems it at once and it can be short.
    const assertionSeconds =
      plan.serviceAccount !== undefined
        ? Math.min(GCP_EXCHANGE_ASSERTION_SECONDS, plan.lifetimeSeconds)
        : plan.lifetimeSeconds;
    const subjectToken = await deps.signer.sign("gcp", {
      iss: deps.issuerUrl,
      sub: await gcpSubject(policy.name, lease.run),
      aud: plan.audience,
      iat: now,
      nbf: now,
      exp: now + assertionSeconds,
      jti: randomId("gid"),
      policy: policy.name,
      lease_id: lease.id,
      run: lease.run,
    });
    const federated = await gcp.exchange({
      audience: plan.audience,
      // With a service account the federated token only calls IAM Credentials, which wants cloud-platform.
      scope: plan.serviceAccount !== undefined ? DEFAULT_GCP_SCOPE : plan.scopes.join(" "),
      subjectToken,
    });
    // Google's own expiry, not a claim of ours: generateAccessToken was asked for at most the lease, and the
    // federated token expires with the assertion.
    const token =
      plan.serviceAccount !== undefined
        ? await gcp.generateAccessToken({
            serviceAccount: plan.serviceAccount,
            scopes: plan.scopes,
            lifetimeSeconds: plan.lifetimeSeconds,
            federatedToken: federated.accessToken,
          })
        : { accessToken: federated.accessToken, expiresAt: now + federated.expiresIn };
    const expiresAt = Math.floor(token.expiresAt);
    // No credential outlives its lease (docs/grants.md, "gcp"). Google decides the lifetime of what it issues; a
    // token that would outlive the lease is not delivered (it cannot be revoked, so it is left to expire unused).
    if (expiresAt > lease.expiresAt + GCP_EXPIRY_SKEW_SECONDS) {
      throw new UpstreamError(
        `Google issued a token expiring ${expiresAt - lease.expiresAt}s after the lease; not delivered`,
        { retryable: false },
      );
    }
    return {
      credential: {
        access_token: token.accessToken,
        expires_at: iso(expiresAt),
        ...(plan.serviceAccount !== undefined ? { service_account: plan.serviceAccount } : {}),
      },
      grants: [{ type: "gcp", id: await deps.hasher.digest(token.accessToken), expires_at: iso(expiresAt) }],
    };
  },
  // Google access tokens cannot be revoked; their lifetime was capped to the lease.
  recall: async () => "a Google access token was minted and expires on its own",
  secretValues: (c) => [c.access_token],
};
