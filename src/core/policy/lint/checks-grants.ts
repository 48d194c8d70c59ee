// Checks on what a policy hands out: broad GitHub tokens (RP013), long AWS sessions (RP014) and secrets shared by
// many policies (RP015).

import { parseDuration } from "../../duration.ts";
import { parseSecretRef } from "../../secrets/paths.ts";
import type { Findings, Policy } from "./model.ts";

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

export function grantBreadth(p: Policy, f: Findings): void {
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

export function sharedSecrets(policies: Policy[], f: Findings): void {
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
