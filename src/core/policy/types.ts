// The policy bundle: what the build compiles policies/ into and what the Worker loads.

import type { PostgresGrant } from "../grants/postgres.ts";
import type { SshGrant } from "../grants/ssh.ts";
import type { IssuerConfig } from "../oidc/issuers.ts";

/** A policy value: strings match string claims, booleans booleans, numbers numbers. */
export type Scalar = string | number | boolean;

/** claim → accepted values (any-of). Every key must match. */
export type ConditionMap = Record<string, Scalar[]>;

/** The token grant: a runpass-signed JWT for `audience`. */
export interface TokenGrant {
  audience: string;
  /** Seconds; capped by the lease. */
  ttl: number;
}

/** The aws grant (docs/grants.md): an STS session for `role_arn`. Strings marked template take `${claim}`. */
export interface AwsGrant {
  role_arn: string;
  /** Region of the STS endpoint and of the returned credentials. */
  region: string;
  /** Seconds (900 – 43200); capped to the lease's remaining time when minted. */
  duration: number;
  /** Template; sanitised to STS's 2–64 chars of [\w+=,.@-]. Default: runpass-<lease suffix>. */
  session_name?: string;
  /** Tag key → value template; sanitised to AWS's tag charset and lengths. */
  session_tags: Record<string, string>;
  transitive_tag_keys: string[];
  /** Inline session policy, minified JSON. */
  session_policy?: string;
  policy_arns: string[];
  /** Template; same charset as session names. */
  source_identity?: string;
}

/** The gcp grant (docs/grants.md, "gcp"): a Google access token through workload identity federation. */
export interface GcpGrant {
  /** `projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>`. */
  workload_identity_provider: string;
  /** Impersonated with IAM Credentials generateAccessToken; without it the run gets the federated token. */
  service_account?: string;
  scopes: string[];
  /** Seconds (60 – 3600); capped to the lease's remaining time when minted. */
  lifetime: number;
}

/** The azure grant (docs/grants.md, "azure"): an Entra access token for an app trusting runpass's assertions. */
export interface AzureGrant {
  tenant_id: string;
  client_id: string;
  /** One `<resource>/.default` scope (client credentials take no other form in Entra). */
  scope: string;
}

/** The x509 grant (docs/grants.md, "x509"): a short-lived client certificate whose names the policy writes. */
export interface X509Grant {
  /** Template (`${claim}`), sanitised when filled. */
  common_name: string;
  /** SAN URI templates; claim values are sanitised so they only add path segments. */
  uris: string[];
  /** SAN DNS names, lowercase, no templates. */
  dns_names: string[];
  /** Seconds; ≤ the lease ttl, capped to the lease's end when minted. */
  ttl: number;
}

/** GitHub App installation-token permission levels. */
export type GitHubPermissionLevel = "read" | "write" | "admin";

/** The github grant: an installation token scoped to explicit repositories and permissions. */
export interface GitHubGrant {
  owner: string;
  repositories: string[];
  permissions: Record<string, GitHubPermissionLevel>;
}

/** One secret in a bundle: delivered under an environment variable name. */
export interface SecretGrantEntry {
  path: string;
  /** Undefined: the current version at exchange time. */
  version?: number;
}

export interface Grants {
  token?: TokenGrant;
  aws?: AwsGrant;
  gcp?: GcpGrant;
  azure?: AzureGrant;
  github?: GitHubGrant;
  /** ENV_NAME → secret. */
  secrets?: Record<string, SecretGrantEntry>;
  x509?: X509Grant;
  postgres?: PostgresGrant;
  ssh?: SshGrant;
}

/** Names of all grant kinds runpass knows (a request naming anything else is a 400). */
export const GRANT_NAMES = [
  "token",
  "aws",
  "gcp",
  "azure",
  "github",
  "secrets",
  "x509",
  "postgres",
  "ssh",
] as const;
export type GrantName = (typeof GRANT_NAMES)[number];

/** One validated, normalised policy. */
export interface PolicyDefinition {
  name: string;
  description?: string;
  issuer: string;
  /** Required token audience; undefined means RUNPASS_AUDIENCE. */
  audience?: string;
  allow: ConditionMap;
  deny: ConditionMap[];
  /** Lease cap in seconds. */
  ttl: number;
  /** The secrets bundle is delivered at most once per run. */
  deliver_once?: boolean;
  /** High-value: an exchange outside RUNPASS_BUSINESS_HOURS raises `sensitive_off_hours` (docs/leaks.md). */
  sensitive?: boolean;
  grants: Grants;
  /** `sha256:` of this policy's compiled form and its issuer. */
  version: string;
}

/** Everything the Worker trusts, fixed at build time. */
export interface PolicyBundle {
  format: 1;
  /** Built with RUNPASS_DEV=1 (may contain the dev issuer and loopback http issuers). */
  dev: boolean;
  /** `sha256:` of the whole set (policy_set_version). */
  version: string;
  /** Only issuers some policy references. */
  issuers: IssuerConfig[];
  /** Empty when the policies live in the policy store (`store`). */
  policies: PolicyDefinition[];
  /**
   * Large sets (more than RUNPASS_BUNDLE_MAX policies) are kept out of the Worker: each policy is a record in
   * the POLICY_KV namespace under `<root>/p/<name>` (its YAML source and an inclusion proof), verified against
   * `root` (the Merkle root of the set's records), loaded and compiled on first use.
   */
  store?: { kind: "kv"; count: number; root: string };
  /** Every audience some policy names (verification needs them before any policy is looked up). */
  audiences?: string[];
}
