// The revokers this deployment has, one per grant type: runpass tokens (listed as revoked), GitHub installation
// tokens (DELETE /installation/token), AWS sessions (cannot be revoked early: they expire with the lease), secret
// values (cannot be taken back), x509 and ssh certificates (listed on their CA's CRL, the KRL, until they expire).

import { errorMessage } from "../core/errors.ts";
import { ConnectionMissingError, dropPostgresRole, type PostgresHandle } from "../core/grants/postgres.ts";
import { type GrantRevoker, type Revokers, tokenRevoker } from "../core/grants/revoke.ts";
import { Sealer } from "../core/grants/seal.ts";
import type { SshRevocationHandle } from "../core/grants/ssh.ts";
import { UpstreamError } from "../core/grants/upstream.ts";
import type { X509RevocationHandle } from "../core/grants/x509.ts";
import type { Env } from "./env.ts";
import { revokeInstallationToken } from "./github-app.ts";
import { postgresPortFor } from "./postgres.ts";
import { revocationRegistry } from "./revocation-registry.ts";

/** The revoker of a credential nothing can take back early; `detail` says why, for the audit record. */
function notRevocable(detail?: string): GrantRevoker {
  return {
    async revoke() {
      return { status: "not_revocable", retryable: false, ...(detail !== undefined ? { detail } : {}) };
    },
  };
}

/** An STS session cannot be revoked; its duration was capped to the lease when it was minted. */
const awsRevoker = notRevocable("STS sessions expire on their own (capped to the lease)");

/**
 * A certificate cannot be recalled from the runner: its serial goes on its CA's revocation list (the x509 CRL, the
 * ssh KRL), durably, until the certificate expires (docs/grants.md, "x509" and "ssh"). A certificate that has
 * already expired needs no listing.
 */
function certificateRevoker(env: Env, kind: "x509" | "ssh"): GrantRevoker {
  return {
    async revoke(grant) {
      const handle = grant.revocation
        ? (JSON.parse(grant.revocation) as Partial<X509RevocationHandle | SshRevocationHandle>)
        : {};
      if (typeof handle.ca !== "string" || typeof handle.serial !== "string")
        return { status: "failed", retryable: false, detail: "no certificate serial kept with the lease" };
      const now = Math.floor(Date.now() / 1000);
      const expiresAt = Math.floor(Date.parse(grant.expires_at) / 1000);
      if (expiresAt <= now) return { status: "revoked", retryable: false, detail: "expired" };
      await revocationRegistry(env).endCertificate(
        { kind, ca: handle.ca, serial: handle.serial, endedAt: now, expiresAt },
        now,
      );
      const list = kind === "x509" ? `the CRL of CA ${handle.ca}` : "the KRL";
      return { status: "revoked", retryable: false, detail: `on ${list} until ${grant.expires_at}` };
    },
  };
}

/** A delivered secret value cannot be taken back; rotating the secret is the remedy (docs/grants.md). */
const secretsRevoker = notRevocable();

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

/**
 * Opens the sealed handle ({ connection, role, heir }) and ends the role: sessions terminated, what it owns handed to
 * the first listed role, the role dropped (docs/grants.md, "postgres"). An unreachable database is retried with
 * backoff by the run's object.
 */
function postgresRevoker(env: Env): GrantRevoker {
  return {
    async revoke(grant, leaseId) {
      if (!grant.revocation) return { status: "failed", retryable: false, detail: "no revocation handle" };
      const key = env.RUNPASS_AUDIT_KEY;
      if (!key) return { status: "failed", retryable: true, detail: "RUNPASS_AUDIT_KEY is not set" };
      const opened = await new Sealer(key).open(grant.revocation, leaseId);
      if (!opened) return { status: "failed", retryable: false, detail: "revocation handle does not open" };
      const handle = JSON.parse(opened) as PostgresHandle;
      try {
        await dropPostgresRole(postgresPortFor(env), handle);
        return { status: "revoked", retryable: false, detail: `role ${handle.role} dropped` };
      } catch (e) {
        // The role outlives its lease until someone acts: said plainly in the audit record, and retried so that
        // putting the connection back lets the drop finish.
        if (e instanceof ConnectionMissingError) {
          return {
            status: "failed",
            retryable: true,
            detail: `role ${handle.role} NOT dropped: connection "${handle.connection}" is not stored (put it back, or drop the role by hand)`,
          };
        }
        const retryable = e instanceof UpstreamError ? e.retryable : true;
        return { status: "failed", retryable, detail: errorMessage(e).slice(0, 200) };
      }
    },
  };
}

/** Revokers available with this env's configuration. */
export function revokersFor(env: Env): Revokers {
  return {
    token: tokenRevoker,
    aws: awsRevoker,
    // Google and Entra tokens cannot be revoked early: gcp lifetimes are capped to the lease, Entra's are
    // Entra's own (docs/grants.md, gcp and azure).
    gcp: notRevocable("Google access tokens expire on their own (capped to the lease)"),
    azure: notRevocable("Entra access tokens expire on their own (Entra sets their lifetime)"),
    github: githubRevoker(env),
    secrets: secretsRevoker,
    x509: certificateRevoker(env, "x509"),
    ssh: certificateRevoker(env, "ssh"),
    postgres: postgresRevoker(env),
  };
}
