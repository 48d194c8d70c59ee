// The `azure` grant (docs/grants.md, "azure"): a runpass-signed client assertion redeemed at Entra's token
// endpoint (client credentials, workload identity federation) for an app that trusts runpass. Entra's token
// cannot be shortened or revoked: its real expiry is reported, and may pass the lease.

import * as z from "zod/mini";
import { AZURE_MAX_ASSERTION_SECONDS, AZURE_MIN_ASSERTION_SECONDS } from "../constants.ts";
import { randomId } from "../crypto.ts";
import { RunpassError } from "../errors.ts";
import type { AzureGrant } from "../policy/types.ts";
import { type GrantModule, iso } from "./module.ts";

/** The audience Entra's federated identity credentials expect. */
export const AZURE_ASSERTION_AUDIENCE = "api://AzureADTokenExchange";
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A tenant's GUID or one of its verified domains (contoso.onmicrosoft.com). */
const TENANT =
  /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z0-9][a-z0-9.-]{1,253}\.[a-z]{2,63})$/i;
const SCOPE = /^\S{1,512}$/;

/** One client-credentials request, fully resolved. */
export interface AzureTokenRequest {
  tenantId: string;
  clientId: string;
  scope: string;
  clientAssertion: string;
}

/** An Entra access token and its lifetime from now (seconds, Entra's `expires_in`). */
export interface AzureToken {
  accessToken: string;
  expiresIn: number;
}

/** Entra's token endpoint as the core needs it. Throws UpstreamError. */
export interface AzurePort {
  token(request: AzureTokenRequest): Promise<AzureToken>;
}

/** The azure grant's port in IssueDeps. */
export interface AzurePorts {
  azure: () => AzurePort;
}

/** The azure grant's credential in the exchange response. */
export interface AzureCredential {
  access_token: string;
  /** Entra's own expiry: it may pass the lease (docs/grants.md, azure). */
  expires_at: string;
  client_id: string;
  tenant_id: string;
  /** The client assertion, for `az login --federated-token`; expires with the lease (at most 1 h). */
  federated_token: string;
}

/** What minting needs: everything but the signature. */
export interface AzurePlan {
  tenantId: string;
  clientId: string;
  scope: string;
  assertionSeconds: number;
}

const AzureGrantSchema = z.strictObject({
  tenant_id: z.string(),
  client_id: z.string(),
  scope: z.string(),
});

/** The subject of every assertion for a policy: Entra's federated credentials match it exactly. */
export function azureSubject(policy: string): string {
  return `runpass:policy:${policy}`;
}

/** The `azure` grant module. */
export const azureGrant: GrantModule<
  "azure",
  z.infer<typeof AzureGrantSchema>,
  AzureGrant,
  AzurePlan,
  AzureCredential
> = {
  name: "azure",
  schema: AzureGrantSchema,
  upstream: "Microsoft Entra ID",
  costly: true,
  renewable: true,
  load(raw, ctx) {
    const at = (p: string) => ["grants", "azure", p];
    if (!TENANT.test(raw.tenant_id))
      ctx.report(at("tenant_id"), "tenant_id: expected the tenant's GUID or a verified domain");
    if (!GUID.test(raw.client_id))
      ctx.report(at("client_id"), "client_id: expected the application (client) ID, a GUID");
    if (!SCOPE.test(raw.scope))
      ctx.report(at("scope"), "scope: one scope such as https://management.azure.com/.default");
    if (ctx.leaseTtl < AZURE_MIN_ASSERTION_SECONDS)
      ctx.report(["ttl"], "ttl: the lease is shorter than a minute, too short for an azure grant");
    return { tenant_id: raw.tenant_id, client_id: raw.client_id.toLowerCase(), scope: raw.scope };
  },
  plan(def, { lease, now }) {
    const remaining = lease.expiresAt - now;
    if (remaining < AZURE_MIN_ASSERTION_SECONDS) {
      throw new RunpassError(
        "invalid_request",
        "the lease has less than a minute left, too little for an azure grant; ask for a longer ttl",
        { reasons: [{ code: "lease_too_short", grant: "azure" }], reasonsVisible: true },
      );
    }
    return {
      tenantId: def.tenant_id,
      clientId: def.client_id,
      scope: def.scope,
      // The assertion goes to the run as federated_token: never past the lease.
      assertionSeconds: Math.min(remaining, AZURE_MAX_ASSERTION_SECONDS),
    };
  },
  async mint(plan, { deps, policy, lease, now }) {
    const azure = deps.azure();
    const assertion = await deps.signer.sign("azure", {
      iss: deps.issuerUrl,
      sub: azureSubject(policy.name),
      aud: AZURE_ASSERTION_AUDIENCE,
      iat: now,
      nbf: now,
      exp: now + plan.assertionSeconds,
      jti: randomId("aid"),
      policy: policy.name,
      lease_id: lease.id,
      run: lease.run,
    });
    const token = await azure.token({
      tenantId: plan.tenantId,
      clientId: plan.clientId,
      scope: plan.scope,
      clientAssertion: assertion,
    });
    // Entra's expiry as Entra reports it (60–90 min, not configurable per request): it may pass the lease.
    const expiresAt = now + Math.floor(token.expiresIn);
    return {
      credential: {
        access_token: token.accessToken,
        expires_at: iso(expiresAt),
        client_id: plan.clientId,
        tenant_id: plan.tenantId,
        federated_token: assertion,
      },
      grants: [
        { type: "azure", id: await deps.hasher.digest(token.accessToken), expires_at: iso(expiresAt) },
      ],
    };
  },
  // Entra access tokens cannot be revoked; the assertion expires with the lease.
  recall: async () => "an Entra access token was minted and expires on its own",
  secretValues: (c) => [c.access_token, c.federated_token],
};
