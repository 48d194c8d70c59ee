// Checks on who can start a matching run and where it runs: event allow-lists and untrusted triggers
// (RP004–RP006), workflow identity (RP007), GitLab merge-request pipelines (RP008) and self-hosted runners (RP012).

import { isGlob } from "../glob.ts";
import {
  type Findings,
  type Path,
  type Policy,
  permits,
  quote,
  valueMatches,
  valuePath,
  writeCapable,
} from "./model.ts";
import type { Severity } from "./rules.ts";

/** GitHub/GitLab sites whose runners may be hosted by the platform (custom issuers: GHES, self-managed GitLab, skip RP012). */
const HOSTED_ISSUER_HOSTS: Record<string, "github" | "gitlab"> = {
  "token.actions.githubusercontent.com": "github",
  "gitlab.com": "gitlab",
};
const RISKY_EVENTS = ["pull_request_target", "workflow_run", "issue_comment"] as const;
const MR_SOURCES = ["merge_request_event", "external_pull_request_event"] as const;

export function events(p: Policy, f: Findings): void {
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

export function workflowTrust(p: Policy, f: Findings): void {
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

export function gitlabMergeRequests(p: Policy, f: Findings): void {
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

export function selfHosted(p: Policy, f: Findings): void {
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
