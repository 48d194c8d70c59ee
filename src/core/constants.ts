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

/**
 * gcp grant (docs/grants.md, "gcp"): Google access tokens last at most 1 h unless an organisation policy allows
 * more, and runpass never asks for more (the lease caps it further); at least a minute, or there is no point.
 */
export const GCP_MAX_LIFETIME_SECONDS = 60 * 60;
export const GCP_MIN_LIFETIME_SECONDS = 60;
/** Default gcp lifetime when the policy names none (still capped by the lease). */
export const DEFAULT_GCP_LIFETIME_SECONDS = 15 * 60;
/** Google's `google.subject` holds 127 bytes; `policy:<name>:run:<run>` must fit, so names with a gcp grant are short. */
export const GCP_MAX_POLICY_NAME = 64;
export const GCP_MAX_SUBJECT_BYTES = 127;
/** OAuth scopes a gcp grant may list. */
export const GCP_MAX_SCOPES = 20;
/** The default scope of a gcp grant (IAM roles, not the scope, decide what the token may do). */
export const DEFAULT_GCP_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
/** Lifetime of the assertion runpass redeems at once for a service account's token (only runpass sees it). */
export const GCP_EXCHANGE_ASSERTION_SECONDS = 5 * 60;
/**
 * How far past the lease's end a Google token's expiry may fall (clock skew between Google and runpass, and the
 * second-rounding of `expires_in`) before the token is refused as outliving the lease.
 */
export const GCP_EXPIRY_SKEW_SECONDS = 60;
/**
 * azure grant (docs/grants.md, "azure"): the client assertion is also handed to the run as `federated_token`
 * (for `az login`), so it lives until the lease ends, at most this long (a renewal signs a new one).
 */
export const AZURE_MAX_ASSERTION_SECONDS = 60 * 60;
/** A lease with less left than this gets no azure grant: `az login` needs time to redeem the assertion. */
export const AZURE_MIN_ASSERTION_SECONDS = 60;
/** Entra's default authority (AZURE_AUTHORITY_HOST overrides it, as the Azure SDKs do). */
export const DEFAULT_AZURE_AUTHORITY_HOST = "https://login.microsoftonline.com";
export const DEFAULT_GCP_STS_ENDPOINT = "https://sts.googleapis.com";
export const DEFAULT_GCP_IAMCREDENTIALS_ENDPOINT = "https://iamcredentials.googleapis.com";

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
  /**
   * Leak reports per reporter (the admin API; GitHub's partner endpoint and alert webhook), docs/leaks.md: a real
   * incident is a handful of reports; a flood is someone probing the index, and must not cost D1 reads per value.
   */
  leak: { limit: 30, windowSeconds: 60 },
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

/**
 * An alert count's background report that fails is retried this often, 1 s apart and doubling (1 + 2 + 4 s, well
 * inside a request's waitUntil time): a burst that stops right after a failed report must still raise its alert.
 */
export const ALERT_COUNT_RETRIES = 3;
export const ALERT_COUNT_RETRY_MS = 1_000;

/** Slack after a window ends (real time) before the limiter object's alarm records what it refused. */
export const RATE_LIMIT_ALARM_GRACE_MS = 5_000;

/** postgres grant (docs/grants.md, "postgres"): role names are this prefix + 20 base32 characters (< 63 bytes). */
export const POSTGRES_ROLE_PREFIX = "rp_";
/** PBKDF2 iterations of the SCRAM-SHA-256 verifier: PostgreSQL's own default (scram_iterations). */
export const POSTGRES_SCRAM_ITERATIONS = 4096;
/** Default lifetime of a postgres role when the policy sets none (still capped by the lease). */
export const DEFAULT_POSTGRES_TTL_SECONDS = 15 * 60;
/** Default and largest CONNECTION LIMIT of a lease's role: a CI job needs a handful, not a pool's worth. */
export const DEFAULT_POSTGRES_CONNECTION_LIMIT = 10;
export const MAX_POSTGRES_CONNECTION_LIMIT = 100;
/** Roles a grant may list, and statements it may run: a review-sized policy. */
export const MAX_POSTGRES_ROLES = 16;
export const MAX_POSTGRES_STATEMENTS = 32;
/** How long lease end waits for each terminated session to exit (pg_terminate_backend's timeout). */
export const POSTGRES_TERMINATE_WAIT_MS = 5_000;
/**
 * Lock wait of lease end's drop transaction: a lock held by another session (a runner's open transaction, a
 * migration) must not stall the revoker; the role is already locked out and the retry finishes the drop.
 */
export const POSTGRES_DROP_LOCK_TIMEOUT_MS = 2_000;
/** Connect and statement timeout for the broker's own sessions: an exchange must not hang on a dead database. */
export const POSTGRES_CONNECT_TIMEOUT_SECONDS = 5;

/** Cloudflare Access tokens are a few KiB; anything far larger is refused before parsing. */
export const MAX_ACCESS_JWT_BYTES = 16 * 1024;

/** A token with an unknown `kid` refetches the team's certs at most this often (key rotation, not a flood). */
export const ACCESS_JWKS_COOLDOWN_MS = 30_000;

/** Console sessions (admin-token sign-in) end after this long at most, whatever the activity (docs/console.md). */
export const CONSOLE_SESSION_TTL_MS = 8 * 60 * 60 * 1000;

/** Rows per page in the console's run and audit lists (a phone screen's worth of scrolling, not a dump). */
export const CONSOLE_PAGE_SIZE = 50;

/** Issuance records in one compliance report (CSV/JSON): a month of a busy deployment; longer periods are split. */
export const MAX_REPORT_ISSUANCES = 20_000;

/** Smallest RSA user key the ssh grant certifies: NIST SP 800-57 puts 2048-bit RSA at 112 bits of strength, below what a new key should have. */
export const SSH_RSA_MIN_BITS = 3072;

/** Largest RSA user key the ssh grant certifies: OpenSSH's own limit (SSHBUF_MAX_BIGNUM), and still inside MAX_KEY_MATERIAL_CHARS. */
export const SSH_RSA_MAX_BITS = 8192;

/** Default lifetime of an ssh certificate: long enough for a deploy step, short enough that a leak is worth little. */
export const DEFAULT_SSH_CERT_TTL_SECONDS = 15 * 60;

/**
 * How far before issuance an ssh certificate's validity starts: hosts whose clocks run up to a minute behind the
 * broker's still accept it (the same skew runpass tolerates on OIDC tokens).
 */
export const SSH_VALID_AFTER_BACKDATE_SECONDS = 60;

/** Most principals one ssh grant may name: each is a login on every host that trusts the CA. */
export const SSH_MAX_PRINCIPALS = 32;

/** How long hosts and caches may keep a fetched KRL (`Cache-Control: max-age`): the delay a revocation may take to show. */
export const SSH_KRL_MAX_AGE_SECONDS = 30;

/** Default lifetime of an x509 client certificate: long enough for a job's calls, short enough that a leak is worth little. */
export const DEFAULT_X509_CERT_TTL_SECONDS = 15 * 60;

/** How far before issuance an x509 certificate's validity starts: servers whose clocks run up to a minute behind still accept it. */
export const X509_NOT_BEFORE_BACKDATE_SECONDS = 60;

/** Bytes of an x509 serial: 128 random bits (CA/Browser Forum asks ≥ 64), inside RFC 5280's 20-octet limit. */
export const X509_SERIAL_BYTES = 16;

/** Smallest RSA key an x509 CSR may carry (the same strength floor as the ssh grant's SSH_RSA_MIN_BITS). */
export const X509_RSA_MIN_BITS = 3072;

/** Names one x509 grant may put in a certificate's SAN (URIs plus DNS names): each is an identity a server may trust. */
export const X509_MAX_SAN_NAMES = 16;

/** A CRL's `nextUpdate` after its `thisUpdate`: servers refetch at least this often (the issue asks for ≤ 10 min). */
export const X509_CRL_VALIDITY_SECONDS = 10 * 60;

/** How long caches may keep a fetched CRL (`Cache-Control: max-age`): the delay a revocation may take to show. */
export const X509_CRL_MAX_AGE_SECONDS = 30;

/** Values one leak report may name (docs/leaks.md): a scanner's report of one push, with room to spare. */
export const MAX_LEAK_VALUES = 500;
/** Longest value a leak report may name: a runpass JWT with large claims fits; anything longer is no credential of ours. */
export const MAX_LEAK_VALUE_CHARS = 16 * 1024;
/** Body cap for a leak report (a gitleaks or trufflehog report carries context lines besides the secrets). */
export const MAX_LEAK_REPORT_BYTES = 1024 * 1024;

/** First retry of an alert delivery; doubles per attempt up to ALERT_BACKOFF_MAX_MS (docs/leaks.md, Alerts). */
export const ALERT_BACKOFF_MS = 5_000;
/** Longest wait between alert delivery attempts: a receiver back up is served within five minutes. */
export const ALERT_BACKOFF_MAX_MS = 5 * 60_000;
/** Delivery attempts before an alert is given up (audited): with the backoff above, about 24 hours. */
export const ALERT_MAX_ATTEMPTS = 300;
/** One alert delivery's time cap: a hanging receiver must not hold the object's alarm. */
export const ALERT_DELIVERY_TIMEOUT_MS = 10_000;
/**
 * Delivered, given-up or unconfigured alerts are listed for 90 days, then forgotten (docs/operations.md,
 * Retention): long enough to look back over a quarter's incidents; the audit log keeps their records longer.
 */
export const ALERT_RETENTION_MS = 90 * 24 * 3600_000;
/** GitHub's secret-scanning keys are refreshed after this long (they rotate rarely; a new id triggers a refetch). */
export const GITHUB_SCANNING_KEYS_FRESH_MS = 60 * 60_000;
/** An unknown secret-scanning key id causes at most one fetch per this long (docs/leaks.md): made-up ids cost nothing. */
export const GITHUB_SCANNING_KEYS_COOLDOWN_MS = 60_000;
/** Keys read from GitHub's secret-scanning key list (it holds a handful). */
export const MAX_GITHUB_SCANNING_KEYS = 32;

/**
 * How long audit records (and ended leases' index rows, and the hourly rollup) are kept by default
 * (RUNPASS_AUDIT_RETENTION): a little over a year, so a yearly audit always finds the whole previous year.
 */
export const DEFAULT_AUDIT_RETENTION_SECONDS = 400 * 24 * 3600;
/** The shortest RUNPASS_AUDIT_RETENTION accepted: a typo such as "1h" must not wipe the audit log. */
export const MIN_AUDIT_RETENTION_SECONDS = 7 * 24 * 3600;
/** A lease's leak fingerprints are kept this long after the lease ended: long enough for scanners to report a leak. */
export const LEAK_FINGERPRINT_RETENTION_MS = 30 * 24 * 3600_000;
/** Rows one purge statement deletes (D1 limits a statement's time); the scheduled purge runs a bounded number. */
export const PURGE_BATCH_ROWS = 2_000;
/** Batches per table per scheduled run; anything left is deleted by the next day's run. */
export const PURGE_MAX_BATCHES = 25;
/**
 * Largest secret-store backup `POST /v1/admin/secrets-import` reads in one request: a thousand paths of a few
 * versions each, every version's ciphertext at most the 64 KiB a value may be, base64-encoded.
 */
export const MAX_SECRETS_IMPORT_BYTES = 32 * 1024 * 1024;
