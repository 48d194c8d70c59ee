// The GitHub App manifest holds exactly the permissions a policy set needs: the union of its github grants (each
// at the highest level asked), actions: read and secret_scanning_alerts: read for the events runpass consumes,
// metadata: read — and nothing else (docs/deploy.md, "The GitHub App").

import { describe, expect, it } from "vitest";
import { githubAppManifest, manifestPermissions } from "../../src/cli/github-app-manifest.ts";
import { buildBundle, TOKEN_GRANT } from "../support/policies.ts";

/** A github-preset policy with these grants (YAML lines under grants:). */
function policy(grants: string): string {
  return `issuer: github
allow:
  repository_owner_id: "1342004"
  repository_id: "519345000"
  ref: refs/heads/main
grants:
  ${grants}
`;
}

const gh = (permissions: string) =>
  `github: { owner: acme, repositories: [api], permissions: { ${permissions} } }`;

async function permissionsOf(policies: Record<string, string>) {
  return manifestPermissions((await buildBundle(policies, "", false)).policies);
}

const EVENTS_ONLY = { actions: "read", metadata: "read", secret_scanning_alerts: "read" };

describe("github-app manifest permissions", () => {
  it("a set without github grants: only what the consumed events need, and metadata", async () => {
    expect(await permissionsOf({ a: policy(TOKEN_GRANT) })).toEqual(EVENTS_ONLY);
  });

  it("the union of several policies, each permission at the highest level any asks", async () => {
    expect(
      await permissionsOf({
        "a-write": policy(gh("contents: write")),
        "b-read": policy(gh("contents: read, issues: read")),
        deploy: policy(gh("deployments: write, statuses: read")),
        other: policy(TOKEN_GRANT),
      }),
    ).toEqual({
      ...EVENTS_ONLY,
      contents: "write",
      deployments: "write",
      issues: "read",
      statuses: "read",
    });
  });

  it("a policy's higher level of an event permission wins over the event's read", async () => {
    expect(await permissionsOf({ ci: policy(gh("actions: write, secret_scanning_alerts: write")) })).toEqual({
      actions: "write",
      metadata: "read",
      secret_scanning_alerts: "write",
    });
  });

  it("the manifest names the webhook URL and exactly the consumed events", async () => {
    const bundle = await buildBundle({ a: policy(gh("contents: read")) }, "", false);
    const manifest = githubAppManifest(bundle.policies, "https://runpass.acme.dev", "acme-runpass");
    expect(manifest).toEqual({
      name: "acme-runpass",
      url: "https://runpass.acme.dev",
      description: expect.any(String),
      public: false,
      hook_attributes: { url: "https://runpass.acme.dev/v1/webhooks/github", active: true },
      default_permissions: { ...EVENTS_ONLY, contents: "read" },
      default_events: ["workflow_run", "secret_scanning_alert"],
    });
  });
});
