// In-memory ports for src/core/exchange.ts in plain Node: a run ledger, an audit sink, a static issuer key set
// and runpass's signer, so the exchange and explain pipelines run without workerd, HTTP or Durable Objects.

import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import type { AuditRecord } from "../../src/core/audit/record.ts";
import type { Clock } from "../../src/core/clock.ts";
import { AuditHasher } from "../../src/core/crypto.ts";
import { ConfigError } from "../../src/core/errors.ts";
import type { ExchangeDeps } from "../../src/core/exchange.ts";
import { Sealer } from "../../src/core/grants/seal.ts";
import { Signer } from "../../src/core/grants/signer.ts";
import { Fingerprinter } from "../../src/core/leaks/fingerprint.ts";
import { LeaseIds } from "../../src/core/lease.ts";
import type { AuditSink, CommitInput, CommitOutcome, LeaseInput, Ledger } from "../../src/core/ledger.ts";
import type { KeySource } from "../../src/core/oidc/key-source.ts";
import { compilePolicySet } from "../../src/core/policy/compile.ts";
import { buildBundle, issuerLines } from "./policies.ts";

/** Where the in-memory issuer claims to live (never fetched: its key is handed to the verifier directly). */
export const MEMORY_ISSUER_BASE = "https://issuer.memory.test";
/** runpass's own issuer URL in these tests. */
export const MEMORY_BROKER_URL = "https://runpass.memory.test";
const AUDIT_KEY = "memory-audit-key-0123456789abcdef0123456789";

interface Run {
  used: Set<string>;
  ended: boolean;
  delivered: Set<string>;
  leases: LeaseInput[];
}

/** A run ledger in a Map, with the Durable Object's commit rules: one use per token, nothing after the run ends. */
export class MemoryLedger implements Ledger {
  readonly runs = new Map<string, Run>();
  /** Every record the ledger made durable (allow records and its own refusals). */
  readonly records: AuditRecord[] = [];
  /** When set, commit and peek throw, as a ledger that cannot be reached does. */
  unavailable = false;

  #run(runKey: string): Run {
    let run = this.runs.get(runKey);
    if (!run) {
      run = { used: new Set(), ended: false, delivered: new Set(), leases: [] };
      this.runs.set(runKey, run);
    }
    return run;
  }

  /** Ends a run, as a completed-run webhook or an admin revoke does. */
  endRun(runKey: string): void {
    this.#run(runKey).ended = true;
  }

  /** Every lease committed so far, across runs. */
  leases(): LeaseInput[] {
    return [...this.runs.values()].flatMap((r) => r.leases);
  }

  async commit(runKey: string, input: CommitInput): Promise<CommitOutcome> {
    if (this.unavailable) throw new Error("ledger unavailable");
    const run = this.#run(runKey);
    const refusal = run.used.has(input.singleUse)
      ? "replayed"
      : run.ended
        ? "run_ended"
        : input.deliverOnce && run.delivered.has(input.deliverOnce)
          ? "already_delivered"
          : undefined;
    if (refusal) {
      const code = refusal === "already_delivered" ? "secrets_already_delivered" : refusal;
      this.records.push({ ...input.audit, decision: "deny", reasons: [{ code }] });
      return { ok: false, reason: refusal };
    }
    run.used.add(input.singleUse);
    if (input.deliverOnce) run.delivered.add(input.deliverOnce);
    run.leases.push(input.lease);
    this.records.push(input.audit);
    if (input.countSince === undefined) return { ok: true };
    const since = input.countSince;
    return { ok: true, recent: run.leases.filter((l) => l.createdAt >= since).length };
  }

  async peek(
    runKey: string,
    singleUse: string,
    deliverOnce?: string,
  ): Promise<{ replayed: boolean; runEnded: boolean; delivered?: boolean }> {
    if (this.unavailable) throw new Error("ledger unavailable");
    const run = this.runs.get(runKey);
    return {
      replayed: run?.used.has(singleUse) ?? false,
      runEnded: run?.ended ?? false,
      ...(deliverOnce ? { delivered: run?.delivered.has(deliverOnce) ?? false } : {}),
    };
  }
}

/** An audit sink that keeps what it is given. */
export class MemoryAudit implements AuditSink {
  readonly records: AuditRecord[] = [];
  write(record: AuditRecord): void {
    this.records.push(record);
  }
}

/** A settable clock (ms) starting at the real time, moved only by the test. */
export class MemoryClock {
  now = Date.now();
  readonly fn: Clock = () => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

/** One RS256 issuer key, published to the verifier directly instead of over discovery and JWKS. */
export class MemoryIssuer {
  readonly kid: string;
  readonly #privateKey: CryptoKey;
  readonly #publicKey: CryptoKey;

  private constructor(kid: string, privateKey: CryptoKey, publicKey: CryptoKey) {
    this.kid = kid;
    this.#privateKey = privateKey;
    this.#publicKey = publicKey;
  }

  static async create(): Promise<MemoryIssuer> {
    const { privateKey, publicKey } = await generateKeyPair("RS256");
    return new MemoryIssuer(`k-${crypto.randomUUID().slice(0, 8)}`, privateKey, publicKey);
  }

  /** The key source the verifier uses: this issuer's key for its kid, unknown otherwise. */
  readonly keys: KeySource = {
    getKey: async (_issuer, kid) =>
      kid === this.kid
        ? { ok: true, value: this.#publicKey }
        : { ok: false, error: { reason: "unknown_key" } },
  };

  /** Signs `claims` as an OIDC token of this issuer. */
  mint(claims: JWTPayload): Promise<string> {
    return new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", kid: this.kid, typ: "JWT" })
      .sign(this.#privateKey);
  }
}

export interface MemoryCore {
  deps: ExchangeDeps;
  ledger: MemoryLedger;
  audit: MemoryAudit;
  clock: MemoryClock;
  issuer: MemoryIssuer;
  signer: Signer;
}

/** Upstream ports that are not configured: the token grant needs none of them. */
function unconfigured(name: string): never {
  throw new ConfigError(`${name} is not configured in the in-memory core`);
}

/**
 * Exchange dependencies over in-memory ports for `policies` (name → YAML) whose issuers are named in
 * `issuers` (github-kind unless given as name:kind), all served by one in-memory issuer key.
 */
export async function memoryCore(
  policies: Record<string, string>,
  issuers: string[],
  options: { explainFull?: boolean; maxLeaseTtl?: number } = {},
): Promise<MemoryCore> {
  const bundle = await buildBundle(policies, issuerLines(MEMORY_ISSUER_BASE, ...issuers), false);
  const clock = new MemoryClock();
  const set = compilePolicySet(bundle, undefined, clock.fn);
  const issuer = await MemoryIssuer.create();
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const signer = await Signer.fromConfig(
    JSON.stringify([{ ...(await exportJWK(privateKey)), kid: "memory-es256", alg: "ES256" }]),
  );
  const ledger = new MemoryLedger();
  const audit = new MemoryAudit();
  const deps: ExchangeDeps = {
    policies: set,
    verifier: {
      issuers: set.issuersByUrl,
      keys: issuer.keys,
      audiences: new Set([...set.policyAudiences, MEMORY_BROKER_URL]),
      clock: clock.fn,
    },
    issuerUrl: MEMORY_BROKER_URL,
    defaultAudience: MEMORY_BROKER_URL,
    explainFull: options.explainFull ?? false,
    maxLeaseTtl: options.maxLeaseTtl ?? 3600,
    signer,
    hasher: new AuditHasher(AUDIT_KEY),
    leaseIds: new LeaseIds(AUDIT_KEY),
    fingerprinter: new Fingerprinter(AUDIT_KEY),
    grants: {
      sealer: new Sealer(AUDIT_KEY),
      sts: () => unconfigured("AWS STS"),
      gcp: () => unconfigured("Google Cloud"),
      azure: () => unconfigured("Microsoft Entra ID"),
      github: () => unconfigured("the GitHub App"),
      postgres: () => unconfigured("PostgreSQL"),
      secrets: () => unconfigured("the secret store"),
      x509: () => unconfigured("the x509 CA"),
      ssh: () => unconfigured("the ssh CA"),
    },
    ledger,
    audit,
    clock: clock.fn,
  };
  return { deps, ledger, audit, clock, issuer, signer };
}
