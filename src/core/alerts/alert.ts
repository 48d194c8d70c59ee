// Alerts (docs/leaks.md, Alerts): what each one is, its thresholds (RUNPASS_ALERTS), business hours
// (RUNPASS_BUSINESS_HOURS), the signed JSON body a receiver gets, and the webhook URL rule. Alerts carry
// identifiers (runs, leases, policies, digests) and counts, never a credential, token or secret value.

import { hmac } from "../crypto.ts";
import { parseDuration } from "../duration.ts";
import { hex } from "../encoding.ts";
import { ConfigError } from "../errors.ts";
import { isLoopbackHost } from "../loopback.ts";

export const ALERT_NAMES = [
  "leak_detected",
  "failed_auth_burst",
  "denial_burst",
  "issuance_burst",
  "sensitive_off_hours",
  "admin_revoke",
] as const;
export type AlertName = (typeof ALERT_NAMES)[number];

export type Severity = "critical" | "high" | "medium";

/** How bad each alert is (receivers route on it). */
export const SEVERITY: Record<AlertName, Severity> = {
  leak_detected: "critical",
  failed_auth_burst: "high",
  denial_burst: "medium",
  issuance_burst: "high",
  sensitive_off_hours: "medium",
  admin_revoke: "high",
};

/** Detail values are identifiers and counts only. */
export type AlertDetails = Record<string, string | number | boolean | null>;

/** What raises an alert: `key` deduplicates (one delivery per key within the dedupe window). */
export interface AlertInput {
  alert: AlertName;
  key: string;
  summary: string;
  details: AlertDetails;
  request_ids: string[];
}

/** The JSON body POSTed to RUNPASS_ALERT_WEBHOOK (`text` makes it a Slack incoming-webhook message). */
export interface AlertPayload {
  alert: AlertName;
  severity: Severity;
  summary: string;
  text: string;
  details: AlertDetails;
  request_ids: string[];
  /** ISO 8601. */
  at: string;
}

/** Builds the body: the summary and one `key: value` line per detail, as Slack shows them. */
export function alertPayload(input: AlertInput, now: number): AlertPayload {
  const severity = SEVERITY[input.alert];
  const lines = Object.entries(input.details)
    .filter(([, v]) => v !== null && v !== "")
    .map(([k, v]) => `• ${k}: \`${String(v)}\``);
  return {
    alert: input.alert,
    severity,
    summary: input.summary,
    text: [`*[runpass ${severity}] ${input.alert}*: ${input.summary}`, ...lines].join("\n"),
    details: input.details,
    request_ids: input.request_ids.slice(0, 20),
    at: new Date(now).toISOString(),
  };
}

/**
 * `sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">` under RUNPASS_ALERT_SECRET, for `x-runpass-signature`;
 * `timestamp` (unix seconds) goes in `x-runpass-timestamp`, so a receiver can refuse a replayed old delivery
 * (docs/leaks.md, "Alerts").
 */
export async function alertSignature(secret: string, body: string, timestamp: number): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return `sha256=${hex(await hmac(key, `${timestamp}.${body}`))}`;
}

/** A burst threshold: `count` events for one key within `windowMs`. */
export interface Burst {
  count: number;
  windowMs: number;
}

/** Thresholds in force (RUNPASS_ALERTS overrides any of them). */
export interface AlertThresholds {
  failed_auth_burst: Burst;
  denial_burst: Burst;
  issuance_burst_run: Burst;
  issuance_burst_repository: Burst;
  /** One delivery per alert key within this window; repeats are counted on the delivered alert. */
  dedupe_ms: number;
}

/** The defaults of docs/leaks.md, Alerts. */
export const DEFAULT_ALERT_THRESHOLDS: AlertThresholds = {
  failed_auth_burst: { count: 50, windowMs: 5 * 60_000 },
  denial_burst: { count: 20, windowMs: 5 * 60_000 },
  issuance_burst_run: { count: 50, windowMs: 10 * 60_000 },
  issuance_burst_repository: { count: 500, windowMs: 10 * 60_000 },
  dedupe_ms: 10 * 60_000,
};

const BURST_TEXT = /^(\d{1,7})\s*\/\s*(\S+)$/;

/**
 * Parses RUNPASS_ALERTS: a JSON object naming any of `failed_auth_burst`, `denial_burst`,
 * `issuance_burst_run`, `issuance_burst_repository` (each `"<count>/<duration>"`) and `dedupe` (a duration).
 * Throws a ConfigError naming the variable for anything else.
 */
export function parseAlertThresholds(raw: string | undefined): AlertThresholds {
  const out: AlertThresholds = { ...DEFAULT_ALERT_THRESHOLDS };
  if (!raw?.trim()) return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError("RUNPASS_ALERTS is not JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError("RUNPASS_ALERTS must be a JSON object");
  }
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === "dedupe") {
      const seconds = typeof value === "string" ? parseDuration(value) : undefined;
      if (seconds === undefined)
        throw new ConfigError('RUNPASS_ALERTS: "dedupe" must be a duration such as 10m');
      out.dedupe_ms = seconds * 1000;
      continue;
    }
    if (
      name !== "failed_auth_burst" &&
      name !== "denial_burst" &&
      name !== "issuance_burst_run" &&
      name !== "issuance_burst_repository"
    ) {
      throw new ConfigError(`RUNPASS_ALERTS: unknown threshold "${name}"`);
    }
    const m = typeof value === "string" ? BURST_TEXT.exec(value) : null;
    const seconds = m ? parseDuration(m[2] as string) : undefined;
    const count = m ? Number(m[1]) : 0;
    if (!m || seconds === undefined || count < 1) {
      throw new ConfigError(`RUNPASS_ALERTS: "${name}" must be "<count>/<duration>", e.g. "50/5m"`);
    }
    out[name] = { count, windowMs: seconds * 1000 };
  }
  return out;
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"] as const;

/** Business hours: weekdays (0 = Sunday), minutes since midnight [from, to), in an IANA time zone. */
export interface BusinessHours {
  days: ReadonlySet<number>;
  from: number;
  to: number;
  timeZone: string;
}

function dayIndex(text: string): number {
  const i = DAYS.findIndex((d) => d.toLowerCase() === text.toLowerCase());
  if (i < 0) throw new ConfigError(`RUNPASS_BUSINESS_HOURS: "${text}" is not a day (Mon … Sun)`);
  return i;
}

function minutes(text: string): number {
  const m = /^([01]\d|2[0-4]):([0-5]\d)$/.exec(text);
  const value = m ? Number(m[1]) * 60 + Number(m[2]) : Number.NaN;
  if (!(value <= 24 * 60)) throw new ConfigError(`RUNPASS_BUSINESS_HOURS: "${text}" is not a time (HH:MM)`);
  return value;
}

/**
 * Parses RUNPASS_BUSINESS_HOURS, e.g. `Mon-Fri 07:00-19:00 Europe/Berlin` (days as a range or a comma list);
 * undefined when unset (then no exchange is off hours). Throws a ConfigError naming the variable.
 */
export function parseBusinessHours(raw: string | undefined): BusinessHours | undefined {
  if (!raw?.trim()) return undefined;
  const parts = raw.trim().split(/\s+/);
  if (parts.length !== 3) {
    throw new ConfigError('RUNPASS_BUSINESS_HOURS must look like "Mon-Fri 07:00-19:00 Europe/Berlin"');
  }
  const [dayText, timeText, timeZone] = parts as [string, string, string];
  const days = new Set<number>();
  for (const item of dayText.split(",")) {
    const [a, b] = item.split("-");
    const start = dayIndex(a ?? "");
    const end = b === undefined ? start : dayIndex(b);
    for (let d = start; ; d = (d + 1) % 7) {
      days.add(d);
      if (d === end) break;
    }
  }
  const [fromText, toText] = timeText.split("-");
  const from = minutes(fromText ?? "");
  const to = minutes(toText ?? "");
  if (to <= from) throw new ConfigError("RUNPASS_BUSINESS_HOURS: the end time must be after the start time");
  try {
    new Intl.DateTimeFormat("en-US", { timeZone });
  } catch {
    throw new ConfigError(`RUNPASS_BUSINESS_HOURS: "${timeZone}" is not a time zone`);
  }
  return { days, from, to, timeZone };
}

/** Whether `now` (ms) falls inside business hours, in their time zone. */
export function withinBusinessHours(hours: BusinessHours, now: number): boolean {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: hours.timeZone,
    weekday: "short",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(new Date(now));
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  const day = DAYS.indexOf(get("weekday") as (typeof DAYS)[number]);
  const minute = Number(get("hour")) * 60 + Number(get("minute"));
  return hours.days.has(day) && minute >= hours.from && minute < hours.to;
}

/**
 * The problem with an alert webhook URL, or undefined: https, or in dev mode http to a loopback host only
 * (docs/security.md, "Loopback").
 */
export function alertWebhookProblem(url: string, dev: boolean): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "RUNPASS_ALERT_WEBHOOK is not a URL";
  }
  if (parsed.username || parsed.password)
    return "RUNPASS_ALERT_WEBHOOK must not carry credentials in the URL";
  if (parsed.protocol === "https:") return undefined;
  if (parsed.protocol === "http:" && dev && isLoopbackHost(parsed.hostname)) return undefined;
  return dev
    ? "RUNPASS_ALERT_WEBHOOK must be https (or http to 127.0.0.1, localhost or [::1] in dev mode)"
    : "RUNPASS_ALERT_WEBHOOK must be https";
}
