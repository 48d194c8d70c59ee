// Policy fixtures shared by every tier: the acme/api policy YAML the tests repeat, issuers.yaml lines for test
// issuers, and a bundle compiled from YAML strings. Workers-free, so plain Node tests and workerd tests share it.

import { loadPolicySet } from "../../src/core/policy/load.ts";
import type { PolicyBundle } from "../../src/core/policy/types.ts";
import { ACME } from "./claims.ts";

/** The token grant most test policies carry. */
export const TOKEN_GRANT = 'token: { audience: "https://deploy.acme.dev", ttl: 10m }';

/** A GitHub-kind policy for acme/api on `issuer` (extra YAML lines appended under allow). */
export function githubPolicy(issuer: string, extra = "", grants = TOKEN_GRANT): string {
  return `issuer: ${issuer}
allow:
  repository_owner_id: "${ACME.ownerId}"
  repository_id: "${ACME.repoId}"
  ref: refs/heads/main
  event_name: [push, workflow_dispatch]
${extra}
grants:
  ${grants}
`;
}

/** A GitLab-kind policy for project 20 in namespace 72 (the shape of support/claims.ts's gitlabClaims). */
export function gitlabPolicy(
  issuer: string,
  grants = 'token: { audience: "https://deploy.acme.dev" }',
): string {
  return `issuer: ${issuer}
allow:
  namespace_id: "72"
  project_id: "20"
grants:
  ${grants}
`;
}

/** issuers.yaml entries for issuer names under `base` (github-kind unless given as name:kind). */
export function issuerLines(base: string, ...names: string[]): string {
  return names
    .map((n) => {
      const [name, kind = "github"] = n.split(":");
      return `${name}: { url: "${base}/${name}", kind: ${kind} }`;
    })
    .join("\n");
}

/** Compiles policies (name → YAML) with an issuers.yaml; throws with the problems if they do not load. */
export async function buildBundle(
  policies: Record<string, string>,
  issuersYaml = "",
  dev = true,
): Promise<PolicyBundle> {
  const result = await loadPolicySet(
    {
      policies: Object.entries(policies).map(([name, text]) => ({ path: `policies/${name}.yaml`, text })),
      issuers: { path: "policies/issuers.yaml", text: issuersYaml },
    },
    { dev },
  );
  if (!result.bundle)
    throw new Error(result.problems.map((p) => `${p.file}:${p.line}: ${p.message}`).join("\n"));
  return result.bundle;
}

/**
 * The CLI suites' deploy policy: acme/api on main under issuer `ci`, token audience `audience`, self-hosted
 * runners denied (what `policy explain`, `policy test` and `policy diff` are run against).
 */
export function deployPolicy(audience: string): string {
  return `issuer: ci
audience: ${audience}
allow:
  repository_owner_id: "${ACME.ownerId}"
  repository_id: "${ACME.repoId}"
  ref: refs/heads/main
  event_name: [push, workflow_dispatch]
deny:
  - runner_environment: self-hosted
grants:
  token: { audience: "https://deploy.acme.dev" }
`;
}
