// Console sign-in sessions in D1 (docs/console.md, "Signing in"): the cookie holds a random id, the table only its
// SHA-256, so a copy of the database signs nobody in; sign-out and expiry end a session server-side.

import { CONSOLE_SESSION_TTL_MS } from "../core/constants.ts";
import { randomId, sha256 } from "../core/crypto.ts";

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS console_sessions (
    id_hash TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at INTEGER
  ) WITHOUT ROWID`,
];

const ready = new WeakMap<D1Database, Promise<void>>();

/** A live session: who signed in and until when. */
export interface ConsoleSession {
  idHash: string;
  actor: string;
  expiresAt: number;
}

/** Server-side console sessions. */
export class ConsoleSessions {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  #ensure(): Promise<void> {
    let p = ready.get(this.#db);
    if (!p) {
      p = this.#db.batch(SCHEMA.map((s) => this.#db.prepare(s))).then(() => undefined);
      p.catch(() => ready.delete(this.#db));
      ready.set(this.#db, p);
    }
    return p;
  }

  /** Starts a session; returns the cookie value (never stored) and its expiry. */
  async create(actor: string, now: number): Promise<{ id: string; expiresAt: number }> {
    await this.#ensure();
    const id = randomId("cs", 32);
    const expiresAt = now + CONSOLE_SESSION_TTL_MS;
    await this.#db.batch([
      this.#db
        .prepare("INSERT INTO console_sessions (id_hash, actor, created_at, expires_at) VALUES (?, ?, ?, ?)")
        .bind(await sha256(id), actor, now, expiresAt),
      // Old rows go when new ones come: the table holds about a day of sign-ins.
      this.#db.prepare("DELETE FROM console_sessions WHERE expires_at < ?").bind(now - 24 * 3600 * 1000),
    ]);
    return { id, expiresAt };
  }

  /** The live session for a cookie value, or undefined (unknown, expired or signed out). */
  async find(id: string | undefined, now: number): Promise<ConsoleSession | undefined> {
    if (!id || !/^cs_[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    await this.#ensure();
    const row = await this.#db
      .prepare(
        "SELECT id_hash, actor, expires_at FROM console_sessions WHERE id_hash = ? AND ended_at IS NULL AND expires_at > ?",
      )
      .bind(await sha256(id), now)
      .first<{ id_hash: string; actor: string; expires_at: number }>();
    return row ? { idHash: row.id_hash, actor: row.actor, expiresAt: row.expires_at } : undefined;
  }

  /** Ends a session (sign-out). */
  async end(idHash: string, now: number): Promise<void> {
    await this.#ensure();
    await this.#db
      .prepare("UPDATE console_sessions SET ended_at = ? WHERE id_hash = ? AND ended_at IS NULL")
      .bind(now, idHash)
      .run();
  }
}
