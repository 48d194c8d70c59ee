// A local GitHub REST API for tests, covering what a GitHub App broker calls: installation lookup by
// repo/org/user, installation access-token minting, and token self-revocation. App endpoints require a
// real RS256 app JWT checked the way GitHub checks it; errors, status codes and rate-limit headers match
// GitHub's. Tests register installations, inject rate limits/outages per installation and read back what
// was minted and revoked.

import { type KeyObject, randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { compactVerify, decodeJwt, decodeProtectedHeader } from "jose";
import { AlertReceivers } from "./alert-receiver.ts";

export const GITHUB_APP_ID = "424242";
const APP_SLUG = "runpass-test";
const DOCS = "https://docs.github.com/rest";
const RATE_LIMIT = 5000;
/** GitHub rejects app JWTs that live longer than this. */
const MAX_JWT_LIFETIME_S = 600;
/** How far in the future `iat` may be (clock drift allowance). */
const MAX_IAT_SKEW_S = 60;

export type Permissions = Record<string, string>;
export type RateLimitMode = "off" | "primary" | "secondary" | "fail";

/** What a fresh installation grants when the test does not say. */
export const DEFAULT_INSTALLATION_PERMISSIONS: Permissions = {
  actions: "write",
  checks: "write",
  contents: "write",
  deployments: "write",
  issues: "write",
  metadata: "read",
  packages: "write",
  pull_requests: "write",
  statuses: "write",
};

interface Installation {
  id: number;
  owner: string;
  accountId: number;
  accountType: "Organization" | "User";
  permissions: Permissions;
  /** Repositories the installation can reach (undefined = all). */
  repositories: string[] | undefined;
}

interface Fault {
  mode: RateLimitMode;
  remaining: number | undefined;
  status: number | undefined;
}

export interface MintRecord {
  at: string;
  body: { repositories?: string[]; repository_ids?: number[]; permissions?: Permissions };
  token: string;
  expiresAt: string;
}

interface IssuedToken {
  installationId: number;
  expiresAt: number;
  revoked: boolean;
  /** What the token may do (secret-scanning alert reads check them). */
  permissions?: Permissions;
  repositories?: string[];
}

/** A secret-scanning alert as GitHub's REST API returns it (the fields runpass reads). */
interface ScanningAlert {
  number: number;
  state: string;
  secret_type: string;
  secret_type_display_name: string;
  secret: string;
  html_url: string;
}

class GitHubError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly documentationUrl: string;
  constructor(
    status: number,
    message: string,
    headers: Record<string, string> = {},
    documentationUrl = DOCS,
  ) {
    super(message);
    this.status = status;
    this.headers = headers;
    this.documentationUrl = documentationUrl;
  }
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

function randomAlnum(n: number): string {
  let out = "";
  while (out.length < n) {
    for (const b of randomBytes(n)) {
      // Rejection sampling keeps the distribution uniform over 62 symbols.
      if (b < 248 && out.length < n) out += ALNUM[b % 62];
    }
  }
  return out;
}

/** A stable positive id for a name (accounts and repositories). */
function stableId(name: string): number {
  let h = 2166136261;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return 10_000_000 + (h % 900_000_000);
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const LEVELS: Record<string, number> = { read: 1, write: 2, admin: 3 };

export class FakeGitHub {
  readonly #publicKey: KeyObject | CryptoKey;
  readonly #installations = new Map<number, Installation>();
  /** Secret-scanning partner keys ({key_identifier, key, is_current}) and how often they were fetched. */
  #scanningKeys: unknown[] = [];
  #scanningKeyFetches = 0;
  /** Secret-scanning alerts by "owner/repo#number" (lowercase), and how often one was read. */
  readonly #scanningAlerts = new Map<string, ScanningAlert>();
  #scanningAlertReads = 0;
  /** Alert receivers for the alert tests (test/support/alert-receiver.ts). */
  readonly #alerts = new AlertReceivers();
  readonly #byOwner = new Map<string, number>();
  readonly #lookups = new Map<string, number>();
  readonly #mints = new Map<number, MintRecord[]>();
  readonly #mintAttempts = new Map<number, number>();
  readonly #revocations = new Map<number, string[]>();
  readonly #tokens = new Map<string, IssuedToken>();
  readonly #faults = new Map<number, Fault>();
  #server: Server | undefined;
  base = "";

  /** `appPublicKey`: the public half of the GitHub App's private key (the one tests sign app JWTs with). */
  constructor(appPublicKey: KeyObject | CryptoKey) {
    this.#publicKey = appPublicKey;
  }

  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((e) => {
        if (res.headersSent) return void res.end();
        res.writeHead(500, { "content-type": "application/json; charset=utf-8" });
        res.end(JSON.stringify({ message: `fake-github: ${String(e)}` }));
      });
    });
    await new Promise<void>((r) => this.#server?.listen(0, "127.0.0.1", () => r()));
    this.base = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((r) => this.#server?.close(() => r()));
  }

  #send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const common: Record<string, string> = {
      "x-github-request-id": randomUUID().toUpperCase().slice(0, 23),
      "x-github-media-type": "github.v3; format=json",
      "x-ratelimit-limit": String(RATE_LIMIT),
      "x-ratelimit-remaining": String(RATE_LIMIT - 1),
      "x-ratelimit-reset": String(Math.floor(Date.now() / 1000) + 3600),
      "x-ratelimit-used": "1",
      "x-ratelimit-resource": "core",
      ...headers,
    };
    if (body === undefined) {
      res.writeHead(status, common);
      res.end();
      return;
    }
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...common });
    res.end(JSON.stringify(body));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.base);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";

    // Control plane (tests only).
    if (path.startsWith("/__alerts/")) return this.#alerts.handle(req, res, path);
    if (path.startsWith("/__")) return this.#control(req, res, path, url);

    try {
      // GitHub refuses API requests without a User-Agent (403, plain text).
      if (!req.headers["user-agent"]) {
        res.writeHead(403, { "content-type": "text/plain; charset=utf-8" });
        res.end(
          "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n",
        );
        return;
      }
      const lookup =
        /^\/repos\/([^/]+)\/([^/]+)\/installation$/.exec(path) ??
        /^\/(orgs|users)\/([^/]+)\/installation$/.exec(path);
      if (lookup && method === "GET") {
        await this.#appAuth(req);
        const owner = decodeURIComponent(path.startsWith("/repos/") ? lookup[1]! : lookup[2]!);
        const key = owner.toLowerCase();
        this.#lookups.set(key, (this.#lookups.get(key) ?? 0) + 1);
        const id = this.#byOwner.get(key);
        const inst = id === undefined ? undefined : this.#installations.get(id);
        if (!inst)
          throw new GitHubError(
            404,
            "Not Found",
            {},
            `${DOCS}/apps/apps#get-a-repository-installation-for-the-authenticated-app`,
          );
        if (path.startsWith("/repos/") && inst.repositories) {
          const repo = decodeURIComponent(lookup[2]!).toLowerCase();
          if (!inst.repositories.some((r) => r.toLowerCase() === repo))
            throw new GitHubError(404, "Not Found");
        }
        this.#fault(inst.id);
        return this.#send(res, 200, this.#installationJson(inst));
      }
      // GET /meta/public_keys/secret_scanning: the partner program's signing keys (no authentication).
      if (path === "/meta/public_keys/secret_scanning" && method === "GET") {
        this.#scanningKeyFetches++;
        return this.#send(res, 200, { public_keys: this.#scanningKeys });
      }
      // GET /app: "Get the authenticated app" (the broker's status check that its App JWT is accepted).
      if (path === "/app" && method === "GET") {
        await this.#appAuth(req);
        return this.#send(res, 200, {
          id: Number(GITHUB_APP_ID),
          slug: "runpass-test",
          name: "runpass test",
          permissions: { metadata: "read" },
          events: ["workflow_run"],
        });
      }
      const mint = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(path);
      if (mint && method === "POST") {
        await this.#appAuth(req);
        const id = Number(mint[1]);
        const inst = this.#installations.get(id);
        if (!inst)
          throw new GitHubError(
            404,
            "Not Found",
            {},
            `${DOCS}/apps/apps#create-an-installation-access-token-for-an-app`,
          );
        this.#mintAttempts.set(id, (this.#mintAttempts.get(id) ?? 0) + 1);
        this.#fault(id);
        const raw = await readBody(req);
        let body: MintRecord["body"];
        try {
          body = raw ? (JSON.parse(raw) as MintRecord["body"]) : {};
        } catch {
          throw new GitHubError(400, "Problems parsing JSON");
        }
        return this.#send(res, 201, this.#mint(inst, body));
      }
      // GET /repos/{owner}/{repo}/secret-scanning/alerts/{number}: an installation token with
      // secret_scanning_alerts read on that repository.
      const alert = /^\/repos\/([^/]+)\/([^/]+)\/secret-scanning\/alerts\/(\d+)$/.exec(path);
      if (alert && method === "GET") {
        const m = /^(?:token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? "");
        const issued = this.#tokens.get(m?.[1] ?? "");
        if (!issued || issued.revoked || issued.expiresAt <= Date.now())
          throw new GitHubError(401, "Bad credentials");
        const [owner, repo] = [decodeURIComponent(alert[1]!), decodeURIComponent(alert[2]!)];
        const inst = this.#installations.get(issued.installationId);
        const level = issued.permissions?.secret_scanning_alerts;
        const repoOk = (issued.repositories ?? []).some((r) => r.toLowerCase() === repo.toLowerCase());
        if (!inst || inst.owner.toLowerCase() !== owner.toLowerCase() || !repoOk || !level) {
          throw new GitHubError(403, "Resource not accessible by integration");
        }
        this.#scanningAlertReads++;
        const found = this.#scanningAlerts.get(`${owner}/${repo}#${alert[3]}`.toLowerCase());
        if (!found) throw new GitHubError(404, "Not Found");
        return this.#send(res, 200, found);
      }
      if (path === "/installation/token" && method === "DELETE") {
        const m = /^(?:token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? "");
        const token = m?.[1] ?? "";
        const issued = this.#tokens.get(token);
        if (!issued || issued.revoked || issued.expiresAt <= Date.now())
          throw new GitHubError(401, "Bad credentials");
        this.#fault(issued.installationId);
        issued.revoked = true;
        const list = this.#revocations.get(issued.installationId) ?? [];
        list.push(token);
        this.#revocations.set(issued.installationId, list);
        return this.#send(res, 204, undefined);
      }
      throw new GitHubError(404, "Not Found");
    } catch (e) {
      if (!(e instanceof GitHubError)) throw e;
      return this.#send(
        res,
        e.status,
        { message: e.message, documentation_url: e.documentationUrl },
        e.headers,
      );
    }
  }

  /** Verifies the app JWT like GitHub: RS256 with the app's key, iss = app id, sane iat/exp. */
  async #appAuth(req: IncomingMessage): Promise<void> {
    const m = /^bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    const undecodable = new GitHubError(401, "A JSON web token could not be decoded");
    if (!m) {
      if (req.headers.authorization) throw undecodable;
      throw new GitHubError(
        401,
        "You must authenticate with a JSON Web Token (JWT) to access this endpoint.",
        {},
        `${DOCS}/apps/apps`,
      );
    }
    const jwt = m[1]!;
    let claims: ReturnType<typeof decodeJwt>;
    try {
      if (decodeProtectedHeader(jwt).alg !== "RS256") throw undecodable;
      claims = decodeJwt(jwt);
      // Signature only; GitHub's own claim rules (and messages) follow.
      await compactVerify(jwt, this.#publicKey, { algorithms: ["RS256"] });
    } catch {
      throw undecodable;
    }
    if (String(claims.iss) !== GITHUB_APP_ID) throw undecodable;
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.iat !== "number" || claims.iat > now + MAX_IAT_SKEW_S) {
      throw new GitHubError(
        401,
        "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.",
      );
    }
    if (typeof claims.exp !== "number" || claims.exp <= now) {
      throw new GitHubError(
        401,
        "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.",
      );
    }
    if (claims.exp - claims.iat > MAX_JWT_LIFETIME_S) {
      throw new GitHubError(401, "'Expiration time' claim ('exp') is too far in the future.");
    }
  }

  /** Applies (and counts down) a rate-limit/outage fault for an installation. */
  #fault(installationId: number): void {
    const f = this.#faults.get(installationId);
    if (!f || f.mode === "off") return;
    if (f.remaining !== undefined) {
      f.remaining -= 1;
      if (f.remaining <= 0) this.#faults.delete(installationId);
    }
    const nowS = Math.floor(Date.now() / 1000);
    if (f.mode === "primary") {
      throw new GitHubError(
        f.status ?? 403,
        `API rate limit exceeded for installation ID ${installationId}.`,
        {
          "x-ratelimit-limit": String(RATE_LIMIT),
          "x-ratelimit-remaining": "0",
          "x-ratelimit-reset": String(nowS + 60),
          "x-ratelimit-used": String(RATE_LIMIT),
          "x-ratelimit-resource": "core",
        },
        "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
      );
    }
    if (f.mode === "secondary") {
      throw new GitHubError(
        f.status ?? 429,
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.",
        { "retry-after": "30" },
        "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
      );
    }
    throw new GitHubError(f.status ?? 502, "Server Error");
  }

  #installationJson(inst: Installation) {
    return {
      id: inst.id,
      client_id: "Iv23litestclient0000",
      account: {
        login: inst.owner,
        id: inst.accountId,
        node_id: `O_${inst.accountId}`,
        type: inst.accountType,
        site_admin: false,
      },
      repository_selection: inst.repositories ? "selected" : "all",
      access_tokens_url: `${this.base}/app/installations/${inst.id}/access_tokens`,
      repositories_url: `${this.base}/installation/repositories`,
      html_url: `https://github.com/organizations/${inst.owner}/settings/installations/${inst.id}`,
      app_id: Number(GITHUB_APP_ID),
      app_slug: APP_SLUG,
      target_id: inst.accountId,
      target_type: inst.accountType,
      permissions: inst.permissions,
      events: [],
      created_at: "2025-01-01T00:00:00.000Z",
      updated_at: "2025-01-01T00:00:00.000Z",
      single_file_name: null,
      has_multiple_single_files: false,
      single_file_paths: [],
      suspended_by: null,
      suspended_at: null,
    };
  }

  #mint(inst: Installation, body: MintRecord["body"]) {
    const requested = body.permissions ?? inst.permissions;
    for (const [name, level] of Object.entries(requested)) {
      const granted = inst.permissions[name];
      if (!granted || !LEVELS[level] || LEVELS[level]! > (LEVELS[granted] ?? 0)) {
        throw new GitHubError(
          422,
          "The permissions requested are not granted to this installation.",
          {},
          `${DOCS}/apps/apps#create-an-installation-access-token-for-an-app`,
        );
      }
    }
    const repoNames: string[] = [...(body.repositories ?? [])];
    for (const rid of body.repository_ids ?? []) {
      const name = (inst.repositories ?? []).find(
        (r) => stableId(`${inst.owner}/${r}`.toLowerCase()) === rid,
      );
      repoNames.push(name ?? `repo-${rid}`);
    }
    if (inst.repositories) {
      const allowed = new Set(inst.repositories.map((r) => r.toLowerCase()));
      if (repoNames.some((r) => !allowed.has(r.toLowerCase()))) {
        throw new GitHubError(
          422,
          "There is at least one repository that does not exist or is not accessible to the parent installation.",
          {},
          `${DOCS}/apps/apps#create-an-installation-access-token-for-an-app`,
        );
      }
    }
    const token = `ghs_${randomAlnum(36)}`;
    const expiresAtMs = Math.floor(Date.now() / 1000) * 1000 + 3600_000;
    const expiresAt = isoSeconds(expiresAtMs);
    this.#tokens.set(token, {
      installationId: inst.id,
      expiresAt: expiresAtMs,
      revoked: false,
      permissions: requested,
      repositories: repoNames,
    });
    const list = this.#mints.get(inst.id) ?? [];
    list.push({ at: new Date().toISOString(), body, token, expiresAt });
    this.#mints.set(inst.id, list);
    const listed = repoNames.length > 0 ? repoNames : inst.repositories;
    return {
      token,
      expires_at: expiresAt,
      permissions: requested,
      repository_selection: listed ? "selected" : "all",
      ...(listed
        ? {
            repositories: listed.map((name) => ({
              id: stableId(`${inst.owner}/${name}`.toLowerCase()),
              node_id: `R_${stableId(`${inst.owner}/${name}`.toLowerCase())}`,
              name,
              full_name: `${inst.owner}/${name}`,
              private: true,
              owner: { login: inst.owner, id: inst.accountId, type: inst.accountType },
            })),
          }
        : {}),
    };
  }

  async #control(req: IncomingMessage, res: ServerResponse, path: string, url: URL): Promise<void> {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const body =
      req.method === "POST" ? (JSON.parse((await readBody(req)) || "{}") as Record<string, unknown>) : {};
    if (path === "/__control/secret-scanning-keys" && req.method === "POST") {
      this.#scanningKeys = (body.public_keys as unknown[] | undefined) ?? [];
      return json(200, {});
    }
    if (path === "/__secret-scanning/fetches") {
      return json(200, { fetches: this.#scanningKeyFetches, alert_reads: this.#scanningAlertReads });
    }
    if (path === "/__control/secret-scanning-alert" && req.method === "POST") {
      const { owner, repo, number, secret, secret_type } = body as Record<string, string | number>;
      this.#scanningAlerts.set(`${owner}/${repo}#${number}`.toLowerCase(), {
        number: Number(number),
        state: "open",
        secret_type: String(secret_type),
        secret_type_display_name: String(secret_type),
        secret: String(secret),
        html_url: `https://github.com/${owner}/${repo}/security/secret-scanning/${number}`,
      });
      return json(200, {});
    }
    if (path === "/__control/installation" && req.method === "POST") {
      const owner = body.owner as string | undefined;
      const id = body.id as number | undefined;
      if (!owner || typeof id !== "number") return json(400, { error: "owner and numeric id required" });
      this.#installations.set(id, {
        id,
        owner,
        accountId: stableId(owner.toLowerCase()),
        accountType: body.type === "User" ? "User" : "Organization",
        permissions: (body.permissions as Permissions | undefined) ?? DEFAULT_INSTALLATION_PERMISSIONS,
        repositories: body.repositories as string[] | undefined,
      });
      this.#byOwner.set(owner.toLowerCase(), id);
      return json(200, {});
    }
    if (path === "/__control/rate-limit" && req.method === "POST") {
      const id = body.installationId as number | undefined;
      const mode = body.mode as RateLimitMode | undefined;
      if (typeof id !== "number" || !mode) return json(400, { error: "installationId and mode required" });
      if (mode === "off") this.#faults.delete(id);
      else {
        this.#faults.set(id, {
          mode,
          remaining: body.times as number | undefined,
          status: body.status as number | undefined,
        });
      }
      return json(200, {});
    }
    if (path === "/__records" && req.method === "GET") {
      const id = Number(url.searchParams.get("installationId"));
      const inst = this.#installations.get(id);
      return json(200, {
        mints: this.#mints.get(id) ?? [],
        mintAttempts: this.#mintAttempts.get(id) ?? 0,
        revocations: this.#revocations.get(id) ?? [],
        lookups: inst ? (this.#lookups.get(inst.owner.toLowerCase()) ?? 0) : 0,
      });
    }
    return json(404, { error: "not found" });
  }
}
