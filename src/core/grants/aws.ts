// The `aws` grant: an STS session (AssumeRole with the broker's keys, or AssumeRoleWithWebIdentity with a
// runpass-signed JWT), its duration capped to the lease because an STS session cannot be revoked early.

import * as z from "zod/mini";
import {
  AWS_MAX_POLICY_ARNS,
  AWS_MAX_SESSION_POLICY_CHARS,
  AWS_MAX_SESSION_SECONDS,
  AWS_MAX_SESSION_TAGS,
  AWS_MIN_SESSION_SECONDS,
  DEFAULT_AWS_REGION,
  DEFAULT_AWS_SESSION_SECONDS,
} from "../constants.ts";
import { randomId } from "../crypto.ts";
import { parseDuration } from "../duration.ts";
import { RunpassError } from "../errors.ts";
import type { AwsGrant } from "../policy/types.ts";
import { type GrantModule, type GrantSubject, iso, type Report } from "./module.ts";
import {
  checkTemplate,
  fillOrDeny,
  sanitiseSessionName,
  sanitiseTagKey,
  sanitiseTagValue,
} from "./template.ts";

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

/** The aws grant's port in IssueDeps. */
export interface AwsPorts {
  /** Returns the STS port (throws ConfigError when AWS is not configured). */
  sts: () => StsPort;
}

/** The aws grant's credential in the exchange response. */
export interface AwsCredential {
  access_key_id: string;
  secret_access_key: string;
  session_token: string;
  expires_at: string;
  region: string;
}

type Path = ReadonlyArray<string | number>;

const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const POLICY_ARN = /^arn:aws[a-z-]*:iam::(\d{12}|aws):policy\/[\w+=,.@/-]{1,512}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
const TAG_KEY = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u;

const AwsGrantSchema = z.strictObject({
  role_arn: z.string(),
  region: z.optional(z.string()),
  duration: z.optional(z.string()),
  session_name: z.optional(z.string()),
  session_tags: z.optional(z.record(z.string(), z.string())),
  transitive_tag_keys: z.optional(z.array(z.string())),
  session_policy: z.optional(z.union([z.string(), z.record(z.string(), z.unknown())])),
  policy_arns: z.optional(z.array(z.string())),
  source_identity: z.optional(z.string()),
});

/** Validates grants.aws against the policy's lease ttl (seconds). */
export function loadAwsGrant(
  raw: z.infer<typeof AwsGrantSchema>,
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

/** The STS request for a policy's aws grant and a lease; throws when the lease cannot hold the shortest session. */
export function planAws(
  aws: AwsGrant,
  subject: GrantSubject,
  lease: { id: string; expiresAt: number },
  now: number,
): StsRequest {
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
    Value: sanitiseTagValue(fillOrDeny(v, subject, "aws")),
  }));
  const sessionName = aws.session_name
    ? fillOrDeny(aws.session_name, subject, "aws")
    : `runpass-${lease.id.slice(lease.id.lastIndexOf(".") + 1)}`;
  return {
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
      ? { sourceIdentity: sanitiseSessionName(fillOrDeny(aws.source_identity, subject, "aws")) }
      : {}),
  };
}

/** The `aws` grant module. */
export const awsGrant: GrantModule<
  "aws",
  z.infer<typeof AwsGrantSchema>,
  AwsGrant,
  StsRequest,
  AwsCredential
> = {
  name: "aws",
  schema: AwsGrantSchema,
  upstream: "AWS STS",
  costly: true,
  renewable: true,
  load: (raw, ctx) => loadAwsGrant(raw, ctx.leaseTtl, ctx.report),
  plan: (def, ctx) => planAws(def, ctx.subject, ctx.lease, ctx.now),
  async mint(plan, { deps, policy, lease, now }) {
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
        ...(plan.tags.length
          ? {
              "https://aws.amazon.com/tags": {
                principal_tags: Object.fromEntries(plan.tags.map((t) => [t.Key, [t.Value]])),
                ...(plan.transitiveTagKeys.length ? { transitive_tag_keys: plan.transitiveTagKeys } : {}),
              },
            }
          : {}),
        ...(plan.sourceIdentity !== undefined
          ? { "https://aws.amazon.com/source_identity": plan.sourceIdentity }
          : {}),
      });
    }
    const s = await sts.assume(plan, webIdentity);
    const expiresAt = Math.min(Math.floor(s.expiration / 1000), lease.expiresAt);
    return {
      credential: {
        access_key_id: s.accessKeyId,
        secret_access_key: s.secretAccessKey,
        session_token: s.sessionToken,
        expires_at: iso(expiresAt),
        region: plan.region,
      },
      grants: [{ type: "aws", id: await deps.hasher.digest(s.accessKeyId), expires_at: iso(expiresAt) }],
    };
  },
  // STS sessions cannot be revoked; their duration was capped to the lease.
  recall: async () => "an AWS session was minted and expires on its own",
  secretValues: (c) => [c.access_key_id, c.secret_access_key, c.session_token],
  // Sessions cannot be revoked: CloudTrail shows what the access key id did (docs/leaks.md, runbook).
  upstreamId: (c) => c.access_key_id,
};
