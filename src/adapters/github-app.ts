// The GitHub App side of the github grant: App JWTs signed with jose, installation lookup (cached per isolate),
// installation tokens always scoped to explicit repositories and permissions, and their revocation.

import { importPKCS8, SignJWT } from "jose";
import { ConfigError } from "../core/errors.ts";
import type { GitHubPort, GitHubToken } from "../core/grants/github.ts";
import { toPkcs8Pem } from "../core/grants/pkcs.ts";
import { UpstreamError, withRetry } from "../core/grants/upstream.ts";
import type { GitHubPermissionLevel } from "../core/policy/types.ts";
import type { Env } from "./env.ts";

const INSTALLATION_CACHE_MS = 10 * 60 * 1000;
const USER_AGENT = "runpass";

interface AppConfig {
  appId: string;
  privateKey: string;
  apiUrl: string;
}

/** Turns a GitHub error response into an UpstreamError; rate limits carry Retry-After and are not retried. */
async function failure(res: Response, what: string): Promise<UpstreamError> {
  const body = (await res.text().catch(() => "")).slice(0, 200);
  const remaining = res.headers.get("x-ratelimit-remaining");
  const reset = Number(res.headers.get("x-ratelimit-reset") ?? "");
  const retryAfterHeader = Number(res.headers.get("retry-after") ?? "");
  if (
    res.status === 429 ||
    ((res.status === 403 || res.status === 429) && (remaining === "0" || retryAfterHeader > 0))
  ) {
    const retryAfter =
      retryAfterHeader > 0
        ? retryAfterHeader
        : Number.isFinite(reset) && reset > 0
          ? Math.max(1, reset - Math.floor(Date.now() / 1000))
          : 60;
    return new UpstreamError(`${what}: GitHub rate limit (HTTP ${res.status}) ${body}`, {
      retryable: true,
      retryAfter: Math.min(retryAfter, 3600),
    });
  }
  return new UpstreamError(`${what}: HTTP ${res.status} ${body}`, { retryable: res.status >= 500 });
}

/** A GitHub App client; one per isolate and configuration. */
export class GitHubApp implements GitHubPort {
  readonly #config: AppConfig;
  readonly #key: Promise<CryptoKey>;
  readonly #installations = new Map<string, { id: number; at: number }>();
  readonly #fetch: typeof fetch;

  constructor(config: AppConfig, fetcher: typeof fetch = (i, init) => fetch(i, init)) {
    this.#config = config;
    this.#fetch = fetcher;
    const pkcs8 = toPkcs8Pem(config.privateKey);
    if (!pkcs8) throw new ConfigError("GITHUB_APP_PRIVATE_KEY is not a PKCS#1 or PKCS#8 PEM RSA private key");
    this.#key = importPKCS8(pkcs8, "RS256");
    this.#key.catch(() => undefined);
  }

  /** A short-lived App JWT (GitHub allows at most 10 minutes; iat backdated for clock drift). */
  async appJwt(): Promise<string> {
    let key: CryptoKey;
    try {
      key = await this.#key;
    } catch {
      throw new ConfigError("GITHUB_APP_PRIVATE_KEY cannot be imported as an RSA signing key");
    }
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: "RS256", typ: "JWT" })
      .setIssuer(this.#config.appId)
      .setIssuedAt(now - 60)
      .setExpirationTime(now + 540)
      .sign(key);
  }

  async #call(path: string, init: RequestInit, auth: string, what: string): Promise<Response> {
    let res: Response;
    try {
      res = await this.#fetch(`${this.#config.apiUrl}${path}`, {
        ...init,
        redirect: "manual",
        headers: {
          accept: "application/vnd.github+json",
          "x-github-api-version": "2022-11-28",
          "user-agent": USER_AGENT,
          authorization: auth,
          ...(init.body ? { "content-type": "application/json" } : {}),
        },
      });
    } catch {
      throw new UpstreamError(`${what}: GitHub API unreachable`, { retryable: true });
    }
    return res;
  }

  /** GET /app with an App JWT: whether GitHub accepts this App's JWTs, and the App it names (admin status). */
  async appInfo(): Promise<
    { accepted: true; id: number; slug: string } | { accepted: false; detail: string }
  > {
    let res: Response;
    try {
      res = await this.#call("/app", { method: "GET" }, `Bearer ${await this.appJwt()}`, "app lookup");
    } catch (e) {
      return { accepted: false, detail: e instanceof Error ? e.message : "unreachable" };
    }
    if (!res.ok) {
      await res.body?.cancel();
      return { accepted: false, detail: `GitHub answered HTTP ${res.status} to the App JWT` };
    }
    const body = (await res.json().catch(() => ({}))) as { id?: unknown; slug?: unknown };
    return { accepted: true, id: Number(body.id), slug: typeof body.slug === "string" ? body.slug : "" };
  }

  async #installationId(owner: string, repository: string, fresh: boolean): Promise<number> {
    const cached = this.#installations.get(owner.toLowerCase());
    if (!fresh && cached && Date.now() - cached.at < INSTALLATION_CACHE_MS) return cached.id;
    const res = await this.#call(
      `/repos/${encodeURIComponent(owner)}/${encodeURIComponent(repository)}/installation`,
      { method: "GET" },
      `Bearer ${await this.appJwt()}`,
      "installation lookup",
    );
    if (res.status === 404) {
      await res.body?.cancel();
      throw new UpstreamError(`the GitHub App is not installed on ${owner}/${repository}`, {
        retryable: false,
      });
    }
    if (!res.ok) throw await failure(res, "installation lookup");
    const body = (await res.json()) as { id?: unknown };
    if (typeof body.id !== "number")
      throw new UpstreamError("installation lookup: no id", { retryable: false });
    this.#installations.set(owner.toLowerCase(), { id: body.id, at: Date.now() });
    return body.id;
  }

  /** Mints an installation token with exactly these repositories and permissions (both always sent). */
  async mint(
    owner: string,
    repositories: string[],
    permissions: Record<string, GitHubPermissionLevel>,
  ): Promise<GitHubToken> {
    return withRetry(async () => {
      for (const fresh of [false, true]) {
        const id = await this.#installationId(owner, repositories[0] as string, fresh);
        const res = await this.#call(
          `/app/installations/${id}/access_tokens`,
          { method: "POST", body: JSON.stringify({ repositories, permissions }) },
          `Bearer ${await this.appJwt()}`,
          "token mint",
        );
        // A cached installation that was removed and re-added: look it up again once.
        if (res.status === 404 && !fresh) {
          await res.body?.cancel();
          continue;
        }
        if (res.status !== 201) throw await failure(res, "token mint");
        const body = (await res.json()) as {
          token?: unknown;
          expires_at?: unknown;
          permissions?: Record<string, string>;
          repositories?: Array<{ name?: unknown }>;
        };
        if (typeof body.token !== "string" || typeof body.expires_at !== "string") {
          throw new UpstreamError("token mint: GitHub answered without a token", { retryable: false });
        }
        return {
          token: body.token,
          expiresAt: Date.parse(body.expires_at),
          repositories: (body.repositories ?? [])
            .map((r) => r.name)
            .filter((n): n is string => typeof n === "string"),
          permissions: body.permissions ?? permissions,
        };
      }
      throw new UpstreamError("token mint: installation not found", { retryable: false });
    });
  }

  /** Revokes an installation token (at this App's API). */
  async revoke(token: string): Promise<void> {
    await revokeInstallationToken(this.#config.apiUrl, token, this.#fetch);
  }

  /**
   * Reads a secret-scanning alert's secret (docs/leaks.md, GitHub): an installation token for that one
   * repository with `secret_scanning_alerts: read` only, used once and revoked. Undefined when there is no such
   * alert; throws UpstreamError when GitHub refuses.
   */
  async secretScanningAlert(
    owner: string,
    repository: string,
    number: number,
  ): Promise<{ secret: string; secret_type: string } | undefined> {
    const token = await this.mint(owner, [repository], { secret_scanning_alerts: "read" });
    try {
      return await withRetry(async () => {
        const res = await this.#call(
          `/repos/${encodeURIComponent(owner)}/${encodeURIComponent(repository)}/secret-scanning/alerts/${number}`,
          { method: "GET" },
          `Bearer ${token.token}`,
          "secret-scanning alert",
        );
        if (res.status === 404) {
          await res.body?.cancel();
          return undefined;
        }
        if (res.status !== 200) throw await failure(res, "secret-scanning alert");
        const body = (await res.json()) as { secret?: unknown; secret_type?: unknown };
        if (typeof body.secret !== "string") {
          throw new UpstreamError("secret-scanning alert: GitHub answered without the secret", {
            retryable: false,
          });
        }
        return {
          secret: body.secret,
          secret_type: typeof body.secret_type === "string" ? body.secret_type : "",
        };
      });
    } finally {
      await this.revoke(token.token).catch(() => undefined);
    }
  }

  /** The API base this App mints against (sealed into revocation handles). */
  get apiUrl(): string {
    return this.#config.apiUrl;
  }
}

/**
 * `DELETE /installation/token`, authenticated by the token itself: no App key needed, so the run's object can
 * revoke with nothing but the sealed handle. Already revoked or expired (401) counts as revoked.
 */
export async function revokeInstallationToken(
  apiUrl: string,
  token: string,
  fetcher: typeof fetch = (i, init) => fetch(i, init),
): Promise<void> {
  await withRetry(async () => {
    let res: Response;
    try {
      res = await fetcher(`${apiUrl}/installation/token`, {
        method: "DELETE",
        redirect: "manual",
        headers: {
          accept: "application/vnd.github+json",
          "x-github-api-version": "2022-11-28",
          "user-agent": USER_AGENT,
          authorization: `Bearer ${token}`,
        },
      });
    } catch {
      throw new UpstreamError("token revoke: GitHub API unreachable", { retryable: true });
    }
    if (res.status === 204 || res.status === 401) {
      await res.body?.cancel();
      return;
    }
    throw await failure(res, "token revoke");
  });
}

const apps = new Map<string, GitHubApp>();

/** The GitHub App for this env (cached per isolate); ConfigError naming what is missing. */
export function githubFor(env: Env): GitHubApp {
  if (!env.GITHUB_APP_ID || !/^\d+$/.test(env.GITHUB_APP_ID)) {
    throw new ConfigError("GITHUB_APP_ID is not set (the numeric id of the GitHub App that mints tokens)");
  }
  if (!env.GITHUB_APP_PRIVATE_KEY) {
    throw new ConfigError("GITHUB_APP_PRIVATE_KEY is not set (the App's private key, PKCS#1 or PKCS#8 PEM)");
  }
  const apiUrl = (env.GITHUB_API_URL || "https://api.github.com").replace(/\/+$/, "");
  const cacheKey = `${env.GITHUB_APP_ID}|${apiUrl}|${env.GITHUB_APP_PRIVATE_KEY.length}|${env.GITHUB_APP_PRIVATE_KEY.slice(-48)}`;
  let app = apps.get(cacheKey);
  if (!app) {
    app = new GitHubApp({ appId: env.GITHUB_APP_ID, privateKey: env.GITHUB_APP_PRIVATE_KEY, apiUrl });
    if (apps.size > 8) apps.clear();
    apps.set(cacheKey, app);
  }
  return app;
}
