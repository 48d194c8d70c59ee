// The Worker's bindings and variables, and their parsing into a runtime config (fails closed, naming what to fix).

import { DEFAULT_MAX_LEASE_TTL_SECONDS } from "../core/constants.ts";
import { parseDuration } from "../core/duration.ts";
import { ConfigError } from "../core/errors.ts";
import { checkIssuerUrl } from "../core/oidc/issuers.ts";
import type { AlertHub } from "./alert-hub.ts";
import type { RateLimiter } from "./rate-limiter.ts";
import type { RevocationRegistry } from "./revocation-registry.ts";
import type { RunLedger } from "./run-ledger.ts";
import type { SecretStore } from "./secret-store.ts";

/** Bindings and vars (README.md, Configuration; docs/operations.md, Deploy). Everything string-typed is optional here and checked where it is needed. */
export interface Env {
  RUN_LEDGER: DurableObjectNamespace<RunLedger>;
  SECRET_STORE: DurableObjectNamespace<SecretStore>;
  /** Emergency revocation rules (one object). */
  REVOCATIONS: DurableObjectNamespace<RevocationRegistry>;
  /** Rate-limit counters, one object per limit key. */
  RATE_LIMITER: DurableObjectNamespace<RateLimiter>;
  /** Alert deduplication and durable delivery (one object, docs/leaks.md). */
  ALERTS: DurableObjectNamespace<AlertHub>;
  /** Policy records of large sets (RUNPASS_BUNDLE_MAX); optional for bundled sets. */
  POLICY_KV?: KVNamespace;
  AUDIT_DB: D1Database;
  RUNPASS_ISSUER_URL?: string;
  RUNPASS_AUDIENCE?: string;
  RUNPASS_SIGNING_KEYS?: string;
  RUNPASS_AUDIT_KEY?: string;
  RUNPASS_ADMIN_TOKEN?: string;
  RUNPASS_EXPLAIN?: string;
  RUNPASS_DEV?: string;
  RUNPASS_MAX_LEASE_TTL?: string;
  RUNPASS_MASTER_KEYS?: string;
  /** How long audit records are kept, e.g. "400d" (the default); the daily purge deletes older ones. */
  RUNPASS_AUDIT_RETENTION?: string;
  /** The x509 grant's CA: {"certificate": "<PEM chain, issuing CA first>", "key": "<PKCS#8 PEM>"}, or a list for rotation (docs/grants.md, "x509"). */
  RUNPASS_X509_CA?: string;
  /** The ssh grant's CA keys: a JSON array of private JWKs (Ed25519 or P-256) with kids, the first signs (docs/grants.md, "ssh"). */
  RUNPASS_SSH_CA_KEYS?: string;
  /** Cloudflare Access team (acme.cloudflareaccess.com): with RUNPASS_ACCESS_AUD, the console requires Access (docs/console.md). */
  RUNPASS_ACCESS_TEAM_DOMAIN?: string;
  /** The console's Access application AUD tag. */
  RUNPASS_ACCESS_AUD?: string;
  /** The admin API's own Access application AUD tag; unset, /v1/admin/* takes the admin token only (docs/deploy.md). */
  RUNPASS_ADMIN_ACCESS_AUD?: string;
  /** JSON overrides of the rate limits, e.g. {"failures":"60/1m","repository":"300/1m"} (docs/security.md, Rate limits). */
  RUNPASS_RATE_LIMITS?: string;
  /** Where alerts are POSTed (https; http to a loopback host in dev mode), docs/leaks.md. */
  RUNPASS_ALERT_WEBHOOK?: string;
  /** Signs alert deliveries (`x-runpass-signature: sha256=…` over `<x-runpass-timestamp>.<body>`). */
  RUNPASS_ALERT_SECRET?: string;
  /** JSON overrides of the alert thresholds, e.g. {"denial_burst":"10/5m"}. */
  RUNPASS_ALERTS?: string;
  /** When sensitive policies are expected to be used, e.g. "Mon-Fri 07:00-19:00 Europe/Berlin". */
  RUNPASS_BUSINESS_HOURS?: string;
  GITHUB_WEBHOOK_SECRET?: string;
  GITHUB_WEBHOOK_SECRET_PREVIOUS?: string;
  GITLAB_WEBHOOK_TOKEN?: string;
  GITLAB_WEBHOOK_TOKEN_PREVIOUS?: string;
  GITHUB_APP_ID?: string;
  GITHUB_APP_PRIVATE_KEY?: string;
  GITHUB_API_URL?: string;
  AWS_ACCESS_KEY_ID?: string;
  AWS_SECRET_ACCESS_KEY?: string;
  AWS_STS_ENDPOINT?: string;
  /** Overrides https://sts.googleapis.com (docs/grants.md, gcp). */
  GCP_STS_ENDPOINT?: string;
  /** Overrides https://iamcredentials.googleapis.com. */
  GCP_IAMCREDENTIALS_ENDPOINT?: string;
  /** Overrides https://login.microsoftonline.com (docs/grants.md, azure; the Azure SDKs' own name). */
  AZURE_AUTHORITY_HOST?: string;
}

export interface RuntimeConfig {
  dev: boolean;
  /** runpass's own public URL (`iss` of its tokens). */
  issuerUrl: string;
  /** Default audience CI tokens must carry (policies may name their own). */
  audience: string;
  explainFull: boolean;
  /** Hard cap on leases, seconds. */
  maxLeaseTtl: number;
}

/** Parses the request-path config. Throws ConfigError with the variable to fix. */
export function readConfig(env: Env): RuntimeConfig {
  const dev = env.RUNPASS_DEV === "1";
  const issuerUrl = env.RUNPASS_ISSUER_URL?.replace(/\/+$/, "");
  if (!issuerUrl)
    throw new ConfigError(
      "RUNPASS_ISSUER_URL is not set (runpass's public URL, e.g. https://runpass.acme.dev)",
    );
  const problem = checkIssuerUrl(issuerUrl, dev);
  if (problem) throw new ConfigError(`RUNPASS_ISSUER_URL: ${problem}`);
  let maxLeaseTtl = DEFAULT_MAX_LEASE_TTL_SECONDS;
  if (env.RUNPASS_MAX_LEASE_TTL) {
    const secs = parseDuration(env.RUNPASS_MAX_LEASE_TTL);
    if (secs === undefined) throw new ConfigError("RUNPASS_MAX_LEASE_TTL must be a duration such as 6h");
    maxLeaseTtl = secs;
  }
  if (env.RUNPASS_EXPLAIN !== undefined && !["", "owner", "full"].includes(env.RUNPASS_EXPLAIN)) {
    throw new ConfigError('RUNPASS_EXPLAIN must be "owner" (default) or "full"');
  }
  return {
    dev,
    issuerUrl,
    audience: env.RUNPASS_AUDIENCE || issuerUrl,
    explainFull: env.RUNPASS_EXPLAIN === "full",
    maxLeaseTtl,
  };
}

/** RUNPASS_AUDIT_KEY, required before anything is decided (every decision is audited with keyed digests). */
export function requireAuditKey(env: Env): string {
  const key = env.RUNPASS_AUDIT_KEY;
  if (!key || key.length < 32) {
    throw new ConfigError(
      "RUNPASS_AUDIT_KEY is not set or shorter than 32 characters (a random secret for audit digests)",
    );
  }
  return key;
}
