// Types for the workerd test bindings: the Worker's Env plus the test issuer's and fake upstreams' URLs.

import type { Env as RunpassEnv } from "../../src/adapters/env.ts";

declare global {
  namespace Cloudflare {
    interface Env extends RunpassEnv {
      TEST_ISSUER_BASE: string;
      /** Fake AWS STS (test/support/fake-sts.ts). */
      TEST_STS_BASE: string;
      /** Real OpenSSL over loopback HTTP (test/support/openssl.ts). */
      TEST_OPENSSL_BASE: string;
      /** Real OpenSSH over loopback HTTP (test/support/openssh.ts). */
      TEST_OPENSSH_BASE: string;
      /** Fake Google STS + IAM Credentials (test/support/fake-gcp.ts). */
      TEST_GCP_BASE: string;
      /** Fake Entra token endpoint (test/support/fake-azure.ts). */
      TEST_AZURE_BASE: string;
      /** Fake GitHub REST API (test/support/fake-github.ts). */
      TEST_GITHUB_API_BASE: string;
      TEST_GITHUB_APP_ID: string;
      /** The test GitHub App's private key, PKCS#1 PEM. */
      TEST_GITHUB_APP_PRIVATE_KEY: string;
      /** JSON PostgresInfo: the test PostgreSQL server (test/support/postgres-server.ts). */
      TEST_POSTGRES: string;
      /** JSON: the workflow_run and workflow_job entries of @octokit/webhooks-examples (vitest.config.ts). */
      TEST_WEBHOOK_EXAMPLES: string;
    }
  }
}
