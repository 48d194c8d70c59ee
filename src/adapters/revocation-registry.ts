// The revocation registry: one strongly consistent Durable Object holding the emergency revocation rules
// (src/core/revocation-rules.ts). Admin revokes write to it before searching the lease index; run objects
// read it for leases the index may not show yet. Rules are kept as long as a lease they could end may live.
// It also keeps the certificates whose lease ended before they expired (docs/grants.md, "x509"): the CRLs list them
// until they expire, so every Worker isolate reads one consistent list.

import { DurableObject } from "cloudflare:workers";
import type { RevocationRule, RevocationRuleKind } from "../core/revocation-rules.ts";
import type { Env } from "./env.ts";
import { applySchema, type SqliteSchema } from "./sqlite-schema.ts";

/** The registry's single object name. */
const REGISTRY = "rules";

/** The rules, by the lease creation time they reach back to. */
const REGISTRY_SCHEMA: SqliteSchema = {
  statements: [
    `CREATE TABLE IF NOT EXISTS rules (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, value TEXT NOT NULL,
      before INTEGER NOT NULL, keep_until INTEGER NOT NULL
    );`,
    "CREATE INDEX IF NOT EXISTS rules_by_before ON rules (before);",
    // kind: the certificate format ("x509"); ca: the CA that signed it; times in seconds since the epoch.
    `CREATE TABLE IF NOT EXISTS ended_certificates (
      kind TEXT NOT NULL, ca TEXT NOT NULL, serial TEXT NOT NULL,
      ended_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
      PRIMARY KEY (kind, ca, serial)
    ) WITHOUT ROWID;`,
  ],
  added: [],
};

export class RevocationRegistry extends DurableObject<Env> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    applySchema(this.#sql, REGISTRY_SCHEMA);
  }

  /** Records a rule (durable when this returns) and forgets rules no live lease can be subject to any more. */
  async add(rule: RevocationRule, keepUntil: number): Promise<void> {
    this.#sql.exec(
      "INSERT INTO rules (kind, value, before, keep_until) VALUES (?, ?, ?, ?)",
      rule.kind,
      rule.value,
      rule.before,
      keepUntil,
    );
    this.#sql.exec("DELETE FROM rules WHERE keep_until < ?", rule.before);
  }

  /** Rules that can end a lease created at or after `createdAt` … before the rule (i.e. rules newer than it). */
  async since(createdAt: number): Promise<RevocationRule[]> {
    return this.#sql
      .exec<{ kind: RevocationRuleKind; value: string; before: number }>(
        "SELECT kind, value, before FROM rules WHERE before > ? ORDER BY seq",
        createdAt,
      )
      .toArray()
      .map((r) => ({ kind: r.kind, value: r.value, before: r.before }));
  }

  /**
   * Records a certificate whose lease ended before it expires (durable when this returns; idempotent: a retried
   * revocation keeps the first end time), and forgets certificates that have expired.
   */
  async endCertificate(certificate: EndedCertificate, now: number): Promise<void> {
    this.#sql.exec(
      "INSERT OR IGNORE INTO ended_certificates (kind, ca, serial, ended_at, expires_at) VALUES (?, ?, ?, ?, ?)",
      certificate.kind,
      certificate.ca,
      certificate.serial,
      certificate.endedAt,
      certificate.expiresAt,
    );
    this.#sql.exec("DELETE FROM ended_certificates WHERE expires_at <= ?", now);
  }

  /** The unexpired ended certificates of one CA, oldest end first. */
  async endedCertificates(kind: string, ca: string, now: number): Promise<EndedCertificate[]> {
    return this.#sql
      .exec<{ serial: string; ended_at: number; expires_at: number }>(
        "SELECT serial, ended_at, expires_at FROM ended_certificates WHERE kind = ? AND ca = ? AND expires_at > ? ORDER BY ended_at, serial",
        kind,
        ca,
        now,
      )
      .toArray()
      .map((r) => ({ kind, ca, serial: r.serial, endedAt: r.ended_at, expiresAt: r.expires_at }));
  }
}

/** A certificate a revocation list names: its lease ended before it expired. Times in seconds since the epoch. */
export interface EndedCertificate {
  kind: string;
  ca: string;
  serial: string;
  endedAt: number;
  expiresAt: number;
}

/** The registry's stub. */
export function revocationRegistry(env: Pick<Env, "REVOCATIONS">): DurableObjectStub<RevocationRegistry> {
  return env.REVOCATIONS.get(env.REVOCATIONS.idFromName(REGISTRY));
}
