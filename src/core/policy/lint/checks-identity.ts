// Checks on how a policy names who it trusts: an exact ID pin (RP001), names without IDs (RP002), and globs
// in the owner or repository part of a value (RP003).

import type { IssuerKind } from "../../oidc/issuers.ts";
import { isGlob } from "../glob.ts";
import { REQUIRED_PINS } from "../load.ts";
import { NAME_IDS } from "./claims.ts";
import { exactStrings, type Findings, type Policy, quote, valuePath } from "./model.ts";

export function missingPin(p: Policy, f: Findings): void {
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

export function nameWithoutId(p: Policy, f: Findings): void {
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

export function globInOwner(p: Policy, f: Findings): void {
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
