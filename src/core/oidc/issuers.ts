// Trusted OIDC issuers: the github/gitlab presets, custom issuers from issuers.yaml, and URL rules.

import type { JWK } from "jose";
import { DEFAULT_MAX_TOKEN_AGE_SECONDS } from "../constants.ts";
import { isLoopbackHost } from "../loopback.ts";

export type IssuerKind = "github" | "gitlab" | "generic";

/** One issuer runpass may trust, exactly as compiled into the policy bundle. */
export interface IssuerConfig {
  /** Name used in policies and run keys (`github`, `gitlab`, or an issuers.yaml key). */
  name: string;
  /** The exact `iss` string; compared byte for byte. */
  url: string;
  kind: IssuerKind;
  /** Key set URL; when absent it comes from `<url>/.well-known/openid-configuration`. */
  jwksUri?: string;
  /** Bound on now − iat, seconds. */
  maxTokenAge: number;
  /** Signature algorithms accepted from this issuer. */
  algorithms: string[];
  /** Static public keys (only the local dev issuer has these; nothing is fetched for it). */
  jwks?: { keys: JWK[] };
}

/** Algorithms a generic issuer may be configured with. `none` and HMAC are never accepted. */
export const ASYMMETRIC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "EdDSA",
];

/** The built-in issuers. */
export const PRESET_ISSUERS: Record<"github" | "gitlab", IssuerConfig> = {
  github: {
    name: "github",
    url: "https://token.actions.githubusercontent.com",
    kind: "github",
    maxTokenAge: DEFAULT_MAX_TOKEN_AGE_SECONDS.github,
    algorithms: ["RS256"],
  },
  gitlab: {
    name: "gitlab",
    url: "https://gitlab.com",
    kind: "gitlab",
    maxTokenAge: DEFAULT_MAX_TOKEN_AGE_SECONDS.gitlab,
    algorithms: ["RS256"],
  },
};

/** Name of the local development issuer (exists only in dev builds). */
export const DEV_ISSUER_NAME = "dev";

/** Names issuers.yaml may not define. */
export const RESERVED_ISSUER_NAMES = new Set(["github", "gitlab", DEV_ISSUER_NAME]);

/** Issuer names end up in run keys (`github:<name>:…`), so no colons or spaces. */
export const ISSUER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Checks an issuer or JWKS URL: https, or http on loopback when `dev`. Returns a problem, or undefined when fine. */
export function checkIssuerUrl(url: string, dev: boolean): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `"${url}" is not a URL`;
  }
  if (parsed.username || parsed.password) return `"${url}" must not carry credentials`;
  if (parsed.search || parsed.hash || url.includes("?") || url.includes("#"))
    return `"${url}" must not have a query or fragment`;
  if (parsed.protocol === "https:") return undefined;
  if (parsed.protocol === "http:") {
    if (!dev)
      return `"${url}" is plain http: issuers must use https (http is allowed only for loopback when RUNPASS_DEV=1)`;
    if (!isLoopbackHost(parsed.hostname))
      return `"${url}" is plain http on a non-loopback host: only loopback may use http, and only when RUNPASS_DEV=1`;
    return undefined;
  }
  return `"${url}" must be https`;
}

/** Where to find an issuer's discovery document (OIDC Discovery §4: append to the issuer, no double slash). */
export function discoveryUrl(issuerUrl: string): string {
  return `${issuerUrl.replace(/\/+$/, "")}/.well-known/openid-configuration`;
}
