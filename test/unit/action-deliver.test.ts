// The action's refusals of names it must not export under (docs/clients.md, "The GitHub Action"): a delivered
// secret or the github token's variable never overwrites what another grant exports (aws, gcp, azure, postgres,
// the token, credential file paths), read from the clients' export table rather than a list of its own.

import { describe, expect, it } from "vitest";
import { githubTokenEnvProblem, secretNameProblems } from "../../action/src/deliver.ts";
import { GITHUB_TOKEN_ENV, GRANT_ENV_NAMES } from "../../src/client/grant-exports.ts";

/** What each grant exports today (docs/clients.md): the derived list must hold every one of them. */
const EXPORTED = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_REGION",
  "AWS_DEFAULT_REGION",
  "CLOUDSDK_AUTH_ACCESS_TOKEN",
  "GOOGLE_OAUTH_ACCESS_TOKEN",
  "AZURE_CLIENT_ID",
  "AZURE_TENANT_ID",
  "AZURE_FEDERATED_TOKEN",
  "RUNPASS_AZURE_ACCESS_TOKEN",
  "RUNPASS_TOKEN",
  "RUNPASS_GITHUB_TOKEN",
  "RUNPASS_X509_CERT_FILE",
  "RUNPASS_X509_KEY_FILE",
  "RUNPASS_X509_CHAIN_FILE",
  "RUNPASS_SSH_KEY_FILE",
  "RUNPASS_SSH_CERT_FILE",
  "RUNPASS_SSH_KNOWN_HOSTS_FILE",
  "PGHOST",
  "PGPORT",
  "PGDATABASE",
  "PGUSER",
  "PGPASSWORD",
  "PGSSLMODE",
  "RUNPASS_POSTGRES_URL",
];

describe("the grants' variables, read off the export table", () => {
  it("lists every variable a grant exports or points at a credential file with, and no secret name", () => {
    expect([...GRANT_ENV_NAMES].sort()).toEqual([...EXPORTED].sort());
  });
});

describe("secretNameProblems", () => {
  it("refuses a secret named like any grant's variable, in any case", () => {
    const names = GRANT_ENV_NAMES.flatMap((n) => [n, n.toLowerCase()]);
    const problems = secretNameProblems(names, GITHUB_TOKEN_ENV);
    expect(problems).toHaveLength(names.length);
    for (const problem of problems) expect(problem).toMatch(/collides with a variable this action exports$/);
  });

  it("still accepts the names around them (the cloud SDKs' other settings, a database URL of one's own)", () => {
    const names = [
      "AZURE_SUBSCRIPTION_ID",
      "GOOGLE_CLOUD_PROJECT",
      "PGAPPNAME",
      "DATABASE_URL",
      "STRIPE_KEY",
    ];
    expect(secretNameProblems(names, GITHUB_TOKEN_ENV)).toEqual([]);
  });

  it("refuses the github token's chosen variable and the runner's own", () => {
    expect(secretNameProblems(["deploy_token", "PATH", "GITHUB_SHA"], "DEPLOY_TOKEN")).toEqual([
      "deploy_token collides with a variable this action exports",
      "PATH would overwrite a runner or shell variable",
      "GITHUB_SHA would overwrite a runner or shell variable",
    ]);
  });
});

describe("githubTokenEnvProblem", () => {
  it("refuses another grant's variable; accepts the default, GITHUB_TOKEN and a name of one's own", () => {
    for (const name of [
      "PGPASSWORD",
      "AZURE_CLIENT_ID",
      "cloudsdk_auth_access_token",
      "AWS_REGION",
      "RUNPASS_TOKEN",
    ])
      expect(githubTokenEnvProblem(name), name).toMatch(/would overwrite a variable/);
    for (const name of [GITHUB_TOKEN_ENV, "GITHUB_TOKEN", "GH_TOKEN"])
      expect(githubTokenEnvProblem(name), name).toBeUndefined();
  });
});
