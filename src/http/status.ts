// GET /v1/admin/status: configuration health for operators and `runpass doctor` — which settings are set, the
// signing key ids, JWKS cache state, D1, the GitHub App — and never a secret value (docs/api.md, Status).

import type { Context, Hono } from "hono";
import pkg from "../../package.json" with { type: "json" };
import type { Env } from "../adapters/env.ts";
import { readConfig } from "../adapters/env.ts";
import { githubFor } from "../adapters/github-app.ts";
import { connectionStore } from "../adapters/postgres.ts";
import { adminAccessConfig } from "../console/auth.ts";
import { ConfigError } from "../core/errors.ts";
import { Signer } from "../core/grants/signer.ts";
import { KeySetCache } from "../core/oidc/key-source.ts";
import { parseRateLimits, RATE_LIMIT_NAMES } from "../core/rate-limit.ts";
import { parseMasterKeys } from "../core/secrets/crypto.ts";
import { isNeeded, SETTINGS, type Usage } from "../core/settings.ts";
import { NO_STORE } from "./respond.ts";
import type { AppEnv } from "./types.ts";

/** The runpass release this Worker was built from. */
export const RUNPASS_VERSION: string = pkg.version;

type Problem = { setting: string; problem: string };

/**
 * Runs `fn`; a thrown error becomes a problem naming the setting. Only a ConfigError's message is shown (those
 * never carry values); any other error may quote its input (JSON.parse does), so it is not.
 */
async function check<T>(setting: string, problems: Problem[], fn: () => T | Promise<T>): Promise<T | null> {
  try {
    return await fn();
  } catch (e) {
    problems.push({ setting, problem: e instanceof ConfigError ? e.message : `${setting} cannot be read` });
    return null;
  }
}

function usageOf(c: Context<AppEnv>): Usage & { known: boolean } {
  const rt = c.get("runtime");
  const grants = new Set<string>();
  for (const policy of rt.policies.policies.values())
    for (const g of Object.keys(policy.def.grants)) grants.add(g);
  return {
    grants,
    issuerKinds: new Set(rt.bundle.issuers.map((i) => i.kind)),
    // A set kept in POLICY_KV is not all in memory: its grants are unknown here.
    known: rt.bundle.store === undefined,
  };
}

function envText(env: Env, name: string): string | undefined {
  const v = (env as unknown as Record<string, unknown>)[name];
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** Key ids of a JSON array of JWKs (RUNPASS_SSH_CA_KEYS), never their key material. */
function jwkIds(text: string): Array<{ kid: string | null; kty: string | null }> {
  const list = JSON.parse(text) as unknown;
  if (!Array.isArray(list)) throw new Error("not a JSON array of JWKs");
  return list.map((k: { kid?: unknown; kty?: unknown }) => ({
    kid: typeof k?.kid === "string" ? k.kid : null,
    kty: typeof k?.kty === "string" ? k.kty : null,
  }));
}

/** Builds the status document. Every field is derived from settings; none copies a secret's value. */
export async function brokerStatus(c: Context<AppEnv>): Promise<Record<string, unknown>> {
  const env = c.env as Env;
  const rt = c.get("runtime");
  const problems: Problem[] = [];
  const config = await check("RUNPASS_ISSUER_URL", problems, () => readConfig(env));
  const signer = await check("RUNPASS_SIGNING_KEYS", problems, () =>
    Signer.fromConfig(env.RUNPASS_SIGNING_KEYS),
  );
  const usage = usageOf(c);
  const settings = SETTINGS.map((s) => ({
    name: s.name,
    set: envText(env, s.name) !== undefined,
    needed: isNeeded(s, usage),
    secret: s.secret,
  }));
  for (const s of settings) {
    if (s.needed && !s.set) problems.push({ setting: s.name, problem: `${s.name} is not set` });
  }

  const master = envText(env, "RUNPASS_MASTER_KEYS")
    ? await check("RUNPASS_MASTER_KEYS", problems, async () => {
        const keys = await parseMasterKeys(env.RUNPASS_MASTER_KEYS);
        return { active: keys.active, kids: [...keys.keys.keys()] };
      })
    : null;
  const adminAccess = await check(
    "RUNPASS_ADMIN_ACCESS_AUD",
    problems,
    () => adminAccessConfig(c) !== undefined,
  );
  const sshCa = envText(env, "RUNPASS_SSH_CA_KEYS");
  const ssh = sshCa ? await check("RUNPASS_SSH_CA_KEYS", problems, () => jwkIds(sshCa)) : null;
  const rateLimits = await check("RUNPASS_RATE_LIMITS", problems, () => {
    const limits = parseRateLimits(env.RUNPASS_RATE_LIMITS);
    return Object.fromEntries(
      RATE_LIMIT_NAMES.map((n) => {
        const r = limits[n];
        return [n, r ? { limit: r.limit, window_seconds: r.windowMs / 1000 } : "off"];
      }),
    );
  });

  const d1 = await env.AUDIT_DB.prepare("SELECT 1 AS ok")
    .first<{ ok: number }>()
    .then(
      (row) => ({ reachable: row?.ok === 1 }),
      () => ({ reachable: false }),
    );
  if (!d1.reachable)
    problems.push({ setting: "AUDIT_DB", problem: "the D1 database AUDIT_DB is not reachable" });

  // Metadata only: counting stored connections decrypts nothing.
  const connections = await connectionStore(env)
    .list("")
    .then(
      (metas) => ({ configured: metas.filter((m) => !m.deleted).length }),
      () => ({ configured: null }),
    );

  let githubApp: Record<string, unknown> = { configured: false };
  if (envText(env, "GITHUB_APP_ID") && envText(env, "GITHUB_APP_PRIVATE_KEY")) {
    const info = await check("GITHUB_APP_PRIVATE_KEY", problems, () => githubFor(env).appInfo());
    githubApp = { configured: true, id: env.GITHUB_APP_ID, jwt_accepted: info?.accepted ?? false };
    if (info?.accepted && String(info.id) !== env.GITHUB_APP_ID) {
      problems.push({
        setting: "GITHUB_APP_ID",
        problem: `GitHub names App ${info.id} for this private key`,
      });
    } else if (info && !info.accepted) {
      githubApp.detail = info.detail;
      problems.push({
        setting: "GITHUB_APP_PRIVATE_KEY",
        problem: `the App JWT was refused: ${info.detail}`,
      });
    }
  }

  return {
    runpass_version: RUNPASS_VERSION,
    time: new Date(rt.clock()).toISOString(),
    issuer_url: config?.issuerUrl ?? null,
    dev: config?.dev ?? false,
    signing_keys: signer ? signer.jwks().keys.map((k) => ({ kid: k.kid, alg: k.alg })) : [],
    settings,
    policy_set: {
      version: rt.bundle.version,
      dev: rt.bundle.dev,
      policies: rt.bundle.store?.count ?? rt.bundle.policies.length,
      grants_in_use: usage.known ? [...usage.grants].sort() : null,
    },
    issuers: rt.bundle.issuers.map((i) => ({
      name: i.name,
      url: i.url,
      kind: i.kind,
      jwks: rt.keys instanceof KeySetCache ? rt.keys.state(i) : { state: "not_fetched" },
    })),
    webhooks: {
      github: { secret_set: Boolean(envText(env, "GITHUB_WEBHOOK_SECRET")) },
      gitlab: { token_set: Boolean(envText(env, "GITLAB_WEBHOOK_TOKEN")) },
    },
    d1,
    github_app: githubApp,
    connections,
    secret_store: master ? { master_key_ids: master.kids, active: master.active } : { configured: false },
    ssh_ca: ssh ? { key_ids: ssh.map((k) => k.kid) } : { configured: false },
    x509_ca: { configured: Boolean(envText(env, "RUNPASS_X509_CA")) },
    // Whether /v1/admin/* accepts a Cloudflare Access identity besides the admin token (docs/deploy.md).
    admin_access: { access: adminAccess === true },
    rate_limits: rateLimits,
    problems,
  };
}

/** Registers GET /v1/admin/status (behind the admin middleware). */
export function statusRoutes(app: Hono<AppEnv>): void {
  app.get("/v1/admin/status", async (c) => c.json(await brokerStatus(c), 200, NO_STORE));
}
