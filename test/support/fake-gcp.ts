// A local Google Security Token Service and IAM Credentials API for tests, speaking their wire protocols:
// POST /v1/token (RFC 8693 token exchange, form or JSON) verifying the subject JWT the way a workload identity
// pool's OIDC provider does (uploaded JWKS, issuer, allowed audiences, expiry, signature, google.subject =
// assertion.sub within 127 bytes, an attribute condition), and POST /v1/projects/-/serviceAccounts/{sa}
// :generateAccessToken checking the federated token and the service account's roles/iam.workloadIdentityUser
// members. Errors in Google's shapes. Tests register providers and service accounts, inject throttling or
// outages per provider / service account, and read back every call.

import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  type JSONWebKeySet,
  errors as joseErrors,
  jwtVerify,
} from "jose";
import { LocalServer, readBody, sendJson } from "./local-server.ts";

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
const SUBJECT_TOKEN_TYPES = [
  "urn:ietf:params:oauth:token-type:jwt",
  "urn:ietf:params:oauth:token-type:id_token",
];
const CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform";
/** Federated tokens live an hour at most, and no longer than the credential they were exchanged for. */
const FEDERATED_MAX_SECONDS = 3600;
const MAX_SERVICE_ACCOUNT_LIFETIME = 3600;
const MAX_SUBJECT_BYTES = 127;
/** Google refuses OIDC tokens whose lifetime (exp - iat) is over a day. */
const MAX_ASSERTION_LIFETIME = 24 * 3600;

export type GcpMode = "ok" | "throttle" | "down";

interface Provider {
  /** `//iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<id>`. */
  name: string;
  issuer: string;
  jwks: ReturnType<typeof createLocalJWKSet>;
  allowedAudiences: string[];
  /** The attribute condition, as `assertion.sub.startsWith('<prefix>')`. */
  subjectPrefix?: string;
  /**
   * How long federated tokens live: with the assertion (capped at 1 h, the behaviour runpass relies on), or always
   * a full hour (a Google that ignored the assertion's expiry; runpass must then refuse to deliver).
   */
  federatedLifetime: "assertion" | "hour";
}

interface Federated {
  pool: string;
  subject: string;
  policy?: string;
  scopes: string[];
  expiresAt: number;
}

interface Fault {
  mode: GcpMode;
  remaining: number | undefined;
}

export interface GcpRecord {
  api: "sts" | "iamcredentials";
  /** STS: the audience; IAM Credentials: the service account. */
  target: string;
  status: number;
  /** Google's error code (`invalid_grant`) or status (`PERMISSION_DENIED`). */
  error?: string;
  errorDescription?: string;
  /** STS: the subject JWT's claims, decoded without verification, for inspection. */
  claims?: Record<string, unknown>;
  scope?: string | string[];
  lifetime?: string;
  /** Seconds the issued token lives. */
  expiresIn?: number;
  /** Digest-free marker that a token was issued (never the token itself). */
  issued: boolean;
}

class GoogleError extends Error {
  readonly status: number;
  readonly code: string;
  readonly shape: "oauth" | "api";
  constructor(status: number, code: string, message: string, shape: "oauth" | "api") {
    super(message);
    this.status = status;
    this.code = code;
    this.shape = shape;
  }
}

const oauthError = (status: number, error: string, description: string) =>
  new GoogleError(status, error, description, "oauth");
const apiError = (status: number, code: string, message: string) =>
  new GoogleError(status, code, message, "api");

/** Fields of a form or JSON body, snake_case or camelCase (gRPC transcoding accepts both). */
function fields(req: IncomingMessage, text: string): Record<string, string> {
  const type = req.headers["content-type"] ?? "";
  if (type.startsWith("application/json")) {
    const json = JSON.parse(text || "{}") as Record<string, unknown>;
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(json)) {
      if (typeof v === "string") out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
    }
    return out;
  }
  return Object.fromEntries(new URLSearchParams(text));
}

export class FakeGcp extends LocalServer {
  readonly #providers = new Map<string, Provider>();
  /** service account email → roles/iam.workloadIdentityUser members. */
  readonly #serviceAccounts = new Map<string, string[]>();
  readonly #federated = new Map<string, Federated>();
  readonly #faults = new Map<string, Fault>();
  readonly #records: GcpRecord[] = [];

  protected internalError(res: ServerResponse): void {
    this.#send(res, apiError(500, "INTERNAL", "Internal error encountered."));
  }

  #send(res: ServerResponse, e: GoogleError): void {
    res.writeHead(e.status, { "content-type": "application/json; charset=UTF-8" });
    res.end(
      JSON.stringify(
        e.shape === "oauth"
          ? { error: e.code, error_description: e.message }
          : { error: { code: e.status, message: e.message, status: e.code } },
      ),
    );
  }

  /** Throws the configured fault for `key`, counting it down. */
  #fault(key: string, shape: "oauth" | "api"): void {
    const fault = this.#faults.get(key);
    if (!fault || fault.mode === "ok") return;
    if (fault.remaining !== undefined && --fault.remaining <= 0) this.#faults.delete(key);
    if (fault.mode === "throttle") {
      throw shape === "oauth"
        ? oauthError(429, "rate_limit_exceeded", "Quota exceeded for quota metric 'Token exchange requests'.")
        : apiError(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Generate credentials requests'.",
          );
    }
    throw shape === "oauth"
      ? oauthError(503, "temporarily_unavailable", "The service is currently unavailable.")
      : apiError(503, "UNAVAILABLE", "The service is currently unavailable.");
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.base);
    const json = (status: number, body: unknown) => sendJson(res, status, body);

    // Control plane (tests only).
    if (url.pathname === "/__requests" && req.method === "GET") {
      const target = url.searchParams.get("target");
      return json(200, target === null ? this.#records : this.#records.filter((r) => r.target === target));
    }
    if (url.pathname === "/__control/provider" && req.method === "POST") {
      const body = JSON.parse(await readBody(req)) as {
        name: string;
        issuer: string;
        jwks: JSONWebKeySet;
        allowedAudiences?: string[];
        subjectPrefix?: string;
        federatedLifetime?: "assertion" | "hour";
      };
      this.#providers.set(body.name, {
        name: body.name,
        issuer: body.issuer,
        jwks: createLocalJWKSet(body.jwks),
        // Google's default when a provider lists no allowed audiences: its own resource name, with https: too.
        allowedAudiences: body.allowedAudiences ?? [body.name, `https:${body.name}`],
        ...(body.subjectPrefix !== undefined ? { subjectPrefix: body.subjectPrefix } : {}),
        federatedLifetime: body.federatedLifetime ?? "assertion",
      });
      return json(200, {});
    }
    if (url.pathname === "/__control/service-account" && req.method === "POST") {
      const body = JSON.parse(await readBody(req)) as { email: string; members: string[] };
      this.#serviceAccounts.set(body.email, body.members);
      return json(200, {});
    }
    if (url.pathname === "/__control/fault" && req.method === "POST") {
      const body = JSON.parse(await readBody(req)) as { target: string; mode: GcpMode; times?: number };
      this.#faults.set(body.target, { mode: body.mode, remaining: body.times });
      return json(200, {});
    }
    if (url.pathname.startsWith("/__")) return json(404, { error: "not found" });

    const text = await readBody(req);
    if (url.pathname === "/v1/token" && req.method === "POST") return this.#sts(req, res, text);
    const m = /^\/v1\/projects\/-\/serviceAccounts\/([^/:]+):generateAccessToken$/.exec(url.pathname);
    if (m && req.method === "POST") return this.#generate(req, res, text, decodeURIComponent(m[1] as string));
    this.#send(
      res,
      apiError(404, "NOT_FOUND", `The requested URL ${url.pathname} was not found on this server.`),
    );
  }

  async #sts(req: IncomingMessage, res: ServerResponse, text: string): Promise<void> {
    const f = fields(req, text);
    const record: GcpRecord = { api: "sts", target: f.audience ?? "", status: 200, issued: false };
    if (f.scope !== undefined) record.scope = f.scope;
    try {
      if (f.subject_token) record.claims = decodeJwt(f.subject_token) as Record<string, unknown>;
    } catch {
      // Recorded as undecodable; verification reports it.
    }
    this.#records.push(record);
    try {
      const body = await this.#exchange(f);
      record.issued = true;
      record.expiresIn = body.expires_in;
      res.writeHead(200, { "content-type": "application/json; charset=UTF-8" });
      res.end(JSON.stringify(body));
    } catch (e) {
      const err = e instanceof GoogleError ? e : oauthError(500, "server_error", "Internal error.");
      record.status = err.status;
      record.error = err.code;
      record.errorDescription = err.message;
      this.#send(res, err);
    }
  }

  async #exchange(f: Record<string, string>) {
    if (f.grant_type !== TOKEN_EXCHANGE)
      throw oauthError(
        400,
        "unsupported_grant_type",
        `Invalid value for "grant_type": ${f.grant_type ?? ""}`,
      );
    if (f.requested_token_type !== ACCESS_TOKEN_TYPE)
      throw oauthError(400, "invalid_request", 'Invalid value for "requested_token_type".');
    if (!SUBJECT_TOKEN_TYPES.includes(f.subject_token_type ?? ""))
      throw oauthError(400, "invalid_request", 'Invalid value for "subject_token_type".');
    if (!f.subject_token) throw oauthError(400, "invalid_request", 'Missing required field "subject_token".');
    if (!f.scope) throw oauthError(400, "invalid_scope", "Scope(s) must be provided.");
    const provider = this.#providers.get(f.audience ?? "");
    if (!provider) {
      throw oauthError(
        400,
        "invalid_target",
        `The target service indicated by the "audience" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.`,
      );
    }
    this.#fault(provider.name, "oauth");

    let header: { alg?: string };
    let unverified: Record<string, unknown>;
    try {
      header = decodeProtectedHeader(f.subject_token);
      unverified = decodeJwt(f.subject_token) as Record<string, unknown>;
    } catch {
      throw oauthError(400, "invalid_grant", "Unable to parse the ID Token.");
    }
    if (header.alg !== "RS256" && header.alg !== "ES256")
      throw oauthError(
        400,
        "invalid_grant",
        `The ID Token's signing algorithm ${header.alg} is not supported.`,
      );
    if (unverified.iss !== provider.issuer) {
      throw oauthError(
        400,
        "invalid_grant",
        `The issuer in ID Token ${String(unverified.iss)} does not match the expected value: ${provider.issuer}`,
      );
    }
    const auds = Array.isArray(unverified.aud) ? unverified.aud : [unverified.aud];
    if (!auds.some((a) => typeof a === "string" && provider.allowedAudiences.includes(a))) {
      throw oauthError(
        400,
        "invalid_grant",
        `The audience in ID Token [${auds.join(",")}] does not match the expected audience.`,
      );
    }
    let claims: Record<string, unknown>;
    try {
      ({ payload: claims } = await jwtVerify(f.subject_token, provider.jwks, {
        issuer: provider.issuer,
        requiredClaims: ["exp", "iat", "sub"],
        clockTolerance: 0,
      }));
    } catch (e) {
      if (e instanceof joseErrors.JWTExpired) throw oauthError(400, "invalid_grant", "ID Token expired.");
      throw oauthError(400, "invalid_grant", "Invalid JWT signature.");
    }
    const now = Math.floor(Date.now() / 1000);
    const exp = Number(claims.exp);
    if (exp - Number(claims.iat) > MAX_ASSERTION_LIFETIME)
      throw oauthError(400, "invalid_grant", "The lifetime of the ID Token must be less than 24 hours.");
    // Attribute mapping: google.subject = assertion.sub, attribute.policy = assertion.policy.
    const subject = String(claims.sub);
    if (Buffer.byteLength(subject) > MAX_SUBJECT_BYTES) {
      throw oauthError(
        400,
        "invalid_grant",
        `The size of mapped attribute google.subject exceeds the ${MAX_SUBJECT_BYTES} bytes limit. Either modify your attribute mapping or the incoming assertion to produce a mapped attribute that is less than ${MAX_SUBJECT_BYTES} bytes.`,
      );
    }
    if (provider.subjectPrefix !== undefined && !subject.startsWith(provider.subjectPrefix)) {
      throw oauthError(
        400,
        "unauthorized_client",
        "The given credential is rejected by the attribute condition.",
      );
    }
    const expiresIn =
      provider.federatedLifetime === "hour"
        ? FEDERATED_MAX_SECONDS
        : Math.min(FEDERATED_MAX_SECONDS, exp - now);
    const token = `ya29.d.${randomBytes(96).toString("base64url")}`;
    this.#federated.set(token, {
      pool: provider.name.slice("//iam.googleapis.com/".length).replace(/\/providers\/[^/]+$/, ""),
      subject,
      ...(typeof claims.policy === "string" ? { policy: claims.policy } : {}),
      scopes: (f.scope ?? "").split(" "),
      expiresAt: now + expiresIn,
    });
    return {
      access_token: token,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: "Bearer",
      expires_in: expiresIn,
    };
  }

  async #generate(req: IncomingMessage, res: ServerResponse, text: string, sa: string): Promise<void> {
    const record: GcpRecord = { api: "iamcredentials", target: sa, status: 200, issued: false };
    this.#records.push(record);
    try {
      const body = JSON.parse(text || "{}") as { scope?: unknown; lifetime?: unknown };
      if (Array.isArray(body.scope)) record.scope = body.scope as string[];
      if (typeof body.lifetime === "string") record.lifetime = body.lifetime;
      const out = this.#generateToken(req, sa, body);
      record.issued = true;
      record.expiresIn = out.seconds;
      res.writeHead(200, { "content-type": "application/json; charset=UTF-8" });
      res.end(JSON.stringify(out.body));
    } catch (e) {
      const err =
        e instanceof GoogleError ? e : apiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
      record.status = err.status;
      record.error = err.code;
      record.errorDescription = err.message;
      this.#send(res, err);
    }
  }

  #generateToken(req: IncomingMessage, sa: string, body: { scope?: unknown; lifetime?: unknown }) {
    const auth = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "");
    const federated = auth ? this.#federated.get(auth[1] as string) : undefined;
    const now = Math.floor(Date.now() / 1000);
    if (!federated || federated.expiresAt <= now) {
      throw apiError(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
      );
    }
    if (!federated.scopes.includes(CLOUD_PLATFORM))
      throw apiError(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.");
    this.#fault(sa, "api");
    const members = this.#serviceAccounts.get(sa);
    if (!members) throw apiError(404, "NOT_FOUND", `Not found; Gaia id not found for email ${sa}`);
    const principal = `principal://iam.googleapis.com/${federated.pool}/subject/${federated.subject}`;
    const byPolicy =
      federated.policy !== undefined
        ? `principalSet://iam.googleapis.com/${federated.pool}/attribute.policy/${federated.policy}`
        : undefined;
    if (!members.includes(principal) && (byPolicy === undefined || !members.includes(byPolicy))) {
      throw apiError(
        403,
        "PERMISSION_DENIED",
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
      );
    }
    if (!Array.isArray(body.scope) || body.scope.length === 0)
      throw apiError(400, "INVALID_ARGUMENT", "Scope required.");
    let seconds = MAX_SERVICE_ACCOUNT_LIFETIME;
    if (body.lifetime !== undefined) {
      const m = typeof body.lifetime === "string" ? /^(\d+)(?:\.\d+)?s$/.exec(body.lifetime) : null;
      if (!m)
        throw apiError(400, "INVALID_ARGUMENT", `Invalid value at 'lifetime' (${String(body.lifetime)})`);
      seconds = Number(m[1]);
      if (seconds > MAX_SERVICE_ACCOUNT_LIFETIME) {
        throw apiError(
          400,
          "INVALID_ARGUMENT",
          `The lifetime requested (${seconds}s) exceeds the maximum allowed lifetime of ${MAX_SERVICE_ACCOUNT_LIFETIME}s.`,
        );
      }
    }
    return {
      seconds,
      body: {
        accessToken: `ya29.c.${randomBytes(96).toString("base64url")}`,
        expireTime: new Date((now + seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"),
      },
    };
  }
}
