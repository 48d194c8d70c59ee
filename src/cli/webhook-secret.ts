// `runpass admin webhook-secret`: the secret for a repository, organisation or project webhook, derived offline
// from the master secret in the environment (docs/security.md, "Webhooks are scoped"). Nothing is sent anywhere.

import { parseArgs } from "node:util";
import { deriveWebhookSecret, type WebhookScopeKind } from "../core/webhook-scope.ts";
import { UsageError } from "./usage-error.ts";

export const WEBHOOK_SECRET_USAGE = `  admin webhook-secret (--github-owner-id N | --github-repository-id N | --gitlab-project-id N | --gitlab-namespace-id N)
      Prints the webhook secret for one owner, repository, project or group, derived from the master secret
      in the environment (GITHUB_WEBHOOK_SECRET or GITLAB_WEBHOOK_TOKEN; with --previous, the _PREVIOUS one).
      Computed offline. A delivery signed with it can end only runs whose verified claims lie in that scope.`;

const FLAGS: Record<string, WebhookScopeKind> = {
  "github-owner-id": "github-owner",
  "github-repository-id": "github-repository",
  "gitlab-project-id": "gitlab-project",
  "gitlab-namespace-id": "gitlab-namespace",
};

/** Prints the derived secret for the one scope named on the command line. */
export async function webhookSecretCommand(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: "string" as const }])),
      previous: { type: "boolean", default: false },
    },
    strict: true,
  });
  const flags = values as Record<string, string | boolean | undefined>;
  const given = Object.keys(FLAGS).filter((f) => typeof flags[f] === "string");
  if (given.length !== 1) {
    throw new UsageError(
      "admin webhook-secret needs exactly one of --github-owner-id, --github-repository-id, --gitlab-project-id, --gitlab-namespace-id",
    );
  }
  const flag = given[0] as string;
  const id = flags[flag] as string;
  if (!/^[1-9][0-9]{0,19}$/.test(id))
    throw new UsageError(`--${flag} takes a numeric id (the platform's, not a name)`);
  const kind = FLAGS[flag] as WebhookScopeKind;
  const variable = kind.startsWith("github") ? "GITHUB_WEBHOOK_SECRET" : "GITLAB_WEBHOOK_TOKEN";
  const name = values.previous ? `${variable}_PREVIOUS` : variable;
  const master = env[name];
  if (!master) throw new UsageError(`set ${name} (the master secret the broker has) in the environment`);
  console.log(await deriveWebhookSecret(master, { kind, id }));
  return 0;
}
