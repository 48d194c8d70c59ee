// POST /v1/webhooks/github[/{issuer}] and /v1/webhooks/gitlab[/{issuer}]: a finished CI run ends its leases.
// Authenticated first (HMAC over the raw bytes / constant-time token), then parsed; unknown events are no-ops.

import type { Context, Hono } from "hono";
import * as z from "zod/mini";
import type { Env } from "../adapters/env.ts";
import { DurableLedger } from "../adapters/ledger-client.ts";
import { MAX_WEBHOOK_BODY_BYTES } from "../core/constants.ts";
import { timingSafeEqualText } from "../core/crypto.ts";
import { ConfigError, type ReasonCode, RunpassError } from "../core/errors.ts";
import type { IssuerConfig, IssuerKind } from "../core/oidc/issuers.ts";
import { decodeUtf8 } from "../core/read-capped.ts";
import {
  type DerivedScope,
  deriveWebhookSecret,
  githubSignatureMatches,
  SCOPE_CLAIM,
  verifyDerivedToken,
  type WebhookScopeKind,
} from "../core/webhook-scope.ts";
import { auditRefusal, requestRecord } from "./audit.ts";
import { githubScanningAlert } from "./leaks.ts";
import { clientBlocked, limitWebhook, refuseOrCharge } from "./rate-limit.ts";
import { readBodyBytes, requireMediaType } from "./request.ts";
import { NO_STORE } from "./respond.ts";
import type { AppEnv } from "./types.ts";

// Only `sha256=` followed by exactly 64 lowercase hex digits. Checked before the library, whose parser
// tolerates other prefixes and stray characters: no other algorithm, whatever the prefix says.
const GITHUB_SIGNATURE = /^sha256=([0-9a-f]{64})$/;
const DELIVERY_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const GITLAB_TERMINAL = new Set(["success", "failed", "canceled", "skipped"]);

const PositiveId = z.number().check(z.int(), z.positive());

const WorkflowRunPayload = z.object({
  action: z.string(),
  // GitHub App deliveries name the installation (the rate-limit key); a malformed one never blocks ending a run.
  installation: z.catch(z.optional(z.object({ id: PositiveId })), undefined),
  repository: z.object({ id: z.number().check(z.int(), z.positive()) }),
  workflow_run: z.object({
    id: z.number().check(z.int(), z.positive()),
    run_attempt: z.number().check(z.int(), z.positive()),
    status: z.string(),
  }),
});

const PipelinePayload = z.object({
  object_kind: z.literal("pipeline"),
  project: z.object({ id: z.number().check(z.int(), z.positive()) }),
  object_attributes: z.object({ id: z.number().check(z.int(), z.positive()), status: z.string() }),
});

/** GitHub secret scanning found something in a repository (docs/leaks.md): runpass reads the alert itself. */
const ScanningAlertPayload = z.object({
  action: z.string(),
  alert: z.object({ number: PositiveId }),
  repository: z.object({ name: z.string().check(z.minLength(1)), owner: z.object({ login: z.string() }) }),
});

/** A secret-scanning alert to read (through the GitHub App) and handle as a leak report. */
export interface ScanningAlertRef {
  owner: string;
  repository: string;
  number: number;
}

type Platform = "github" | "gitlab";

/** A run to end, who may end it, and whose webhook budget the delivery spends. */
interface RunEnd {
  run: string;
  /** Set when a derived secret signed the delivery: the run's verified claims must lie inside it. */
  scope?: DerivedScope;
  /** The rate-limit key: the verified scope, or (master deliveries) the installation or project the master vouches for. */
  source: { kind: "installation" | "repository" | "project" | WebhookScopeKind; id: number | string };
}

function refused(code: "invalid_token" | "invalid_request", reason: ReasonCode, description: string) {
  return new RunpassError(code, description, { reasons: [{ code: reason }] });
}

/** The issuer a webhook path means: the preset, or a named issuer of the right kind (404 otherwise). */
function resolveIssuer(c: Context<AppEnv>, platform: Platform): IssuerConfig | undefined {
  const name = c.req.param("issuer") ?? platform;
  const issuer = c.get("runtime").bundle.issuers.find((i) => i.name === name);
  if (issuer && issuer.kind === (platform as IssuerKind)) return issuer;
  if (name === platform) return undefined; // the preset, trusted by no policy: nothing to end
  throw new RunpassError("not_found", `no ${platform}-kind issuer named "${name}" in issuers.yaml`);
}

function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw refused("invalid_request", "malformed", "the webhook body is not valid JSON");
  }
}

function parsePayload<T>(json: unknown, schema: z.ZodMiniType<T>): T | undefined {
  const parsed = schema.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}

/** The current and previous value of a master secret, present ones only. */
function masters(current: string | undefined, previous: string | undefined): string[] {
  return [current, previous].filter((s): s is string => typeof s === "string" && s.length > 0);
}

/** Ids a GitHub payload claims for itself, unverified: the scopes whose derived secrets are worth trying. */
const GitHubScopeHints = z.object({
  repository: z.catch(
    z.optional(
      z.object({ id: PositiveId, owner: z.catch(z.optional(z.object({ id: PositiveId })), undefined) }),
    ),
    undefined,
  ),
  organization: z.catch(z.optional(z.object({ id: PositiveId })), undefined),
});

/**
 * Verifies X-Hub-Signature-256 over the raw bytes: the master secrets first, then the secrets derived for the
 * owner and repository the payload names. Returns undefined for the master, or the derived scope. A derived
 * secret of another scope never verifies, so a payload naming a repository outside the signer's scope is 401.
 */
async function verifyGitHub(
  env: Env,
  bytes: Uint8Array,
  json: () => unknown,
  signature: string | undefined,
): Promise<DerivedScope | undefined> {
  const secrets = masters(env.GITHUB_WEBHOOK_SECRET, env.GITHUB_WEBHOOK_SECRET_PREVIOUS);
  if (!env.GITHUB_WEBHOOK_SECRET) {
    throw new ConfigError("GITHUB_WEBHOOK_SECRET is not set; GitHub webhooks cannot be verified");
  }
  if (!signature) {
    throw refused("invalid_token", "signature_missing", "X-Hub-Signature-256 is required");
  }
  const sig = GITHUB_SIGNATURE.exec(signature)?.[1];
  if (!sig) throw refused("invalid_token", "signature_invalid", "the webhook signature does not verify");
  let master = false;
  for (const secret of secrets) if (await githubSignatureMatches(secret, bytes, sig)) master = true;
  if (master) return undefined;
  let hints: z.infer<typeof GitHubScopeHints> | undefined;
  try {
    hints = parsePayload(json(), GitHubScopeHints);
  } catch {
    hints = undefined; // not JSON: no scope to try, so the signature does not verify
  }
  const scopes: DerivedScope[] = [];
  const owner = hints?.repository?.owner?.id ?? hints?.organization?.id;
  if (owner !== undefined) scopes.push({ kind: "github-owner", id: String(owner) });
  if (hints?.repository) scopes.push({ kind: "github-repository", id: String(hints.repository.id) });
  for (const scope of scopes) {
    for (const secret of secrets) {
      if (await githubSignatureMatches(await deriveWebhookSecret(secret, scope), bytes, sig)) return scope;
    }
  }
  throw refused("invalid_token", "signature_invalid", "the webhook signature does not verify");
}

/** Checks X-Gitlab-Token: a master token (undefined) or a derived one (its scope). */
async function verifyGitLab(env: Env, token: string | undefined): Promise<DerivedScope | undefined> {
  if (!env.GITLAB_WEBHOOK_TOKEN) {
    throw new ConfigError("GITLAB_WEBHOOK_TOKEN is not set; GitLab webhooks cannot be verified");
  }
  if (!token) throw refused("invalid_token", "webhook_token_invalid", "X-Gitlab-Token is required");
  const secrets = masters(env.GITLAB_WEBHOOK_TOKEN, env.GITLAB_WEBHOOK_TOKEN_PREVIOUS);
  // Every comparison runs, so timing does not tell which secret (if any) matched.
  const matches = await Promise.all(secrets.map((secret) => timingSafeEqualText(token, secret)));
  if (matches.some(Boolean)) return undefined;
  const scope = await verifyDerivedToken(token, secrets);
  if (scope?.kind === "gitlab-project" || scope?.kind === "gitlab-namespace") return scope;
  throw refused("invalid_token", "webhook_token_invalid", "the X-Gitlab-Token does not match");
}

/** Authenticates and reads the body; returns the run to end, or undefined for a no-op. */
async function authenticate(
  c: Context<AppEnv>,
  platform: Platform,
  issuer: IssuerConfig | undefined,
  delivery: string | undefined,
): Promise<RunEnd | { scanningAlert: ScanningAlertRef } | undefined> {
  // Size before anything; then media type; then the signature over the exact bytes received.
  const bytes = await readBodyBytes(c, MAX_WEBHOOK_BODY_BYTES);
  requireMediaType(c, "application/json");
  let text: string;
  try {
    text = decodeUtf8(bytes);
  } catch {
    throw refused("invalid_request", "malformed", "the webhook body is not UTF-8");
  }
  let json: unknown;
  const parsed = () => {
    json ??= parseJsonText(text);
    return json;
  };
  if (platform === "github") {
    const scope = await verifyGitHub(c.env, bytes, parsed, c.req.header("x-hub-signature-256"));
    if (!delivery) throw refused("invalid_request", "malformed", "X-GitHub-Delivery is missing or malformed");
    if (c.req.header("x-github-event") === "secret_scanning_alert") {
      // Only the master secret vouches for these: a derived secret belongs to one repository's or owner's hook.
      const alert = parsePayload(parsed(), ScanningAlertPayload);
      if (scope || !alert || (alert.action !== "created" && alert.action !== "reopened")) return undefined;
      return {
        scanningAlert: {
          owner: alert.repository.owner.login,
          repository: alert.repository.name,
          number: alert.alert.number,
        },
      };
    }
    const payload = parsePayload(parsed(), WorkflowRunPayload);
    if (c.req.header("x-github-event") !== "workflow_run" || !payload) return undefined;
    // `completed` deliveries exist whose run is still queued: only a finished run ends anything.
    if (payload.action !== "completed" || payload.workflow_run.status !== "completed") return undefined;
    if (!issuer) return undefined;
    const { repository, workflow_run: run, installation } = payload;
    return {
      run: `github:${issuer.name}:${repository.id}:${run.id}:${run.run_attempt}`,
      ...(scope ? { scope } : {}),
      source: scope
        ? { kind: scope.kind, id: scope.id }
        : installation
          ? { kind: "installation", id: installation.id }
          : { kind: "repository", id: repository.id },
    };
  }
  const scope = await verifyGitLab(c.env, c.req.header("x-gitlab-token"));
  const payload = parsePayload(parsed(), PipelinePayload);
  // A project-scoped token vouches for its own project only; GitLab payloads carry no namespace id, so a
  // namespace-scoped delivery is held to its scope by the run's verified claims alone.
  if (scope?.kind === "gitlab-project" && payload && String(payload.project.id) !== scope.id) {
    throw refused("invalid_token", "out_of_scope", "this webhook token is scoped to another project");
  }
  if (c.req.header("x-gitlab-event") !== "Pipeline Hook" || !payload) return undefined;
  if (!GITLAB_TERMINAL.has(payload.object_attributes.status) || !issuer) return undefined;
  return {
    run: `gitlab:${issuer.name}:${payload.project.id}:${payload.object_attributes.id}`,
    ...(scope ? { scope } : {}),
    source: scope ? { kind: scope.kind, id: scope.id } : { kind: "project", id: payload.project.id },
  };
}

async function handle(c: Context<AppEnv>, platform: Platform): Promise<Response> {
  const rt = c.get("runtime");
  rt.context(c.env).hasher(); // no audit key, no decisions
  // Deliveries come from the platform's shared addresses: a client over its failure limit is refused only
  // when its delivery does not authenticate.
  const blocked = clientBlocked(c);
  const rawDelivery =
    platform === "github"
      ? c.req.header("x-github-delivery")
      : (c.req.header("idempotency-key") ?? c.req.header("x-gitlab-event-uuid"));
  const delivery = rawDelivery && DELIVERY_ID.test(rawDelivery) ? rawDelivery : undefined;
  let end: RunEnd | { scanningAlert: ScanningAlertRef } | undefined;
  let issuer: IssuerConfig | undefined;
  try {
    issuer = resolveIssuer(c, platform);
    end = await authenticate(c, platform, issuer, delivery);
  } catch (e) {
    const refusal = await refuseOrCharge(c, blocked, e);
    if (refusal) throw refusal;
    if (e instanceof RunpassError && !(e instanceof ConfigError))
      throw await auditRefusal(c, "webhook", e, delivery ? { delivery } : {});
    throw e;
  }
  if (!end) return c.json({ result: "ignored" }, 200, NO_STORE);
  if ("scanningAlert" in end) return githubScanningAlert(c, end.scanningAlert);
  const { run } = end;
  // Only authenticated deliveries that would end a run spend the budget (ignored events cost nothing).
  await limitWebhook(c, issuer?.name ?? platform, end.source);

  const requestId = c.get("requestId");
  const record = await requestRecord(
    c,
    "webhook",
    { decision: "allow", reasons: [] },
    {
      run,
      ...(issuer ? { issuer: issuer.name } : {}),
      ...(delivery ? { delivery } : {}),
      ...(end.scope ? { detail: `scope ${end.scope.kind}:${end.scope.id}` } : {}),
    },
  );
  const outcome = await new DurableLedger(c.env.RUN_LEDGER).endRun(
    { run, requestId, policySetVersion: rt.policies.version, reason: "run_completed" },
    delivery ? { delivery, record } : { record },
    end.scope && issuer
      ? { issuer: issuer.name, claim: SCOPE_CLAIM[end.scope.kind], value: end.scope.id }
      : undefined,
  );
  // Out of scope (or a run with no exchange to prove its claims): a no-op, said the same way as any other.
  if (outcome.outOfScope) return c.json({ result: "ignored" }, 200, NO_STORE);
  if (outcome.duplicate) return c.json({ result: "duplicate", run }, 200, NO_STORE);
  return c.json({ result: "run_ended", run, ended_leases: outcome.ended }, 202, NO_STORE);
}

/** Registers the webhook routes. */
export function webhookRoutes(app: Hono<AppEnv>): void {
  app.post("/v1/webhooks/github", (c) => handle(c, "github"));
  app.post("/v1/webhooks/github/:issuer", (c) => handle(c, "github"));
  app.post("/v1/webhooks/gitlab", (c) => handle(c, "gitlab"));
  app.post("/v1/webhooks/gitlab/:issuer", (c) => handle(c, "gitlab"));
}
