// RP026 postgres-privileged-statement and RP027 postgres-ttl-over-lease (docs/policy-tooling.md "Lint rules"): a
// statement that makes the lease's role more than a run's worker is an error at the statement; so is a grant ttl
// longer than the lease; ordinary GRANTs and NO… attributes are not flagged.

import { describe, expect, it } from "vitest";
import { lintPolicySet } from "../../src/core/policy/lint.ts";

function policy(grant: string, ttl = "1h"): string {
  return `issuer: github
allow:
  repository_owner_id: "1342004"
  repository_id: "519345000"
  event_name: push
  runner_environment: github-hosted
ttl: ${ttl}
grants:
  postgres:
    connection: billing
    roles: [app_readonly]
${grant}
`;
}

function found(text: string, rule: string) {
  return lintPolicySet({ policies: [{ path: "policies/p.yaml", text }] }, { dev: false })
    .filter((f) => f.rule === rule)
    .map((f) => ({ line: f.line, message: f.message, severity: f.severity }));
}

describe("postgres grant lint", () => {
  it("RP026 flags privileged statements at the statement, and only those", () => {
    for (const bad of [
      "ALTER ROLE {{name}} SUPERUSER",
      "ALTER ROLE {{name}} WITH CREATEROLE",
      "GRANT pg_read_all_data TO {{name}}",
      "GRANT app_migrator TO {{name}} WITH ADMIN OPTION",
      "ALTER ROLE {{name}} BYPASSRLS",
    ]) {
      const f = found(policy(`    statements:\n      - "${bad}"`), "RP026");
      expect(f, bad).toHaveLength(1);
      expect(f[0]).toMatchObject({ line: 13, severity: "error" });
    }
    for (const ok of [
      "GRANT SELECT ON ALL TABLES IN SCHEMA reports TO {{name}}",
      "ALTER ROLE {{name}} NOSUPERUSER NOCREATEROLE",
      "ALTER ROLE {{name}} SET statement_timeout = '30s'",
    ]) {
      expect(found(policy(`    statements:\n      - "${ok}"`), "RP026"), ok).toEqual([]);
    }
  });

  it("RP027 flags a ttl longer than the lease (default lease 1h)", () => {
    expect(found(policy("    ttl: 2h", "30m"), "RP027")).toHaveLength(1);
    expect(found(policy("    ttl: 2h").replace("ttl: 1h\n", ""), "RP027")).toHaveLength(1);
    expect(found(policy("    ttl: 30m"), "RP027")).toEqual([]);
  });
});
