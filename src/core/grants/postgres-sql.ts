// The SQL the postgres grant sends (docs/grants.md, "postgres"): identifier and literal quoting, the SCRAM-SHA-256
// verifier that stands in for a password, role names, `statements` placeholders, and the statements that create,
// extend and drop a lease's role. Pure: the adapters run what these functions build.

import { POSTGRES_ROLE_PREFIX, POSTGRES_SCRAM_ITERATIONS } from "../constants.ts";
import { utf8 } from "../encoding.ts";

/** A value PostgreSQL cannot hold in an identifier or a text literal (NUL), refused rather than truncated. */
export class SqlQuoteError extends Error {
  override name = "SqlQuoteError";
}

function refuseNul(text: string): void {
  if (text.includes("\u0000")) throw new SqlQuoteError("NUL cannot appear in SQL text");
}

/** A double-quoted identifier: the one form in which any text is one name, case kept. */
export function quoteIdent(name: string): string {
  refuseNul(name);
  if (name.length === 0) throw new SqlQuoteError("an identifier cannot be empty");
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * An escape-string literal (`E'…'`): backslashes and quotes doubled. Its meaning does not depend on
 * `standard_conforming_strings`, unlike a plain `'…'`.
 */
export function quoteLiteral(text: string): string {
  refuseNul(text);
  return `E'${text.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

function base64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

async function hmacSha256(key: Uint8Array<ArrayBuffer>, text: string): Promise<Uint8Array<ArrayBuffer>> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, utf8(text)));
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677):
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`. Sent in place of the password, so the server
 * never receives, and statement logging never records, the password itself. Passwords here are random ASCII,
 * which SASLprep leaves unchanged.
 */
export async function scramVerifier(
  password: string,
  salt: Uint8Array<ArrayBuffer> = crypto.getRandomValues(new Uint8Array(16)),
  iterations = POSTGRES_SCRAM_ITERATIONS,
): Promise<string> {
  const base = await crypto.subtle.importKey("raw", utf8(password), "PBKDF2", false, ["deriveBits"]);
  const salted = new Uint8Array(
    await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, base, 256),
  );
  const clientKey = await hmacSha256(salted, "Client Key");
  const storedKey = new Uint8Array(await crypto.subtle.digest("SHA-256", clientKey));
  const serverKey = await hmacSha256(salted, "Server Key");
  return `SCRAM-SHA-256$${iterations}:${base64(salt)}$${base64(storedKey)}:${base64(serverKey)}`;
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/**
 * The role of a lease: `rp_` + 20 lowercase base32 characters of SHA-256(label, lease id). Derived, not random, so
 * renewal finds the same role again without storing anything; the lease id itself is random.
 */
export async function roleNameFor(leaseId: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", utf8(`runpass/postgres-role/v1\u0000${leaseId}`)),
  );
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 20) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= 0xff;
    if (out.length === 20) break;
  }
  return `${POSTGRES_ROLE_PREFIX}${out}`;
}

/** A random password: 32 random bytes as base64url (43 characters, no quoting or SASLprep concerns). */
export function randomPassword(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return base64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_]+)\s*\}\}/g;
/** The only placeholders `statements` may use. */
export const STATEMENT_PLACEHOLDERS = ["name", "expires_at"] as const;

/** Why a `statements` entry is refused at load time, or undefined. */
export function statementProblem(statement: string): string | undefined {
  if (statement.trim() === "") return "a statement cannot be empty";
  if (statement.includes("\u0000")) return "a statement cannot contain NUL";
  for (const m of statement.matchAll(PLACEHOLDER)) {
    if (!(STATEMENT_PLACEHOLDERS as readonly string[]).includes(m[1] as string)) {
      return `{{${m[1]}}} is not a placeholder here (only {{name}} and {{expires_at}}; claims never reach SQL)`;
    }
  }
  const rest = statement.replace(PLACEHOLDER, "");
  if (rest.includes("{{") || rest.includes("}}")) return 'a "{{" or "}}" that is not a placeholder';
  // biome-ignore lint/suspicious/noTemplateCurlyInString: names the claim-template syntax this refuses
  if (rest.includes("${")) return "${claim} templates are not allowed in SQL (claims never reach SQL)";
  // One statement per entry: a `;` outside the end would smuggle a second one past review.
  if (/;\s*\S/.test(rest)) return "one statement per entry (no ';' inside)";
  return undefined;
}

/** Fills `{{name}}` (as an identifier) and `{{expires_at}}` (as a literal); nothing else is ever substituted. */
export function fillStatement(statement: string, role: string, expiresAt: string): string {
  return statement
    .replace(PLACEHOLDER, (_m, name: string) =>
      name === "name" ? quoteIdent(role) : quoteLiteral(expiresAt),
    )
    .replace(/;\s*$/, "");
}

/** What a new role gets. */
export interface RoleSpec {
  role: string;
  verifier: string;
  /** ISO 8601. */
  validUntil: string;
  connectionLimit: number;
  roles: readonly string[];
  /** The text of COMMENT ON ROLE (names the lease, for sweep). */
  comment: string;
  statements: readonly string[];
}

/** CREATE ROLE … IN ROLE …, its comment and the policy's statements, to run in one transaction. */
export function createRoleSql(spec: RoleSpec): string[] {
  const role = quoteIdent(spec.role);
  return [
    `CREATE ROLE ${role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT ` +
      `PASSWORD ${quoteLiteral(spec.verifier)} VALID UNTIL ${quoteLiteral(spec.validUntil)} ` +
      `CONNECTION LIMIT ${Math.trunc(spec.connectionLimit)} IN ROLE ${spec.roles.map(quoteIdent).join(", ")}`,
    `COMMENT ON ROLE ${role} IS ${quoteLiteral(spec.comment)}`,
    ...spec.statements.map((s) => fillStatement(s, spec.role, spec.validUntil)),
  ];
}

/** Renewal: a new password verifier and a later VALID UNTIL for the same role. */
export function renewRoleSql(role: string, verifier: string, validUntil: string): string[] {
  return [
    `ALTER ROLE ${quoteIdent(role)} WITH PASSWORD ${quoteLiteral(verifier)} VALID UNTIL ${quoteLiteral(validUntil)}`,
  ];
}

/**
 * The comment a lease's role carries: the lease id it belongs to, the role that inherits its objects (sweep reads
 * both back to drop it as lease end would) and the digest of the grant definition it was created under (renewal
 * refuses a role whose definition the policy has since changed; docs/grants.md, "postgres").
 */
export function roleComment(leaseId: string, heir: string, grantDigest: string): string {
  return `runpass lease ${leaseId} heir ${heir} grant ${grantDigest}`;
}

/** The lease id, heir and grant digest in a role comment written by roleComment, or undefined. */
export function parseRoleComment(
  comment: string | null | undefined,
): { leaseId: string; heir: string; grant?: string } | undefined {
  const m = /^runpass lease (\S+) heir (\S+)(?: grant ([0-9a-f]+))?$/.exec(comment ?? "");
  if (!m) return undefined;
  return { leaseId: m[1] as string, heir: m[2] as string, ...(m[3] ? { grant: m[3] } : {}) };
}

/**
 * The digest that binds a role to what it was granted: SHA-256 (hex) over the connection, roles, statements and
 * connection limit. Anything else the policy may change (ttl) renewal applies anyway.
 */
export async function grantDigest(def: {
  connection: string;
  roles: readonly string[];
  statements: readonly string[];
  connection_limit: number;
}): Promise<string> {
  const text = JSON.stringify([def.connection, def.roles, def.statements, def.connection_limit]);
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", utf8(`runpass/postgres-grant/v1\u0000${text}`)),
  );
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The query that reads a role's comment (undefined row: no such role). */
export function roleLookupSql(role: string): string {
  return `SELECT r.rolname, shobj_description(r.oid, 'pg_authid') AS comment FROM pg_roles r WHERE r.rolname = ${quoteLiteral(role)}`;
}

/** Every runpass role with its comment (sweep). */
export const LIST_RUNPASS_ROLES_SQL = `SELECT r.rolname, shobj_description(r.oid, 'pg_authid') AS comment FROM pg_roles r WHERE r.rolname LIKE ${quoteLiteral(`${POSTGRES_ROLE_PREFIX}%`)} ORDER BY r.rolname`;

/**
 * Lease end (docs/grants.md, "postgres"), in three steps the caller runs in order, each committed on its own:
 * `lockOut` (one transaction) ends logins for good — NOLOGIN and no password — before anything can fail;
 * `terminate` (a query) ends open sessions (VALID UNTIL alone leaves them alive); `drop` (one transaction, retried
 * by the revoker) hands what the role owns to `heir` (the first listed role) so a migration's tables survive, drops
 * what is left, then the role. Its lock_timeout keeps a lock held elsewhere from stalling it: the role is already
 * locked out, and the retry finishes. The admin takes membership of the role first: PostgreSQL requires it for
 * terminating its sessions and for REASSIGN/DROP OWNED.
 */
export function dropRoleSql(
  role: string,
  heir: string,
  waitMs: number,
  lockTimeoutMs: number,
): { lockOut: string[]; terminate: string; drop: string[] } {
  const r = quoteIdent(role);
  return {
    lockOut: [`GRANT ${r} TO CURRENT_USER`, `ALTER ROLE ${r} WITH NOLOGIN PASSWORD NULL`],
    terminate: `SELECT pg_terminate_backend(pid, ${Math.trunc(waitMs)}) FROM pg_stat_activity WHERE usename = ${quoteLiteral(role)} AND pid <> pg_backend_pid()`,
    drop: [
      `SET LOCAL lock_timeout = ${Math.trunc(lockTimeoutMs)}`,
      `REASSIGN OWNED BY ${r} TO ${quoteIdent(heir)}`,
      `DROP OWNED BY ${r}`,
      `DROP ROLE ${r}`,
    ],
  };
}

/** Rotate-root: a new verifier for the connection's own role. */
export function rotateRootSql(verifier: string): string {
  return `ALTER ROLE CURRENT_USER WITH PASSWORD ${quoteLiteral(verifier)}`;
}
