// Every limit and default runpass applies, each with the reason for its number.

/** Largest OIDC token accepted. Real GitHub/GitLab tokens are 1–3 KiB; the cap is checked before any parsing or crypto. */
export const MAX_TOKEN_BYTES = 16 * 1024;

/** Largest request body accepted, checked from Content-Length and again while reading, before JSON parsing. */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * Largest runner-supplied key material in an exchange body (`ssh_public_key`, `csr`): an RSA-8192 public key or CSR
 * in PEM stays under 4 KiB; 8 KiB leaves room for comments and attributes, well inside MAX_BODY_BYTES.
 */
export const MAX_KEY_MATERIAL_CHARS = 8 * 1024;

/** Clock skew tolerated on exp/nbf/iat. CI runners and issuers are NTP-synced; a minute covers the rest. */
export const CLOCK_SKEW_SECONDS = 60;

/** Default token age bound (now − iat) per issuer kind, in seconds (docs/policies.md, Issuers). */
export const DEFAULT_MAX_TOKEN_AGE_SECONDS = {
  /** GitHub mints ID tokens on demand, so a fresh token is never older than a few seconds. */
  github: 10 * 60,
  /** GitLab mints `id_tokens` at job start and they stay valid for the job. */
  gitlab: 12 * 60 * 60,
  /** Generic issuers (CircleCI, Buildkite …) mostly mint at job start with one-hour tokens. */
  generic: 60 * 60,
} as const;

/** Upper bound for `max_token_age` in issuers.yaml: no CI job token should be trusted for longer than a day. */
export const MAX_CONFIGURABLE_TOKEN_AGE_SECONDS = 24 * 60 * 60;

/** Largest discovery document or JWKS accepted. GitHub's JWKS is ~5 KiB; 128 KiB leaves room for many keys, not for abuse. */
export const MAX_JWKS_BYTES = 128 * 1024;

/** Most keys accepted in one key set; more is junk (or an attempt to make us import thousands of keys). */
export const MAX_JWKS_KEYS = 64;

/** Time budget for one discovery or JWKS fetch. An exchange must never hang on a slow issuer. */
export const JWKS_FETCH_TIMEOUT_MS = 3_000;

/** How long a fetched key set is used without refetching. Issuers rotate keys with weeks of overlap. */
export const JWKS_FRESH_MS = 10 * 60 * 1000;

/** A token with an unknown `kid` triggers at most one refetch per this interval per issuer (forged kids cannot make us hammer the issuer). */
export const JWKS_UNKNOWN_KID_COOLDOWN_MS = 60 * 1000;

/** After a failed fetch, wait this long before trying again; requests in between use stale keys or get 503. */
export const JWKS_FAILURE_BACKOFF_MS = 15 * 1000;

/** How long keys may be served past freshness while the issuer is unreachable. Long enough to ride out an outage, short enough that a removed key stops working the same day. */
export const JWKS_STALE_WINDOW_MS = 6 * 60 * 60 * 1000;

/** Default lease length when a policy sets no `ttl`. */
export const DEFAULT_LEASE_TTL_SECONDS = 60 * 60;

/** Default hard cap on any lease (RUNPASS_MAX_LEASE_TTL overrides). A GitHub-hosted job runs at most 6 h; 12 h covers slow self-hosted jobs. */
export const DEFAULT_MAX_LEASE_TTL_SECONDS = 12 * 60 * 60;

/** Largest `ttl` a policy may declare; the runtime cap applies on top. */
export const MAX_POLICY_TTL_SECONDS = 24 * 60 * 60;

/** Default lifetime of a `token` grant when the policy sets none (still capped by the lease). */
export const DEFAULT_TOKEN_GRANT_TTL_SECONDS = 15 * 60;

/** Longest glob pattern in a policy: keeps the O(n·m) matcher's worst case tiny. */
export const MAX_PATTERN_LENGTH = 512;

/** How many audit records the run ledger ships to D1 per batch. */
export const AUDIT_SHIP_BATCH = 100;

/** Most audit records one admin query returns. */
export const MAX_AUDIT_PAGE = 1000;

/**
 * How long an ended run's object remembers that it ended before deleting its storage. Any token for the run
 * is refused by age long before this (max configurable token age 24 h + skew), so forgetting is safe.
 */
export const RUN_ENDED_RETENTION_MS = 26 * 60 * 60 * 1000;

/** Upstream revocation attempts per grant before giving up (audited); backoff doubles from 5 s. */
export const REVOCATION_MAX_ATTEMPTS = 8;
export const REVOCATION_BACKOFF_MS = 5_000;

/** Webhook bodies: workflow_run and pipeline payloads are tens of KiB; GitHub's own cap is 25 MB. */
export const MAX_WEBHOOK_BODY_BYTES = 1024 * 1024;

/** Run objects contacted in parallel by an admin revoke by policy/repository/issuer. */
export const ADMIN_REVOKE_CONCURRENCY = 16;

/** STS session bounds (AssumeRole DurationSeconds). */
export const AWS_MIN_SESSION_SECONDS = 900;
export const AWS_MAX_SESSION_SECONDS = 12 * 60 * 60;
/** Default AWS grant duration when the policy names none (still capped by the lease). */
export const DEFAULT_AWS_SESSION_SECONDS = 60 * 60;
/** STS limits checked before calling: inline session policy size, managed policy ARNs, session tags. */
export const AWS_MAX_SESSION_POLICY_CHARS = 2048;
export const AWS_MAX_POLICY_ARNS = 10;
export const AWS_MAX_SESSION_TAGS = 50;
/** Installation tokens may name at most this many repositories. */
export const GITHUB_MAX_REPOSITORIES = 500;
/** Default region for STS and returned credentials. */
export const DEFAULT_AWS_REGION = "us-east-1";

/** Largest secret value (bytes, after base64 decoding). */
export const MAX_SECRET_BYTES = 64 * 1024;
/** Request body cap for secret writes: a 64 KiB value as base64 inside JSON, with room to spare. */
export const MAX_SECRET_BODY_BYTES = 128 * 1024;
/**
 * Versions with content (not destroyed) one secret path may hold; a put or rollback beyond it is refused with
 * 409 `conflict` until old versions are destroyed (nothing is dropped on its own: policies may pin them).
 */
export const MAX_SECRET_VERSIONS = 100;

/**
 * Default rate limits (RUNPASS_RATE_LIMITS overrides any of them), each `limit` requests per `windowSeconds`,
 * in fixed windows. Honest CI never comes near them (docs/security.md, Rate limits: at least a burst of 100 exchanges per
 * repository per minute); they bite on failures per client and on floods.
 */
export const DEFAULT_RATE_LIMITS = {
  /** Failed requests (400/401/413/415) per client address; over it, every request from that address is refused before parsing. */
  failures: { limit: 60, windowSeconds: 60 },
  /** Verified exchanges/explains per (issuer, repository or project): 3× the burst docs/security.md promises. */
  repository: { limit: 300, windowSeconds: 60 },
  /** Authenticated webhook deliveries that end a run, per installation (GitHub) or project (GitLab). */
  webhook: { limit: 600, windowSeconds: 60 },
  /** Introspection requests per client address (resource servers introspect per request they serve). */
  introspect: { limit: 600, windowSeconds: 60 },
} as const;

/** The client address when no CF-Connecting-IP header is present (local dev, tests): all such callers share one bucket. */
export const LOCAL_CLIENT_ADDRESS = "local";

/**
 * Below this fraction of a limit an isolate admits on its own count and reports to the limiter object in
 * the background (no round trip on the request); above it, every decision waits for the object's exact count.
 */
export const RATE_LIMIT_LOCAL_FRACTION = 0.5;

/** Rate-limit keys one isolate tracks before it forgets buckets of past windows. */
export const RATE_LIMIT_MAX_LOCAL_KEYS = 10_000;

/** Slack after a window ends (real time) before the limiter object's alarm records what it refused. */
export const RATE_LIMIT_ALARM_GRACE_MS = 5_000;
