// Claim schemas (standard, GitHub, GitLab) and the normalised identity runpass works with.

import * as z from "zod/mini";
import type { IssuerConfig, IssuerKind } from "./issuers.ts";

/** Claims every token must carry with the right type, or it is invalid (401). `jti`/`nbf` are optional for generic issuers. */
export const StandardClaims = z.object({
  iss: z.string().check(z.minLength(1)),
  sub: z.string().check(z.minLength(1)),
  aud: z.string().check(z.minLength(1)),
  exp: z.number().check(z.int()),
  iat: z.number().check(z.int()),
  nbf: z.optional(z.number().check(z.int())),
  jti: z.optional(z.string().check(z.minLength(1), z.maxLength(256))),
});
export type StandardClaims = z.infer<typeof StandardClaims>;

const str = z.catch(z.optional(z.string()), undefined);
const num = z.catch(z.optional(z.number()), undefined);
const strArray = z.catch(z.optional(z.array(z.string())), undefined);

/**
 * GitHub Actions claims, typed as GitHub sends them (IDs and booleans are strings).
 * A claim with another type parses as absent here, and the policy matcher reports `type_mismatch` for it.
 */
export const GitHubClaims = z.object({
  actor: str,
  actor_id: str,
  base_ref: str,
  check_run_id: str,
  enterprise: str,
  enterprise_id: str,
  environment: str,
  environment_node_id: str,
  event_name: str,
  head_ref: str,
  job_workflow_ref: str,
  job_workflow_sha: str,
  ref: str,
  ref_protected: str,
  ref_type: str,
  repository: str,
  repository_id: str,
  repository_owner: str,
  repository_owner_id: str,
  repository_visibility: str,
  run_attempt: str,
  run_id: str,
  run_number: str,
  runner_environment: str,
  sha: str,
  workflow: str,
  workflow_ref: str,
  workflow_sha: str,
});
export type GitHubClaims = z.infer<typeof GitHubClaims>;

/** GitLab CI `id_tokens` claims: IDs and `ref_protected` are strings, `runner_id` is a number. */
export const GitLabClaims = z.object({
  namespace_id: str,
  namespace_path: str,
  project_id: str,
  project_path: str,
  user_id: str,
  user_login: str,
  user_email: str,
  user_access_level: str,
  user_identities: z.catch(
    z.optional(z.array(z.object({ provider: z.string(), extern_uid: z.string() }))),
    undefined,
  ),
  groups_direct: strArray,
  pipeline_id: str,
  pipeline_source: str,
  job_id: str,
  ref: str,
  ref_type: str,
  ref_path: str,
  ref_protected: str,
  environment: str,
  environment_protected: str,
  deployment_tier: str,
  environment_action: str,
  runner_id: num,
  runner_environment: str,
  sha: str,
  project_visibility: str,
  ci_config_ref_uri: str,
  ci_config_sha: str,
});
export type GitLabClaims = z.infer<typeof GitLabClaims>;

/** The registered JWT claims every GitHub, GitLab and runpass token carries. */
export const JWT_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"] as const;

/**
 * Claims every token of an issuer kind carries, whatever the platform version or event: the standard claims
 * verification requires, plus (github, gitlab) those present since the platform's first OIDC release (GHES 3.5,
 * GitLab 15.7 `id_tokens`). Later additions (runner_environment, workflow_ref, ref_path, …) and per-job claims
 * (environment, enterprise, …) are missing from some tokens; the linter warns on deny rules that rely on them.
 */
export const ALWAYS_PRESENT_CLAIMS: Record<IssuerKind, readonly string[]> = {
  github: [
    ...JWT_CLAIMS,
    "actor",
    "actor_id",
    "base_ref",
    "event_name",
    "head_ref",
    "job_workflow_ref",
    "ref",
    "ref_type",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "repository_visibility",
    "run_attempt",
    "run_id",
    "run_number",
    "sha",
    "workflow",
  ],
  gitlab: [
    ...JWT_CLAIMS,
    "namespace_id",
    "namespace_path",
    "project_id",
    "project_path",
    "user_id",
    "user_login",
    "user_email",
    "pipeline_id",
    "pipeline_source",
    "job_id",
    "ref",
    "ref_type",
    "ref_protected",
  ],
  // StandardClaims: `jti` and `nbf` are optional for generic issuers.
  generic: ["iss", "sub", "aud", "exp", "iat"],
};

/** The JSON type of each claim each platform documents (used by the linter and tests). */
export type ClaimType = "string" | "number" | "boolean" | "array";

/** One verified caller, normalised across platforms. */
export interface Identity {
  /** Issuer name (`github`, `gitlab`, or an issuers.yaml key). */
  issuer: string;
  kind: IssuerKind;
  subject: string;
  /** GitHub repository owner / GitLab namespace. */
  ownerId?: string;
  ownerName?: string;
  /** GitHub repository / GitLab project. */
  repositoryId?: string;
  repositoryName?: string;
  ref?: string;
  /** The run ledger key (docs/architecture.md, State); undefined when the token names no run. */
  runKey?: string;
}

const NUMERIC_ID = /^[0-9]{1,20}$/;

/** Normalises verified claims into an Identity. Run key parts must be numeric IDs, so a crafted claim cannot alias another run. */
export function identityOf(issuer: IssuerConfig, claims: Record<string, unknown>): Identity {
  const subject = typeof claims.sub === "string" ? claims.sub : "";
  switch (issuer.kind) {
    case "github": {
      const c = GitHubClaims.parse(claims);
      const parts = [c.repository_id, c.run_id, c.run_attempt];
      const runKey = parts.every((p) => p !== undefined && NUMERIC_ID.test(p))
        ? `github:${issuer.name}:${parts.join(":")}`
        : undefined;
      return {
        issuer: issuer.name,
        kind: issuer.kind,
        subject,
        ownerId: c.repository_owner_id,
        ownerName: c.repository_owner,
        repositoryId: c.repository_id,
        repositoryName: c.repository,
        ref: c.ref,
        runKey,
      };
    }
    case "gitlab": {
      const c = GitLabClaims.parse(claims);
      const parts = [c.project_id, c.pipeline_id];
      const runKey = parts.every((p) => p !== undefined && NUMERIC_ID.test(p))
        ? `gitlab:${issuer.name}:${parts.join(":")}`
        : undefined;
      return {
        issuer: issuer.name,
        kind: issuer.kind,
        subject,
        ownerId: c.namespace_id,
        ownerName: c.namespace_path,
        repositoryId: c.project_id,
        repositoryName: c.project_path,
        ref: c.ref_path ?? c.ref,
        runKey,
      };
    }
    case "generic":
      return { issuer: issuer.name, kind: issuer.kind, subject };
  }
}

/** Claims copied from the CI token into runpass-signed tokens, per issuer kind (never user e-mail or identities). */
export const FORWARDED_CLAIMS: Record<IssuerKind, readonly string[]> = {
  github: [
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "repository_visibility",
    "ref",
    "ref_type",
    "sha",
    "workflow_ref",
    "job_workflow_ref",
    "event_name",
    "environment",
    "run_id",
    "run_attempt",
    "actor",
    "actor_id",
    "runner_environment",
  ],
  gitlab: [
    "project_path",
    "project_id",
    "namespace_path",
    "namespace_id",
    "ref",
    "ref_type",
    "ref_path",
    "ref_protected",
    "sha",
    "pipeline_id",
    "pipeline_source",
    "job_id",
    "environment",
    "user_login",
    "runner_environment",
  ],
  generic: [],
};
