// A local Microsoft Entra ID token endpoint for tests, speaking its wire protocol: POST
// /{tenant}/oauth2/v2.0/token with grant_type=client_credentials and a client assertion, checked the way Entra
// checks a federated identity credential (issuer, subject and audience matched exactly, RS256 only, signature
// against the issuer's JWKS, expiry, at most a day's lifetime) and answered with Entra's token response or its
// AADSTS error bodies. Tests register apps and their federated credentials, inject throttling or outages per
// app, and read back every call.

import { randomBytes, randomUUID } from "node:crypto";
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

const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/** Entra refuses external tokens living longer than 1 day and 1 hour. */
const MAX_ASSERTION_LIFETIME = 25 * 3600;
/** Entra's app tokens live 60–90 minutes; the fake answers 70 minutes unless told otherwise. */
const DEFAULT_TOKEN_SECONDS = 70 * 60;

export type AzureMode = "ok" | "throttle" | "down";

interface FederatedCredential {
  issuer: string;
  subject: string;
  audiences: string[];
}

interface App {
  tenant: string;
  clientId: string;
  credentials: FederatedCredential[];
  tokenSeconds: number;
}

export interface AzureRecord {
  tenant: string;
  clientId: string;
  scope?: string;
  status: number;
  error?: string;
  /** The AADSTS code, e.g. 700213. */
  errorCode?: number;
  errorDescription?: string;
  /** The client assertion's header alg and claims, decoded without verification, for inspection. */
  alg?: string;
  claims?: Record<string, unknown>;
  expiresIn?: number;
  issued: boolean;
}

class EntraError extends Error {
  readonly status: number;
  readonly error: string;
  readonly code: number;
  readonly retryAfter: number | undefined;
  constructor(status: number, error: string, code: number, message: string, retryAfter?: number) {
    super(message);
    this.status = status;
    this.error = error;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export class FakeAzure extends LocalServer {
  /** `${tenant}/${clientId}` → app. */
  readonly #apps = new Map<string, App>();
  readonly #jwks = new Map<string, ReturnType<typeof createLocalJWKSet>>();
  readonly #faults = new Map<string, { mode: AzureMode; remaining: number | undefined }>();
  readonly #records: AzureRecord[] = [];

  protected internalError(res: ServerResponse): void {
    this.#send(res, new EntraError(500, "server_error", 90033, "An internal error occurred."));
  }

  #send(res: ServerResponse, e: EntraError): void {
    const trace = randomUUID();
    const correlation = randomUUID();
    const timestamp = new Date()
      .toISOString()
      .replace("T", " ")
      .replace(/\.\d{3}Z$/, "Z");
    res.writeHead(e.status, {
      "content-type": "application/json; charset=utf-8",
      ...(e.retryAfter !== undefined ? { "retry-after": String(e.retryAfter) } : {}),
    });
    res.end(
      JSON.stringify({
        error: e.error,
        error_description: `AADSTS${e.code}: ${e.message} Trace ID: ${trace} Correlation ID: ${correlation} Timestamp: ${timestamp}`,
        error_codes: [e.code],
        timestamp,
        trace_id: trace,
        correlation_id: correlation,
        error_uri: `https://login.microsoftonline.com/error?code=${e.code}`,
      }),
    );
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.base);
    const json = (status: number, body: unknown) => sendJson(res, status, body);

    // Control plane (tests only).
    if (url.pathname === "/__requests" && req.method === "GET") {
      const clientId = url.searchParams.get("clientId");
      return json(
        200,
        clientId === null ? this.#records : this.#records.filter((r) => r.clientId === clientId),
      );
    }
    if (url.pathname === "/__control/issuer" && req.method === "POST") {
      // Entra fetches the issuer's discovery document and JWKS; the broker under test is not reachable over
      // HTTP from here, so its JWKS is handed over instead.
      const body = JSON.parse(await readBody(req)) as { issuer: string; jwks: JSONWebKeySet };
      this.#jwks.set(body.issuer, createLocalJWKSet(body.jwks));
      return json(200, {});
    }
    if (url.pathname === "/__control/app" && req.method === "POST") {
      const body = JSON.parse(await readBody(req)) as {
        tenant: string;
        clientId: string;
        credentials: Array<{ issuer: string; subject: string; audiences?: string[] }>;
        tokenSeconds?: number;
      };
      this.#apps.set(`${body.tenant}/${body.clientId}`, {
        tenant: body.tenant,
        clientId: body.clientId,
        credentials: body.credentials.map((c) => ({
          issuer: c.issuer,
          subject: c.subject,
          audiences: c.audiences ?? ["api://AzureADTokenExchange"],
        })),
        tokenSeconds: body.tokenSeconds ?? DEFAULT_TOKEN_SECONDS,
      });
      return json(200, {});
    }
    if (url.pathname === "/__control/fault" && req.method === "POST") {
      const body = JSON.parse(await readBody(req)) as { clientId: string; mode: AzureMode; times?: number };
      this.#faults.set(body.clientId, { mode: body.mode, remaining: body.times });
      return json(200, {});
    }
    if (url.pathname.startsWith("/__")) return json(404, { error: "not found" });

    const m = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname);
    if (!m || req.method !== "POST") {
      return this.#send(
        res,
        new EntraError(404, "invalid_request", 900561, "The endpoint only accepts POST requests."),
      );
    }
    const tenant = decodeURIComponent(m[1] as string);
    const form = new URLSearchParams(await readBody(req));
    const record: AzureRecord = {
      tenant,
      clientId: form.get("client_id") ?? "",
      status: 200,
      issued: false,
    };
    if (form.get("scope") !== null) record.scope = form.get("scope") as string;
    const assertion = form.get("client_assertion");
    try {
      if (assertion) {
        record.alg = decodeProtectedHeader(assertion).alg;
        record.claims = decodeJwt(assertion) as Record<string, unknown>;
      }
    } catch {
      // Recorded as undecodable; verification reports it.
    }
    this.#records.push(record);
    try {
      const body = await this.#token(tenant, form);
      record.issued = true;
      record.expiresIn = body.expires_in;
      res.writeHead(200, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    } catch (e) {
      const err =
        e instanceof EntraError
          ? e
          : new EntraError(500, "server_error", 90033, "An internal error occurred.");
      record.status = err.status;
      record.error = err.error;
      record.errorCode = err.code;
      record.errorDescription = err.message;
      this.#send(res, err);
    }
  }

  async #token(tenant: string, form: URLSearchParams) {
    if (form.get("grant_type") !== "client_credentials") {
      throw new EntraError(
        400,
        "unsupported_grant_type",
        70003,
        "The app requested an unsupported grant type.",
      );
    }
    const clientId = form.get("client_id") ?? "";
    const app = this.#apps.get(`${tenant}/${clientId}`);
    if (!app) {
      throw new EntraError(
        400,
        "unauthorized_client",
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenant}'.`,
      );
    }
    const fault = this.#faults.get(clientId);
    if (fault && fault.mode !== "ok") {
      if (fault.remaining !== undefined && --fault.remaining <= 0) this.#faults.delete(clientId);
      if (fault.mode === "throttle")
        throw new EntraError(
          429,
          "temporarily_unavailable",
          50196,
          "The server is temporarily throttling requests.",
          1,
        );
      throw new EntraError(
        503,
        "temporarily_unavailable",
        90033,
        "A transient error has occurred. Please try again.",
      );
    }
    if (form.get("client_assertion_type") !== JWT_BEARER) {
      throw new EntraError(
        400,
        "invalid_request",
        900144,
        "The request body must contain the following parameter: 'client_assertion_type'.",
      );
    }
    const scope = form.get("scope") ?? "";
    if (!scope.endsWith("/.default")) {
      throw new EntraError(
        400,
        "invalid_scope",
        1002012,
        `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      );
    }
    const assertion = form.get("client_assertion") ?? "";
    let alg: string | undefined;
    let claims: Record<string, unknown>;
    try {
      alg = decodeProtectedHeader(assertion).alg;
      claims = decodeJwt(assertion) as Record<string, unknown>;
    } catch {
      throw new EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.");
    }
    if (alg !== "RS256") {
      throw new EntraError(
        401,
        "invalid_client",
        5002738,
        `Invalid JWT token. '${alg}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256,RS384,RS512'`,
      );
    }
    // Federated identity credentials match issuer, subject and audience exactly (case-sensitive).
    const byIssuer = app.credentials.filter((c) => c.issuer === claims.iss);
    if (byIssuer.length === 0) {
      throw new EntraError(
        400,
        "invalid_client",
        700211,
        `No matching federated identity record found for presented assertion issuer '${String(claims.iss)}'.`,
      );
    }
    const bySubject = byIssuer.filter((c) => c.subject === claims.sub);
    if (bySubject.length === 0) {
      throw new EntraError(
        400,
        "invalid_client",
        700213,
        `No matching federated identity record found for presented assertion subject '${String(claims.sub)}'. Please note that the matching is done using a case-sensitive comparison.`,
      );
    }
    const auds = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!bySubject.some((c) => auds.some((a) => c.audiences.includes(a as string)))) {
      throw new EntraError(
        400,
        "invalid_client",
        700212,
        `No matching federated identity record found for presented assertion audience '${auds.join(",")}'.`,
      );
    }
    const jwks = this.#jwks.get(claims.iss as string);
    if (!jwks) {
      throw new EntraError(
        400,
        "invalid_client",
        50166,
        `Request to External OIDC endpoint failed: ${String(claims.iss)}`,
      );
    }
    try {
      await jwtVerify(assertion, jwks, {
        algorithms: ["RS256"],
        issuer: claims.iss as string,
        requiredClaims: ["exp", "sub", "aud"],
        clockTolerance: 0,
      });
    } catch (e) {
      if (e instanceof joseErrors.JWTExpired || e instanceof joseErrors.JWTClaimValidationFailed) {
        throw new EntraError(
          400,
          "invalid_client",
          700024,
          "Client assertion is not within its valid time range.",
        );
      }
      throw new EntraError(401, "invalid_client", 700027, "Client assertion failed signature validation.");
    }
    const lifetime = Number(claims.exp) - Number(claims.iat ?? claims.nbf ?? claims.exp);
    if (lifetime > MAX_ASSERTION_LIFETIME) {
      throw new EntraError(
        400,
        "invalid_request",
        70023,
        "External OIDC Provider token must have a lifetime of less than or equal to 1.01:00:00.",
      );
    }
    return {
      token_type: "Bearer",
      expires_in: app.tokenSeconds,
      ext_expires_in: app.tokenSeconds,
      access_token: `eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.${randomBytes(180).toString("base64url")}.${randomBytes(256).toString("base64url")}`,
    };
  }
}
