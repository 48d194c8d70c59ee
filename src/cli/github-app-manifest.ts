// `runpass github-app manifest`: the GitHub App manifest with least privilege — exactly the permissions the
// policies' github grants request, what the consumed webhook events need, and metadata: read (docs/deploy.md).

import { parseArgs } from "node:util";
import type { GitHubPermissionLevel, PolicyDefinition } from "../core/policy/types.ts";
import { UsageError } from "./usage-error.ts";

export const MANIFEST_USAGE = `  github-app manifest [--policies DIR] [--url BROKER_URL] [--name NAME]
      Prints the GitHub App manifest (JSON) for this deployment: permissions = the union of the policies' github
      grants, plus actions: read (workflow_run), secret_scanning_alerts: read (secret_scanning_alert) and
      metadata: read — nothing else; webhook URL BROKER_URL/v1/webhooks/github and those events. BROKER_URL
      defaults to RUNPASS_ISSUER_URL. Exit 1 when the policies do not load.`;

/** The webhook events runpass consumes, and the permission each needs to be delivered. */
export const CONSUMED_EVENTS: ReadonlyArray<{ event: string; permission: string }> = [
  // The run's end: ends every lease of the run.
  { event: "workflow_run", permission: "actions" },
  // A leaked runpass credential found by secret scanning: ends its lease (docs/security.md).
  { event: "secret_scanning_alert", permission: "secret_scanning_alerts" },
];

const RANK: Record<GitHubPermissionLevel, number> = { read: 1, write: 2, admin: 3 };

/** The union of permissions: each at the highest level any source asks for. */
export function manifestPermissions(
  policies: readonly PolicyDefinition[],
): Record<string, GitHubPermissionLevel> {
  const out: Record<string, GitHubPermissionLevel> = { metadata: "read" };
  const add = (name: string, level: GitHubPermissionLevel) => {
    const have = out[name];
    if (!have || RANK[level] > RANK[have]) out[name] = level;
  };
  for (const { permission } of CONSUMED_EVENTS) add(permission, "read");
  for (const p of policies) {
    for (const [name, level] of Object.entries(p.grants.github?.permissions ?? {})) add(name, level);
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** The manifest GitHub's "register an App from a manifest" flow takes. */
export function githubAppManifest(
  policies: readonly PolicyDefinition[],
  brokerUrl: string,
  name = "runpass",
): Record<string, unknown> {
  return {
    name,
    url: brokerUrl,
    description:
      "runpass: short-lived, run-bound GitHub tokens for CI runs (least privilege from its policies)",
    public: false,
    hook_attributes: { url: `${brokerUrl}/v1/webhooks/github`, active: true },
    default_permissions: manifestPermissions(policies),
    default_events: CONSUMED_EVENTS.map((e) => e.event),
  };
}

/** `runpass github-app manifest`; `load` returns the policies of a folder (or throws UsageError). */
export async function githubAppManifestCommand(
  args: string[],
  load: (dir: string | undefined) => Promise<PolicyDefinition[]>,
): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { policies: { type: "string" }, url: { type: "string" }, name: { type: "string" } },
    strict: true,
  });
  const url = (values.url ?? process.env.RUNPASS_ISSUER_URL)?.replace(/\/+$/, "");
  if (!url)
    throw new UsageError("github-app manifest needs --url (the broker's public URL) or RUNPASS_ISSUER_URL");
  if (!/^https:\/\//.test(url))
    throw new UsageError(`--url must be https (GitHub delivers webhooks there): ${url}`);
  const policies = await load(values.policies);
  console.log(JSON.stringify(githubAppManifest(policies, url, values.name), null, 2));
  return 0;
}
