// Checks on what a policy hands out: broad GitHub tokens (RP013), long AWS sessions (RP014), secrets shared by
// many policies (RP015), and the cloud grants' caveats (RP019–RP022: gcp without a service account, gcp lifetimes
// over 1 h, Azure scopes Entra refuses, Entra tokens outliving the lease).

import { DEFAULT_LEASE_TTL_SECONDS } from "../../constants.ts";
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
const LONG_CLOUD_TOKEN_SECONDS = 3600;
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

/** RP019–RP022: the gcp and azure grants (docs/grants.md, gcp and azure). */
export function cloudGrants(p: Policy, f: Findings): void {
  const gcp = p.raw.grants.gcp;
  if (gcp) {
    if (gcp.service_account === undefined) {
      f.add(
        p,
        "RP019",
        ["grants", "gcp"],
        true,
        "gcp grant without service_account: the run gets a federated token carrying the pool's principal, and whatever it was granted",
      );
    }
    const secs = gcp.lifetime !== undefined ? parseDuration(gcp.lifetime) : undefined;
    if (secs !== undefined && secs > LONG_CLOUD_TOKEN_SECONDS) {
      f.add(
        p,
        "RP020",
        ["grants", "gcp", "lifetime"],
        false,
        `gcp grant: lifetime ${gcp.lifetime} is over 1h; runpass asks Google for 1h at most`,
      );
    }
  }
  const azure = p.raw.grants.azure;
  if (azure) {
    if (!azure.scope.endsWith("/.default")) {
      f.add(
        p,
        "RP021",
        ["grants", "azure", "scope"],
        false,
        `azure grant: scope "${azure.scope}" does not end in /.default; Entra refuses it for client credentials`,
      );
    }
    f.add(
      p,
      "RP022",
      ["grants", "azure"],
      true,
      "azure grant: Entra access tokens live 60–90 minutes and may outlive the lease (they cannot be revoked)",
    );
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

// Role attributes and grants that make a lease's role more than a run's worker (RP026).
const PRIVILEGED_STATEMENT =
  /\b(SUPERUSER|CREATEROLE|CREATEDB|REPLICATION|BYPASSRLS)\b|\bpg_[a-z_]+\b|\bWITH\s+ADMIN\s+(OPTION|TRUE)\b/i;

/** RP026–RP027: the postgres grant (docs/grants.md, "postgres"). */
export function postgresGrant(p: Policy, f: Findings): void {
  const pg = p.raw.grants.postgres;
  if (!pg) return;
  for (const [i, statement] of (pg.statements ?? []).entries()) {
    const m = PRIVILEGED_STATEMENT.exec(
      statement.replace(/\bNO(SUPERUSER|CREATEROLE|CREATEDB|REPLICATION|BYPASSRLS)\b/gi, ""),
    );
    if (m) {
      f.add(
        p,
        "RP026",
        ["grants", "postgres", "statements", i],
        false,
        `postgres grant: statement grants ${m[0]}`,
      );
    }
  }
  const lease = p.raw.ttl !== undefined ? parseDuration(p.raw.ttl) : DEFAULT_LEASE_TTL_SECONDS;
  const ttl = pg.ttl !== undefined ? parseDuration(pg.ttl) : undefined;
  if (ttl !== undefined && lease !== undefined && ttl > lease) {
    f.add(
      p,
      "RP027",
      ["grants", "postgres", "ttl"],
      false,
      `postgres grant: ttl ${pg.ttl} is longer than the lease (${p.raw.ttl ?? "1h"})`,
    );
  }
}
