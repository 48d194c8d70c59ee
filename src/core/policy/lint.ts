// Security lint for policy files (`runpass policy check`, docs/policy-tooling.md "Lint rules"): rules RP001–RP018, each pointing at
// file:line:col. Pure: the caller reads the files; the YAML is re-parsed here with the loader's own parser
// so findings can name positions. Findings warn about policies the loader accepts but that trust more than
// their authors probably meant (or can never match); RP001 repeats the loader's refusal with a rule id.

import type { ZodMiniType } from "zod/mini";
import { parseDuration } from "../duration.ts";
import { ALWAYS_PRESENT_CLAIMS, type ClaimType, GitHubClaims, GitLabClaims } from "../oidc/claims.ts";
import { DEV_ISSUER_NAME, type IssuerKind, PRESET_ISSUERS, RESERVED_ISSUER_NAMES } from "../oidc/issuers.ts";
import { parseSecretRef } from "../secrets/paths.ts";
import { compileGlob, isGlob, matchGlob } from "./glob.ts";
import {
  editDistance,
  type LoadOptions,
  POLICY_NAME,
  REQUIRED_PINS,
  type SourceFile,
  YamlSource,
} from "./load.ts";
import { IssuersFileSchema, type PolicyFile, PolicyFileSchema } from "./schema.ts";
import type { Scalar } from "./types.ts";

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
];

const RULES = new Map(LINT_RULES.map((r) => [r.id, r]));

/** GitHub/GitLab sites whose runners may be hosted by the platform (custom issuers: GHES, self-managed GitLab, skip RP012). */
const HOSTED_ISSUER_HOSTS: Record<string, "github" | "gitlab"> = {
  "token.actions.githubusercontent.com": "github",
  "gitlab.com": "gitlab",
};

const RISKY_EVENTS = ["pull_request_target", "workflow_run", "issue_comment"] as const;
const MR_SOURCES = ["merge_request_event", "external_pull_request_event"] as const;
/** Repository permissions whose write level controls the repository itself (RP013). */
const SENSITIVE_WRITE = new Set([
  "administration",
  "workflows",
  "secrets",
  "dependabot_secrets",
  "environments",
  "repository_hooks",
]);
const MANY_REPOSITORIES = 10;
const LONG_AWS_SESSION_SECONDS = 3600;
const SHARED_SECRET_POLICIES = 3;

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
const KNOWN_CLAIMS: Record<"github" | "gitlab", Record<string, ClaimType>> = {
  github: { ...STANDARD, ...claimTypes(GitHubClaims) },
  gitlab: { ...STANDARD, ...claimTypes(GitLabClaims), ...GITLAB_EXTRA },
};

/** Name claims and the ID claims any of which makes matching the name safe (RP002). */
const NAME_IDS: Record<"github" | "gitlab", Record<string, readonly string[]>> = {
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

type Path = ReadonlyArray<string | number>;

interface Cond {
  claim: string;
  values: Scalar[];
  /** The YAML path of the condition's key. */
  path: Path;
  /** True when the YAML value is a list (value i lives at [...path, i]). */
  list: boolean;
}

interface Policy {
  name: string;
  file: string;
  src: YamlSource;
  raw: PolicyFile;
  kind: IssuerKind;
  issuerName: string;
  issuerUrl: string;
  allow: Map<string, Cond>;
  deny: Array<Map<string, Cond>>;
}

function conditions(raw: Record<string, Scalar | Scalar[]>, path: Path): Map<string, Cond> {
  const out = new Map<string, Cond>();
  for (const [claim, value] of Object.entries(raw)) {
    const list = Array.isArray(value);
    out.set(claim, { claim, values: list ? value : [value], path: [...path, claim], list });
  }
  return out;
}

function valuePath(cond: Cond, i: number): Path {
  return cond.list ? [...cond.path, i] : cond.path;
}

/** True when a policy value (exact or glob) matches the string `value`. */
function valueMatches(pattern: Scalar, value: string): boolean {
  if (typeof pattern !== "string") return false;
  return isGlob(pattern) ? matchGlob(compileGlob(pattern), value) : pattern === value;
}

function exactStrings(cond: Cond | undefined): cond is Cond {
  return cond?.values.every((v) => typeof v === "string" && !isGlob(v)) === true;
}

/** Whether a token whose `claim` is `value` passes this claim's allow condition and every deny entry on that claim alone. */
function permits(p: Policy, claim: string, value: string): boolean {
  const cond = p.allow.get(claim);
  if (cond && !cond.values.some((v) => valueMatches(v, value))) return false;
  return !p.deny.some((d) => {
    const only = d.size === 1 ? d.get(claim) : undefined;
    return only?.values.some((v) => valueMatches(v, value)) === true;
  });
}

function quote(v: Scalar): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

class Findings {
  readonly list: Finding[] = [];

  add(
    p: Policy,
    rule: string,
    path: Path,
    atKey: boolean,
    message: string,
    extra: Partial<Finding> = {},
  ): void {
    const r = RULES.get(rule) as LintRule;
    const { line, col } = p.src.locate(path, atKey);
    this.list.push({
      rule,
      severity: r.severity,
      file: p.file,
      line,
      col,
      message,
      why: r.why,
      fix: r.fix,
      ...extra,
    });
  }
}

/** Issuer name → kind and URL: presets, issuers.yaml (when it parses), and the dev issuer in dev checks. */
function issuerTable(
  issuers: SourceFile | undefined,
  options: LoadOptions,
): Map<string, { kind: IssuerKind; url: string }> {
  const out = new Map<string, { kind: IssuerKind; url: string }>(
    Object.values(PRESET_ISSUERS).map((i) => [i.name, { kind: i.kind, url: i.url }]),
  );
  if (options.dev && options.devIssuer) {
    out.set(DEV_ISSUER_NAME, { kind: options.devIssuer.kind, url: options.devIssuer.url });
  }
  if (issuers) {
    const src = new YamlSource(issuers.path, issuers.text, []);
    const parsed = IssuersFileSchema.safeParse(src.value ?? {});
    if (parsed.success) {
      for (const [name, entry] of Object.entries(parsed.data)) {
        if (!RESERVED_ISSUER_NAMES.has(name)) out.set(name, { kind: entry.kind, url: entry.url });
      }
    }
  }
  return out;
}

/** The policies the loader would look at, parsed and schema-valid (the loader reports everything else). */
function readPolicies(
  input: { policies: SourceFile[]; issuers?: SourceFile },
  options: LoadOptions,
): Policy[] {
  const issuers = issuerTable(input.issuers, options);
  const out: Policy[] = [];
  const seen = new Set<string>();
  for (const file of [...input.policies].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    const base = file.path.split(/[\\/]/).pop() ?? file.path;
    const name = base.replace(/\.yaml$/, "");
    if (!POLICY_NAME.test(name) || seen.has(name)) continue;
    seen.add(name);
    const src = new YamlSource(file.path, file.text, []);
    if (src.value === undefined) continue;
    const parsed = PolicyFileSchema.safeParse(src.value);
    if (!parsed.success) continue;
    const raw = parsed.data;
    const issuer = issuers.get(raw.issuer);
    if (!issuer) continue;
    out.push({
      name,
      file: file.path,
      src,
      raw,
      kind: issuer.kind,
      issuerName: raw.issuer,
      issuerUrl: issuer.url,
      allow: conditions(raw.allow, ["allow"]),
      deny: (raw.deny ?? []).map((d, i) => conditions(d, ["deny", i])),
    });
  }
  return out;
}

/** Grants that can change things or read secrets: aws, secrets, and github with a write/admin permission. */
function writeCapable(p: Policy): string[] {
  const g = p.raw.grants;
  const out: string[] = [];
  if (g.aws) out.push("aws");
  if (g.secrets) out.push("secrets");
  if (g.github && Object.values(g.github.permissions).some((l) => l === "write" || l === "admin"))
    out.push("github write");
  return out;
}

// ---- per-policy rules ----

function missingPin(p: Policy, f: Findings): void {
  const pins = REQUIRED_PINS[p.kind];
  if (pins.some((claim) => exactStrings(p.allow.get(claim)))) return;
  const what = pins.map((c) => `"${c}"`).join(" or ");
  // The loader's words (it refuses the policy with rule RP001), so the two reports are one line.
  f.add(
    p,
    "RP001",
    ["allow"],
    false,
    `a ${p.kind}-kind policy must pin ${what} in allow with exact string values (IDs, not names: names can be re-registered)`,
  );
}

function nameWithoutId(p: Policy, f: Findings): void {
  if (p.kind === "generic") return;
  const table = NAME_IDS[p.kind];
  for (const cond of p.allow.values()) {
    let ids = table[cond.claim];
    if (cond.claim === "sub") {
      const prefix = p.kind === "github" ? "repo:" : "project_path:";
      if (cond.values.some((v) => typeof v === "string" && v.startsWith(prefix)))
        ids = p.kind === "github" ? ["repository_id"] : ["project_id"];
    }
    if (!ids || ids.some((id) => exactStrings(p.allow.get(id)))) continue;
    f.add(
      p,
      "RP002",
      cond.path,
      true,
      `${cond.claim} matches a name and ${ids.join(" or ")} is not pinned: if the name is deleted or renamed, someone else can register it and match`,
      { fix: `Also pin ${ids[0]} with its exact quoted ID (the name may stay, as a readable double check).` },
    );
  }
}

/** Which leading segment of an owner/repository-shaped value holds a glob, if any. */
function ownerRepoGlob(kind: IssuerKind, claim: string, value: string): "owner" | "repository" | undefined {
  if (!isGlob(value)) return undefined;
  const twoSegments = (v: string): "owner" | "repository" | undefined => {
    const [owner = "", repo = ""] = v.split("/");
    if (isGlob(owner)) return "owner";
    return isGlob(repo) ? "repository" : undefined;
  };
  const projectPath = (v: string): "owner" | "repository" | undefined => {
    const i = v.lastIndexOf("/");
    const ns = i === -1 ? "" : v.slice(0, i);
    const project = v.slice(i + 1);
    // `**` in the project segment also matches deeper namespaces.
    if (isGlob(ns) || project.includes("**")) return "owner";
    return isGlob(project) ? "repository" : undefined;
  };
  if (kind === "github") {
    switch (claim) {
      case "repository_owner":
        return "owner";
      case "repository":
      case "job_workflow_ref":
      case "workflow_ref":
        return twoSegments(value);
      case "sub":
        return value.startsWith("repo:") ? twoSegments(value.slice(5).split(":")[0] ?? "") : undefined;
    }
    return undefined;
  }
  if (kind === "gitlab") {
    switch (claim) {
      case "namespace_path":
      case "job_namespace_path":
        return "owner";
      case "project_path":
      case "job_project_path":
        return projectPath(value);
      case "ci_config_ref_uri":
      case "job_policy_ref_uri": {
        const i = value.indexOf("//");
        return projectPath(i === -1 ? value : value.slice(0, i));
      }
      case "sub":
        return value.startsWith("project_path:")
          ? projectPath(value.slice("project_path:".length).split(":")[0] ?? "")
          : undefined;
    }
  }
  return undefined;
}

function globInOwner(p: Policy, f: Findings): void {
  for (const cond of p.allow.values()) {
    for (const [i, v] of cond.values.entries()) {
      if (typeof v !== "string") continue;
      const where = ownerRepoGlob(p.kind, cond.claim, v);
      if (!where) continue;
      const gitlab = p.kind === "gitlab";
      const whose = where === "owner" ? (gitlab ? "group" : "owner") : gitlab ? "project" : "repository";
      f.add(
        p,
        "RP003",
        valuePath(cond, i),
        false,
        `${cond.claim}: ${quote(v)} has a glob in the ${whose} segment: any ${whose} matching it qualifies`,
      );
    }
  }
}

function events(p: Policy, f: Findings): void {
  if (p.kind !== "github") return;
  const ev = p.allow.get("event_name");
  const grants = writeCapable(p);
  if (!ev) {
    const ref = p.allow.get("ref");
    if (ref) {
      f.add(
        p,
        "RP006",
        ref.path,
        true,
        "ref is pinned but event_name is not: pull_request_target, workflow_run, issue_comment and schedule runs carry the default branch's ref too",
      );
    } else {
      f.add(p, "RP004", ["allow"], true, "no event_name allow-list: every trigger matches");
    }
    const open = RISKY_EVENTS.filter((e) => permits(p, "event_name", e));
    if (grants.length && open.length) {
      f.add(
        p,
        "RP005",
        ["allow"],
        true,
        `event_name is unconstrained, so ${open.join(", ")} runs (started by outsiders) can get ${grants.join(", ")}`,
      );
    }
    return;
  }
  for (const [i, v] of ev.values.entries()) {
    if (typeof v === "string" && isGlob(v))
      f.add(p, "RP004", valuePath(ev, i), false, `event_name: ${quote(v)} is a glob, not an allow-list`);
  }
  // One finding per listed value that lets a risky event through.
  for (const [i, v] of ev.values.entries()) {
    const hits = RISKY_EVENTS.filter((e) => valueMatches(v, e) && permits(p, "event_name", e));
    if (hits.length === 0) continue;
    const prt = hits.includes("pull_request_target");
    const severity: Severity = prt && grants.length ? "error" : "warning";
    const via = v === hits[0] && hits.length === 1 ? "" : ` (${quote(v)} matches ${hits.join(", ")})`;
    const with_ = grants.length ? ` with ${grants.join(", ")} grants` : "";
    f.add(
      p,
      "RP005",
      valuePath(ev, i),
      false,
      `event_name allows ${hits.join(", ")}${via}${with_}: runs started by people outside the repository`,
      { severity },
    );
  }
}

function workflowTrust(p: Policy, f: Findings): void {
  if (p.kind !== "github" || p.allow.has("job_workflow_ref")) return;
  const w = p.allow.get("workflow");
  if (w)
    f.add(
      p,
      "RP007",
      w.path,
      true,
      "workflow is the workflow's display name (its `name:`), which any workflow file in the repository can claim; job_workflow_ref is not pinned",
    );
  const wr = p.allow.get("workflow_ref");
  if (wr)
    f.add(
      p,
      "RP007",
      wr.path,
      true,
      "workflow_ref names only the top-level workflow: every job in it, and any reusable workflow it calls, matches; job_workflow_ref is not pinned",
    );
}

function gitlabMergeRequests(p: Policy, f: Findings): void {
  if (p.kind !== "gitlab") return;
  const missing: string[] = [];
  const rp = p.allow.get("ref_protected");
  // An unquoted true is RP009's business; here it counts as the intent to require protected refs.
  if (!rp?.values.every((v) => v === "true" || v === true))
    missing.push('ref_protected: "true" is not required');
  const open = MR_SOURCES.filter((s) => permits(p, "pipeline_source", s));
  const src = p.allow.get("pipeline_source");
  if (open.length) {
    missing.push(
      src
        ? `pipeline_source lets ${open.join(", ")} through`
        : "pipeline_source is unconstrained (merge-request pipelines match)",
    );
  }
  if (missing.length === 0) return;
  let at: Path = ["allow"];
  let atKey = true;
  const i = src ? src.values.findIndex((v) => MR_SOURCES.some((s) => valueMatches(v, s))) : -1;
  if (src && i >= 0) {
    at = valuePath(src, i);
    atKey = false;
  } else if (rp) {
    at = rp.path;
  }
  f.add(
    p,
    "RP008",
    at,
    atKey,
    `merge-request pipelines (MR author's code and CI config) can match: ${missing.join("; ")}`,
  );
}

function types(p: Policy, f: Findings): void {
  if (p.kind === "generic") return;
  const known = KNOWN_CLAIMS[p.kind];
  const blocks: Array<[Map<string, Cond>, "allow" | "deny"]> = [
    [p.allow, "allow"],
    ...p.deny.map((d): [Map<string, Cond>, "deny"] => [d, "deny"]),
  ];
  for (const [block, kind] of blocks) {
    for (const cond of block.values()) {
      const type = known[cond.claim];
      if (!type) continue;
      const bad = cond.values.map((v) => type === "array" || typeof v !== type);
      if (!bad.some(Boolean)) continue;
      const all = bad.every(Boolean);
      const consequence = all
        ? kind === "allow"
          ? "this policy can never match"
          : "this deny entry can never fire"
        : "this value can never match (other values in the list can)";
      const severity: Severity = all ? "error" : "warning";
      if (type === "array") {
        f.add(
          p,
          "RP010",
          cond.path,
          true,
          `${cond.claim} is a list claim and runpass compares scalar claims only, so ${consequence}`,
          { severity, fix: `Remove ${cond.claim}; match a scalar claim instead.` },
        );
        continue;
      }
      for (const [i, v] of cond.values.entries()) {
        if (!bad[i]) continue;
        const boolForString = typeof v === "boolean" && type === "string";
        f.add(
          p,
          boolForString ? "RP009" : "RP010",
          valuePath(cond, i),
          false,
          `${cond.claim}: ${quote(v)} is a ${typeof v}, but ${p.kind} sends ${cond.claim} as a ${type}, so ${consequence}`,
          {
            severity,
            fix:
              type === "string"
                ? `Quote it: ${cond.claim}: ${JSON.stringify(String(v))}.`
                : `Use a ${type}: ${cond.claim}: ${typeof v === "string" && /^\d+$/.test(v) ? v : "<number>"}.`,
          },
        );
      }
    }
  }
}

function unknownClaims(p: Policy, f: Findings): void {
  if (p.kind === "generic") return;
  const known = Object.keys(KNOWN_CLAIMS[p.kind]);
  const blocks: Array<[Map<string, Cond>, boolean]> = [
    [p.allow, false],
    ...p.deny.map((d): [Map<string, Cond>, boolean] => [d, true]),
  ];
  for (const [block, inDeny] of blocks) {
    for (const cond of block.values()) {
      if (known.includes(cond.claim)) continue;
      let best: string | undefined;
      let bestDistance = Number.POSITIVE_INFINITY;
      for (const k of known) {
        const d = editDistance(cond.claim, k);
        if (d < bestDistance) [best, bestDistance] = [k, d];
      }
      const near = best !== undefined && bestDistance <= Math.max(2, Math.floor(cond.claim.length / 4));
      const hint = near ? ` (did you mean "${best}"?)` : "";
      const effect = inDeny ? "this deny entry never fires" : "this policy never matches";
      f.add(
        p,
        "RP011",
        cond.path,
        true,
        `"${cond.claim}" is not a claim ${p.kind} sends${hint}; while it is absent, ${effect}`,
        {
          severity: inDeny && near ? "error" : "warning",
          fix: near ? `Rename it to ${best}.` : (RULES.get("RP011") as LintRule).fix,
        },
      );
    }
  }
}

function selfHosted(p: Policy, f: Findings): void {
  let host = "";
  try {
    host = new URL(p.issuerUrl).hostname;
  } catch {
    return;
  }
  const platform = HOSTED_ISSUER_HOSTS[host];
  if (!platform || platform !== p.kind) return;
  const g = p.raw.grants;
  const production = (["aws", "secrets", "github"] as const).filter((k) => g[k] !== undefined);
  if (production.length === 0 || !permits(p, "runner_environment", "self-hosted")) return;
  const hosted = platform === "github" ? "github-hosted" : "gitlab-hosted";
  f.add(
    p,
    "RP012",
    ["grants", production[0] as string],
    true,
    `self-hosted runners can get this policy's ${production.join(", ")} grants (runner_environment is neither denied self-hosted nor allowed only ${hosted})`,
    { fix: `Allow only hosted runners: runner_environment: ${hosted} in allow.` },
  );
}

function grantBreadth(p: Policy, f: Findings): void {
  const gh = p.raw.grants.github;
  if (gh) {
    let writes = false;
    for (const [perm, level] of Object.entries(gh.permissions)) {
      if (level === "write" || level === "admin") writes = true;
      if (level === "admin") {
        f.add(p, "RP013", ["grants", "github", "permissions", perm], true, `github grant: ${perm}: admin`);
      } else if (level === "write" && SENSITIVE_WRITE.has(perm)) {
        f.add(
          p,
          "RP013",
          ["grants", "github", "permissions", perm],
          true,
          `github grant: ${perm}: write controls the repository itself`,
        );
      }
    }
    if (writes && gh.repositories.length >= MANY_REPOSITORIES) {
      f.add(
        p,
        "RP013",
        ["grants", "github", "repositories"],
        true,
        `github grant: write access to ${gh.repositories.length} repositories (${MANY_REPOSITORIES} or more)`,
      );
    }
  }
  const aws = p.raw.grants.aws;
  if (aws?.duration !== undefined) {
    const secs = parseDuration(aws.duration);
    if (secs !== undefined && secs > LONG_AWS_SESSION_SECONDS) {
      f.add(
        p,
        "RP014",
        ["grants", "aws", "duration"],
        false,
        `aws grant: duration ${aws.duration} is over 1h`,
      );
    }
  }
}

function denyOnOptionalClaim(p: Policy, f: Findings): void {
  const always = ALWAYS_PRESENT_CLAIMS[p.kind];
  // A claim allow requires is present in every token the policy admits, so a deny on it sees it.
  const guaranteed = (claim: string) => always.includes(claim) || p.allow.has(claim);
  // For github and gitlab an unknown claim is RP011's finding (it never fires at all).
  const known = p.kind === "generic" ? undefined : KNOWN_CLAIMS[p.kind];
  for (const d of p.deny) {
    for (const cond of d.values()) {
      if (guaranteed(cond.claim) || (known && !Object.hasOwn(known, cond.claim))) continue;
      const values = cond.values.filter((v): v is string => typeof v === "string" && !isGlob(v));
      const example =
        cond.claim === "runner_environment"
          ? `${cond.claim}: ${p.kind === "gitlab" ? "gitlab-hosted" : "github-hosted"}`
          : `${cond.claim}: [<the values you trust>]`;
      f.add(
        p,
        "RP018",
        cond.path,
        true,
        `"${cond.claim}" is not in every ${p.kind} token: a token without it is not denied by this entry${
          values.length ? ` (only tokens that say ${values.map(quote).join(" or ")} are)` : ""
        }; the deny fails open`,
        { fix: `Allow-list the claim instead (allow: ${example}), or also require ${cond.claim} in allow.` },
      );
    }
  }
}

// ---- rules across policies ----

function sharedSecrets(policies: Policy[], f: Findings): void {
  const byPath = new Map<string, Array<{ p: Policy; env: string }>>();
  for (const p of policies) {
    for (const [env, text] of Object.entries(p.raw.grants.secrets ?? {})) {
      const ref = parseSecretRef(text);
      if (!ref) continue;
      const list = byPath.get(ref.path) ?? [];
      list.push({ p, env });
      byPath.set(ref.path, list);
    }
  }
  for (const [path, uses] of byPath) {
    const names = [...new Set(uses.map((u) => u.p.name))];
    if (names.length < SHARED_SECRET_POLICIES) continue;
    for (const { p, env } of uses) {
      f.add(
        p,
        "RP015",
        ["grants", "secrets", env],
        false,
        `secret "${path}" is granted by ${names.length} policies (${names.join(", ")})`,
      );
    }
  }
}

/** True when every value `a` of allow (for one claim) is also matched by one of the deny values. */
function covered(allowValues: Scalar[], denyValues: Scalar[]): boolean {
  return allowValues.every((a) =>
    denyValues.some((d) => {
      if (typeof a !== "string" || !isGlob(a)) {
        if (d === a) return true;
        return typeof a === "string" && typeof d === "string" && isGlob(d) && valueMatches(d, a);
      }
      // A glob in allow: only the same glob or `**` (any string) surely covers it.
      return d === a || d === "**";
    }),
  );
}

function deadPolicy(p: Policy, f: Findings): void {
  for (const [i, d] of p.deny.entries()) {
    if (d.size === 0) continue;
    const all = [...d.values()].every((cond) => {
      const a = p.allow.get(cond.claim);
      return a !== undefined && covered(a.values, cond.values);
    });
    if (all) {
      f.add(
        p,
        "RP016",
        ["deny", i],
        false,
        `deny entry ${i + 1} (${[...d.keys()].join(", ")}) matches every token allow accepts: this policy can never grant anything`,
      );
    }
  }
}

/** Order-insensitive canonical text of a condition map. */
function canonical(map: Map<string, Cond>): string {
  return JSON.stringify(
    [...map.values()]
      .map((c) => [c.claim, [...new Set(c.values.map((v) => JSON.stringify(v)))].sort()] as const)
      .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)),
  );
}

function duplicates(policies: Policy[], f: Findings): void {
  const seen = new Map<string, Policy>();
  for (const p of policies) {
    const key = JSON.stringify([
      p.issuerName,
      p.raw.audience ?? null,
      canonical(p.allow),
      [...new Set(p.deny.map(canonical))].sort(),
    ]);
    const first = seen.get(key);
    if (!first) {
      seen.set(key, p);
      continue;
    }
    const sameGrants = JSON.stringify(p.raw.grants) === JSON.stringify(first.raw.grants);
    f.add(
      p,
      "RP017",
      ["allow"],
      true,
      `same issuer, audience, allow and deny as policy "${first.name}" (${first.file})${
        sameGrants ? ", and the same grants: it is redundant" : ": the same callers can use either"
      }`,
    );
  }
}

/**
 * Lints a policy set. Takes the same sources and options as loadPolicySet; files the loader refuses for
 * syntax or schema reasons, or whose issuer it does not know, are skipped (the loader reports them).
 * Findings are sorted by file, line, column.
 */
export function lintPolicySet(
  input: { policies: SourceFile[]; issuers?: SourceFile },
  options: LoadOptions,
): Finding[] {
  const policies = readPolicies(input, options);
  const f = new Findings();
  for (const p of policies) {
    missingPin(p, f);
    nameWithoutId(p, f);
    globInOwner(p, f);
    events(p, f);
    workflowTrust(p, f);
    gitlabMergeRequests(p, f);
    types(p, f);
    unknownClaims(p, f);
    selfHosted(p, f);
    grantBreadth(p, f);
    deadPolicy(p, f);
    denyOnOptionalClaim(p, f);
  }
  sharedSecrets(policies, f);
  duplicates(policies, f);
  return f.list.sort(
    (a, b) =>
      (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) ||
      a.line - b.line ||
      a.col - b.col ||
      (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0),
  );
}

/** The rule with this id (undefined for ids the linter does not define). */
export function lintRule(id: string): LintRule | undefined {
  return RULES.get(id);
}
