// AWS STS through @aws-sdk/client-sts: AssumeRole with the broker's own keys, or AssumeRoleWithWebIdentity
// with a runpass-signed JWT (no static AWS keys at all). Retries are ours (bounded, jittered), not the SDK's.

import {
  AssumeRoleCommand,
  AssumeRoleWithWebIdentityCommand,
  STSClient,
  STSServiceException,
  type Credentials as StsCredentials,
} from "@aws-sdk/client-sts";
import { ConfigError } from "../core/errors.ts";
import type { StsPort, StsRequest, StsSession } from "../core/grants/aws.ts";
import { UpstreamError, withRetry } from "../core/grants/upstream.ts";
import type { Env } from "./env.ts";

const THROTTLING = new Set([
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
  "IDPCommunicationError",
]);

/** Maps anything the SDK throws to an UpstreamError: throttling, 5xx and network errors are retryable. */
export function stsFailure(e: unknown): UpstreamError {
  if (e instanceof STSServiceException || (e as { $metadata?: unknown })?.$metadata !== undefined) {
    const err = e as { name: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const status = err.$metadata?.httpStatusCode ?? 0;
    const retryable = THROTTLING.has(err.name) || status >= 500;
    return new UpstreamError(`${err.name} (HTTP ${status}): ${String(err.message ?? "").slice(0, 200)}`, {
      retryable,
    });
  }
  const name = (e as { name?: string })?.name ?? "Error";
  return new UpstreamError(`${name}: STS could not be reached`, { retryable: true });
}

function session(c: StsCredentials | undefined): StsSession {
  if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
    throw new UpstreamError("STS answered without credentials", { retryable: false });
  }
  return {
    accessKeyId: c.AccessKeyId,
    secretAccessKey: c.SecretAccessKey,
    sessionToken: c.SessionToken,
    expiration: c.Expiration.getTime(),
  };
}

/** The STS port for this env: static keys when both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set. */
export function stsFor(env: Env): StsPort {
  const endpoint = env.AWS_STS_ENDPOINT || undefined;
  const hasKey = Boolean(env.AWS_ACCESS_KEY_ID);
  const hasSecret = Boolean(env.AWS_SECRET_ACCESS_KEY);
  if (hasKey !== hasSecret) {
    throw new ConfigError(
      "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (web-identity mode)",
    );
  }
  const clients = new Map<string, STSClient>();
  const client = (region: string): STSClient => {
    let c = clients.get(region);
    if (!c) {
      c = new STSClient({
        region,
        maxAttempts: 1,
        ...(endpoint ? { endpoint } : {}),
        ...(hasKey
          ? {
              credentials: {
                accessKeyId: env.AWS_ACCESS_KEY_ID as string,
                secretAccessKey: env.AWS_SECRET_ACCESS_KEY as string,
              },
            }
          : {
              // AssumeRoleWithWebIdentity is unsigned; the SDK must not go looking for ambient credentials.
              credentials: async () => {
                throw new Error("no AWS credentials in web-identity mode");
              },
            }),
      });
      clients.set(region, c);
    }
    return c;
  };
  const common = (r: StsRequest) => ({
    RoleArn: r.roleArn,
    RoleSessionName: r.roleSessionName,
    DurationSeconds: r.durationSeconds,
    ...(r.policy !== undefined ? { Policy: r.policy } : {}),
    ...(r.policyArns.length ? { PolicyArns: r.policyArns.map((arn) => ({ arn })) } : {}),
  });
  return {
    mode: hasKey ? "static" : "web_identity",
    async assume(r: StsRequest, webIdentityToken?: string): Promise<StsSession> {
      return withRetry(async () => {
        try {
          if (hasKey) {
            const out = await client(r.region).send(
              new AssumeRoleCommand({
                ...common(r),
                ...(r.tags.length ? { Tags: r.tags } : {}),
                ...(r.transitiveTagKeys.length ? { TransitiveTagKeys: r.transitiveTagKeys } : {}),
                ...(r.sourceIdentity !== undefined ? { SourceIdentity: r.sourceIdentity } : {}),
              }),
            );
            return session(out.Credentials);
          }
          if (!webIdentityToken) throw new UpstreamError("no web identity token", { retryable: false });
          // Session tags and source identity come from the JWT in this mode (AWS reads them from its claims).
          const out = await client(r.region).send(
            new AssumeRoleWithWebIdentityCommand({ ...common(r), WebIdentityToken: webIdentityToken }),
          );
          return session(out.Credentials);
        } catch (e) {
          throw e instanceof UpstreamError ? e : stsFailure(e);
        }
      });
    },
  };
}
