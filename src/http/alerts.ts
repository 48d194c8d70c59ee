// Raising alerts from route handlers (docs/leaks.md, Alerts): the configuration of this env, the burst counters
// (the per-run count is the run ledger's; the others are counted in the isolate and reported in batches to one
// RateLimiter object per counter key, counting only), and GET /v1/admin/alerts.

import type { Context, Hono } from "hono";
import { type AlertTarget, alertHub } from "../adapters/alert-hub.ts";
import {
  type AlertInput,
  type AlertThresholds,
  alertWebhookProblem,
  type BusinessHours,
  parseAlertThresholds,
  parseBusinessHours,
  withinBusinessHours,
} from "../core/alerts/alert.ts";
import type { AuditRecord } from "../core/audit/record.ts";
import { errorMessage, RunpassError } from "../core/errors.ts";
import type { DecisionFacts, DecisionObserver } from "../core/exchange.ts";
import { clientBucket } from "../core/rate-limit.ts";
import { countAlert } from "./rate-limit.ts";
import { NO_STORE } from "./respond.ts";
import type { AppEnv } from "./types.ts";

interface AlertConfig {
  thresholds: AlertThresholds;
  hours: BusinessHours | undefined;
  target: AlertTarget;
}

const configs = new Map<string, AlertConfig>();

/** This env's alert configuration (parsed once per distinct setting; a bad threshold or hours fails closed). */
export function alertConfig(c: Context<AppEnv>): AlertConfig {
  const env = c.env;
  const key = JSON.stringify([
    env.RUNPASS_ALERTS,
    env.RUNPASS_BUSINESS_HOURS,
    env.RUNPASS_ALERT_WEBHOOK,
    env.RUNPASS_ALERT_SECRET,
    env.RUNPASS_DEV,
  ]);
  let config = configs.get(key);
  if (!config) {
    const url = env.RUNPASS_ALERT_WEBHOOK?.trim() || undefined;
    const problem = url ? alertWebhookProblem(url, env.RUNPASS_DEV === "1") : undefined;
    config = {
      thresholds: parseAlertThresholds(env.RUNPASS_ALERTS),
      hours: parseBusinessHours(env.RUNPASS_BUSINESS_HOURS),
      target: {
        ...(url ? { url } : {}),
        ...(env.RUNPASS_ALERT_SECRET ? { secret: env.RUNPASS_ALERT_SECRET } : {}),
        ...(problem ? { problem } : {}),
      },
    };
    if (configs.size > 8) configs.clear();
    configs.set(key, config);
  }
  return config;
}

/** Records an alert durably (delivery follows from the hub's alarm). Never throws: an alert must not fail a request. */
export async function raiseAlert(c: Context<AppEnv>, input: AlertInput): Promise<void> {
  try {
    const config = alertConfig(c);
    await alertHub(c.env).raise(input, config.target, config.thresholds.dedupe_ms, c.get("runtime").clock());
  } catch (e) {
    console.error(
      JSON.stringify({
        type: "runpass.alert_error",
        alert: input.alert,
        error: errorMessage(e).slice(0, 200),
      }),
    );
  }
}

function background(c: Context<AppEnv>, work: () => Promise<void>): void {
  const p = work().catch((e: unknown) =>
    console.error(JSON.stringify({ type: "runpass.alert_error", error: errorMessage(e).slice(0, 200) })),
  );
  c.executionCtx.waitUntil(p);
}

function minutes(ms: number): string {
  return `${Math.round(ms / 60_000)} min`;
}

/** A failed verification from this client (counted in the background towards `failed_auth_burst`). Never throws. */
export function countFailedAuth(c: Context<AppEnv>): void {
  try {
    countFailure(c);
  } catch (e) {
    // A malformed RUNPASS_ALERTS fails the routes that raise alerts; a failure being charged must not.
    console.error(JSON.stringify({ type: "runpass.alert_error", error: errorMessage(e).slice(0, 200) }));
  }
}

function countFailure(c: Context<AppEnv>): void {
  const burst = alertConfig(c).thresholds.failed_auth_burst;
  const address = clientBucket(c.req.header("cf-connecting-ip"));
  const digest = () => c.get("runtime").context(c.env).hasher().digest(`client:${address}`);
  countAlert(
    c,
    `failed_auth:${address}`,
    burst,
    async () => {
      const d = await digest();
      return { name: `failed_auth:${d}`, label: `client ${d}` };
    },
    async () => {
      const d = await digest();
      await raiseAlert(c, {
        alert: "failed_auth_burst",
        key: `failed_auth_burst:${d}`,
        summary: `${burst.count} failed verifications from one client address in ${minutes(burst.windowMs)}`,
        details: { client: d, count: burst.count, window: minutes(burst.windowMs) },
        request_ids: [c.get("requestId")],
      });
    },
  );
}

/** The exchange pipeline's observer (ExchangeDeps.observe): denial and issuance bursts, sensitive off-hours use. */
export function decisionObserver(c: Context<AppEnv>): DecisionObserver {
  // A malformed RUNPASS_ALERTS or RUNPASS_BUSINESS_HOURS fails closed here, before anything is decided: a typo
  // must not silently switch an alert off.
  const { thresholds, hours } = alertConfig(c);
  return {
    // The run ledger counts the run's leases in this window as it commits: no counter object per run.
    runWindowMs: thresholds.issuance_burst_run.windowMs,
    decided(record, facts) {
      // The exchange may already be committed: a missing binding or execution context here must cost the alert,
      // not the response (ExchangeDeps.observe must not throw).
      try {
        observe(record, facts);
      } catch (e) {
        console.error(JSON.stringify({ type: "runpass.alert_error", error: errorMessage(e).slice(0, 200) }));
      }
    },
  };

  function observe(record: AuditRecord, facts: DecisionFacts): void {
    const { issuer, run } = record;
    const repo = record.repository_id ?? record.project_id;
    const where = record.repository_id !== undefined ? "repository" : "project";
    const ids = [record.request_id];
    const counted = (name: string) => async () => ({ name, label: `${where} ${repo}` });
    if (record.decision === "deny") {
      if (record.error === "invalid_token" || repo === undefined || !issuer) return;
      const burst = thresholds.denial_burst;
      const name = `denial:${issuer}:${repo}`;
      countAlert(c, name, burst, counted(name), () =>
        raiseAlert(c, {
          alert: "denial_burst",
          key: `denial_burst:${issuer}:${repo}`,
          summary: `${burst.count} denials for ${where} ${record.repository ?? repo} in ${minutes(burst.windowMs)}`,
          details: {
            issuer,
            [`${where}_id`]: repo,
            repository: record.repository ?? null,
            last_policy: record.policy ?? null,
            count: burst.count,
          },
          request_ids: ids,
        }),
      );
      return;
    }
    if (facts.sensitive && hours && !withinBusinessHours(hours, Date.parse(record.ts))) {
      background(c, () =>
        raiseAlert(c, {
          alert: "sensitive_off_hours",
          key: `sensitive_off_hours:${record.run ?? record.request_id}:${record.policy ?? ""}`,
          summary: `sensitive policy ${record.policy} used outside business hours`,
          details: {
            policy: record.policy ?? null,
            run: record.run ?? null,
            lease: record.lease_id ?? null,
            repository: record.repository ?? null,
            ref: record.ref ?? null,
            subject: record.subject ?? null,
          },
          request_ids: ids,
        }),
      );
    }
    const runBurst = thresholds.issuance_burst_run;
    if (run && facts.runIssued === runBurst.count) {
      background(c, () =>
        raiseAlert(c, {
          alert: "issuance_burst",
          key: `issuance_burst:run:${run}`,
          summary: `${runBurst.count} exchanges for one run in ${minutes(runBurst.windowMs)}`,
          details: { run, policy: record.policy ?? null, count: runBurst.count },
          request_ids: ids,
        }),
      );
    }
    if (repo !== undefined && issuer) {
      const burst = thresholds.issuance_burst_repository;
      const name = `issuance_repo:${issuer}:${repo}`;
      countAlert(c, name, burst, counted(name), () =>
        raiseAlert(c, {
          alert: "issuance_burst",
          key: `issuance_burst:${where}:${issuer}:${repo}`,
          summary: `${burst.count} exchanges for ${where} ${record.repository ?? repo} in ${minutes(burst.windowMs)}`,
          details: {
            issuer,
            [`${where}_id`]: repo,
            repository: record.repository ?? null,
            count: burst.count,
          },
          request_ids: ids,
        }),
      );
    }
  }
}

/** Registers GET /v1/admin/alerts (behind requireAdmin). */
export function alertRoutes(app: Hono<AppEnv>): void {
  app.get("/v1/admin/alerts", async (c) => {
    const text = c.req.query("limit");
    const limit = text === undefined ? 100 : Number(text);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new RunpassError("invalid_request", '"limit" must be an integer from 1 to 1000');
    }
    return c.json({ alerts: await alertHub(c.env).list(limit) }, 200, NO_STORE);
  });
}
