// The action's post step (post-if: always()): ends the lease the main step created. It never fails the job:
// a lease that cannot be revoked here still ends with the run (webhook) or at its TTL (alarm).

import * as core from "@actions/core";
import { removeCredentialFiles } from "../../src/cli/credential-files.ts";
import { revoke } from "../../src/client/exchange-client.ts";

async function run(): Promise<void> {
  // The job is done with its certificates and keys, whether or not the lease can be revoked.
  if (removeCredentialFiles(core.getState("files_dir"))) core.info("runpass: credential files removed");
  const leaseId = core.getState("lease_id");
  const revokeToken = core.getState("revoke_token");
  const url = core.getState("url");
  if (!leaseId || !revokeToken || !url) {
    core.info("runpass: no lease to revoke");
    return;
  }
  core.setSecret(revokeToken);
  const result = await revoke({ url, leaseId, revokeToken, userAgent: "runpass-action/1" });
  if (result.ok) {
    core.info(`runpass: lease ${leaseId} revoked`);
    return;
  }
  const id = result.requestId ? ` — request_id ${result.requestId}` : "";
  core.warning(
    `runpass: could not revoke lease ${leaseId}: ${result.code} (${result.description})${id}; ` +
      "it still ends with the run or at its expiry",
  );
}

try {
  await run();
} catch (e) {
  core.warning(`runpass: post step error: ${e instanceof Error ? e.message : String(e)}`);
}
process.exitCode = 0;
