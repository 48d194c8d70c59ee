// Every Worker setting runpass reads, whether it is a secret, and when a deployment needs it: one catalogue for
// `GET /v1/admin/status`, `runpass init` and `runpass doctor` (docs/deploy.md, "Settings").

import type { IssuerKind } from "./oidc/issuers.ts";
import type { GrantName } from "./policy/types.ts";

/** When a deployment needs a setting: always, when a policy uses one of these grants, or when an issuer of a kind is in use. */
export type SettingNeed =
  | { always: true }
  | { grants: readonly GrantName[] }
  | { issuerKind: Extract<IssuerKind, "github" | "gitlab"> }
  | { optional: true };

export interface Setting {
  name: string;
  /** A value that must never be shown (status reports only whether it is set). */
  secret: boolean;
  need: SettingNeed;
  /** What it is, for status and doctor lines. */
  purpose: string;
}

const always = { always: true } as const;
const optional = { optional: true } as const;

/** The catalogue, in the order the docs list them. */
export const SETTINGS: readonly Setting[] = [
  { name: "RUNPASS_ISSUER_URL", secret: false, need: always, purpose: "runpass's public URL" },
  { name: "RUNPASS_SIGNING_KEYS", secret: true, need: always, purpose: "JWKs that sign runpass tokens" },
  { name: "RUNPASS_AUDIT_KEY", secret: true, need: always, purpose: "keys audit digests and lease-id MACs" },
  { name: "RUNPASS_ADMIN_TOKEN", secret: true, need: always, purpose: "the admin API's bearer token" },
  {
    name: "GITHUB_WEBHOOK_SECRET",
    secret: true,
    need: { issuerKind: "github" },
    purpose: "verifies GitHub run-end webhooks",
  },
  {
    name: "GITLAB_WEBHOOK_TOKEN",
    secret: true,
    need: { issuerKind: "gitlab" },
    purpose: "verifies GitLab run-end webhooks",
  },
  { name: "GITHUB_APP_ID", secret: false, need: { grants: ["github"] }, purpose: "the GitHub App's id" },
  {
    name: "GITHUB_APP_PRIVATE_KEY",
    secret: true,
    need: { grants: ["github"] },
    purpose: "the GitHub App's private key",
  },
  {
    name: "RUNPASS_MASTER_KEYS",
    secret: true,
    need: { grants: ["secrets", "postgres"] },
    purpose: "wrap the secret store's data keys (and stored database connections)",
  },
  {
    name: "AWS_ACCESS_KEY_ID",
    secret: false,
    need: { grants: ["aws"] },
    purpose: "the broker's AWS identity",
  },
  {
    name: "AWS_SECRET_ACCESS_KEY",
    secret: true,
    need: optional,
    purpose: "the broker's AWS identity",
  },
  { name: "RUNPASS_SSH_CA_KEYS", secret: true, need: { grants: ["ssh"] }, purpose: "the SSH user CA" },
  { name: "RUNPASS_X509_CA", secret: true, need: { grants: ["x509"] }, purpose: "the X.509 issuing CA" },
  { name: "RUNPASS_AUDIENCE", secret: false, need: optional, purpose: "default audience of CI tokens" },
  { name: "RUNPASS_MAX_LEASE_TTL", secret: false, need: optional, purpose: "cap on every lease" },
  { name: "RUNPASS_EXPLAIN", secret: false, need: optional, purpose: "who sees denial reasons" },
  { name: "RUNPASS_RATE_LIMITS", secret: false, need: optional, purpose: "rate-limit overrides" },
  { name: "RUNPASS_AUDIT_RETENTION", secret: false, need: optional, purpose: "how long audit records live" },
  {
    name: "GITHUB_WEBHOOK_SECRET_PREVIOUS",
    secret: true,
    need: optional,
    purpose: "the previous webhook secret, during rotation",
  },
  {
    name: "GITLAB_WEBHOOK_TOKEN_PREVIOUS",
    secret: true,
    need: optional,
    purpose: "the previous webhook token, during rotation",
  },
  { name: "GITHUB_API_URL", secret: false, need: optional, purpose: "GitHub Enterprise Server's API" },
  { name: "AWS_STS_ENDPOINT", secret: false, need: optional, purpose: "a regional or test STS endpoint" },
  {
    name: "GCP_STS_ENDPOINT",
    secret: false,
    need: optional,
    purpose: "a private or test Google STS endpoint",
  },
  {
    name: "GCP_IAMCREDENTIALS_ENDPOINT",
    secret: false,
    need: optional,
    purpose: "a private or test IAM Credentials endpoint",
  },
  {
    name: "AZURE_AUTHORITY_HOST",
    secret: false,
    need: optional,
    purpose: "a sovereign cloud's or test Entra host",
  },
  // A Slack (or similar) incoming-webhook URL is itself the credential that posts to the channel.
  { name: "RUNPASS_ALERT_WEBHOOK", secret: true, need: optional, purpose: "where alerts are posted" },
  { name: "RUNPASS_ALERT_SECRET", secret: true, need: optional, purpose: "signs alert deliveries" },
  {
    name: "RUNPASS_ACCESS_TEAM_DOMAIN",
    secret: false,
    need: optional,
    purpose: "the Access team that signs console (and admin API) users in",
  },
  {
    name: "RUNPASS_ACCESS_AUD",
    secret: false,
    need: optional,
    purpose: "the console's Access application audience tag",
  },
  {
    name: "RUNPASS_ADMIN_ACCESS_AUD",
    secret: false,
    need: optional,
    purpose: "the admin API's own Access audience tag (unset: admin token only)",
  },
];

/** What a deployment's policies use, to decide which conditional settings it needs. */
export interface Usage {
  grants: ReadonlySet<string>;
  issuerKinds: ReadonlySet<string>;
}

/** Whether `setting` is needed by a deployment that uses `usage`. */
export function isNeeded(setting: Setting, usage: Usage): boolean {
  const need = setting.need;
  if ("always" in need) return true;
  if ("grants" in need) return need.grants.some((g) => usage.grants.has(g));
  if ("issuerKind" in need) return usage.issuerKinds.has(need.issuerKind);
  return false;
}
