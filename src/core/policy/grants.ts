// Load-time validation of the grants (docs/grants.md): refuse at build what STS or GitHub would
// refuse at run time, what could never fit the lease, and token audiences that belong to a cloud.

import {
  AWS_MAX_POLICY_ARNS,
  AWS_MAX_SESSION_POLICY_CHARS,
  AWS_MAX_SESSION_SECONDS,
  AWS_MAX_SESSION_TAGS,
  AWS_MIN_SESSION_SECONDS,
  DEFAULT_AWS_REGION,
  DEFAULT_AWS_SESSION_SECONDS,
  GITHUB_MAX_REPOSITORIES,
} from "../../constants.ts";
import { parseDuration } from "../duration.ts";
import { permissionProblem } from "../grants/github-permissions.ts";
import { templateProblem } from "../grants/template.ts";
import { envNameProblem, parseSecretRef } from "../secrets/paths.ts";
import type { PolicyFile } from "./schema.ts";
import type { AwsGrant, GitHubGrant, GitHubPermissionLevel, SecretGrantEntry } from "./types.ts";

type Path = ReadonlyArray<string | number>;
/** Reports a problem at a YAML path (at the key when `atKey`). */
export type Report = (path: Path, message: string, atKey?: boolean) => void;

const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const POLICY_ARN = /^arn:aws[a-z-]*:iam::(\d{12}|aws):policy\/[\w+=,.@/-]{1,512}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
const TAG_KEY = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u;
const GITHUB_OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const GITHUB_REPO = /^[A-Za-z0-9._-]{1,100}$/;

function checkTemplate(report: Report, path: Path, value: string | undefined): void {
  if (value === undefined) return;
  const problem = templateProblem(value);
  if (problem) report(path, problem);
}

/**
 * Why a token grant's audience is refused, or undefined: an audience a cloud's token exchange accepts (AWS STS,
 * Azure AD workload identity, Google IAM workload identity) would make a `token` grant a credential for that
 * cloud, outside the aws/gcp/azure grants and their checks. Hosts compare without case; any `sts.` host counts.
 */
export function cloudAudienceProblem(audience: string): string | undefined {
  const text = audience.trim().toLowerCase();
  let cloud: string | undefined;
  if (text.startsWith("api://azureadtokenexchange")) cloud = "Azure AD token exchange";
  else if (text.startsWith("//iam.googleapis.com/") || text.startsWith("https://iam.googleapis.com/"))
    cloud = "Google Cloud workload identity federation";
  else {
    // A bare host ("sts.amazonaws.com") or a URL of any scheme; URL parsing drops userinfo and port.
    let host = text.split(/[/?#]/, 1)[0] ?? "";
    if (/^[a-z][a-z0-9+.-]*:\/\//.test(text)) {
      try {
        host = new URL(text).hostname;
      } catch {
        host = "";
      }
    }
    if (host.startsWith("sts.")) cloud = host.endsWith("amazonaws.com") ? "AWS STS" : "an STS";
  }
  if (!cloud) return undefined;
  return `grants.token.audience ${JSON.stringify(audience)} is an audience ${cloud} accepts: a runpass token for it would be a cloud credential outside the cloud grants (a confused deputy). Use the aws grant for AWS, and an audience naming your own service for token grants`;
}

/** Validates grants.aws against the policy's lease ttl (seconds). */
export function loadAwsGrant(
  raw: NonNullable<PolicyFile["grants"]["aws"]>,
  leaseTtl: number,
  report: Report,
): AwsGrant {
  const at = (...p: Array<string | number>): Path => ["grants", "aws", ...p];
  if (!ROLE_ARN.test(raw.role_arn))
    report(at("role_arn"), `role_arn: "${raw.role_arn}" is not an IAM role ARN`);
  const region = raw.region ?? DEFAULT_AWS_REGION;
  if (!REGION.test(region)) report(at("region"), `region: "${region}" is not an AWS region name`);

  let duration = Math.min(DEFAULT_AWS_SESSION_SECONDS, leaseTtl);
  if (raw.duration !== undefined) {
    const secs = parseDuration(raw.duration);
    if (secs === undefined)
      report(at("duration"), `duration: expected a duration such as 15m, got "${raw.duration}"`);
    else duration = secs;
  }
  if (duration < AWS_MIN_SESSION_SECONDS || duration > AWS_MAX_SESSION_SECONDS) {
    report(at("duration"), "duration: STS sessions last from 15m to 12h");
  }
  if (leaseTtl < AWS_MIN_SESSION_SECONDS) {
    report(
      ["ttl"],
      "ttl: the lease is shorter than 15m, the shortest AWS session, so the aws grant cannot fit",
    );
  } else if (duration > leaseTtl) {
    report(
      at("duration"),
      "duration: longer than the policy's lease ttl; the session could outlive the lease",
    );
  }

  checkTemplate(report, at("session_name"), raw.session_name);
  checkTemplate(report, at("source_identity"), raw.source_identity);

  const tags = raw.session_tags ?? {};
  if (Object.keys(tags).length > AWS_MAX_SESSION_TAGS) {
    report(at("session_tags"), `session_tags: at most ${AWS_MAX_SESSION_TAGS} tags`);
  }
  const lowerKeys = new Set<string>();
  for (const [key, value] of Object.entries(tags)) {
    if (!TAG_KEY.test(key))
      report(at("session_tags", key), `session tag key "${key}" is not a valid AWS tag key`, true);
    if (lowerKeys.has(key.toLowerCase())) {
      report(
        at("session_tags", key),
        `session tag key "${key}" repeats another key (AWS tag keys ignore case)`,
        true,
      );
    }
    lowerKeys.add(key.toLowerCase());
    checkTemplate(report, at("session_tags", key), value);
  }
  const transitive = raw.transitive_tag_keys ?? [];
  for (const [i, key] of transitive.entries()) {
    if (!Object.hasOwn(tags, key)) {
      report(at("transitive_tag_keys", i), `transitive tag key "${key}" is not one of session_tags`);
    }
  }

  let sessionPolicy: string | undefined;
  if (raw.session_policy !== undefined) {
    let parsed: unknown = raw.session_policy;
    if (typeof raw.session_policy === "string") {
      try {
        parsed = JSON.parse(raw.session_policy);
      } catch {
        report(at("session_policy"), "session_policy: not valid JSON");
      }
    }
    if (parsed !== null && typeof parsed === "object") {
      sessionPolicy = JSON.stringify(parsed);
      if (sessionPolicy.length > AWS_MAX_SESSION_POLICY_CHARS) {
        report(
          at("session_policy"),
          `session_policy: ${sessionPolicy.length} characters minified; STS accepts at most ${AWS_MAX_SESSION_POLICY_CHARS}`,
        );
      }
    }
  }
  const policyArns = raw.policy_arns ?? [];
  if (policyArns.length > AWS_MAX_POLICY_ARNS)
    report(at("policy_arns"), `policy_arns: at most ${AWS_MAX_POLICY_ARNS}`);
  for (const [i, arn] of policyArns.entries()) {
    if (!POLICY_ARN.test(arn)) report(at("policy_arns", i), `"${arn}" is not an IAM managed policy ARN`);
  }

  return {
    role_arn: raw.role_arn,
    region,
    duration,
    ...(raw.session_name !== undefined ? { session_name: raw.session_name } : {}),
    session_tags: tags,
    transitive_tag_keys: transitive,
    ...(sessionPolicy !== undefined ? { session_policy: sessionPolicy } : {}),
    policy_arns: policyArns,
    ...(raw.source_identity !== undefined ? { source_identity: raw.source_identity } : {}),
  };
}

/** Validates grants.github: explicit owner, repositories and repository permissions. */
export function loadGitHubGrant(
  raw: NonNullable<PolicyFile["grants"]["github"]>,
  report: Report,
): GitHubGrant {
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

/** Validates grants.secrets: environment-variable output names and `path[@version]` references. */
export function loadSecretsGrant(
  raw: Record<string, string>,
  report: Report,
): Record<string, SecretGrantEntry> {
  const out: Record<string, SecretGrantEntry> = {};
  const names = Object.keys(raw);
  if (names.length === 0) report(["grants", "secrets"], "secrets: name at least one secret");
  for (const name of names) {
    const problem = envNameProblem(name);
    if (problem) report(["grants", "secrets", name], problem, true);
    const ref = parseSecretRef(raw[name] as string);
    if (!ref) {
      report(
        ["grants", "secrets", name],
        `${name}: "${raw[name]}" is not a secret path[@version] (segments of A-Z a-z 0-9 . _ -, no empty, "." or "..")`,
      );
      continue;
    }
    out[name] = ref;
  }
  return out;
}
