// `runpass admin …`: where the admin API is and how to call it (revocation, leases, secrets).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { checkBrokerUrl } from "../client/broker-url.ts";
import { isLoopbackHost } from "../core/loopback.ts";
import { devBaseUrl, devPort } from "./dev-keys.ts";

export interface AdminTarget {
  url: string;
  token: string;
}

/**
 * Where and as whom: --url or RUNPASS_URL (default the local broker); RUNPASS_ADMIN_TOKEN, or the local
 * broker's generated admin token from .dev/keys.json when talking to a loopback URL. The URL must be https, or
 * http to a loopback host (throws BrokerUrlError otherwise): the admin token never travels in clear text.
 */
export function adminTarget(root: string, url: string | undefined): AdminTarget {
  const base = checkBrokerUrl(
    url ?? process.env.RUNPASS_URL ?? devBaseUrl(devPort()),
    url === undefined && process.env.RUNPASS_URL ? "RUNPASS_URL" : "the broker URL",
  );
  let token = process.env.RUNPASS_ADMIN_TOKEN;
  const keysFile = join(root, ".dev", "keys.json");
  if (!token && isLocalBroker(base) && existsSync(keysFile)) {
    token = (JSON.parse(readFileSync(keysFile, "utf8")) as { adminToken?: string }).adminToken;
  }
  if (!token) throw new Error("set RUNPASS_ADMIN_TOKEN (the broker's admin bearer token)");
  return { url: base, token };
}

/** The local dev broker: plain http to a loopback host at the root path (its .dev/keys.json admin token is for it only). */
function isLocalBroker(base: string): boolean {
  const u = new URL(base);
  return u.protocol === "http:" && isLoopbackHost(u.hostname) && u.pathname === "/";
}

/** Where a redirect points, as it may be shown: scheme, host and path (no userinfo or query). */
function whereTo(location: string | null, base: string): string {
  if (!location) return "";
  try {
    const u = new URL(location, base);
    return ` to ${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "";
  }
}

/** The broker answered with an error status (as opposed to being unreachable or misconfigured locally). */
export class BrokerError extends Error {
  readonly status: number;
  /** The wire error code (`not_found`, `invalid_request`, …), or "error" when the body had none. */
  readonly code: string;

  constructor(status: number, code: string, description: string) {
    super(`${status} ${code}: ${description}`);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls the admin API; returns the parsed JSON body (`{}` for an empty one) or throws a BrokerError with the
 * broker's error description. `headers` are sent in addition to authorization and content-type. A redirect is
 * never followed (BrokerError, code `redirect`): it would re-send the admin token and the body elsewhere.
 */
export async function adminCall(
  target: AdminTarget,
  path: string,
  init: RequestInit = {},
  headers: Record<string, string> = {},
): Promise<unknown> {
  const res = await fetch(`${target.url}${path}`, {
    ...init,
    headers: {
      ...headers,
      authorization: `Bearer ${target.token}`,
      ...(init.body ? { "content-type": "application/json" } : {}),
    },
    redirect: "manual",
  });
  if (res.status >= 300 && res.status < 400) {
    await res.body?.cancel();
    throw new BrokerError(
      res.status,
      "redirect",
      `the broker answered with a redirect${whereTo(res.headers.get("location"), target.url)}; runpass never re-sends the admin token or a secret value to another URL — give the final URL with --url or RUNPASS_URL`,
    );
  }
  const body = (await res.json().catch(() => ({}))) as { error?: string; error_description?: string };
  if (!res.ok) {
    throw new BrokerError(
      res.status,
      body.error ?? "error",
      body.error_description ?? "the broker refused the request",
    );
  }
  return body;
}
