// The Worker entry: the app built from the compiled policy bundle, and the Durable Object classes.

import { RUNNER_CLI, RUNNER_CLI_SHA256 } from "../generated/cli-bundle.ts";
import { bundle } from "../generated/policy-bundle.ts";
import { lintFindings } from "../generated/policy-lint.ts";
import type { Env } from "./adapters/env.ts";
import { scheduledPurge } from "./adapters/retention.ts";
import { createApp } from "./app.ts";

export { AlertHub } from "./adapters/alert-hub.ts";
export { RateLimiter } from "./adapters/rate-limiter.ts";
export { RevocationRegistry } from "./adapters/revocation-registry.ts";
export { RunLedger } from "./adapters/run-ledger.ts";
export { SecretStore } from "./adapters/secret-store.ts";

const app = createApp({
  bundle,
  runnerCli: { text: RUNNER_CLI, sha256: RUNNER_CLI_SHA256 },
  lint: lintFindings,
});

export default {
  fetch: app.fetch,
  // The daily cron trigger (wrangler.toml [triggers]): retention (docs/operations.md, "Retention").
  scheduled(controller, env, ctx) {
    ctx.waitUntil(scheduledPurge(env, controller.scheduledTime));
  },
} satisfies ExportedHandler<Env>;
