// The revocation registry: one strongly consistent Durable Object holding the emergency revocation rules
// (src/core/revocation-rules.ts). Admin revokes write to it before searching the lease index; run objects
// read it for leases the index may not show yet. Rules are kept as long as a lease they could end may live.

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
}

/** The registry's stub. */
export function revocationRegistry(env: Pick<Env, "REVOCATIONS">): DurableObjectStub<RevocationRegistry> {
  return env.REVOCATIONS.get(env.REVOCATIONS.idFromName(REGISTRY));
}
