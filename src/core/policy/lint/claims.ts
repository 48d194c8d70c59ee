// What the linter knows about each issuer kind's claims: their JSON types, and which ID pins make a name safe.

import type { ZodMiniType } from "zod/mini";
import { type ClaimType, GitHubClaims, GitLabClaims } from "../../oidc/claims.ts";

/** The JSON type of each claim, read from the zod schemas in claims.ts (the single list of known claims). */
function claimTypes(schema: { shape: Record<string, ZodMiniType> }): Record<string, ClaimType> {
  const out: Record<string, ClaimType> = {};
  for (const [claim, field] of Object.entries(schema.shape)) {
    // Each field is optional-with-catch: a value of another type parses as undefined.
    const keeps = (v: unknown) => field.safeParse(v).data === v;
    out[claim] = keeps("x") ? "string" : keeps(1) ? "number" : keeps(true) ? "boolean" : "array";
  }
  return out;
}

const STANDARD: Record<string, ClaimType> = { sub: "string", jti: "string" };
/** Claims GitLab documents that runpass's schema does not parse (matching uses the raw claims, so they work). */
const GITLAB_EXTRA: Record<string, ClaimType> = {
  job_project_id: "string",
  job_project_path: "string",
  job_namespace_id: "string",
  job_namespace_path: "string",
  job_source: "string",
  job_policy_ref_uri: "string",
  job_policy_ref_sha: "string",
  pipeline_source_event: "string",
  target_ref: "string",
  target_ref_protected: "string",
};
export const KNOWN_CLAIMS: Record<"github" | "gitlab", Record<string, ClaimType>> = {
  github: { ...STANDARD, ...claimTypes(GitHubClaims) },
  gitlab: { ...STANDARD, ...claimTypes(GitLabClaims), ...GITLAB_EXTRA },
};

/** Name claims and the ID claims any of which makes matching the name safe (RP002). */
export const NAME_IDS: Record<"github" | "gitlab", Record<string, readonly string[]>> = {
  github: {
    repository: ["repository_id"],
    repository_owner: ["repository_owner_id", "repository_id"],
    actor: ["actor_id"],
  },
  gitlab: {
    project_path: ["project_id"],
    namespace_path: ["namespace_id", "project_id"],
    job_project_path: ["job_project_id"],
    job_namespace_path: ["job_namespace_id", "job_project_id"],
    user_login: ["user_id"],
    user_email: ["user_id"],
  },
};
