// The `github` grant: a GitHub App installation token scoped to explicit repositories and permissions,
// revoked upstream when the lease ends (and at once when minted for a response that will not be sent).

import * as z from "zod/mini";
import { GITHUB_MAX_REPOSITORIES } from "../constants.ts";
import type { GitHubGrant, GitHubPermissionLevel } from "../policy/types.ts";
import { permissionProblem } from "./github-permissions.ts";
import { type GrantModule, type IssuePorts, iso, type Report } from "./module.ts";

export interface GitHubToken {
  token: string;
  /** ms since the epoch. */
  expiresAt: number;
  repositories: string[];
  permissions: Record<string, string>;
}

/** The GitHub App API as the core needs it. Throws UpstreamError. */
export interface GitHubPort {
  /** The API base, sealed with each token so revocation reaches the GitHub that minted it. */
  readonly apiUrl: string;
  mint(
    owner: string,
    repositories: string[],
    permissions: Record<string, GitHubPermissionLevel>,
  ): Promise<GitHubToken>;
  revoke(token: string): Promise<void>;
}

/** The github grant's credential in the exchange response. */
export interface GitHubCredential {
  token: string;
  expires_at: string;
  repositories: string[];
  permissions: Record<string, string>;
}

type Path = ReadonlyArray<string | number>;

const GITHUB_OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const GITHUB_REPO = /^[A-Za-z0-9._-]{1,100}$/;

const GitHubGrantSchema = z.strictObject({
  owner: z.string(),
  repositories: z.array(z.string()),
  permissions: z.record(z.string(), z.string()),
});

/** Validates grants.github: explicit owner, repositories and repository permissions. */
export function loadGitHubGrant(raw: z.infer<typeof GitHubGrantSchema>, report: Report): GitHubGrant {
  const at = (...p: Array<string | number>): Path => ["grants", "github", ...p];
  if (!GITHUB_OWNER.test(raw.owner))
    report(at("owner"), `owner: "${raw.owner}" is not a GitHub account name`);
  if (raw.repositories.length === 0) {
    report(
      at("repositories"),
      "repositories: name at least one repository (tokens for all repositories are never issued)",
    );
  }
  if (raw.repositories.length > GITHUB_MAX_REPOSITORIES) {
    report(at("repositories"), `repositories: at most ${GITHUB_MAX_REPOSITORIES}`);
  }
  const seen = new Set<string>();
  for (const [i, repo] of raw.repositories.entries()) {
    if (!GITHUB_REPO.test(repo)) {
      report(
        at("repositories", i),
        `"${repo}" is not a repository name (names only, without the owner; no globs)`,
      );
    }
    if (seen.has(repo.toLowerCase())) report(at("repositories", i), `"${repo}" is listed twice`);
    seen.add(repo.toLowerCase());
  }
  const names = Object.keys(raw.permissions);
  if (names.length === 0) report(at("permissions"), "permissions: name at least one permission");
  for (const name of names) {
    const problem = permissionProblem(name, raw.permissions[name]);
    if (problem) report(at("permissions", name), problem, true);
  }
  return {
    owner: raw.owner,
    repositories: raw.repositories,
    permissions: raw.permissions as Record<string, GitHubPermissionLevel>,
  };
}

/** Revokes GitHub tokens minted for a response that will not be sent; says what happened. */
export async function recallGitHub(deps: Pick<IssuePorts, "github">, tokens: string[]): Promise<string> {
  if (tokens.length === 0) return "nothing to recall";
  const results = await Promise.allSettled(tokens.map((t) => deps.github().revoke(t)));
  const failed = results.filter((r) => r.status === "rejected").length;
  return failed === 0 ? "GitHub token revoked" : `GitHub token revocation FAILED (${failed})`;
}

/** The `github` grant module. */
export const githubGrant: GrantModule<
  "github",
  z.infer<typeof GitHubGrantSchema>,
  GitHubGrant,
  GitHubGrant,
  GitHubCredential
> = {
  name: "github",
  schema: GitHubGrantSchema,
  upstream: "GitHub",
  costly: true,
  renewable: true,
  load: (raw, ctx) => loadGitHubGrant(raw, ctx.report),
  plan: (def) => def,
  async mint(plan, { deps, lease }) {
    const gh = deps.github();
    const t = await gh.mint(plan.owner, plan.repositories, plan.permissions);
    // The installation token may live longer than the lease; the lease end revokes it upstream.
    const expiresAt = Math.min(Math.floor(t.expiresAt / 1000), lease.expiresAt);
    return {
      credential: {
        token: t.token,
        expires_at: iso(expiresAt),
        repositories: t.repositories,
        permissions: t.permissions,
      },
      grants: [
        {
          type: "github",
          id: await deps.hasher.digest(t.token),
          expires_at: iso(expiresAt),
          revocation: await deps.sealer.seal(JSON.stringify({ api: gh.apiUrl, token: t.token }), lease.id),
        },
      ],
    };
  },
  recall: (c, deps) => recallGitHub(deps, [c.token]),
  secretValues: (c) => [c.token],
};
