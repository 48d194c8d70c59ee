// The grant registry (docs/architecture.md, "Adding a grant"): every grant module, in minting order — secrets
// first (reading them mints nothing, so a missing one costs no recall), then runpass's own token, then upstream
// credentials. A new grant is one module and one line here; the pipeline, the policy schema and renewal follow.

import * as z from "zod/mini";
import type { GrantName, Grants } from "../policy/types.ts";
import { awsGrant } from "./aws.ts";
import { azureGrant } from "./azure.ts";
import { gcpGrant } from "./gcp.ts";
import { githubGrant } from "./github.ts";
import type { GrantModule } from "./module.ts";
import { postgresGrant } from "./postgres.ts";
import { secretsGrant } from "./secrets.ts";
import { sshGrant } from "./ssh.ts";
import { tokenGrant } from "./token.ts";
import { x509Grant } from "./x509.ts";

/** Every grant by name; the entries' order is the minting order. */
export const GRANT_MODULES = {
  secrets: secretsGrant,
  // Before anything upstream: a CSR that does not verify refuses the exchange with nothing to recall.
  x509: x509Grant,
  // Also before anything upstream: a malformed public key refuses the exchange with nothing to recall.
  ssh: sshGrant,
  token: tokenGrant,
  github: githubGrant,
  aws: awsGrant,
  gcp: gcpGrant,
  azure: azureGrant,
  postgres: postgresGrant,
} as const satisfies { [K in GrantName]: { name: K } };

type Modules = typeof GRANT_MODULES;
type PlanOf<K extends GrantName> =
  Modules[K] extends GrantModule<K, infer _R, infer _D, infer P, infer _C> ? P : never;
type CredentialOf<K extends GrantName> =
  Modules[K] extends GrantModule<K, infer _R, infer _D, infer _P, infer C> ? C : never;

/** The grants an exchange or renewal returns, by name (only those the policy has and the request asked for). */
export type Credentials = { [K in GrantName]?: CredentialOf<K> };

/** What will be minted, resolved from the policy and the verified claims, before any upstream call. */
export type GrantPlan = { [K in GrantName]?: PlanOf<K> };

/** Grant names in minting order. */
export const MINT_ORDER = Object.keys(GRANT_MODULES) as GrantName[];

/** The module of `name`, typed by that name (TypeScript cannot correlate a map's entries with its keys). */
export function grantModule<K extends GrantName>(
  name: K,
): GrantModule<K, unknown, NonNullable<Grants[K]>, NonNullable<PlanOf<K>>, NonNullable<CredentialOf<K>>> {
  return GRANT_MODULES[name] as unknown as GrantModule<
    K,
    unknown,
    NonNullable<Grants[K]>,
    NonNullable<PlanOf<K>>,
    NonNullable<CredentialOf<K>>
  >;
}

/** `grants:` in a policy file: each grant's own schema, optional, nothing else. */
export const GrantsSchema = z.strictObject(
  Object.fromEntries(Object.entries(GRANT_MODULES).map(([name, m]) => [name, z.optional(m.schema)])) as {
    [K in GrantName]: z.ZodMiniOptional<Modules[K]["schema"]>;
  },
);
