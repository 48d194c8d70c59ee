// The lint rule table: each rule's id, name, default severity and the text docs and SARIF show.

export type Severity = "error" | "warning";

/** One lint finding. `why` is the rule's one-line reason; `fix` is specific to the finding where it can be. */
export interface Finding {
  rule: string;
  severity: Severity;
  file: string;
  line: number;
  col: number;
  message: string;
  why: string;
  fix: string;
}

/** A lint rule: stable id (RPnnn) and kebab name, default severity, and the text for docs and SARIF. */
export interface LintRule {
  id: string;
  name: string;
  /** Default severity; some rules raise or lower it per finding (see `what`). */
  severity: Severity;
  what: string;
  why: string;
  fix: string;
}

/** Every rule, in id order (docs/policy-tooling.md "Lint rules" mirrors this table; a test keeps them in step). */
export const LINT_RULES: readonly LintRule[] = [
  {
    id: "RP001",
    name: "missing-id-pin",
    severity: "error",
    what: "A github policy pins neither repository_owner_id nor repository_id exactly (gitlab: namespace_id/project_id; generic: sub). The loader refuses it.",
    why: "Without an exact ID pin a policy can match tokens from repositories or projects its author never meant.",
    fix: 'Pin the owner or repository ID as an exact quoted string, e.g. repository_id: "519345000".',
  },
  {
    id: "RP002",
    name: "name-without-id",
    severity: "warning",
    what: "allow matches a name (repository, repository_owner, actor, project_path, namespace_path, user_login, user_email, a name-based sub) without pinning the matching ID.",
    why: "Names can be deleted and re-registered by someone else (repojacking); IDs are never reused.",
    fix: "Also pin the matching ID (repository_id, repository_owner_id, actor_id, project_id, namespace_id, user_id).",
  },
  {
    id: "RP003",
    name: "glob-in-owner",
    severity: "warning",
    what: "A glob in the owner or repository segment of repository, repository_owner, job_workflow_ref, workflow_ref, sub, project_path, namespace_path or ci_config_ref_uri.",
    why: "A wildcard owner or repository lets repositories you do not control (or have not created yet) satisfy the condition.",
    fix: "Spell out the owner and repository; keep globs to the ref or file part (e.g. …/deploy.yml@refs/tags/v*).",
  },
  {
    id: "RP004",
    name: "no-event-allowlist",
    severity: "warning",
    what: "A github policy has no exact event_name allow-list (absent, or a glob). When it pins ref, RP006 reports it instead.",
    why: "Every trigger can then get the grants, including ones started by outsiders (pull_request_target, issue_comment, workflow_run).",
    fix: "Add event_name: [push, workflow_dispatch] (or the exact events the workflow needs).",
  },
  {
    id: "RP005",
    name: "untrusted-trigger",
    severity: "warning",
    what: "pull_request_target, workflow_run or issue_comment is allowed (listed or matched by event_name; or event_name unconstrained with aws, secrets or github write grants). Error when pull_request_target is listed and the policy grants aws, secrets or github write/admin.",
    why: "These events run with the base repository's identity (ref is the default branch) but are started by, and often run code from, people outside the repository.",
    fix: "Allow only trusted events (push, workflow_dispatch, …) or deny the event: deny: [{ event_name: pull_request_target }].",
  },
  {
    id: "RP006",
    name: "ref-without-event",
    severity: "warning",
    what: "A github policy pins ref without an event_name allow-list.",
    why: "ref is the default branch for pull_request_target, workflow_run, issue_comment and schedule runs, so ref: refs/heads/main does not mean “pushed to main”.",
    fix: "Add event_name: [push, workflow_dispatch] next to ref.",
  },
  {
    id: "RP007",
    name: "workflow-without-job-workflow-ref",
    severity: "warning",
    what: "A github policy matches workflow (the display name) or workflow_ref (the top-level caller) but not job_workflow_ref.",
    why: "workflow is a name any workflow file can claim; workflow_ref trusts every job of the caller and every reusable workflow it calls — job_workflow_ref names the file that actually runs the job.",
    fix: 'Pin job_workflow_ref: "owner/repo/.github/workflows/deploy.yml@refs/heads/main" (the reusable workflow you trust).',
  },
  {
    id: "RP008",
    name: "gitlab-merge-request-pipelines",
    severity: "warning",
    what: 'A gitlab policy does not both require ref_protected: "true" and restrict pipeline_source to sources other than merge_request_event / external_pull_request_event.',
    why: "Merge-request pipelines run the MR author's code and CI config; older GitLab versions even gave fork MR pipelines run in the parent project the parent's project_id.",
    fix: 'Add ref_protected: "true" and pipeline_source: [push, web] (or the sources you need, without merge_request_event).',
  },
  {
    id: "RP009",
    name: "unquoted-boolean",
    severity: "error",
    what: "A YAML boolean (true/false) for a claim the issuer sends as a string (ref_protected, environment_protected, …). Warning when other values in the list can still match.",
    why: 'GitHub and GitLab send booleans as the strings "true"/"false" and matching is type-strict, so an unquoted true never matches.',
    fix: 'Quote it: ref_protected: "true".',
  },
  {
    id: "RP010",
    name: "type-never-matches",
    severity: "error",
    what: "A value whose type can never match the claim's known type (a number for repository_id, a string for GitLab runner_id, anything for list claims such as groups_direct). Warning when other values in the list can still match.",
    why: "Matching is type-strict: the condition can never match, so the policy is dead (allow) or the deny rule never fires (deny).",
    fix: 'Use the type the issuer sends: quote IDs ("519345000"); GitLab runner_id is a number.',
  },
  {
    id: "RP011",
    name: "unknown-claim",
    severity: "warning",
    what: "A claim name the issuer kind does not send (github, gitlab; generic issuers are skipped). Error in deny when it is a near-miss of a known claim (a typo).",
    why: "An absent claim never matches: in allow the policy is dead, in deny the rule silently never fires.",
    fix: "Use the claim's exact name (see the “did you mean” hint).",
  },
  {
    id: "RP012",
    name: "self-hosted-runners",
    severity: "warning",
    what: "A github.com or gitlab.com policy with aws, secrets or github grants that does not exclude self-hosted runners.",
    why: "Self-hosted runners are usually persistent and shared: an earlier job (any branch, any repository on the runner group) can tamper with the machine that later receives production credentials.",
    fix: "Allow only hosted runners: runner_environment: github-hosted (gitlab-hosted) in allow. A deny on self-hosted does not stop tokens that omit the claim (RP018).",
  },
  {
    id: "RP013",
    name: "github-grant-broad",
    severity: "warning",
    what: "A github grant with an admin permission, a write permission that controls the repository itself (administration, workflows, secrets, dependabot_secrets, environments, repository_hooks), or write/admin on 10 or more repositories.",
    why: "These tokens can rewrite workflows, settings or secrets — enough to take over every later run, including the checks guarding this policy.",
    fix: "Grant read where possible and name only the repositories and permissions this job needs; split broad jobs into narrower policies.",
  },
  {
    id: "RP014",
    name: "aws-session-long",
    severity: "warning",
    what: "An aws grant whose duration is over 1h.",
    why: "STS sessions cannot be revoked early; a leaked session stays valid for its whole duration even after the run and lease end.",
    fix: "Use duration: 1h or less; long jobs can renew the lease (POST /v1/leases/{id}/renew).",
  },
  {
    id: "RP015",
    name: "secret-widely-shared",
    severity: "warning",
    what: "The same secret path (any version) is granted by 3 or more policies.",
    why: "Each policy is another way to read the secret; a widely shared secret has a large blast radius and is hard to rotate.",
    fix: "Give each consumer its own secret (its own path), or funnel the jobs through one policy.",
  },
  {
    id: "RP016",
    name: "dead-policy",
    severity: "warning",
    what: "A deny entry matches every token the allow block accepts (each of its claims is required by allow with values the deny covers).",
    why: "The policy can never grant anything; it is dead configuration that hides what is really allowed.",
    fix: "Remove or narrow the deny entry, or delete the policy.",
  },
  {
    id: "RP017",
    name: "duplicate-policy",
    severity: "warning",
    what: "Two policies have the same issuer, audience, allow and deny.",
    why: "The same callers can use either policy, so reviewing one does not tell you what those callers can get; identical grants make one of them redundant.",
    fix: "Merge the two policies, or narrow one of them.",
  },
  {
    id: "RP018",
    name: "deny-on-optional-claim",
    severity: "warning",
    what: "A deny entry names a claim the issuer kind does not send in every token (github: runner_environment, environment, workflow_ref, …; generic issuers: every claim but the standard ones) and allow does not require it.",
    why: "A deny entry matches only when all its claims are present and match: a token without the claim (older GHES or GitLab, another event) is not denied — the rule fails open.",
    fix: "Allow-list the claim instead (allow: runner_environment: github-hosted rather than deny: runner_environment: self-hosted), or also require the claim in allow.",
  },
  {
    id: "RP019",
    name: "gcp-federated-principal",
    severity: "warning",
    what: "A gcp grant without service_account: the run gets the federated token itself.",
    why: "A federated token acts as the workload identity pool's principal: it reaches whatever the pool's principals and principal sets were granted, which tends to grow as more policies share the pool; a service account is one reviewed set of roles.",
    fix: "Name a service_account bound to this policy's principal set (roles/iam.workloadIdentityUser), and grant roles to it rather than to the pool.",
  },
  {
    id: "RP020",
    name: "gcp-lifetime-long",
    severity: "warning",
    what: "A gcp grant whose lifetime is over 1h.",
    why: "runpass asks Google for 1h at most (a Google access token cannot be revoked early), so the longer lifetime is never granted and misleads readers.",
    fix: "Use lifetime: 1h or less; long jobs can renew the lease (POST /v1/leases/{id}/renew).",
  },
  {
    id: "RP021",
    name: "azure-scope-not-default",
    severity: "warning",
    what: "An azure grant whose scope does not end in /.default.",
    why: "Entra's client-credentials flow only accepts <resource>/.default scopes (the app's granted permissions); any other scope fails every exchange.",
    fix: "Use the resource's .default scope, e.g. scope: https://management.azure.com/.default.",
  },
  {
    id: "RP022",
    name: "azure-token-outlives-lease",
    severity: "warning",
    what: "Every azure grant (a note): Entra access tokens live 60–90 minutes and cannot be shortened or revoked.",
    why: "The token may outlive the lease: ending the run or the lease does not end it; credentials.azure.expires_at says when it does.",
    fix: "Grant the Entra app only what the job needs; keep its roles narrow rather than relying on the lease.",
  },
  {
    id: "RP023",
    name: "x509-uri-without-id",
    severity: "warning",
    what: "An x509 grant URI that names a mutable name claim (${repository}, ${project_path}, …) or no ID claim at all.",
    why: "Servers authorise a client certificate by its SAN URI: a name can be deleted and registered again by someone else, who would then get certificates naming the same identity; a URI without an ID names no repository at all.",
    fix: "Build the URI from immutable IDs, e.g. spiffe://acme.dev/ci/github/${repository_id}.",
  },
  {
    id: "RP024",
    name: "ssh-forwarding",
    severity: "warning",
    what: "An ssh grant with permit-agent-forwarding, permit-port-forwarding or permit-X11-forwarding.",
    why: "Forwarding turns a deploy login into a tunnel: port forwarding reaches whatever the host reaches, agent forwarding lets the host use the job's keys.",
    fix: "Drop the extension; deploy with a command on the host (force_command) instead of through it.",
  },
  {
    id: "RP025",
    name: "ssh-privileged-principal",
    severity: "warning",
    what: "An ssh grant principal that is a privileged login (root, toor, admin, administrator).",
    why: "The certificate is then a root shell on every host whose AuthorizedPrincipalsFile lists it: a leaked certificate owns the fleet until it expires.",
    fix: "Log in as a dedicated deploy user with the rights the job needs (sudo rules for the few privileged commands).",
  },
  {
    id: "RP026",
    name: "postgres-privileged-statement",
    severity: "error",
    what: "A postgres grant statement that gives the run's role SUPERUSER, CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS, a pg_ predefined role, or membership WITH ADMIN OPTION.",
    why: "The role exists to do one job for one run; with these it can create lasting roles, read every row or hand its rights on, and none of that ends with the lease.",
    fix: "Grant object privileges to a group role and list it under roles; keep statements to GRANT … ON … TO {{name}} and ALTER ROLE {{name}} SET ….",
  },
  {
    id: "RP027",
    name: "postgres-ttl-over-lease",
    severity: "error",
    what: "A postgres grant ttl longer than the policy's lease ttl. The loader refuses it.",
    why: "A role must not outlive the lease that ends it; runpass never sets VALID UNTIL past the lease.",
    fix: "Lower the grant's ttl to the lease's, or raise the policy's ttl if the job needs longer.",
  },
];

const RULES = new Map(LINT_RULES.map((r) => [r.id, r]));

/** The rule with this id (undefined for ids the linter does not define). */
export function lintRule(id: string): LintRule | undefined {
  return RULES.get(id);
}
