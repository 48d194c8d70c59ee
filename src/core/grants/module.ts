// What a grant is (docs/architecture.md, "Adding a grant"): one module holding its policy schema and load-time
// checks, its planning (templates, caps) before any upstream call, its minting, whether renewal re-mints it, how a
// credential minted for a response that will not be sent is recalled, and its upstream error wrapping. The exchange
// pipeline and renewal only iterate over the registry (src/core/grants/registry.ts); upstream revocation at lease
// end is the adapters' (src/adapters/revokers.ts, one revoker per grant name, required by type).

import type * as z from "zod/mini";
import type { AuditHasher } from "../crypto.ts";
import type { LeaseGrant } from "../lease.ts";
import type { IssuerConfig } from "../oidc/issuers.ts";
import type { GrantName } from "../policy/types.ts";
import type { AwsPorts } from "./aws.ts";
import type { AzurePorts } from "./azure.ts";
import type { GcpPorts } from "./gcp.ts";
import type { GitHubPort } from "./github.ts";
import type { PostgresPorts } from "./postgres.ts";
import type { Sealer } from "./seal.ts";
import type { SecretReader } from "./secrets.ts";
import type { Signer } from "./signer.ts";
import type { SshPorts } from "./ssh.ts";
import type { X509Ports } from "./x509.ts";

/** Who the credentials are for: the verified CI identity (from the token, or stored with the lease for renewal). */
export interface GrantSubject {
  issuer: IssuerConfig;
  claims: Record<string, unknown>;
  sub: string;
}

export interface LeaseRef {
  id: string;
  run: string;
  /** Seconds since the epoch. */
  expiresAt: number;
}

type Path = ReadonlyArray<string | number>;
/** Reports a problem at a YAML path (at the key when `atKey`). */
export type Report = (path: Path, message: string, atKey?: boolean) => void;

/** What load-time validation of one grant gets besides its YAML. */
export interface LoadContext {
  /** The policy's name (its file name): some upstreams limit what a subject built from it may hold. */
  policyName: string;
  /** The policy's lease ttl, seconds. */
  leaseTtl: number;
  report: Report;
  /** Parses a duration field the way the policy's own ttl is parsed (reporting problems); `fallback` when absent. */
  duration(path: Path, text: string | undefined, fallback: number): number;
}

/**
 * Key material the runner sent with the exchange (docs/api.md): accepted whatever the policy and ignored by every
 * grant that does not use it, so a request never reveals which grants a policy has. Renewal passes what the
 * lease kept.
 */
export interface ExchangeInputs {
  /** An OpenSSH public key line for the `ssh` grant to certify. */
  ssh_public_key?: string;
  /** A PKCS#10 certificate request (PEM) for the `x509` grant. */
  csr?: string;
}

/** What planning gets: nothing upstream has been called yet, so a throw costs nothing. */
export interface PlanContext {
  subject: GrantSubject;
  lease: LeaseRef;
  /** Seconds since the epoch. */
  now: number;
  inputs: ExchangeInputs;
}

/** Upstream clients and keys, one port per grant that needs one (the adapters provide them). */
export interface IssueDeps extends AwsPorts, GcpPorts, AzurePorts, X509Ports, PostgresPorts, SshPorts {
  signer: Signer;
  issuerUrl: string;
  hasher: AuditHasher;
  sealer: Sealer;
  /** Returns the GitHub port (throws ConfigError when the App is not configured). */
  github: () => GitHubPort;
  /** The secret store. */
  secrets: () => SecretReader;
}

/** The adapters' part of IssueDeps: upstream ports and the revocation-handle sealer (everything but keys). */
export type IssuePorts = Omit<IssueDeps, "signer" | "issuerUrl" | "hasher">;

/** What minting gets: key material from the request has already been read into the plan. */
export interface MintContext extends Omit<PlanContext, "inputs"> {
  policy: { name: string; version: string };
  deps: IssueDeps;
}

/** One grant's minted credential, what the lease remembers of it, and (secrets) per-name encodings. */
export interface Minted<C> {
  credential: C;
  grants: LeaseGrant[];
  encodings?: Record<string, "base64">;
}

/** One grant kind. `D` its policy definition, `P` its plan, `C` the credential the exchange response carries. */
export interface GrantModule<N extends GrantName, Raw, D, P, C> {
  readonly name: N;
  /** The YAML under `grants.<name>` (structure only; `load` checks meaning). */
  readonly schema: z.ZodMiniType<Raw>;
  /** The human name of the upstream it calls, for error messages and audit detail; none for runpass's own tokens. */
  readonly upstream?: string;
  /**
   * Minting costs upstream quota or reads the secret store, and may not be recallable: the exchange refuses a
   * replayed token or an ended run before minting such a grant, not only at commit.
   */
  readonly costly: boolean;
  /** Renewal re-mints it (secret bundles are delivered at exchange only). */
  readonly renewable: boolean;
  /** Load-time validation and normalisation; problems go to `ctx.report`. */
  load(raw: Raw, ctx: LoadContext): D;
  /** Resolves templates and limits. Throws RunpassError. */
  plan(def: D, ctx: PlanContext): P;
  /** Mints. Throws RunpassError, or UpstreamError (wrapped by the pipeline with `upstream`). */
  mint(plan: P, ctx: MintContext): Promise<Minted<C>>;
  /** Recalls a credential minted for a response that will not be sent; says what happened, for the audit record. */
  recall?(credential: C, ports: IssuePorts): Promise<string>;
  /** Every value in the credential a client must mask and a leak check must recognise. */
  secretValues(credential: C): string[];
  /**
   * A non-secret identifier of the credential that the upstream's own logs show (the AWS access key id), named
   * by leak matches so an operator can search for its use (docs/leaks.md). Absent when there is none.
   */
  upstreamId?(credential: C): string | undefined;
}

/** ISO 8601 of seconds since the epoch. */
export function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}
