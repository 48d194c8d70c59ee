// The gcp and azure grants' upstream ports from the Worker's env: Google STS + IAM Credentials and Entra's token
// endpoint, each at its public address unless GCP_STS_ENDPOINT, GCP_IAMCREDENTIALS_ENDPOINT or
// AZURE_AUTHORITY_HOST point elsewhere (docs/grants.md, gcp and azure). No cloud key is configured anywhere:
// runpass's own signed assertions are the only credential.

import {
  DEFAULT_AZURE_AUTHORITY_HOST,
  DEFAULT_GCP_IAMCREDENTIALS_ENDPOINT,
  DEFAULT_GCP_STS_ENDPOINT,
} from "../core/constants.ts";
import { ConfigError } from "../core/errors.ts";
import type { AzurePort } from "../core/grants/azure.ts";
import type { GcpPort } from "../core/grants/gcp.ts";
import { type RetryOptions, UpstreamError } from "../core/grants/upstream.ts";
import { isLoopbackHost } from "../core/loopback.ts";
import type { Env } from "./env.ts";
import { member, postToTokenEndpoint } from "./token-endpoint.ts";

/** An endpoint override: https, or plain http to a loopback host only (docs/security.md, "Loopback"). */
function endpoint(name: string, value: string | undefined, fallback: string): string {
  if (!value) return fallback;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a URL`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackHost(url.hostname))) {
    throw new ConfigError(`${name} must be an https URL (plain http only to a loopback host)`);
  }
  return value.replace(/\/+$/, "");
}

export interface PortOptions {
  fetch?: typeof fetch;
  retry?: RetryOptions;
}

/** A token response's `expires_in` (seconds; Entra has sent it as a string). */
function expiresIn(body: Record<string, unknown>, what: string): number {
  const value = Number(body.expires_in);
  if (!Number.isFinite(value) || value <= 0) {
    throw new UpstreamError(`${what}: answered without expires_in`, { retryable: false });
  }
  return value;
}

const STS_WHAT = "Google STS token exchange";
const IAM_WHAT = "IAM Credentials generateAccessToken";

/** Google STS and IAM Credentials for this env. */
export function gcpFor(env: Env, options: PortOptions = {}): GcpPort {
  const sts = endpoint("GCP_STS_ENDPOINT", env.GCP_STS_ENDPOINT, DEFAULT_GCP_STS_ENDPOINT);
  const iam = endpoint(
    "GCP_IAMCREDENTIALS_ENDPOINT",
    env.GCP_IAMCREDENTIALS_ENDPOINT,
    DEFAULT_GCP_IAMCREDENTIALS_ENDPOINT,
  );
  const fetcher = options.fetch ?? ((i, init) => fetch(i, init));
  return {
    async exchange(r) {
      // RFC 8693 as Google's client libraries send it: a form, the JWT as subject_token.
      const body = await postToTokenEndpoint(
        {
          url: `${sts}/v1/token`,
          body: new URLSearchParams({
            grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
            audience: r.audience,
            scope: r.scope,
            requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
            subject_token: r.subjectToken,
            subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
          }),
          what: STS_WHAT,
        },
        fetcher,
        options.retry,
      );
      return { accessToken: member(body, "access_token", STS_WHAT), expiresIn: expiresIn(body, STS_WHAT) };
    },
    async generateAccessToken(r) {
      const body = await postToTokenEndpoint(
        {
          url: `${iam}/v1/projects/-/serviceAccounts/${encodeURIComponent(r.serviceAccount)}:generateAccessToken`,
          body: { scope: r.scopes, lifetime: `${r.lifetimeSeconds}s` },
          bearer: r.federatedToken,
          what: IAM_WHAT,
        },
        fetcher,
        options.retry,
      );
      const expiresAt = Date.parse(member(body, "expireTime", IAM_WHAT));
      if (Number.isNaN(expiresAt)) {
        throw new UpstreamError(`${IAM_WHAT}: expireTime is not a timestamp`, { retryable: false });
      }
      return { accessToken: member(body, "accessToken", IAM_WHAT), expiresAt: expiresAt / 1000 };
    },
  };
}

const ENTRA_WHAT = "Entra token request";

/** Entra's token endpoint for this env (AZURE_AUTHORITY_HOST, as the Azure SDKs name it). */
export function azureFor(env: Env, options: PortOptions = {}): AzurePort {
  const authority = endpoint("AZURE_AUTHORITY_HOST", env.AZURE_AUTHORITY_HOST, DEFAULT_AZURE_AUTHORITY_HOST);
  const fetcher = options.fetch ?? ((i, init) => fetch(i, init));
  return {
    async token(r) {
      const body = await postToTokenEndpoint(
        {
          url: `${authority}/${encodeURIComponent(r.tenantId)}/oauth2/v2.0/token`,
          body: new URLSearchParams({
            grant_type: "client_credentials",
            client_id: r.clientId,
            scope: r.scope,
            client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            client_assertion: r.clientAssertion,
          }),
          what: ENTRA_WHAT,
        },
        fetcher,
        options.retry,
      );
      return {
        accessToken: member(body, "access_token", ENTRA_WHAT),
        expiresIn: expiresIn(body, ENTRA_WHAT),
      };
    },
  };
}
