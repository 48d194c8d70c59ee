// Grant planning and issuance for one lease: templates are filled and limits checked before any upstream
// call; then token → github → aws are minted in that order, and a failure recalls what was already minted.

import { AWS_MIN_SESSION_SECONDS } from "../../constants.ts";
import { RunpassError } from "../../errors.ts";
import type { AuditHasher } from "../crypto.ts";
import { randomId } from "../crypto.ts";
import type { LeaseGrant } from "../lease.ts";
import type { IssuerConfig } from "../oidc/issuers.ts";
import type { GitHubPermissionLevel, GrantName, Grants } from "../policy/types.ts";
import type { Sealer } from "./seal.ts";
import type { Signer } from "./signer.ts";
import { fillTemplate, sanitiseSessionName, sanitiseTagKey, sanitiseTagValue } from "./template.ts";
import { mintTokenGrant } from "./token.ts";
import { UpstreamError, upstreamFailure } from "./upstream.ts";

/** Who the credentials are for: the verified CI identity (from the token, or stored with the lease for renewal). */
export interface GrantSubject {
  issuer: IssuerConfig;
  claims: Record<string, unknown>;
  sub: string;
}

/** One AssumeRole / AssumeRoleWithWebIdentity call, fully resolved. */
export interface StsRequest {
  roleArn: string;
  region: string;
  roleSessionName: string;
  durationSeconds: number;
  tags: Array<{ Key: string; Value: string }>;
  transitiveTagKeys: string[];
  policy?: string;
  policyArns: string[];
  sourceIdentity?: string;
}

export interface StsSession {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** ms since the epoch. */
  expiration: number;
}

/** STS as the core needs it. Throws UpstreamError. */
export interface StsPort {
  /** `static`: AssumeRole with the broker's keys; `web_identity`: AssumeRoleWithWebIdentity with a runpass JWT. */
  readonly mode: "static" | "web_identity";
  assume(request: StsRequest, webIdentityToken?: string): Promise<StsSession>;
}

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

/** One decrypted secret version, or why it cannot be delivered. */
export type SecretRead =
  | { ok: true; version: number; value: string; encoding: "utf8" | "base64" }
  | { ok: false; code: string; detail: string };

/** The secret store as the core needs it. */
export interface SecretReader {
  read(path: string, version?: number): Promise<SecretRead>;
}

export interface Credentials {
  token?: { token: string; expires_at: string };
  aws?: {
    access_key_id: string;
    secret_access_key: string;
    session_token: string;
    expires_at: string;
    region: string;
  };
  github?: { token: string; expires_at: string; repositories: string[]; permissions: Record<string, string> };
  secrets?: Record<string, string>;
}

export interface LeaseRef {
  id: string;
  run: string;
  /** Seconds since the epoch. */
  expiresAt: number;
}

/** What will be minted, resolved from the policy and the verified claims, before any upstream call. */
export interface GrantPlan {
  token?: NonNullable<Grants["token"]>;
  aws?: StsRequest;
  github?: NonNullable<Grants["github"]>;
  secrets?: NonNullable<Grants["secrets"]>;
}

export interface IssueDeps {
  signer: Signer;
  issuerUrl: string;
  hasher: AuditHasher;
  sealer: Sealer;
  /** Returns the STS port (throws ConfigError when AWS is not configured). */
  sts: () => StsPort;
  /** Returns the GitHub port (throws ConfigError when the App is not configured). */
  github: () => GitHubPort;
  /** The secret store. */
  secrets: () => SecretReader;
}

export interface Issued {
  credentials: Credentials;
  grants: LeaseGrant[];
  /** ENV_NAME → "base64" for secrets stored as binary (delivered base64-encoded). */
  encodings: Record<string, "base64">;
}

/**
 * What a secret delivery's grant id digests: the path and version delivered (a version's content never changes),
 * so `/v1/admin/audit-hash` of `secret:<path>@<version>` finds its deliveries.
 */
export function secretGrantId(path: string, version: number): string {
  return `secret:${path}@${version}`;
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

function fill(template: string, subject: GrantSubject, grant: GrantName): string {
  const r = fillTemplate(template, subject.claims);
  if (r.ok) return r.value;
  throw new RunpassError(
    "access_denied",
    `the ${grant} grant needs the claim "${r.claim}", which the token lacks`,
    {
      reasons: [{ code: "claim_absent", claim: r.claim, grant }],
    },
  );
}

/** Resolves templates and limits. Throws RunpassError (nothing has been called upstream yet). */
export function planGrants(
  grants: Grants,
  names: GrantName[],
  subject: GrantSubject,
  lease: LeaseRef,
  now: number,
): GrantPlan {
  const plan: GrantPlan = {};
  if (names.includes("token") && grants.token) plan.token = grants.token;
  if (names.includes("github") && grants.github) plan.github = grants.github;
  if (names.includes("secrets") && grants.secrets) plan.secrets = grants.secrets;
  if (names.includes("aws") && grants.aws) {
    const aws = grants.aws;
    const remaining = lease.expiresAt - now;
    if (remaining < AWS_MIN_SESSION_SECONDS) {
      throw new RunpassError(
        "invalid_request",
        "the lease has less than 15 minutes left, the shortest AWS session; ask for a longer ttl",
        { reasons: [{ code: "lease_too_short", grant: "aws" }], reasonsVisible: true },
      );
    }
    const tags = Object.entries(aws.session_tags).map(([k, v]) => ({
      Key: sanitiseTagKey(k),
      Value: sanitiseTagValue(fill(v, subject, "aws")),
    }));
    const sessionName = aws.session_name
      ? fill(aws.session_name, subject, "aws")
      : `runpass-${lease.id.slice(lease.id.lastIndexOf(".") + 1)}`;
    plan.aws = {
      roleArn: aws.role_arn,
      region: aws.region,
      roleSessionName: sanitiseSessionName(sessionName),
      // Never past the lease: an STS session cannot be revoked early.
      durationSeconds: Math.min(aws.duration, remaining),
      tags,
      transitiveTagKeys: aws.transitive_tag_keys.map(sanitiseTagKey),
      ...(aws.session_policy !== undefined ? { policy: aws.session_policy } : {}),
      policyArns: aws.policy_arns,
      ...(aws.source_identity !== undefined
        ? { sourceIdentity: sanitiseSessionName(fill(aws.source_identity, subject, "aws")) }
        : {}),
    };
  }
  return plan;
}

/**
 * Mints every planned grant. On any failure, GitHub tokens already minted are revoked, nothing is returned,
 * and the thrown RunpassError carries what happened for the audit record (AWS sessions cannot be recalled).
 */
export async function issueGrants(
  plan: GrantPlan,
  subject: GrantSubject,
  lease: LeaseRef,
  policy: { name: string; version: string },
  deps: IssueDeps,
  now: number,
): Promise<Issued> {
  const credentials: Credentials = {};
  const grants: LeaseGrant[] = [];
  const encodings: Record<string, "base64"> = {};
  const minted: string[] = [];
  const githubTokens: string[] = [];
  // Secrets first: reading them mints nothing upstream, so a missing one costs no recall.
  if (plan.secrets) {
    const reader = deps.secrets();
    const entries = Object.entries(plan.secrets);
    const reads = await Promise.all(entries.map(([, ref]) => reader.read(ref.path, ref.version)));
    const failures = reads.flatMap((r, i) => (r.ok ? [] : [`${entries[i]?.[0]}: ${r.detail}`]));
    if (failures.length > 0) {
      // No partial bundles: one missing secret and nothing is delivered.
      throw new RunpassError("upstream_error", "a granted secret is not available; nothing was issued", {
        extra: { retryable: false },
        auditDetail: `secrets: ${failures.join("; ").slice(0, 500)}`,
      });
    }
    const bundle: Record<string, string> = {};
    for (const [i, [name, ref]] of entries.entries()) {
      const r = reads[i] as Extract<SecretRead, { ok: true }>;
      bundle[name] = r.value;
      if (r.encoding === "base64") encodings[name] = "base64";
      grants.push({
        type: "secrets",
        // Never a digest of the value: audit-hash would then confirm guesses of it (docs/security.md).
        id: await deps.hasher.digest(secretGrantId(ref.path, r.version)),
        expires_at: iso(lease.expiresAt),
        name,
        path: ref.path,
        version: r.version,
      });
    }
    credentials.secrets = bundle;
  }
  try {
    if (plan.token) {
      const t = await mintTokenGrant(plan.token, {
        signer: deps.signer,
        issuerUrl: deps.issuerUrl,
        source: subject,
        lease,
        policy,
        now,
      });
      credentials.token = { token: t.token, expires_at: iso(t.expiresAt) };
      grants.push({ type: "token", id: await deps.hasher.digest(t.id), expires_at: iso(t.expiresAt) });
      minted.push("token");
    }
    if (plan.github) {
      const gh = deps.github();
      const t = await gh.mint(plan.github.owner, plan.github.repositories, plan.github.permissions);
      githubTokens.push(t.token);
      // The installation token may live longer than the lease; the lease end revokes it upstream.
      const expiresAt = Math.min(Math.floor(t.expiresAt / 1000), lease.expiresAt);
      credentials.github = {
        token: t.token,
        expires_at: iso(expiresAt),
        repositories: t.repositories,
        permissions: t.permissions,
      };
      grants.push({
        type: "github",
        id: await deps.hasher.digest(t.token),
        expires_at: iso(expiresAt),
        revocation: await deps.sealer.seal(JSON.stringify({ api: gh.apiUrl, token: t.token }), lease.id),
      });
      minted.push("github");
    }
    if (plan.aws) {
      const sts = deps.sts();
      let webIdentity: string | undefined;
      if (sts.mode === "web_identity") {
        webIdentity = await deps.signer.sign("aws", {
          iss: deps.issuerUrl,
          sub: `policy:${policy.name}:run:${lease.run}`,
          aud: "sts.amazonaws.com",
          iat: now,
          nbf: now,
          exp: now + 300,
          jti: randomId("wid"),
          policy: policy.name,
          lease_id: lease.id,
          run: lease.run,
          // AssumeRoleWithWebIdentity takes session tags and source identity from these claims.
          ...(plan.aws.tags.length
            ? {
                "https://aws.amazon.com/tags": {
                  principal_tags: Object.fromEntries(plan.aws.tags.map((t) => [t.Key, [t.Value]])),
                  ...(plan.aws.transitiveTagKeys.length
                    ? { transitive_tag_keys: plan.aws.transitiveTagKeys }
                    : {}),
                },
              }
            : {}),
          ...(plan.aws.sourceIdentity !== undefined
            ? { "https://aws.amazon.com/source_identity": plan.aws.sourceIdentity }
            : {}),
        });
      }
      const s = await sts.assume(plan.aws, webIdentity);
      const expiresAt = Math.min(Math.floor(s.expiration / 1000), lease.expiresAt);
      credentials.aws = {
        access_key_id: s.accessKeyId,
        secret_access_key: s.secretAccessKey,
        session_token: s.sessionToken,
        expires_at: iso(expiresAt),
        region: plan.aws.region,
      };
      grants.push({ type: "aws", id: await deps.hasher.digest(s.accessKeyId), expires_at: iso(expiresAt) });
      minted.push("aws");
    }
  } catch (e) {
    const recalled = await recallGitHub(deps, githubTokens);
    const what = minted.length
      ? `minted before the failure: ${minted.join(", ")}; ${recalled}`
      : "nothing minted";
    if (e instanceof UpstreamError) {
      const failing = !minted.includes("github") && plan.github ? "GitHub" : "AWS STS";
      const err = upstreamFailure(failing, e);
      throw new RunpassError(err.code, err.message, {
        ...(err.extra ? { extra: err.extra } : {}),
        ...(err.retryAfter !== undefined ? { retryAfter: err.retryAfter } : {}),
        auditDetail: `${failing}: ${e.detail.slice(0, 300)} (${what})`,
      });
    }
    if (e instanceof RunpassError) {
      throw new RunpassError(e.code, e.message, {
        reasons: e.reasons,
        ...(e.retryAfter !== undefined ? { retryAfter: e.retryAfter } : {}),
        ...(e.extra ? { extra: e.extra } : {}),
        auditDetail: what,
      });
    }
    throw e;
  }
  return { credentials, grants, encodings };
}

/** Revokes GitHub tokens minted for a response that will not be sent. */
export async function recallGitHub(deps: Pick<IssueDeps, "github">, tokens: string[]): Promise<string> {
  if (tokens.length === 0) return "nothing to recall";
  const results = await Promise.allSettled(tokens.map((t) => deps.github().revoke(t)));
  const failed = results.filter((r) => r.status === "rejected").length;
  return failed === 0 ? "GitHub token revoked" : `GitHub token revocation FAILED (${failed})`;
}
