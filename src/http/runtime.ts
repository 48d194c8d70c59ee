// Per-isolate state built once from the policy bundle and the Worker's env: compiled policies, key cache, signer, hasher.

import { azureFor, gcpFor } from "../adapters/cloud-endpoints.ts";
import type { Env, RuntimeConfig } from "../adapters/env.ts";
import { readConfig, requireAuditKey } from "../adapters/env.ts";
import { githubFor } from "../adapters/github-app.ts";
import { postgresPortFor } from "../adapters/postgres.ts";
import { storeFor } from "../adapters/secrets-client.ts";
import { stsFor } from "../adapters/sts.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import { AuditHasher } from "../core/crypto.ts";
import { ConfigError, errorMessage } from "../core/errors.ts";
import type { StsPort } from "../core/grants/aws.ts";
import type { AzurePort } from "../core/grants/azure.ts";
import type { GcpPort } from "../core/grants/gcp.ts";
import type { IssuePorts } from "../core/grants/issue.ts";
import { Sealer } from "../core/grants/seal.ts";
import { secretReadResult } from "../core/grants/secrets.ts";
import { Signer } from "../core/grants/signer.ts";
import { Fingerprinter } from "../core/leaks/fingerprint.ts";
import { LeaseIds } from "../core/lease.ts";
import { DEV_ISSUER_NAME, type IssuerConfig } from "../core/oidc/issuers.ts";
import { KeySetCache, type KeySource } from "../core/oidc/key-source.ts";
import type { VerifierOptions } from "../core/oidc/verify.ts";
import { compilePolicySet, type PolicySet } from "../core/policy/compile.ts";
import type { Finding } from "../core/policy/lint.ts";
import type { PolicyBundle } from "../core/policy/types.ts";
import { parseSshCaKeys, type SshCaSet } from "../core/ssh/ca-keys.ts";
import { X509Authority } from "../core/x509/ca.ts";
import type { RunnerCli } from "./cli.ts";

export interface AppOptions {
  bundle: PolicyBundle;
  /** Injected time (tests); defaults to the system clock. */
  clock?: Clock;
  /** Outbound fetch for discovery/JWKS (tests may count or fault it). */
  fetch?: typeof fetch;
  /** Replaces the JWKS cache entirely. */
  keySource?: KeySource;
  /** The standalone runner CLI served at /v1/cli/runpass.mjs. */
  runnerCli?: RunnerCli;
  /** The policy set's lint findings, computed at build time, for the console (docs/console.md). */
  lint?: readonly Finding[];
}

/** Config-dependent pieces, built once per distinct env. */
export interface EnvContext {
  config: RuntimeConfig;
  verifier: VerifierOptions;
  /** The signer; rejects with a ConfigError naming RUNPASS_SIGNING_KEYS when it is missing or bad. */
  signer(): Promise<Signer>;
  /** The audit hasher; throws a ConfigError when RUNPASS_AUDIT_KEY is missing. */
  hasher(): AuditHasher;
  /** Lease ids with a MAC; throws a ConfigError when RUNPASS_AUDIT_KEY is missing. */
  leaseIds(): LeaseIds;
  /** Leak fingerprints (docs/leaks.md); throws a ConfigError when RUNPASS_AUDIT_KEY is missing. */
  fingerprinter(): Fingerprinter;
  /** Upstream clients for the aws and github grants, and the revocation-handle sealer. */
  grants: IssuePorts;
}

/**
 * What in a bundled policy set needs an RS256 signing key (gcp and azure assertions), for the ConfigError that
 * refuses to start without one; undefined when nothing does. Sets kept in the policy store are checked when a
 * policy signs (docs/grants.md, gcp and azure).
 */
function rs256Users(bundle: PolicyBundle): string | undefined {
  const names = bundle.policies.filter((p) => p.grants.gcp || p.grants.azure).map((p) => p.name);
  if (names.length === 0) return undefined;
  const more = names.length > 1 ? ` and ${names.length - 1} more` : "";
  return `the gcp and azure grants (policy "${names[0]}"${more})`;
}

export class Runtime {
  readonly bundle: PolicyBundle;
  readonly clock: Clock;
  readonly keys: KeySource;
  readonly #policies: PolicySet | ConfigError;
  /** The POLICY_KV binding of the latest env (large sets are read from it on demand). */
  #kv: KVNamespace | undefined;
  readonly #contexts = new Map<string, EnvContext>();

  constructor(options: AppOptions) {
    this.bundle = options.bundle;
    this.clock = options.clock ?? systemClock;
    this.keys =
      options.keySource ??
      new KeySetCache({
        clock: this.clock,
        dev: options.bundle.dev,
        ...(options.fetch ? { fetch: options.fetch } : {}),
      });
    let policies: PolicySet | ConfigError;
    try {
      policies = compilePolicySet(
        options.bundle,
        {
          get: (key) => {
            if (!this.#kv) {
              return Promise.reject(
                new ConfigError(
                  "this policy set is stored in KV but POLICY_KV is not bound; see README (large policy sets)",
                ),
              );
            }
            return this.#kv.get(key);
          },
        },
        this.clock,
      );
    } catch (e) {
      policies = new ConfigError(
        `the policy bundle failed to load (${errorMessage(e)}); rebuild and redeploy`,
      );
    }
    this.#policies = policies;
  }

  /** The compiled policy set, or the ConfigError that keeps everything closed. */
  get policies(): PolicySet {
    if (this.#policies instanceof ConfigError) throw this.#policies;
    return this.#policies;
  }

  /** The local dev issuer, when this is a dev build running with RUNPASS_DEV=1. */
  devIssuer(env: Env): IssuerConfig | undefined {
    if (!this.bundle.dev || env.RUNPASS_DEV !== "1") return undefined;
    return this.bundle.issuers.find((i) => i.name === DEV_ISSUER_NAME);
  }

  /** Builds (or reuses) the config-dependent context. Throws ConfigError for anything an operator must fix. */
  context(env: Env): EnvContext {
    if (this.bundle.dev && env.RUNPASS_DEV !== "1") {
      throw new ConfigError(
        "this Worker was built from a development policy bundle (RUNPASS_DEV=1) but runs without RUNPASS_DEV=1; rebuild without RUNPASS_DEV for production",
      );
    }
    const policies = this.policies;
    this.#kv = env.POLICY_KV;
    const cacheKey = JSON.stringify([
      env.RUNPASS_ISSUER_URL,
      env.RUNPASS_AUDIENCE,
      env.RUNPASS_SIGNING_KEYS,
      env.RUNPASS_AUDIT_KEY,
      env.RUNPASS_EXPLAIN,
      env.RUNPASS_DEV,
      env.RUNPASS_MAX_LEASE_TTL,
      env.AWS_ACCESS_KEY_ID,
      env.AWS_SECRET_ACCESS_KEY,
      env.AWS_STS_ENDPOINT,
      env.GCP_STS_ENDPOINT,
      env.GCP_IAMCREDENTIALS_ENDPOINT,
      env.AZURE_AUTHORITY_HOST,
      env.GITHUB_APP_ID,
      env.GITHUB_APP_PRIVATE_KEY,
      env.GITHUB_API_URL,
      env.RUNPASS_MASTER_KEYS,
      env.RUNPASS_X509_CA,
      env.RUNPASS_SSH_CA_KEYS,
    ]);
    const cached = this.#contexts.get(cacheKey);
    if (cached) return cached;
    const config = readConfig(env);
    const audiences = new Set([...policies.policyAudiences, config.audience]);
    let signer: Promise<Signer> | undefined;
    let hasher: AuditHasher | undefined;
    let leaseIds: LeaseIds | undefined;
    let fingerprinter: Fingerprinter | undefined;
    let sealer: Sealer | undefined;
    let sts: StsPort | undefined;
    let x509: Promise<X509Authority> | undefined;
    let ssh: Promise<SshCaSet> | undefined;
    let gcp: GcpPort | undefined;
    let azure: AzurePort | undefined;
    const rs256 = rs256Users(this.bundle);
    const context: EnvContext = {
      config,
      verifier: { issuers: policies.issuersByUrl, keys: this.keys, audiences, clock: this.clock },
      signer: () => {
        if (!signer) {
          signer = Signer.fromConfig(env.RUNPASS_SIGNING_KEYS, rs256 ? { requireRs256: rs256 } : {});
          // A bad key stays bad until the env changes, but do not cache the rejection forever in a long-lived isolate.
          signer.catch(() => {
            signer = undefined;
          });
        }
        return signer;
      },
      hasher: () => {
        hasher ??= new AuditHasher(requireAuditKey(env));
        return hasher;
      },
      leaseIds: () => {
        leaseIds ??= new LeaseIds(requireAuditKey(env));
        return leaseIds;
      },
      fingerprinter: () => {
        fingerprinter ??= new Fingerprinter(requireAuditKey(env));
        return fingerprinter;
      },
      grants: {
        get sealer() {
          sealer ??= new Sealer(requireAuditKey(env));
          return sealer;
        },
        sts: () => {
          sts ??= stsFor(env);
          return sts;
        },
        gcp: () => {
          gcp ??= gcpFor(env);
          return gcp;
        },
        azure: () => {
          azure ??= azureFor(env);
          return azure;
        },
        github: () => githubFor(env),
        x509: () => {
          if (!x509) {
            x509 = X509Authority.fromConfig(env.RUNPASS_X509_CA);
            // As with the signer: a bad CA stays bad until the env changes, but a long-lived isolate retries.
            x509.catch(() => {
              x509 = undefined;
            });
          }
          return x509;
        },
        ssh: () => {
          if (!ssh) {
            ssh = parseSshCaKeys(env.RUNPASS_SSH_CA_KEYS);
            ssh.catch(() => {
              ssh = undefined;
            });
          }
          return ssh;
        },
        postgres: () => postgresPortFor(env),
        secrets: () => ({
          read: async (path, version) =>
            secretReadResult(await storeFor(env, path).read(env.RUNPASS_MASTER_KEYS, path, version)),
        }),
      },
    };
    if (this.#contexts.size > 8) this.#contexts.clear();
    this.#contexts.set(cacheKey, context);
    return context;
  }
}
