// The compliance report's data shape and CSV (docs/console.md, "The compliance report"): how each lease ended and
// for how long credentials were held, final upstream revocation outcomes only, admin actions with their actors,
// and CSV fields a spreadsheet can never run as formulas.

import { describe, expect, it } from "vitest";
import { buildReport, CSV_COLUMNS, csvField, reportCsv } from "../../src/console/report.ts";
import type { AuditRecord } from "../../src/core/audit/record.ts";

const T0 = Date.UTC(2026, 10, 1);

function rec(fields: Partial<AuditRecord>): AuditRecord {
  return {
    id: `aud_${Math.random()}`,
    ts: new Date(T0).toISOString(),
    request_id: "req",
    event: "exchange",
    decision: "allow",
    reasons: [],
    count: 1,
    ...fields,
  };
}

function report(rows: Array<{ record: AuditRecord; ended_at: number | null; end_reason: string | null }>) {
  return buildReport({
    from: T0,
    to: T0 + 86_400_000,
    now: T0 + 7_200_000,
    actor: "ada@acme.dev",
    policySetVersion: "sha256:x",
    rows,
    denials: [{ reason: "claim_mismatch:ref", count: 3 }],
    alerts: undefined,
    unpinned: [],
    findings: [],
    secrets: [],
  });
}

describe("the compliance report", () => {
  it("says how each lease ended and how long its credentials were held", () => {
    const r = report([
      {
        record: rec({
          lease_id: "l1",
          run: "github:gh:1:2:1",
          policy: "deploy",
          repository: "acme/api",
          workflow: "acme/api/.github/workflows/deploy.yml@refs/heads/main",
          triggered_by: "octocat",
          lease_expires_at: new Date(T0 + 3_600_000).toISOString(),
          grants: [{ type: "secrets", id: "h", expires_at: "", path: "ci/db", version: 3 }],
        }),
        ended_at: T0 + 600_000,
        end_reason: "run_completed",
      },
      // Never ended by an event, expired by now: reported as expired at its expiry.
      {
        record: rec({ lease_id: "l2", lease_expires_at: new Date(T0 + 1_800_000).toISOString() }),
        ended_at: null,
        end_reason: null,
      },
      // Still live: held until now so far.
      {
        record: rec({ lease_id: "l3", lease_expires_at: new Date(T0 + 86_400_000).toISOString() }),
        ended_at: null,
        end_reason: null,
      },
    ]);
    expect(r.issuances.map((i) => [i.lease_id, i.end_reason, i.held_seconds])).toEqual([
      ["l1", "run_completed", 600],
      ["l2", "expired", 1800],
      ["l3", null, 7200],
    ]);
    expect(r.issuances[0]).toMatchObject({
      grants: "secrets:ci/db@v3",
      triggered_by: "octocat",
      repository: "acme/api",
    });
    expect(r.denials).toEqual({ total: 3, by_reason: [{ reason: "claim_mismatch:ref", count: 3 }] });
    expect(r.generated_by).toBe("ada@acme.dev");
  });

  it("counts final upstream revocation outcomes only, and lists admin actions with their actors", () => {
    const r = report([
      {
        record: rec({
          event: "revocation",
          upstream_revoke: "pending",
          detail: "failed (attempt 1 of 8, retrying): 503",
        }),
        ended_at: null,
        end_reason: null,
      },
      {
        record: rec({ event: "revocation", upstream_revoke: "done", detail: "revoked" }),
        ended_at: null,
        end_reason: null,
      },
      {
        record: rec({
          event: "revocation",
          upstream_revoke: "done",
          detail: "not_revocable: STS sessions expire",
        }),
        ended_at: null,
        end_reason: null,
      },
      {
        record: rec({ event: "revocation", upstream_revoke: "failed", detail: "failed: gave up" }),
        ended_at: null,
        end_reason: null,
      },
      {
        record: rec({
          event: "admin_revoke",
          run: "github:gh:1:2:1",
          actor: "ada@acme.dev",
          detail: "ended 1 leases in 1 runs",
        }),
        ended_at: null,
        end_reason: null,
      },
      {
        record: rec({ event: "admin", actor: "admin-token", detail: "console sign-in" }),
        ended_at: null,
        end_reason: null,
      },
    ]);
    expect(r.upstream_revocations).toEqual({ revoked: 1, not_revocable: 1, failed: 1 });
    expect(r.revocations.map((a) => [a.actor, a.run])).toEqual([["ada@acme.dev", "github:gh:1:2:1"]]);
    expect(r.admin_actions.map((a) => a.detail)).toEqual(["ended 1 leases in 1 runs", "console sign-in"]);
  });

  it("writes RFC 4180 CSV whose fields cannot run as spreadsheet formulas", () => {
    expect(csvField('say "hi", then\r\nleave')).toBe('"say ""hi"", then\r\nleave"');
    for (const evil of ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)"])
      expect(csvField(evil).replace(/^"/, "")).toMatch(/^'/);
    expect(csvField(null)).toBe("");
    expect(csvField(42)).toBe("42");
    const csv = reportCsv(
      report([
        {
          record: rec({ lease_id: "l1", repository: "=cmd|' /C calc'!A0" }),
          ended_at: T0 + 1000,
          end_reason: "admin_revoke",
        },
      ]),
    );
    const [header, row] = csv.split("\r\n");
    expect(header).toBe(CSV_COLUMNS.join(","));
    expect(row).toContain("'=cmd");
    expect(csv.endsWith("\r\n")).toBe(true);
  });
});
