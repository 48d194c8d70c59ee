// Three projects in two tiers (README, Development). The fast tier (`npm test`): "unit", the pure code in plain
// Node, and "workerd", everything touching Workers APIs inside workerd. The process tier (`npm run test:e2e`):
// "e2e", suites that spawn processes (npm start / wrangler, the runpass CLI, the action, bash). "unit" and
// "workerd" each get a local OIDC issuer, fake AWS STS and fake GitHub API (test/support/global-setup.ts); the
// e2e suites bring their own brokers and issuers.

import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { exportJWK, generateKeyPair } from "jose";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

// Test-only broker secrets, generated per run (never committed).
const { privateKey } = await generateKeyPair("ES256", { extractable: true });
// ES256 signs runpass's own tokens; the RS256 key signs the gcp and azure assertions (Entra refuses ES256).
const { privateKey: rsaKey } = await generateKeyPair("RS256", { extractable: true });
const signingKeys = JSON.stringify([
  { ...(await exportJWK(privateKey)), kid: "test-es256", alg: "ES256" },
  { ...(await exportJWK(rsaKey)), kid: "test-rs256", alg: "RS256" },
]);
const masterKeys = JSON.stringify({
  active: "test-m1",
  keys: { "test-m1": Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64") },
});

// Only the webhook examples the tests use, as a binding: the whole 4 MB set imported as a module by two test
// files at once overflows the pool's WebSocket and kills both workers.
const webhookExamples = JSON.stringify(
  (createRequire(import.meta.url)("@octokit/webhooks-examples") as Array<{ name: string }>).filter((e) =>
    ["workflow_run", "workflow_job"].includes(e.name),
  ),
);

/** Suites that spawn processes: the process tier, run by `npm run test:e2e` (and CI), not by `npm test`. */
const E2E = [
  "test/unit/action.test.ts",
  "test/unit/admin-cli-tls.test.ts",
  "test/unit/check-action.test.ts",
  "test/unit/cli.test.ts",
  // Starts npm start and a real Chromium (docs/console.md, "Tests").
  "test/unit/console-browser.test.ts",
  "test/unit/dev-start.test.ts",
  "test/unit/dev-start-large.test.ts",
  "test/unit/doctor.test.ts",
  "test/unit/gitlab-component.test.ts",
  "test/unit/ops-cli.test.ts",
  "test/unit/policy-tools.test.ts",
  "test/unit/production-build.test.ts",
  "test/unit/runner-output.test.ts",
  "test/unit/webhook-secret.test.ts",
];

/**
 * The longest files of each tier, longest first. Without a duration cache (a clean clone, CI) vitest starts the
 * largest files first, which left `npm start` with 10,001 policies (a small file) to start last.
 */
const SLOW_FIRST = [
  "test/unit/dev-start-large.test.ts",
  "test/unit/dev-start.test.ts",
  "test/unit/runner-output.test.ts",
  "test/unit/policy-tools.test.ts",
  "test/workerd/faults.test.ts",
  "test/workerd/rate-limit.test.ts",
  "test/unit/jwks.test.ts",
];

/** Starts the known-slow files first, then vitest's own order. */
class SlowFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const i = SLOW_FIRST.findIndex((s) => f.moduleId.endsWith(s));
      return i < 0 ? SLOW_FIRST.length : i;
    };
    return [...(await super.sort(files))].sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    // One JSON report per invocation (.ci/run adds their counts); TEST_JSON_REPORT names another file.
    // Default is one worker per core minus one: a single worker on the 2-core CI machine. Most of a fast-tier
    // file's time is spent waiting on another process (workerd, the test issuer), so three overlap; the process
    // tier is CPU-bound (builds, wrangler, CLI spawns) and runs two (package.json, test:e2e).
    maxWorkers: 3,
    sequence: { sequencer: SlowFirst },
    reporters: [
      "default",
      ["json", { outputFile: process.env.TEST_JSON_REPORT ?? ".ci/results/vitest.json" }],
    ],
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          exclude: E2E,
          environment: "node",
          globalSetup: ["test/support/global-setup.ts"],
          // The fast tier shares 2 cores with a real PostgreSQL, sshd and OpenSSL: a heavy test (the webhook storm,
          // the fuzzers) can pass 30 s on a busy machine; a hang still fails, just later.
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: E2E,
          environment: "node",
          testTimeout: 60_000,
          // Cleanup stops brokers and removes scratch copies of the project (10,001 policy files for the large
          // set), which can take longer than the default 10 s while the other worker is building.
          hookTimeout: 60_000,
        },
      },
      {
        // Mirrors wrangler.toml's [alias]: the AWS SDK's browser XML parser needs DOMParser, absent in workerd.
        resolve: {
          alias: {
            "@aws-sdk/xml-builder": fileURLToPath(new URL("./src/shims/aws-xml-builder.js", import.meta.url)),
          },
        },
        plugins: [
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                TEST_ISSUER_BASE: inject("issuerBase"),
                TEST_STS_BASE: inject("stsBase"),
                TEST_OPENSSL_BASE: inject("opensslBase"),
                TEST_OPENSSH_BASE: inject("opensshBase"),
                TEST_GCP_BASE: inject("gcpBase"),
                TEST_AZURE_BASE: inject("azureBase"),
                TEST_GITHUB_API_BASE: inject("githubApiBase"),
                TEST_GITHUB_APP_ID: inject("githubAppId"),
                TEST_GITHUB_APP_PRIVATE_KEY: inject("githubAppPrivateKey"),
                TEST_POSTGRES: JSON.stringify(inject("postgres")),
                RUNPASS_ISSUER_URL: "https://runpass.test",
                RUNPASS_SIGNING_KEYS: signingKeys,
                RUNPASS_AUDIT_KEY: "test-audit-key-0123456789abcdef0123456789",
                RUNPASS_ADMIN_TOKEN: "test-admin-token-0123456789",
                RUNPASS_MASTER_KEYS: masterKeys,
                TEST_WEBHOOK_EXAMPLES: webhookExamples,
              },
            },
          })),
        ],
        test: {
          name: "workerd",
          include: ["test/workerd/**/*.test.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          // The fast tier shares 2 cores with a real PostgreSQL, sshd and OpenSSL: a heavy test (the webhook storm,
          // the fuzzers) can pass 30 s on a busy machine; a hang still fails, just later.
          testTimeout: 60_000,
        },
      },
    ],
  },
});
