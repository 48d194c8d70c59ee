// Where a runpass client may send an OIDC token, a revoke token, an admin token or a secret value: https, or plain
// http only to a loopback broker (the local dev broker). One rule for the runner CLI, the admin CLI, the GitHub
// Action and the shared exchange client (docs/security.md, "Clients"); what counts as loopback is the broker's own
// rule (src/core/loopback.ts). Runtime-neutral: no node: imports.

import { isLoopbackHost, LOOPBACK_HOSTS } from "../core/loopback.ts";

/** Why a broker URL is refused: `invalid_url` (not a base URL) or `insecure_url` (plain http off loopback). */
export type BrokerUrlCode = "invalid_url" | "insecure_url";

/** A refused broker URL. The message names the URL without any userinfo, query or fragment. */
export class BrokerUrlError extends Error {
  readonly code: BrokerUrlCode;

  constructor(code: BrokerUrlCode, message: string) {
    super(message);
    this.name = "BrokerUrlError";
    this.code = code;
  }
}

/** The URL as it may be shown: scheme, host and path only (userinfo could be a credential). */
function shown(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`.replace(/\/+$/, "");
}

/**
 * The broker's base URL (no trailing slash) when credentials may be sent to it: https, or http to a loopback
 * host; no userinfo, query or fragment. Throws BrokerUrlError otherwise, its message starting with `subject`
 * (how the caller names the setting: "input url", "--url", "the state file's url").
 */
export function checkBrokerUrl(raw: string, subject = "the broker URL"): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new BrokerUrlError("invalid_url", `${subject} is not a URL`);
  }
  if (u.protocol !== "https:" && !(u.protocol === "http:" && isLoopbackHost(u.hostname))) {
    throw new BrokerUrlError(
      "insecure_url",
      `${subject} must be https:// (http:// only for a loopback broker: ${LOOPBACK_HOSTS.join(", ")}), not ${shown(u)}`,
    );
  }
  if (u.username || u.password || u.search || u.hash) {
    throw new BrokerUrlError(
      "invalid_url",
      `${subject} must be the broker's base URL, without credentials, query or fragment (${shown(u)})`,
    );
  }
  return `${u.origin}${u.pathname}`.replace(/\/+$/, "");
}
