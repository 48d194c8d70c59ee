// The compliance report for a period (docs/console.md, "The compliance report"): every issuance and how it ended,
// revocations, denials, leaks, policies without immutable pins, lint warnings, secrets past rotation age, admin
// actions. One data shape behind the page, the JSON and the CSV, so the three always agree.

import type { ReasonCount } from "../adapters/audit-stats.ts";
import type { AuditRecord } from "../core/audit/record.ts";
import type { Finding } from "../core/policy/lint.ts";
import type { ConsoleAlert } from "./pages/alerts.tsx";
import type { SecretView } from "./pages/secrets.tsx";

/** One issued lease: who, what, when, how it ended. */
export interface IssuanceRow {
  issued_at: string;
  repository: string | null;
  repository_id: string | null;
  project_id: string | null;
  workflow: string | null;
  triggered_by: string | null;
  ref: string | null;
  run: string | null;
  policy: string | null;
  grants: string;
  lease_id: string | null;
  lease_expires_at: string | null;
  ended_at: string | null;
  /** `run_completed`, `revoked_by_client`, `admin_revoke`, `expired`; null while the lease is live. */
  end_reason: string | null;
  /** How long the credentials were held (to the end, or to now for a live lease). */
  held_seconds: number;
}

/** An admin action (sign-in, revoke, secret change, refused console request). */
export interface AdminActionRow {
  at: string;
  event: string;
  decision: string;
  actor: string | null;
  run: string | null;
  policy: string | null;
  detail: string | null;
}

export interface ComplianceReport {
  period: { from: string; to: string };
  generated_at: string;
  generated_by: string;
  policy_set_version: string;
  issuances: IssuanceRow[];
  revocations: AdminActionRow[];
  upstream_revocations: { revoked: number; not_revocable: number; failed: number };
  denials: { total: number; by_reason: ReasonCount[] };
  /** Leak and other alerts raised in the period, with how long the receiver took to get them; null: no alert hub. */
  leaks: Array<ConsoleAlert & { notified_seconds: number | null }> | null;
  policies_missing_pins: string[];
  lint_warnings: Array<Pick<Finding, "rule" | "severity" | "file" | "line" | "message">>;
  secrets_past_rotation: Array<{ path: string; version: number; age_days: number; max_age_days: number }>;
  admin_actions: AdminActionRow[];
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function adminRow(r: AuditRecord): AdminActionRow {
  return {
    at: r.ts,
    event: r.event,
    decision: r.decision,
    actor: r.actor ?? null,
    run: r.run ?? null,
    policy: r.policy ?? null,
    detail: r.detail ?? null,
  };
}

/** Builds the report from the period's records and the current policy set, secrets and alerts. */
export function buildReport(input: {
  from: number;
  to: number;
  now: number;
  actor: string;
  policySetVersion: string;
  rows: Array<{ record: AuditRecord; ended_at: number | null; end_reason: string | null }>;
  denials: ReasonCount[];
  alerts: ConsoleAlert[] | undefined;
  unpinned: string[];
  findings: readonly Finding[];
  secrets: SecretView[];
}): ComplianceReport {
  const issuances: IssuanceRow[] = [];
  const revocations: AdminActionRow[] = [];
  const admin: AdminActionRow[] = [];
  const upstream = { revoked: 0, not_revocable: 0, failed: 0 };
  for (const { record: r, ended_at, end_reason } of input.rows) {
    if (r.event === "exchange") {
      const issued = Date.parse(r.ts);
      const expires = r.lease_expires_at ? Date.parse(r.lease_expires_at) : null;
      const expired = ended_at === null && expires !== null && expires <= input.now;
      const end = ended_at ?? (expired ? expires : null);
      issuances.push({
        issued_at: r.ts,
        repository: r.repository ?? null,
        repository_id: r.repository_id ?? null,
        project_id: r.project_id ?? null,
        workflow: r.workflow ?? null,
        triggered_by: r.triggered_by ?? null,
        ref: r.ref ?? null,
        run: r.run ?? null,
        policy: r.policy ?? null,
        grants: (r.grants ?? [])
          .map((g) => (g.path ? `${g.type}:${g.path}@v${g.version}` : g.type))
          .join(" "),
        lease_id: r.lease_id ?? null,
        lease_expires_at: r.lease_expires_at ?? null,
        ended_at: iso(end),
        end_reason: end_reason ?? (expired ? "expired" : null),
        held_seconds: Math.max(0, Math.round(((end ?? input.now) - issued) / 1000)),
      });
    } else if (r.event === "revocation") {
      // Every attempt is recorded; only final outcomes count (a retry in progress is `pending`).
      if (r.upstream_revoke === "pending") continue;
      const status = /^(revoked|not_revocable)\b/.exec(r.detail ?? "")?.[1] as
        | "revoked"
        | "not_revocable"
        | undefined;
      upstream[status ?? "failed"]++;
    } else {
      const row = adminRow(r);
      admin.push(row);
      if (r.event === "admin_revoke") revocations.push(row);
    }
  }
  return {
    period: { from: new Date(input.from).toISOString(), to: new Date(input.to).toISOString() },
    generated_at: new Date(input.now).toISOString(),
    generated_by: input.actor,
    policy_set_version: input.policySetVersion,
    issuances,
    revocations,
    upstream_revocations: upstream,
    denials: { total: input.denials.reduce((n, d) => n + d.count, 0), by_reason: input.denials },
    leaks:
      input.alerts === undefined
        ? null
        : input.alerts
            .filter((a) => a.at >= input.from && a.at < input.to)
            .map((a) => ({
              ...a,
              notified_seconds: a.deliveredAt ? Math.round((a.deliveredAt - a.at) / 1000) : null,
            })),
    policies_missing_pins: input.unpinned,
    lint_warnings: input.findings.map(({ rule, severity, file, line, message }) => ({
      rule,
      severity,
      file,
      line,
      message,
    })),
    secrets_past_rotation: input.secrets
      .filter((s) => s.rotationDue && s.currentSince !== null && s.maxAge !== null)
      .map((s) => ({
        path: s.path,
        version: s.currentVersion,
        age_days: Math.floor((input.now - (s.currentSince as number)) / 86_400_000),
        max_age_days: Math.floor((s.maxAge as number) / 86_400),
      })),
    admin_actions: admin,
  };
}

/** The CSV columns of the issuance table (one row per lease). */
export const CSV_COLUMNS: ReadonlyArray<keyof IssuanceRow> = [
  "issued_at",
  "repository",
  "repository_id",
  "project_id",
  "workflow",
  "triggered_by",
  "ref",
  "run",
  "policy",
  "grants",
  "lease_id",
  "lease_expires_at",
  "ended_at",
  "end_reason",
  "held_seconds",
];

/** RFC 4180 field quoting; a leading =, +, - or @ is prefixed with ' so spreadsheets never run it as a formula. */
export function csvField(value: string | number | null): string {
  if (value === null) return "";
  let text = String(value);
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The issuances as CSV (CRLF line ends, header first). */
export function reportCsv(report: ComplianceReport): string {
  const lines = [CSV_COLUMNS.join(",")];
  for (const row of report.issuances) lines.push(CSV_COLUMNS.map((k) => csvField(row[k])).join(","));
  return `${lines.join("\r\n")}\r\n`;
}
