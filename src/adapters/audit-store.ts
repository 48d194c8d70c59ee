// The queryable audit log in D1: records arrive from run ledgers (outbox) and from the Worker (denials).

import type { AuditRecord } from "../core/audit/record.ts";

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS audit_records (
    id TEXT PRIMARY KEY,
    ts INTEGER NOT NULL,
    event TEXT NOT NULL,
    decision TEXT NOT NULL,
    policy TEXT,
    run TEXT,
    repository_id TEXT,
    project_id TEXT,
    issuer TEXT,
    token_id TEXT,
    lease_id TEXT,
    count INTEGER NOT NULL,
    record TEXT NOT NULL
  )`,
  "CREATE INDEX IF NOT EXISTS audit_by_ts ON audit_records (ts DESC, id DESC)",
  "CREATE INDEX IF NOT EXISTS audit_by_run ON audit_records (run, ts DESC)",
  "CREATE INDEX IF NOT EXISTS audit_by_policy ON audit_records (policy, ts DESC)",
  "CREATE INDEX IF NOT EXISTS audit_by_repository ON audit_records (repository_id, ts DESC)",
  "CREATE INDEX IF NOT EXISTS audit_by_project ON audit_records (project_id, ts DESC)",
  "CREATE INDEX IF NOT EXISTS audit_by_token ON audit_records (token_id)",
  "CREATE INDEX IF NOT EXISTS audit_by_lease ON audit_records (lease_id)",
];

export interface AuditQuery {
  run?: string;
  repository_id?: string;
  project_id?: string;
  policy?: string;
  decision?: "allow" | "deny";
  event?: string;
  /** `hmac-sha256:` digest of a token's jti (see /v1/admin/audit-hash). */
  token_id?: string;
  lease_id?: string;
  /** `hmac-sha256:` digest of an issued credential's identifier. */
  credential?: string;
  /** Only records at or after this time (ms). */
  since?: number;
  limit: number;
  cursor?: { ts: number; id: string };
}

export interface AuditPage {
  records: AuditRecord[];
  next?: { ts: number; id: string };
}

const ready = new WeakMap<D1Database, Promise<void>>();

/** D1-backed audit storage. The schema is created on first use, so a fresh deployment needs no migration step. */
export class D1AuditStore {
  readonly db: D1Database;

  constructor(db: D1Database) {
    this.db = db;
  }

  #ensure(force = false): Promise<void> {
    let p = force ? undefined : ready.get(this.db);
    if (!p) {
      p = this.db.batch(SCHEMA.map((s) => this.db.prepare(s))).then(() => undefined);
      p.catch(() => ready.delete(this.db));
      ready.set(this.db, p);
    }
    return p;
  }

  async #withSchema<T>(run: () => Promise<T>): Promise<T> {
    await this.#ensure();
    try {
      return await run();
    } catch (e) {
      // A wiped database (tests, a restored D1) loses the table behind the memo: recreate once.
      if (!String(e).includes("no such table")) throw e;
      await this.#ensure(true);
      return run();
    }
  }

  /** Inserts records idempotently (re-shipped outbox rows are ignored). */
  async insert(records: AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.#withSchema(() =>
      this.db.batch(
        records.map((r) =>
          this.db
            .prepare(
              "INSERT OR IGNORE INTO audit_records (id, ts, event, decision, policy, run, repository_id, project_id, issuer, token_id, lease_id, count, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(
              r.id,
              Date.parse(r.ts),
              r.event,
              r.decision,
              r.policy ?? null,
              r.run ?? null,
              r.repository_id ?? null,
              r.project_id ?? null,
              r.issuer ?? null,
              r.token_id ?? null,
              r.lease_id ?? null,
              r.count,
              JSON.stringify(r),
            ),
        ),
      ),
    );
  }

  /** Newest first, filtered, paged by (ts, id). */
  async query(q: AuditQuery): Promise<AuditPage> {
    const where: string[] = [];
    const args: unknown[] = [];
    for (const col of [
      "run",
      "repository_id",
      "project_id",
      "policy",
      "decision",
      "event",
      "token_id",
      "lease_id",
    ] as const) {
      const v = q[col];
      if (v !== undefined) {
        where.push(`${col} = ?`);
        args.push(v);
      }
    }
    if (q.credential !== undefined) {
      where.push(
        "EXISTS (SELECT 1 FROM json_each(record, '$.grants') WHERE json_extract(value, '$.id') = ?)",
      );
      args.push(q.credential);
    }
    if (q.since !== undefined) {
      where.push("ts >= ?");
      args.push(q.since);
    }
    if (q.cursor) {
      where.push("(ts < ? OR (ts = ? AND id < ?))");
      args.push(q.cursor.ts, q.cursor.ts, q.cursor.id);
    }
    const sql = `SELECT id, ts, record FROM audit_records ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY ts DESC, id DESC LIMIT ?`;
    args.push(q.limit + 1);
    const rows = await this.#withSchema(() =>
      this.db
        .prepare(sql)
        .bind(...args)
        .all<{ id: string; ts: number; record: string }>(),
    );
    const results = rows.results;
    const page = results.slice(0, q.limit);
    const last = page[page.length - 1];
    return {
      records: page.map((r) => JSON.parse(r.record) as AuditRecord),
      ...(results.length > q.limit && last ? { next: { ts: last.ts, id: last.id } } : {}),
    };
  }
}
