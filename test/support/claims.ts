// Realistic claim sets (shapes as GitHub and GitLab send them) with fresh times and jti.

import type { JWTPayload } from "jose";

/** Owner and repository ids used by the test policies. */
export const ACME = { ownerId: "1342004", owner: "acme", repoId: "519345000", repo: "acme/api" } as const;

function times(now: number, lifetime: number) {
  const iat = Math.floor(now / 1000);
  return { iat, nbf: iat - 5, exp: iat + lifetime, jti: crypto.randomUUID() };
}

/** A GitHub Actions ID token payload for acme/api on main (override anything). */
export function githubClaims(
  iss: string,
  aud: string,
  overrides: Record<string, unknown> = {},
  now = Date.now(),
): JWTPayload {
  return {
    actor: "octocat",
    actor_id: "583231",
    aud,
    base_ref: "",
    event_name: "push",
    head_ref: "",
    iss,
    job_workflow_ref: "acme/api/.github/workflows/deploy.yml@refs/heads/main",
    ref: "refs/heads/main",
    ref_protected: "true",
    ref_type: "branch",
    repository: ACME.repo,
    repository_id: ACME.repoId,
    repository_owner: ACME.owner,
    repository_owner_id: ACME.ownerId,
    repository_visibility: "private",
    run_attempt: "1",
    run_id: String(Math.floor(Math.random() * 9e9) + 1e9),
    run_number: "42",
    runner_environment: "github-hosted",
    sha: "ec022c5d3b2b83dee1fd044aeff40586c373eabe",
    sub: "repo:acme/api:ref:refs/heads/main",
    workflow: "deploy",
    workflow_ref: "acme/api/.github/workflows/deploy.yml@refs/heads/main",
    ...times(now, 300),
    ...overrides,
  };
}

/** A GitLab CI `id_tokens` payload for project 20 in namespace 72 on a protected branch. */
export function gitlabClaims(
  iss: string,
  aud: string,
  overrides: Record<string, unknown> = {},
  now = Date.now(),
): JWTPayload {
  return {
    namespace_id: "72",
    namespace_path: "acme-group",
    project_id: "20",
    project_path: "acme-group/infra",
    user_id: "1",
    user_login: "sample-user",
    user_email: "sample-user@example.com",
    pipeline_id: String(Math.floor(Math.random() * 9e6) + 1e6),
    pipeline_source: "push",
    job_id: "302",
    ref: "main",
    ref_type: "branch",
    ref_path: "refs/heads/main",
    ref_protected: "true",
    runner_id: 1,
    runner_environment: "gitlab-hosted",
    sha: "714a629c0b401fdce83e847fc9589983fc6f46bc",
    project_visibility: "private",
    ci_config_ref_uri: "gitlab.com/acme-group/infra//.gitlab-ci.yml@refs/heads/main",
    ci_config_sha: "714a629c0b401fdce83e847fc9589983fc6f46bc",
    iss,
    sub: "project_path:acme-group/infra:ref_type:branch:ref:main",
    aud,
    ...times(now, 3600),
    ...overrides,
  };
}

/** Mints a token at the test issuer over HTTP (works from Node and from workerd). */
export async function mint(
  base: string,
  issuer: string,
  claims: JWTPayload,
  options: { header?: Record<string, unknown>; kid?: string } = {},
): Promise<string> {
  const res = await fetch(`${base}/${issuer}/__mint`, {
    method: "POST",
    body: JSON.stringify({ claims, ...options }),
  });
  if (!res.ok) throw new Error(`mint failed: ${res.status}`);
  return ((await res.json()) as { token: string }).token;
}

/** Sets a fault mode (or rotates keys) on one test issuer. */
export async function control(
  base: string,
  issuer: string,
  body: { mode?: string; rotate?: boolean; dropOld?: boolean },
): Promise<string[]> {
  const res = await fetch(`${base}/__control/${issuer}`, { method: "POST", body: JSON.stringify(body) });
  return ((await res.json()) as { kids: string[] }).kids;
}

/** Route hit counters of the test issuer. */
export async function hits(base: string): Promise<Record<string, number>> {
  return (await (await fetch(`${base}/__stats`)).json()) as Record<string, number>;
}
