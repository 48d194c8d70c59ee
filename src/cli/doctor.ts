// `runpass doctor --url URL`: checks a running broker from outside, one line per check with the fix for each
// failure; exit 0 when all pass, 1 otherwise (docs/deploy.md, "Check the deployment").

import { parseArgs } from "node:util";
import * as z from "zod/mini";
import { isLoopbackHost } from "../core/loopback.ts";
import type { PolicyBundle } from "../core/policy/types.ts";
import { UsageError } from "./usage-error.ts";

export const DOCTOR_USAGE = `  doctor         --url URL [--policies DIR]
      Checks a running broker from outside: https (http only to a loopback host), discovery issuer equals URL,
      JWKS served and matching discovery, Date skew, /v1/admin/status (RUNPASS_ADMIN_TOKEN from the
      environment), the deployed policy set against the local build of DIR, webhook secrets for the issuers in
      use. Prints one line per check with the fix for each failure; exit 0 when all pass, 1 otherwise.`;

/** Largest clock difference tolerated: token checks allow 60 s of skew (docs/security.md). */
const MAX_SKEW_SECONDS = 30;
const TIMEOUT_MS = 10_000;

export interface CheckLine {
  check: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

const Discovery = z.object({
  issuer: z.string(),
  jwks_uri: z.string(),
  token_endpoint: z.optional(z.string()),
  id_token_signing_alg_values_supported: z.optional(z.array(z.string())),
});

const Jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())) });

const Status = z.object({
  time: z.optional(z.string()),
  issuer_url: z.nullable(z.string()),
  dev: z.boolean(),
  signing_keys: z.array(z.object({ kid: z.optional(z.string()), alg: z.optional(z.string()) })),
  policy_set: z.object({ version: z.string(), dev: z.boolean() }),
  issuers: z.array(z.object({ name: z.string(), kind: z.string() })),
  webhooks: z.object({
    github: z.object({ secret_set: z.boolean() }),
    gitlab: z.object({ token_set: z.boolean() }),
  }),
  github_app: z.object({ configured: z.boolean(), jwt_accepted: z.optional(z.boolean()) }),
  problems: z.array(z.object({ setting: z.string(), problem: z.string() })),
});
type Status = z.infer<typeof Status>;

/** Where doctor gets what it compares against: the local policy build, the admin token, fetch and the clock. */
export interface DoctorDeps {
  /** The local build of the policies (dev or production, for a loopback port) or the reason it failed. */
  localBundle(dev: boolean, port: number): Promise<PolicyBundle | string>;
  adminToken: string | undefined;
  fetch?: typeof fetch;
  now?: () => number;
}

const PRIVATE_JWK_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "k"];

async function getJson(
  fetcher: typeof fetch,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; date: string | null; body: unknown }> {
  const res = await fetcher(url, { headers, redirect: "manual", signal: AbortSignal.timeout(TIMEOUT_MS) });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, date: res.headers.get("date"), body };
}

function webhookSecretName(kind: string): string | undefined {
  return kind === "github" ? "GITHUB_WEBHOOK_SECRET" : kind === "gitlab" ? "GITLAB_WEBHOOK_TOKEN" : undefined;
}

/** Runs every check against `base`; never throws for a broker's answer (each failure is a line). */
export async function runDoctor(base: string, deps: DoctorDeps): Promise<CheckLine[]> {
  const fetcher = deps.fetch ?? ((i, init) => fetch(i, init));
  const now = deps.now ?? Date.now;
  const lines: CheckLine[] = [];
  const pass = (check: string, detail: string) => lines.push({ check, ok: true, detail });
  const fail = (check: string, detail: string, fix: string) => lines.push({ check, ok: false, detail, fix });
  const url = new URL(base);

  if (url.protocol === "https:") pass("https", base);
  else if (url.protocol === "http:" && isLoopbackHost(url.hostname))
    pass("https", `${base} (plain http, loopback only)`);
  else fail("https", `${base} is not https`, "serve runpass over https (its workers.dev or a custom domain)");

  // Discovery and JWKS: what every relying party and OAuth client reads.
  let discovery: z.infer<typeof Discovery> | undefined;
  // The edge's Date header, or (a local broker sends none) the time /v1/admin/status reports.
  let serverDate = Number.NaN;
  try {
    const res = await getJson(fetcher, `${base}/.well-known/openid-configuration`);
    const parsed = Discovery.safeParse(res.body);
    serverDate = res.date ? Date.parse(res.date) : Number.NaN;
    if (res.status !== 200 || !parsed.success) {
      fail(
        "discovery",
        `GET /.well-known/openid-configuration answered ${res.status}${res.status === 503 ? " (a setting is missing: see the broker's error)" : ""}`,
        "deploy runpass with RUNPASS_ISSUER_URL and RUNPASS_SIGNING_KEYS set (runpass init --apply)",
      );
    } else if (parsed.data.issuer !== base) {
      fail(
        "discovery",
        `issuer is "${parsed.data.issuer}", not "${base}": tokens it signs would not verify for clients using this URL`,
        `set RUNPASS_ISSUER_URL = "${base}" under [vars] in wrangler.toml and deploy (or run doctor with the URL clients use)`,
      );
      discovery = parsed.data;
    } else {
      pass("discovery", `issuer ${parsed.data.issuer}`);
      discovery = parsed.data;
    }
  } catch (e) {
    fail(
      "discovery",
      `${base} is unreachable (${e instanceof Error ? e.message : String(e)})`,
      "check the URL and that the Worker is deployed (npm run deploy)",
    );
  }

  let jwksKids: string[] = [];
  if (discovery) {
    try {
      const res = await getJson(fetcher, discovery.jwks_uri);
      const parsed = Jwks.safeParse(res.body);
      const algs = discovery.id_token_signing_alg_values_supported ?? [];
      if (new URL(discovery.jwks_uri).origin !== url.origin) {
        fail(
          "jwks",
          `jwks_uri ${discovery.jwks_uri} is on another origin`,
          "set RUNPASS_ISSUER_URL to this URL and deploy",
        );
      } else if (res.status !== 200 || !parsed.success || parsed.data.keys.length === 0) {
        fail(
          "jwks",
          `GET ${discovery.jwks_uri} answered ${res.status} without keys`,
          "set RUNPASS_SIGNING_KEYS (runpass init) and deploy",
        );
      } else if (parsed.data.keys.some((k) => PRIVATE_JWK_MEMBERS.some((m) => m in k))) {
        fail(
          "jwks",
          "the JWKS publishes private key material",
          "upgrade runpass; rotate every signing key now (docs/deploy.md, break-glass)",
        );
      } else if (!algs.includes(String(parsed.data.keys[0]?.alg))) {
        fail(
          "jwks",
          `the signing key's alg ${String(parsed.data.keys[0]?.alg)} is not in the discovery document's ${algs.join(", ")}`,
          "redeploy (discovery and JWKS come from the same RUNPASS_SIGNING_KEYS)",
        );
      } else {
        jwksKids = parsed.data.keys.map((k) => String(k.kid));
        pass("jwks", `${parsed.data.keys.length} key(s): ${jwksKids.join(", ")}`);
      }
    } catch (e) {
      fail(
        "jwks",
        `GET ${discovery.jwks_uri} failed (${e instanceof Error ? e.message : String(e)})`,
        "check that jwks_uri is served by this Worker",
      );
    }
  }

  // The admin API: everything from here on reads /v1/admin/status.
  let status: Status | undefined;
  const cleartext = url.protocol !== "https:" && !isLoopbackHost(url.hostname);
  if (cleartext) {
    fail("admin", "not asked: the admin token is never sent over plain http", "use the https URL");
  } else if (!deps.adminToken) {
    fail(
      "admin",
      "RUNPASS_ADMIN_TOKEN is not set in this environment",
      "export RUNPASS_ADMIN_TOKEN (its value is in .runpass/secrets.json)",
    );
  } else {
    try {
      const res = await getJson(fetcher, `${base}/v1/admin/status`, {
        authorization: `Bearer ${deps.adminToken}`,
      });
      const parsed = Status.safeParse(res.body);
      if (res.status === 401) {
        fail(
          "admin",
          "the admin API refused RUNPASS_ADMIN_TOKEN (401)",
          "use the deployed RUNPASS_ADMIN_TOKEN (wrangler secret put RUNPASS_ADMIN_TOKEN to set a new one)",
        );
      } else if (res.status >= 300 && res.status < 400) {
        fail(
          "admin",
          `/v1/admin/status redirected (${res.status}), e.g. to a Cloudflare Access login`,
          "run doctor where the admin API is reachable, or allow it in Access for this client",
        );
      } else if (res.status !== 200 || !parsed.success) {
        fail(
          "admin",
          `/v1/admin/status answered ${res.status}`,
          res.status === 503
            ? "set RUNPASS_ADMIN_TOKEN (16+ characters) and deploy"
            : "deploy a runpass version that serves /v1/admin/status",
        );
      } else {
        status = parsed.data;
        pass("admin", "/v1/admin/status answered with the admin token");
      }
    } catch (e) {
      fail(
        "admin",
        `the admin API is unreachable (${e instanceof Error ? e.message : String(e)})`,
        "check the URL, the network path and any Access policy in front of /v1/admin",
      );
    }
  }
  const serverTime = Number.isNaN(serverDate) ? Date.parse(status?.time ?? "") : serverDate;
  if (Number.isNaN(serverTime))
    fail("clock", "the broker told no time", "deploy a runpass version whose status reports its time");
  else {
    const skew = Math.round((serverTime - now()) / 1000);
    if (Math.abs(skew) <= MAX_SKEW_SECONDS) pass("clock", `skew ${skew} s`);
    else
      fail(
        "clock",
        `this machine's clock differs from the broker's by ${skew} s`,
        "sync this machine's clock (NTP)",
      );
  }
  if (!status) return lines;

  const statusKids = status.signing_keys.map((k) => String(k.kid));
  if (jwksKids.length && statusKids.join(",") !== jwksKids.join(",")) {
    fail(
      "signing keys",
      `the JWKS lists ${jwksKids.join(", ")} but the broker holds ${statusKids.join(", ")}`,
      "purge any cache in front of /.well-known/jwks.json",
    );
  }

  const local = await deps.localBundle(
    status.policy_set.dev,
    Number(url.port || (url.protocol === "https:" ? 443 : 80)),
  );
  if (typeof local === "string")
    fail("policy set", `the local policies do not build: ${local}`, "npx runpass policy check");
  else if (local.version !== status.policy_set.version)
    fail(
      "policy set",
      `deployed ${status.policy_set.version}, local build ${local.version}`,
      "npm run deploy (or point --policies at the folder that was deployed)",
    );
  else pass("policy set", `deployed = local build (${local.version})`);

  const kinds = [...new Set(status.issuers.map((i) => i.kind))];
  const missing = kinds.filter((k) =>
    k === "github"
      ? !status.webhooks.github.secret_set
      : k === "gitlab"
        ? !status.webhooks.gitlab.token_set
        : false,
  );
  const webhookNames = new Set(["GITHUB_WEBHOOK_SECRET", "GITLAB_WEBHOOK_TOKEN"]);
  for (const kind of missing) {
    const name = webhookSecretName(kind) as string;
    fail(
      "webhooks",
      `${name} is not set but ${kind} issuers are in use: runs would end only at their TTL`,
      `wrangler secret put ${name} (the value in .runpass/secrets.json), and the same secret in the ${kind === "github" ? "GitHub App" : "GitLab system hook"}`,
    );
  }
  if (missing.length === 0)
    pass(
      "webhooks",
      kinds.length ? `secrets set for ${kinds.join(", ")} issuers` : "no webhook issuers in use",
    );

  const others = status.problems.filter((p) => !webhookNames.has(p.setting));
  for (const p of others)
    fail(
      "settings",
      p.problem,
      `set ${p.setting} (wrangler secret put ${p.setting}; see docs/deploy.md) and deploy`,
    );
  if (others.length === 0) pass("settings", "every needed setting is set and parses");
  if (status.github_app.configured && status.github_app.jwt_accepted === true)
    pass("github app", "GitHub accepts the App's JWT");
  return lines;
}

/** Formats the report, one line per check. */
export function formatDoctor(lines: readonly CheckLine[]): string {
  return lines
    .map((l) => `${l.ok ? "ok  " : "FAIL"}  ${l.check}: ${l.detail}${l.fix ? `\n      fix: ${l.fix}` : ""}`)
    .join("\n");
}

/** `runpass doctor`. */
export async function doctorCommand(
  args: string[],
  localBundle: (dir: string | undefined, dev: boolean, port: number) => Promise<PolicyBundle | string>,
): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { url: { type: "string" }, policies: { type: "string" } },
    strict: true,
  });
  const raw = values.url ?? process.env.RUNPASS_URL;
  if (!raw) throw new UsageError("doctor needs --url (the broker's public URL)");
  let base: string;
  try {
    base = new URL(raw).toString().replace(/\/+$/, "");
  } catch {
    throw new UsageError(`--url "${raw}" is not a URL`);
  }
  const lines = await runDoctor(base, {
    adminToken: process.env.RUNPASS_ADMIN_TOKEN,
    localBundle: (dev, port) => localBundle(values.policies, dev, port),
  });
  console.log(formatDoctor(lines));
  const failed = lines.filter((l) => !l.ok).length;
  console.log(failed ? `${failed} check(s) failed` : "all checks passed");
  return failed ? 1 : 0;
}
