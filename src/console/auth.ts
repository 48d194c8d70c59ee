// Who is looking at the console (docs/console.md, "Signing in"): a verified Cloudflare Access token when Access is
// configured, otherwise a server-side session started with the admin token. Every POST carries a CSRF token bound
// to the viewer; every refusal is audited and charged to the client's failure limit like the admin API's.

import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { accessTeam, verifyAccessJwt } from "../adapters/cloudflare-access.ts";
import { ConsoleSessions } from "../adapters/console-sessions.ts";
import { requireAuditKey } from "../adapters/env.ts";
import { MAX_BODY_BYTES } from "../core/constants.ts";
import { deriveHmacKey, equalText, hmac } from "../core/crypto.ts";
import { base64url } from "../core/encoding.ts";
import { ConfigError, RunpassError } from "../core/errors.ts";
import { isLoopbackHost } from "../core/loopback.ts";
import { decodeUtf8 } from "../core/read-capped.ts";
import { auditRefusal } from "../http/audit.ts";
import { clientBlocked, refuseOrCharge } from "../http/rate-limit.ts";
import { readBodyBytes, requireMediaType } from "../http/request.ts";
import type { AppEnv } from "../http/types.ts";

/** The signed-in person: the actor of their audit records and the key of their CSRF tokens. */
export interface Viewer {
  actor: string;
  via: "access" | "session";
  csrf: string;
  /** The session's id hash (sign-out ends it). */
  session?: string;
}

/** The viewer of each request past requireViewer (a WeakMap: the request context stays the app's own type). */
const viewers = new WeakMap<Context, Viewer>();

/** The signed-in viewer of this request; only routes behind requireViewer call it. */
export function viewerOf(c: Context): Viewer {
  const viewer = viewers.get(c);
  if (!viewer) throw new Error("viewerOf called on a route without requireViewer");
  return viewer;
}

/** Whether this request reached the broker over loopback (plain http is fine there, so cookies are not Secure). */
export function onLoopback(c: Context): boolean {
  const url = new URL(c.req.url);
  return url.protocol === "http:" && isLoopbackHost(url.hostname);
}

/** The session cookie's name: `__Host-` (Secure, Path=/, no Domain) wherever the console is served over https. */
export function sessionCookieName(c: Context): string {
  return onLoopback(c) ? "runpass_console" : "__Host-runpass_console";
}

/** The pre-sign-in cookie (binds the sign-in form's CSRF token to this browser). */
export function preCookieName(c: Context): string {
  return onLoopback(c) ? "runpass_console_pre" : "__Host-runpass_console_pre";
}

/** Cookie attributes every console cookie gets. */
export function cookieOptions(c: Context, maxAgeSeconds: number) {
  return {
    path: "/",
    httpOnly: true,
    secure: !onLoopback(c),
    sameSite: "Strict" as const,
    maxAge: maxAgeSeconds,
  };
}

const csrfKeys = new Map<string, Promise<CryptoKey>>();

/** The CSRF token for `binding` (a session, an Access identity, a pre-sign-in cookie): HMAC under the audit key. */
export async function csrfToken(c: Context<AppEnv>, binding: string): Promise<string> {
  const secret = requireAuditKey(c.env);
  let key = csrfKeys.get(secret);
  if (!key) {
    key = deriveHmacKey(secret, "runpass console csrf v1");
    if (csrfKeys.size > 4) csrfKeys.clear();
    csrfKeys.set(secret, key);
  }
  return base64url(await hmac(await key, binding));
}

/** Whether Access is configured for the console; one of the two variables alone is a misconfiguration (fail closed). */
export function accessConfig(c: Context<AppEnv>): { team: string; aud: string } | undefined {
  const team = c.env.RUNPASS_ACCESS_TEAM_DOMAIN;
  const aud = c.env.RUNPASS_ACCESS_AUD;
  if (!team && !aud) return undefined;
  if (!team || !aud) {
    throw new ConfigError("set both RUNPASS_ACCESS_TEAM_DOMAIN and RUNPASS_ACCESS_AUD, or neither");
  }
  return { team, aud };
}

/**
 * Whether the admin API accepts Access identities: only with its own RUNPASS_ADMIN_ACCESS_AUD, so a person the
 * console's Access application lets in does not get the admin API too (docs/deploy.md, "Admin access").
 */
export function adminAccessConfig(c: Context<AppEnv>): { team: string; aud: string } | undefined {
  const aud = c.env.RUNPASS_ADMIN_ACCESS_AUD;
  if (!aud) return undefined;
  const team = c.env.RUNPASS_ACCESS_TEAM_DOMAIN;
  if (!team) throw new ConfigError("RUNPASS_ADMIN_ACCESS_AUD needs RUNPASS_ACCESS_TEAM_DOMAIN");
  if (aud === c.env.RUNPASS_ACCESS_AUD) {
    throw new ConfigError(
      "RUNPASS_ADMIN_ACCESS_AUD must be another Access application than RUNPASS_ACCESS_AUD",
    );
  }
  return { team, aud };
}

/** The admin token, or a ConfigError when it is unset or short (the console is closed, as the admin API is). */
export function adminToken(c: Context<AppEnv>): string {
  const expected = c.env.RUNPASS_ADMIN_TOKEN;
  if (!expected || expected.length < 16) {
    throw new ConfigError(
      "RUNPASS_ADMIN_TOKEN is not set (or shorter than 16 characters); the console is closed",
    );
  }
  return expected;
}

/** Audits a refused console request and charges it; returns the 429 instead when the client is over its limit. */
export async function refuseViewer(
  c: Context<AppEnv>,
  blocked: boolean,
  error: RunpassError,
  detail: string,
): Promise<RunpassError> {
  const refusal = await refuseOrCharge(c, blocked, error);
  if (refusal) return refusal;
  return auditRefusal(c, "admin", error, { detail });
}

/**
 * Finds the viewer or answers for it: Access mode refuses without a valid Access token (401 page); session mode
 * sends a browser without a live session to the sign-in page.
 */
export function requireViewer(
  denied: (c: Context<AppEnv>, error: RunpassError) => Response | Promise<Response>,
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const now = c.get("runtime").clock();
    const access = accessConfig(c);
    if (access) {
      const blocked = clientBlocked(c);
      const team = accessTeam(access.team, c.env.RUNPASS_DEV === "1");
      let viewer: Viewer;
      try {
        const id = await verifyAccessJwt(c.req.header("cf-access-jwt-assertion"), team, access.aud, now);
        viewer = {
          actor: id.actor,
          via: "access",
          csrf: await csrfToken(c, `access\0${id.sub}\0${id.actor}`),
        };
      } catch (e) {
        if (!(e instanceof RunpassError)) throw e;
        return denied(c, await refuseViewer(c, blocked, e, `console ${c.req.method} ${c.req.path}`));
      }
      viewers.set(c, viewer);
      return next();
    }
    adminToken(c);
    const sessions = new ConsoleSessions(c.env.AUDIT_DB);
    const session = await sessions.find(getCookie(c, sessionCookieName(c)), now);
    if (!session) {
      if (getCookie(c, sessionCookieName(c)) !== undefined) {
        deleteCookie(c, sessionCookieName(c), { path: "/", secure: !onLoopback(c) });
      }
      const back = c.req.method === "GET" ? c.req.path : "/console";
      return c.redirect(`/console/sign-in?next=${encodeURIComponent(back)}`, 303);
    }
    viewers.set(c, {
      actor: session.actor,
      via: "session",
      csrf: await csrfToken(c, `session\0${session.idHash}`),
      session: session.idHash,
    });
    return next();
  };
}

/** Each request's parsed form (read once: the body is a stream). */
const forms = new WeakMap<Context, URLSearchParams>();

/**
 * A console form post: `application/x-www-form-urlencoded` only (415), at most MAX_BODY_BYTES whether declared or
 * chunked (413, counted while streaming), UTF-8 (400) — never an unbounded or multipart parse (docs/console.md).
 */
export async function readForm(c: Context): Promise<URLSearchParams> {
  const cached = forms.get(c);
  if (cached) return cached;
  requireMediaType(c, "application/x-www-form-urlencoded");
  const bytes = await readBodyBytes(c, MAX_BODY_BYTES);
  let text: string;
  try {
    text = decodeUtf8(bytes);
  } catch {
    throw new RunpassError("invalid_request", "a console form must be UTF-8");
  }
  const form = new URLSearchParams(text);
  forms.set(c, form);
  return form;
}

/**
 * Every state-changing request: a form post from this origin carrying the viewer's CSRF token. The parsed form
 * is kept for the handler (readForm). A missing or wrong token is a 403, audited with the actor.
 */
export function requireCsrf(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.req.method !== "POST") return next();
    const origin = c.req.header("origin");
    const form = await readForm(c);
    const given = form.get("csrf") ?? "";
    const viewer = viewerOf(c);
    // Defence in depth behind the token: browsers say where a form came from. Under `Referrer-Policy: no-referrer`
    // Chromium sends `Origin: null` for same-origin forms, so Sec-Fetch-Site decides when present.
    const site = c.req.header("sec-fetch-site");
    const sameOrigin =
      site !== undefined
        ? site === "same-origin"
        : origin === undefined || origin === "null" || origin === new URL(c.req.url).origin;
    if (!sameOrigin || !equalText(given, viewer.csrf)) {
      const error = new RunpassError(
        "access_denied",
        "this form has expired or did not come from the console; reload and retry",
        { reasons: [{ code: "csrf_token_invalid" }] },
      );
      throw await auditRefusal(c, "admin", error, {
        actor: viewer.actor,
        detail: `console ${c.req.path}: csrf token ${given ? "wrong" : "missing"}${sameOrigin ? "" : ", foreign origin"}`,
      });
    }
    return next();
  };
}

/** Starts a session for `actor` and sets its cookie. */
export async function startSession(c: Context<AppEnv>, actor: string): Promise<void> {
  const now = c.get("runtime").clock();
  const { id, expiresAt } = await new ConsoleSessions(c.env.AUDIT_DB).create(actor, now);
  setCookie(c, sessionCookieName(c), id, cookieOptions(c, Math.floor((expiresAt - now) / 1000)));
}

/** Ends the viewer's session server-side and clears the cookie. */
export async function endSession(c: Context<AppEnv>): Promise<void> {
  const viewer = viewerOf(c);
  if (viewer.session) {
    await new ConsoleSessions(c.env.AUDIT_DB).end(viewer.session, c.get("runtime").clock());
  }
  deleteCookie(c, sessionCookieName(c), { path: "/", secure: !onLoopback(c) });
}
