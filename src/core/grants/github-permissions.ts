// GitHub App permission names and the levels each accepts, from GitHub's REST schema `app-permissions`
// (as published in @octokit/openapi-types). Only repository permissions: a runpass github grant always
// names its repositories, and a repository-scoped token must not carry organisation or user permissions.

import type { GitHubPermissionLevel } from "../policy/types.ts";

const RW: readonly GitHubPermissionLevel[] = ["read", "write"];

/** Repository permissions → accepted levels. */
export const REPOSITORY_PERMISSIONS: Readonly<Record<string, readonly GitHubPermissionLevel[]>> = {
  actions: RW,
  administration: RW,
  artifact_metadata: RW,
  attestations: RW,
  checks: RW,
  code_quality: RW,
  codespaces: RW,
  contents: RW,
  dependabot_secrets: RW,
  deployments: RW,
  discussions: RW,
  environments: RW,
  issues: RW,
  merge_queues: RW,
  metadata: RW,
  packages: RW,
  pages: RW,
  pull_requests: RW,
  repository_custom_properties: RW,
  repository_hooks: RW,
  repository_projects: ["read", "write", "admin"],
  secret_scanning_alerts: RW,
  secrets: RW,
  security_events: RW,
  single_file: RW,
  statuses: RW,
  vulnerability_alerts: RW,
  workflows: ["write"],
};

/** Organisation and user permissions: named so the error can say why they are refused. */
export const NON_REPOSITORY_PERMISSIONS = new Set([
  "custom_properties_for_organizations",
  "members",
  "organization_administration",
  "organization_custom_roles",
  "organization_custom_org_roles",
  "organization_custom_properties",
  "organization_copilot_seat_management",
  "organization_copilot_agent_settings",
  "organization_announcement_banners",
  "organization_events",
  "organization_hooks",
  "organization_personal_access_tokens",
  "organization_personal_access_token_requests",
  "organization_plan",
  "organization_projects",
  "organization_packages",
  "organization_secrets",
  "organization_self_hosted_runners",
  "organization_user_blocking",
  "email_addresses",
  "followers",
  "git_ssh_keys",
  "gpg_keys",
  "interaction_limits",
  "profile",
  "starring",
]);

/** Why a permission entry is refused, or undefined when it is a valid repository permission and level. */
export function permissionProblem(name: string, level: unknown): string | undefined {
  if (NON_REPOSITORY_PERMISSIONS.has(name)) {
    return `"${name}" is an organisation or user permission; a repository-scoped github grant cannot carry it`;
  }
  const levels = REPOSITORY_PERMISSIONS[name];
  if (!levels) return `"${name}" is not a GitHub App repository permission`;
  if (typeof level !== "string" || !levels.includes(level as GitHubPermissionLevel)) {
    return `${name}: level must be ${levels.map((l) => `"${l}"`).join(" or ")}`;
  }
  return undefined;
}
