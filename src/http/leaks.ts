// Leak response (docs/leaks.md): a reported value is fingerprinted and looked up in the leak index; a lease's
// credential ends its run (every upstream revocation the grants support runs, as at any lease end), a secret
// version is quarantined. Every step is audited (`leak`) and alerted (`leak_detected`); no value is echoed.

import type { Context, Hono } from "hono";
import * as z from "zod/mini";
import { D1AuditStore, type LeakIndexRow } from "../adapters/audit-store.ts";
import { githubFor } from "../adapters/github-app.ts";
import { DurableLedger } from "../adapters/ledger-client.ts";
import { storeFor } from "../adapters/secrets-client.ts";
import { MAX_LEAK_REPORT_BYTES, MAX_LEAK_VALUES } from "../core/constants.ts";
import { sha256 } from "../core/crypto.ts";
import { RunpassError } from "../core/errors.ts";
import { UpstreamError, upstreamFailure } from "../core/grants/upstream.ts";
import { SecretScanningKeys, verifyScanningSignature } from "../core/leaks/github-keys.ts";
import {
  cleanSource,
  type LeakCandidate,
  LeakReportSchema,
  leakCandidates,
  lookable,
} from "../core/leaks/reports.ts";
import { raiseAlert } from "./alerts.ts";
import { auditRefusal, auditSink, requestRecord } from "./audit.ts";
import { clientBlocked, limitLeaks, refuseOrCharge } from "./rate-limit.ts";
import { checkDeclaredLength, parseJson, readBodyBytes, requireMediaType } from "./request.ts";
import { NO_STORE } from "./respond.ts";
import type { Runtime } from "./runtime.ts";
import type { AppEnv } from "./types.ts";
import type { ScanningAlertRef } from "./webhooks.ts";

export type LeakAction = "run_ended" | "already_ended" | "secret_quarantined" | "already_quarantined";

/** One match as the report's answer shows it (identifiers only). */
export interface LeakMatch {
  kind: string;
  lease?: string;
  run?: string;
  policy?: string;
  path?: string;
  version?: number;
  /** The upstream's identifier of the credential (the AWS access key id), to search its logs for. */
  upstream_id?: string;
  action: LeakAction;
}

export interface LeakOutcome {
  matches: LeakMatch[];
  unmatched: number;
  /** Which candidates matched anything (by index into the candidates given). */
  matched: boolean[];
}

/**
 * Acts on a report: looks every value up and acts on exactly the entries whose fingerprints it names (a report
 * can never reach a credential it does not name). `reporter` names the channel in audit; `bucket` keys the rate
 * limit (each channel its own, so a flood on one cannot silence another).
 */
export async function respondToLeak(
  c: Context<AppEnv>,
  candidates: LeakCandidate[],
  reporter: string,
  bucket = reporter,
): Promise<LeakOutcome> {
  await limitLeaks(c, bucket);
  const rt = c.get("runtime");
  const fingerprinter = rt.context(c.env).fingerprinter();
  const fps = await Promise.all(
    candidates.map((cand) =>
      lookable(cand) ? fingerprinter.digest(cand.value) : Promise.resolve(undefined),
    ),
  );
  const wanted = [...new Set(fps.filter((f): f is string => f !== undefined))];
  const rows = wanted.length > 0 ? await new D1AuditStore(c.env.AUDIT_DB).findFingerprints(wanted) : [];
  const hit = new Set(rows.map((r) => r.fp));
  const sourceOf = new Map<string, string>();
  fps.forEach((fp, i) => {
    if (fp && !sourceOf.has(fp)) sourceOf.set(fp, (candidates[i] as LeakCandidate).source);
  });

  const ledger = new DurableLedger(c.env.RUN_LEDGER);
  const requestId = c.get("requestId");
  const base = { requestId, policySetVersion: rt.policies.version, reason: "leak_reported" as const };
  // One run end per run, however many of its credentials the report names.
  const runEnds = new Map<string, Promise<boolean>>();
  const matches: LeakMatch[] = [];
  const sink = auditSink(c);
  for (const row of sortRows(rows)) {
    const source = sourceOf.get(row.fp) ?? reporter;
    let match: LeakMatch;
    if (row.kind === "secret" && row.path !== null && row.version !== null) {
      const done = await storeFor(c.env, row.path).quarantine(row.path, row.version, rt.clock());
      if (done === undefined) continue;
      match = {
        kind: "secret",
        path: row.path,
        version: row.version,
        action: done === "quarantined" ? "secret_quarantined" : "already_quarantined",
      };
    } else if (row.run !== null) {
      const run = row.run;
      const upstreamId =
        row.ref !== null ? await rt.context(c.env).grants.sealer.open(row.ref, row.owner) : undefined;
      let ended = runEnds.get(run);
      if (!ended) {
        ended = ledger.endRun({ ...base, run }).then((o) => !o.alreadyEnded);
        runEnds.set(run, ended);
      }
      match = {
        kind: row.kind,
        lease: row.owner,
        run,
        ...(row.policy !== null ? { policy: row.policy } : {}),
        ...(upstreamId !== undefined ? { upstream_id: upstreamId } : {}),
        action: (await ended) ? "run_ended" : "already_ended",
      };
    } else {
      continue;
    }
    // The first match of a run that this report ended says run_ended; later ones of the same run too.
    matches.push(match);
    sink.write(
      await requestRecord(
        c,
        "leak",
        { decision: "allow", reasons: [] },
        {
          ...(match.run ? { run: match.run } : {}),
          ...(match.lease ? { lease_id: match.lease } : {}),
          ...(match.policy ? { policy: match.policy } : {}),
          detail:
            `${reporter}: ${match.kind} match (${source}) → ${match.action}${match.path ? ` ${match.path}@${match.version}` : ""}`.slice(
              0,
              500,
            ),
        },
      ),
    );
    await raiseAlert(c, {
      alert: "leak_detected",
      key: `leak_detected:${row.owner}:${match.action}`,
      summary:
        match.kind === "secret"
          ? `leaked secret ${match.path}@${match.version} reported (${source}); ${match.action}`
          : `leaked ${match.kind} credential of run ${match.run} reported (${source}); ${match.action}`,
      details: {
        kind: match.kind,
        action: match.action,
        source,
        reporter,
        run: match.run ?? null,
        lease: match.lease ?? null,
        policy: match.policy ?? null,
        path: match.path ?? null,
        version: match.version ?? null,
        upstream_id: match.upstream_id ?? null,
      },
      request_ids: [requestId],
    });
  }
  const matched = fps.map((fp) => fp !== undefined && hit.has(fp));
  const unmatched = matched.filter((m) => !m).length;
  sink.write(
    await requestRecord(
      c,
      "leak",
      { decision: "allow", reasons: [] },
      {
        detail: `${reporter} report: ${candidates.length} values, ${matches.length} matches, ${unmatched} unmatched`,
      },
    ),
  );
  return { matches, unmatched, matched };
}

/** Secrets first (quarantine is one write), then leases grouped by run. */
function sortRows(rows: LeakIndexRow[]): LeakIndexRow[] {
  return [...rows].sort(
    (a, b) =>
      (a.kind === "secret" ? 0 : 1) - (b.kind === "secret" ? 0 : 1) ||
      (a.run ?? "").localeCompare(b.run ?? ""),
  );
}

/** GitHub's partner-program report: the tokens its scanners found, with where. */
const GitHubReport = z
  .array(
    z.looseObject({
      token: z.string().check(z.minLength(1)),
      type: z.string().check(z.maxLength(128)),
      url: z.optional(z.string()),
      source: z.optional(z.string()),
    }),
  )
  .check(z.minLength(1), z.maxLength(MAX_LEAK_VALUES));

/** Per app (one per isolate), per GitHub API URL: the partner keys. */
const scanningKeys = new WeakMap<Runtime, Map<string, SecretScanningKeys>>();

function keysFor(c: Context<AppEnv>): SecretScanningKeys {
  const rt = c.get("runtime");
  const api = (c.env.GITHUB_API_URL || "https://api.github.com").replace(/\/+$/, "");
  let byUrl = scanningKeys.get(rt);
  if (!byUrl) {
    byUrl = new Map();
    scanningKeys.set(rt, byUrl);
  }
  let keys = byUrl.get(api);
  if (!keys) {
    keys = new SecretScanningKeys(api, rt.clock);
    byUrl.set(api, keys);
  }
  return keys;
}

/**
 * POST /v1/leaks/github: verifies GitHub's signature over the raw body with the key it names (401 otherwise,
 * before anything is parsed or looked up), acts on the tokens as a report, and answers in GitHub's format.
 * Verify first, as the other endpoints: a correct signature always gets in; forged ones count against the
 * client's failure limit and past it get 429 with no audit record of their own (docs/security.md, Rate limits).
 */
async function githubPartnerReport(c: Context<AppEnv>): Promise<Response> {
  const blocked = clientBlocked(c);
  const refuse = async (message: string, code: "signature_missing" | "signature_invalid") => {
    const error = new RunpassError("invalid_token", message, { reasons: [{ code }] });
    const refusal = await refuseOrCharge(c, blocked, error);
    if (refusal) throw refusal;
    throw await auditRefusal(c, "leak", error, { detail: "github partner report refused" });
  };
  checkDeclaredLength(c, MAX_LEAK_REPORT_BYTES);
  const keyId = c.req.header("github-public-key-identifier");
  const signature = c.req.header("github-public-key-signature");
  if (!keyId || !signature || keyId.length > 256 || signature.length > 512) {
    return refuse(
      "GitHub-Public-Key-Identifier and GitHub-Public-Key-Signature are required",
      "signature_missing",
    );
  }
  const raw = await readBodyBytes(c, MAX_LEAK_REPORT_BYTES);
  const key = await keysFor(c).key(keyId);
  if (!key || !(await verifyScanningSignature(key, signature, raw))) {
    return refuse("the signature does not verify with GitHub's secret-scanning keys", "signature_invalid");
  }
  const body = parseJson(raw, GitHubReport);
  const candidates = body.map((t) => ({
    value: t.token,
    source: cleanSource(`github ${t.type}${t.url ? ` ${t.url}` : ""}${t.source ? ` (${t.source})` : ""}`),
  }));
  const { matched } = await respondToLeak(c, candidates, "github", "github-partner");
  const answer = await Promise.all(
    body.map(async (t, i) => ({
      token_hash: (await sha256(t.token)).slice("sha256:".length),
      token_type: t.type,
      label: matched[i] ? "true_positive" : "false_positive",
    })),
  );
  return c.json(answer, 200, NO_STORE);
}

/**
 * A `secret_scanning_alert` delivery (created, reopened) verified with the master webhook secret: the alert's
 * secret is read through the GitHub App and handled as a report, so a runpass-issued GitHub token or AWS key that
 * GitHub finds in a push ends its run with no human in the loop. Answers with counts only.
 */
export async function githubScanningAlert(c: Context<AppEnv>, ref: ScanningAlertRef): Promise<Response> {
  let found: { secret: string; secret_type: string } | undefined;
  try {
    found = await githubFor(c.env).secretScanningAlert(ref.owner, ref.repository, ref.number);
  } catch (e) {
    if (e instanceof UpstreamError)
      throw upstreamFailure("GitHub", e, `secret-scanning alert: ${e.detail.slice(0, 300)}`);
    throw e;
  }
  if (!found) return c.json({ result: "ignored" }, 200, NO_STORE);
  const where = `${ref.owner}/${ref.repository}#${ref.number}`;
  const { matches, unmatched } = await respondToLeak(
    c,
    [{ value: found.secret, source: cleanSource(`github secret scanning ${where} (${found.secret_type})`) }],
    "github",
    "github-alert",
  );
  // GitHub keeps webhook responses in its delivery log: counts only, never which run, lease, policy or AWS key
  // id matched (those are in the audit records and the alert).
  return c.json({ result: "leak_checked", matched: matches.length, unmatched }, 200, NO_STORE);
}

/** Registers POST /v1/admin/leaks (behind requireAdmin) and GitHub's partner endpoint POST /v1/leaks/github. */
export function leakRoutes(app: Hono<AppEnv>): void {
  app.post("/v1/leaks/github", githubPartnerReport);
  app.post("/v1/admin/leaks", async (c) => {
    checkDeclaredLength(c, MAX_LEAK_REPORT_BYTES);
    requireMediaType(c, "application/json");
    const report = parseJson(await readBodyBytes(c, MAX_LEAK_REPORT_BYTES), LeakReportSchema);
    const { matches, unmatched } = await respondToLeak(c, leakCandidates(report), "admin");
    return c.json({ matches, unmatched }, 200, NO_STORE);
  });
}
