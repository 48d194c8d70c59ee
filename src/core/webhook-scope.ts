// Scoped webhook secrets (docs/security.md, "Webhooks are scoped"). The master secrets (GITHUB_WEBHOOK_SECRET,
// GITLAB_WEBHOOK_TOKEN) may end any run; a repository, organisation or project hook gets a secret derived from
// the master for its scope, so handing it to that scope's admins hands them nothing beyond it. A derived secret
// names its scope in clear (`rpwh.<kind>.<id>.<mac>`), which lets GitLab tokens be checked without a payload and
// GitHub signatures be checked against the scope the payload claims. Pure: also used by the offline CLI.

import { equalText, hmac } from "./crypto.ts";
import { base64url, hex, utf8 } from "./encoding.ts";

export const WEBHOOK_SCOPE_KINDS = [
  "github-owner",
  "github-repository",
  "gitlab-project",
  "gitlab-namespace",
] as const;

export type WebhookScopeKind = (typeof WEBHOOK_SCOPE_KINDS)[number];

/** The verified token claim a scope kind constrains. */
export const SCOPE_CLAIM: Record<WebhookScopeKind, string> = {
  "github-owner": "repository_owner_id",
  "github-repository": "repository_id",
  "gitlab-project": "project_id",
  "gitlab-namespace": "namespace_id",
};

export interface DerivedScope {
  kind: WebhookScopeKind;
  /** A numeric id, as a decimal string (claims carry ids as strings). */
  id: string;
}

const DERIVED =
  /^rpwh\.(github-owner|github-repository|gitlab-project|gitlab-namespace)\.([1-9][0-9]{0,19})\.([A-Za-z0-9_-]{43})$/;
const NUMERIC_ID = /^[1-9][0-9]{0,19}$/;

async function macKey(master: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", utf8(master), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

/** The secret for a scope: HMAC-SHA256 of the master over the scope, prefixed with the scope in clear. */
export async function deriveWebhookSecret(master: string, scope: DerivedScope): Promise<string> {
  if (!NUMERIC_ID.test(scope.id)) throw new TypeError("a webhook scope id is a positive decimal number");
  const mac = await hmac(await macKey(master), `runpass/webhook-scope/v1\n${scope.kind}:${scope.id}`);
  return `rpwh.${scope.kind}.${scope.id}.${base64url(mac)}`;
}

/** The scope a derived secret claims (unverified), or undefined when it is not shaped like one. */
export function claimedScope(secret: string): DerivedScope | undefined {
  const m = DERIVED.exec(secret);
  return m ? { kind: m[1] as WebhookScopeKind, id: m[2] as string } : undefined;
}

/**
 * Whether `token` (GitLab's X-Gitlab-Token) is the derived secret of the scope it claims under one of the
 * masters; the scope when it is. Every master is tried, so timing does not tell which matched.
 */
export async function verifyDerivedToken(
  token: string,
  masters: readonly string[],
): Promise<DerivedScope | undefined> {
  const scope = claimedScope(token);
  if (!scope) return undefined;
  let match = false;
  for (const master of masters) {
    if (equalText(await deriveWebhookSecret(master, scope), token)) match = true;
  }
  return match ? scope : undefined;
}

/** GitHub's `X-Hub-Signature-256` check: HMAC-SHA256 of the raw body bytes (a BOM included) under `secret`. */
export async function githubSignatureMatches(
  secret: string,
  body: Uint8Array,
  signatureHex: string,
): Promise<boolean> {
  const mac = hex(await hmac(await macKey(secret), body));
  return equalText(mac, signatureHex);
}
