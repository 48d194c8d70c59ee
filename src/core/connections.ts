// Database connections for the postgres grant (docs/api.md, "Connections"; docs/grants.md, "postgres"): the body of
// `PUT /v1/admin/connections/{name}`, the TLS rules, and the metadata an admin may see (never the password).

import * as z from "zod/mini";
import { CONNECTION_NAME, type PostgresEndpoint } from "./grants/postgres.ts";
import { isLoopbackHost } from "./loopback.ts";

export { CONNECTION_NAME };

/** The PUT body. */
export const ConnectionBody = z.strictObject({
  kind: z.literal("postgres"),
  url: z.string().check(z.maxLength(2048)),
  tls: z.optional(z.enum(["verify-full", "disable"])),
  hyperdrive: z.optional(z.string()),
  runner_host: z.optional(z.string()),
  runner_port: z.optional(z.number()),
});
export type ConnectionInput = z.infer<typeof ConnectionBody>;

/** What the store keeps, sealed under the master keys (the URL carries the admin password). */
export interface StoredConnection {
  kind: "postgres";
  url: string;
  tls: "verify-full" | "disable";
  hyperdrive?: string;
  runner_host?: string;
  runner_port?: number;
}

/** What an admin sees: everything but the password. */
export interface ConnectionMeta {
  name: string;
  kind: "postgres";
  host: string;
  port: number;
  database: string;
  username: string;
  tls: "verify-full" | "disable";
  hyperdrive?: string;
  runner_host: string;
  runner_port: number;
}

/** The parts of a postgres URL. */
export interface ParsedPostgresUrl {
  host: string;
  port: number;
  database: string;
  username: string;
  password: string;
}

const BINDING = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const HOST = /^(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}$|^\[[0-9A-Fa-f:.]+\]$/;

/** Parses `postgres://user:password@host:port/database`; a problem as a string. */
export function parsePostgresUrl(url: string): ParsedPostgresUrl | string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "url: not a URL";
  }
  if (u.protocol !== "postgres:" && u.protocol !== "postgresql:")
    return "url: use postgres://user:password@host:port/database";
  if (u.search || u.hash) return "url: no query or fragment (TLS is the tls field)";
  if (!u.hostname) return "url: no host";
  if (!u.username) return "url: no user name";
  let username: string;
  let password: string;
  let database: string;
  try {
    username = decodeURIComponent(u.username);
    password = decodeURIComponent(u.password);
    database = decodeURIComponent(u.pathname.replace(/^\//, ""));
  } catch {
    return "url: bad percent-encoding";
  }
  if (database.includes("/")) return "url: the path is the database name alone";
  const port = u.port ? Number(u.port) : 5432;
  return { host: u.hostname, port, database: database || username, username, password };
}

/**
 * A host as the WHATWG URL parser spells it for http — any IPv4 notation (2130706433, 0x7f.1, 127.1) as a dotted
 * quad, IPv6 compressed and bracketed, lowercase — without a trailing dot. The postgres: scheme's parser leaves all
 * of these as typed, so the address checks below compare this form instead.
 */
export function canonicalHost(host: string): string {
  const h = host.toLowerCase().replace(/\.$/, "");
  try {
    return new URL(`http://${h.includes(":") && !h.startsWith("[") ? `[${h}]` : h}/`).hostname.replace(
      /\.$/,
      "",
    );
  } catch {
    return h;
  }
}

// An IPv4-mapped IPv6 address ([::ffff:7f00:1]) as the IPv4 address it maps, else the host unchanged.
function unmapped(host: string): string {
  const m = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(host);
  if (!m) return host;
  const hi = Number.parseInt(m[1] as string, 16);
  const lo = Number.parseInt(m[2] as string, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

// Private, link-local, unique-local, unspecified and loopback addresses in any notation: a deployed Worker cannot
// reach them (docs/grants.md).
function isPrivateAddress(host: string): boolean {
  const h = unmapped(canonicalHost(host)).replace(/^\[|\]$/g, "");
  if (/^(10|127|0)\./.test(h) || /^192\.168\./.test(h) || /^169\.254\./.test(h)) return true;
  if (/^172\.(1[6-9]|2\d|3[01])\./.test(h) || /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./.test(h)) return true;
  if (h.includes(":") && (h === "::1" || h === "::" || /^f[cd]/.test(h) || /^fe[89ab]/.test(h))) return true;
  return h === "localhost" || h.endsWith(".localhost") || h.endsWith(".internal") || h.endsWith(".local");
}

/**
 * Checks a PUT body against the TLS rules: `verify-full` to public hosts (the only TLS Workers' sockets offer);
 * `disable` only for a loopback host under RUNPASS_DEV=1; private hosts through a Hyperdrive binding. Returns the
 * record to store, or a problem.
 */
export function checkConnection(input: ConnectionInput, dev: boolean): StoredConnection | string {
  const parsed = parsePostgresUrl(input.url);
  if (typeof parsed === "string") return parsed;
  if (!parsed.password && !input.hyperdrive) return "url: the admin role's password is missing";
  const tls = input.tls ?? "verify-full";
  if (input.hyperdrive !== undefined && !BINDING.test(input.hyperdrive)) return "hyperdrive: a binding name";
  if (tls === "disable") {
    if (!dev || !isLoopbackHost(parsed.host)) {
      return 'tls: "disable" only for a loopback host under RUNPASS_DEV=1 (Workers offer verify-full TLS)';
    }
  } else if (input.hyperdrive === undefined && !dev && isPrivateAddress(parsed.host)) {
    return "url: a deployed Worker cannot reach private or loopback hosts; reach it through a Hyperdrive binding over a Tunnel ('hyperdrive', docs/grants.md)";
  }
  if (input.runner_host !== undefined && (!HOST.test(input.runner_host) || input.runner_host.length > 253)) {
    return "runner_host: a host name or address";
  }
  // Plaintext is for a database on this machine: runners must not be sent across a network without TLS either.
  if (tls === "disable" && input.runner_host !== undefined && !isLoopbackHost(input.runner_host)) {
    return 'runner_host: with tls "disable" it must be a loopback host too';
  }
  const validPort = (p: number) => Number.isInteger(p) && p >= 1 && p <= 65535;
  if (!validPort(parsed.port)) return "url: port 1–65535";
  if (input.runner_port !== undefined && !validPort(input.runner_port)) return "runner_port: 1–65535";
  return {
    kind: "postgres",
    url: input.url,
    tls,
    ...(input.hyperdrive !== undefined ? { hyperdrive: input.hyperdrive } : {}),
    ...(input.runner_host !== undefined ? { runner_host: input.runner_host } : {}),
    ...(input.runner_port !== undefined ? { runner_port: input.runner_port } : {}),
  };
}

/** The admin view of a stored connection. */
export function connectionMeta(name: string, c: StoredConnection): ConnectionMeta {
  const p = parsePostgresUrl(c.url);
  const parsed = typeof p === "string" ? { host: "", port: 0, database: "", username: "", password: "" } : p;
  const endpoint = runnerEndpoint(c);
  return {
    name,
    kind: c.kind,
    host: parsed.host,
    port: parsed.port,
    database: parsed.database,
    username: parsed.username,
    tls: c.tls,
    ...(c.hyperdrive !== undefined ? { hyperdrive: c.hyperdrive } : {}),
    runner_host: endpoint.host,
    runner_port: endpoint.port,
  };
}

/** Where runners connect: runner_host/runner_port, else the URL's. */
export function runnerEndpoint(c: StoredConnection): PostgresEndpoint {
  const p = parsePostgresUrl(c.url);
  const host = typeof p === "string" ? "" : p.host.replace(/^\[|\]$/g, "");
  return {
    // Unbracketed: postgresUrl brackets an IPv6 address itself, and PGHOST takes it bare.
    host: (c.runner_host ?? host).replace(/^\[|\]$/g, ""),
    port: c.runner_port ?? (typeof p === "string" ? 5432 : p.port),
    database: typeof p === "string" ? "" : p.database,
    sslmode: c.tls,
  };
}

/** The stored URL with another password (rotate-root). */
export function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = encodeURIComponent(password);
  return u.toString();
}
