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
  // Every index entry is a billed row written. A record has a repository (GitHub) or a project (GitLab), rarely
  // both: entries only for the one it has. `repository_id = ?` implies NOT NULL, so filters still use them.
  // (Databases created before keep their full indexes: CREATE … IF NOT EXISTS never rebuilds one.)
  "CREATE INDEX IF NOT EXISTS audit_by_repository ON audit_records (repository_id, ts DESC) WHERE repository_id IS NOT NULL",
  "CREATE INDEX IF NOT EXISTS audit_by_project ON audit_records (project_id, ts DESC) WHERE project_id IS NOT NULL",
  "CREATE INDEX IF NOT EXISTS audit_by_token ON audit_records (token_id)",
  "CREATE INDEX IF NOT EXISTS audit_by_lease ON audit_records (lease_id)",
  // The lease index: which runs hold leases of a policy, repository or issuer, so an admin revoke reaches
  // exactly those run objects. Fed by the same outbox as the audit log (allow → row, lease_end → ended).
  // WITHOUT ROWID: the lease id is the table's key, not a second index to write on every lease.
  `CREATE TABLE IF NOT EXISTS lease_index (
    lease_id TEXT PRIMARY KEY,
    run TEXT NOT NULL,
    policy TEXT NOT NULL,
    issuer TEXT,
    repository_id TEXT,
    project_id TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at INTEGER,
    end_reason TEXT
  ) WITHOUT ROWID`,
  "CREATE INDEX IF NOT EXISTS lease_active_policy ON lease_index (policy, ended_at, expires_at)",
  "CREATE INDEX IF NOT EXISTS lease_active_repository ON lease_index (repository_id, ended_at, expires_at) WHERE repository_id IS NOT NULL",
  "CREATE INDEX IF NOT EXISTS lease_active_project ON lease_index (project_id, ended_at, expires_at) WHERE project_id IS NOT NULL",
  "CREATE INDEX IF NOT EXISTS lease_active_issuer ON lease_index (issuer, ended_at, expires_at)",
  "CREATE INDEX IF NOT EXISTS lease_by_run ON lease_index (run)",
  "CREATE INDEX IF NOT EXISTS lease_by_created ON lease_index (created_at DESC, lease_id DESC)",
  // The leak index (docs/leaks.md): keyed fingerprints of every credential value a lease received and of every
  // secret version, never the values. `owner` is the lease id or `secret:<path>@<version>`.
  `CREATE TABLE IF NOT EXISTS leak_index (
    fp TEXT NOT NULL,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    run TEXT,
    policy TEXT,
    ref TEXT,
    path TEXT,
    version INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (fp, owner)
  ) WITHOUT ROWID`,
  // The console's charts and counts read an hourly rollup of exchange decisions, not the records (docs/console.md,
  // "Aggregations"): one row per (hour, event, decision, policy, reason), kept by a trigger on the records actually
  // inserted (INSERT OR IGNORE of a re-shipped record fires nothing). One more D1 row written per exchange.
  `CREATE TABLE IF NOT EXISTS audit_rollup (
    hour INTEGER NOT NULL,
    event TEXT NOT NULL,
    decision TEXT NOT NULL,
    policy TEXT NOT NULL,
    reason TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, event, decision, policy, reason)
  ) WITHOUT ROWID`,
  "CREATE TABLE IF NOT EXISTS audit_migrations (name TEXT PRIMARY KEY, at INTEGER NOT NULL)",
  // The migration: a database that has records from before the rollup existed counts them once, in the same
  // transaction that creates the trigger (the batch), so nothing is counted twice or missed.
  `INSERT INTO audit_rollup (hour, event, decision, policy, reason, n)
    SELECT ts / 3600000, event, decision, COALESCE(policy, ''), ${rollupReason("record", "decision")}, SUM(count)
    FROM audit_records
    WHERE event = 'exchange' AND NOT EXISTS (SELECT 1 FROM audit_migrations WHERE name = 'rollup-v1')
    GROUP BY 1, 2, 3, 4, 5`,
  "INSERT OR IGNORE INTO audit_migrations (name, at) VALUES ('rollup-v1', unixepoch() * 1000)",
  `CREATE TRIGGER IF NOT EXISTS audit_rollup_feed AFTER INSERT ON audit_records WHEN NEW.event = 'exchange' BEGIN
    INSERT INTO audit_rollup (hour, event, decision, policy, reason, n)
    VALUES (NEW.ts / 3600000, NEW.event, NEW.decision, COALESCE(NEW.policy, ''), ${rollupReason("NEW.record", "NEW.decision")}, NEW.count)
    ON CONFLICT (hour, event, decision, policy, reason) DO UPDATE SET n = n + excluded.n;
  END`,
];

/** The rollup's reason key: for a denial its first reason code (and claim), else its error code; empty for allows. */
function rollupReason(record: string, decision: string): string {
  return `CASE WHEN ${decision} = 'deny' THEN COALESCE(json_extract(${record}, '$.reasons[0].code') || COALESCE(':' || json_extract(${record}, '$.reasons[0].claim'), ''), json_extract(${record}, '$.error'), 'unknown') ELSE '' END`;
}

/** One leak-index entry a fingerprint matched (docs/leaks.md). */
export interface LeakIndexRow {
  fp: string;
  owner: string;
  kind: string;
  run: string | null;
  policy: string | null;
  ref: string | null;
  path: string | null;
  version: number | null;
}

/** Bound parameters per D1 statement stay under its limit of 100. */
const LOOKUP_CHUNK = 90;

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
  /** Only records before this time (ms). */
  until?: number;
  limit: number;
  cursor?: { ts: number; id: string };
}

/** Which leases an admin revoke or listing is about. */
export interface LeaseFilter {
  run?: string;
  policy?: string;
  repository_id?: string;
  project_id?: string;
  issuer?: string;
}

export interface LeaseIndexRow {
  lease_id: string;
  run: string;
  policy: string;
  issuer: string | null;
  repository_id: string | null;
  project_id: string | null;
  created_at: number;
  expires_at: number;
  ended_at: number | null;
  end_reason: string | null;
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

  /** Runs a read once the schema exists (other D1 readers of these tables: the console's aggregations). */
  read<T>(run: (db: D1Database) => Promise<T>): Promise<T> {
    return this.#withSchema(() => run(this.db));
  }

  /** Inserts records idempotently (re-shipped outbox rows are ignored) and keeps the lease index in step. */
  async insert(records: AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.#withSchema(() => this.db.batch(records.flatMap((r) => this.#statements(r))));
  }

  #statements(r: AuditRecord): D1PreparedStatement[] {
    const out = [
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
    ];
    if (r.event === "exchange" && r.decision === "allow" && r.lease_id && r.run && r.policy) {
      out.push(
        this.db
          .prepare(
            "INSERT OR IGNORE INTO lease_index (lease_id, run, policy, issuer, repository_id, project_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
          )
          .bind(
            r.lease_id,
            r.run,
            r.policy,
            r.issuer ?? null,
            r.repository_id ?? null,
            r.project_id ?? null,
            Date.parse(r.ts),
            r.lease_expires_at ? Date.parse(r.lease_expires_at) : Date.parse(r.ts),
          ),
      );
    }
    if (
      (r.event === "exchange" || r.event === "renew") &&
      r.decision === "allow" &&
      r.lease_id &&
      r.fingerprints
    ) {
      for (const f of r.fingerprints) {
        out.push(
          this.db
            .prepare(
              "INSERT OR IGNORE INTO leak_index (fp, owner, kind, run, policy, ref, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(f.fp, r.lease_id, f.kind, r.run ?? null, r.policy ?? null, f.ref ?? null, Date.parse(r.ts)),
        );
      }
    }
    if (r.event === "lease_end" && r.lease_id) {
      out.push(
        this.db
          .prepare(
            "UPDATE lease_index SET ended_at = ?, end_reason = ? WHERE lease_id = ? AND ended_at IS NULL",
          )
          .bind(Date.parse(r.ts), r.end_reason ?? null, r.lease_id),
      );
    }
    return out;
  }

  /** Indexes a secret version's fingerprint (written when the version is). */
  async indexSecret(fp: string, path: string, version: number, now: number): Promise<void> {
    await this.#withSchema(() =>
      this.db
        .prepare(
          "INSERT OR IGNORE INTO leak_index (fp, owner, kind, path, version, created_at) VALUES (?, ?, 'secret', ?, ?, ?)",
        )
        .bind(fp, `secret:${path}@${version}`, path, version, now)
        .run(),
    );
  }

  /** A rollback copy holds its source's content: it gets the source's fingerprint. */
  async copySecretFingerprint(path: string, from: number, to: number, now: number): Promise<void> {
    await this.#withSchema(() =>
      this.db
        .prepare(
          "INSERT OR IGNORE INTO leak_index (fp, owner, kind, path, version, created_at) SELECT fp, ?, 'secret', path, ?, ? FROM leak_index WHERE owner = ?",
        )
        .bind(`secret:${path}@${to}`, to, now, `secret:${path}@${from}`)
        .run(),
    );
  }

  /** Every leak-index entry whose fingerprint is one of `fps`. */
  async findFingerprints(fps: string[]): Promise<LeakIndexRow[]> {
    const out: LeakIndexRow[] = [];
    for (let i = 0; i < fps.length; i += LOOKUP_CHUNK) {
      const chunk = fps.slice(i, i + LOOKUP_CHUNK);
      const rows = await this.#withSchema(() =>
        this.db
          .prepare(
            `SELECT fp, owner, kind, run, policy, ref, path, version FROM leak_index WHERE fp IN (${chunk.map(() => "?").join(", ")})`,
          )
          .bind(...chunk)
          .all<LeakIndexRow>(),
      );
      out.push(...rows.results);
    }
    return out;
  }

  /** Runs that may hold active leases matching `filter` (the index can lag the run objects by seconds). */
  async activeRuns(filter: LeaseFilter, now: number): Promise<string[]> {
    const { where, args } = leaseWhere(filter);
    where.push("ended_at IS NULL", "expires_at > ?");
    args.push(now);
    const rows = await this.#withSchema(() =>
      this.db
        .prepare(`SELECT DISTINCT run FROM lease_index WHERE ${where.join(" AND ")}`)
        .bind(...args)
        .all<{ run: string }>(),
    );
    return rows.results.map((r) => r.run);
  }

  /** Leases newest first (active only if asked), paged by (created_at, lease_id). */
  async leases(
    filter: LeaseFilter & {
      active?: boolean;
      now: number;
      limit: number;
      cursor?: { ts: number; id: string };
    },
  ): Promise<{ leases: LeaseIndexRow[]; next?: { ts: number; id: string } }> {
    const { where, args } = leaseWhere(filter);
    if (filter.active) {
      where.push("ended_at IS NULL", "expires_at > ?");
      args.push(filter.now);
    }
    if (filter.cursor) {
      where.push("(created_at < ? OR (created_at = ? AND lease_id < ?))");
      args.push(filter.cursor.ts, filter.cursor.ts, filter.cursor.id);
    }
    args.push(filter.limit + 1);
    const rows = await this.#withSchema(() =>
      this.db
        .prepare(
          `SELECT * FROM lease_index ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at DESC, lease_id DESC LIMIT ?`,
        )
        .bind(...args)
        .all<LeaseIndexRow>(),
    );
    const page = rows.results.slice(0, filter.limit);
    const last = page[page.length - 1];
    return {
      leases: page,
      ...(rows.results.length > filter.limit && last
        ? { next: { ts: last.created_at, id: last.lease_id } }
        : {}),
    };
  }

  /**
   * Where the upstream revocation of each credential of these leases stands (docs/api.md, leases): from the
   * exchange and renewal records (which credentials) and the latest revocation record of each; none yet is
   * `pending`.
   */
  async revocationStates(
    leaseIds: readonly string[],
  ): Promise<Map<string, Array<{ type: string; id: string; status: "pending" | "done" | "failed" }>>> {
    const out = new Map<string, Array<{ type: string; id: string; status: "pending" | "done" | "failed" }>>();
    if (leaseIds.length === 0) return out;
    // D1 binds at most 100 parameters per statement.
    const results: Array<{ record: string }> = [];
    for (let at = 0; at < leaseIds.length; at += 90) {
      const chunk = leaseIds.slice(at, at + 90);
      const rows = await this.#withSchema(() =>
        this.db
          .prepare(
            `SELECT record FROM audit_records WHERE lease_id IN (${chunk.map(() => "?").join(", ")}) AND event IN ('exchange', 'renew', 'revocation') ORDER BY ts, id`,
          )
          .bind(...chunk)
          .all<{ record: string }>(),
      );
      results.push(...rows.results);
    }
    const states = new Map<
      string,
      Map<string, { type: string; id: string; status: "pending" | "done" | "failed" }>
    >();
    for (const { record } of results) {
      const r = JSON.parse(record) as AuditRecord;
      if (!r.lease_id) continue;
      const perLease = states.get(r.lease_id) ?? new Map();
      states.set(r.lease_id, perLease);
      for (const g of r.grants ?? []) {
        if (r.event !== "revocation") {
          if (r.decision === "allow" && !perLease.has(g.id))
            perLease.set(g.id, { type: g.type, id: g.id, status: "pending" });
          continue;
        }
        const status = r.upstream_revoke ?? (r.decision === "allow" ? "done" : "failed");
        perLease.set(g.id, { type: g.type, id: g.id, status });
      }
    }
    for (const [lease, m] of states) out.set(lease, [...m.values()]);
    return out;
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
    if (q.until !== undefined) {
      where.push("ts < ?");
      args.push(q.until);
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

function leaseWhere(filter: LeaseFilter): { where: string[]; args: unknown[] } {
  const where: string[] = [];
  const args: unknown[] = [];
  for (const col of ["run", "policy", "repository_id", "project_id", "issuer"] as const) {
    const v = filter[col];
    if (v !== undefined) {
      where.push(`${col} = ?`);
      args.push(v);
    }
  }
  return { where, args };
}
