// The revokers this deployment has, one per grant type: runpass tokens (listed as revoked), GitHub installation
// tokens (DELETE /installation/token), AWS sessions (cannot be revoked early: they expire with the lease), secret
// values (cannot be taken back).

import { errorMessage } from "../core/errors.ts";
import { type GrantRevoker, type Revokers, tokenRevoker } from "../core/grants/revoke.ts";
import { Sealer } from "../core/grants/seal.ts";
import { UpstreamError } from "../core/grants/upstream.ts";
import type { Env } from "./env.ts";
import { revokeInstallationToken } from "./github-app.ts";

/** An STS session cannot be revoked; its duration was capped to the lease when it was minted. */
const awsRevoker: GrantRevoker = {
  async revoke() {
    return {
      status: "not_revocable",
      retryable: false,
      detail: "STS sessions expire on their own (capped to the lease)",
    };
  },
};

/** A delivered secret value cannot be taken back; rotating the secret is the remedy (docs/grants.md). */
const secretsRevoker: GrantRevoker = {
  async revoke() {
    return { status: "not_revocable", retryable: false };
  },
};

/** Opens the sealed handle ({ api, token }) and revokes the token at the API that minted it. */
function githubRevoker(env: Env): GrantRevoker {
  return {
    async revoke(grant, leaseId) {
      if (!grant.revocation) return { status: "failed", retryable: false, detail: "no revocation handle" };
      const key = env.RUNPASS_AUDIT_KEY;
      if (!key) return { status: "failed", retryable: true, detail: "RUNPASS_AUDIT_KEY is not set" };
      const opened = await new Sealer(key).open(grant.revocation, leaseId);
      if (!opened)
        return {
          status: "failed",
          retryable: false,
          detail: "revocation handle does not open (audit key rotated?)",
        };
      const { api, token } = JSON.parse(opened) as { api: string; token: string };
      try {
        await revokeInstallationToken(api, token);
        return { status: "revoked", retryable: false };
      } catch (e) {
        const retryable = e instanceof UpstreamError ? e.retryable : true;
        return { status: "failed", retryable, detail: errorMessage(e).slice(0, 200) };
      }
    },
  };
}

/** Revokers available with this env's configuration. */
export function revokersFor(env: Env): Revokers {
  return { token: tokenRevoker, aws: awsRevoker, github: githubRevoker(env), secrets: secretsRevoker };
}
