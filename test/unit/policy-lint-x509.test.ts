// RP023 x509-uri-without-id (docs/policy-tooling.md "Lint rules"): an x509 SAN URI built from a mutable name claim,
// or from no ID claim at all, is flagged at the URI; one built from an immutable ID is not.

import { describe, expect, it } from "vitest";
import { lintPolicySet } from "../../src/core/policy/lint.ts";

function policy(kind: "github" | "gitlab", uri: string): string {
  const pins =
    kind === "github"
      ? '  repository_owner_id: "1342004"\n  repository_id: "519345000"\n  event_name: push\n  runner_environment: github-hosted'
      : '  namespace_id: "72"\n  project_id: "20"';
  return `issuer: ${kind}\nallow:\n${pins}\ngrants:\n  x509:\n    common_name: ci\n    uris:\n      - "${uri}"\n`;
}

function rp023(text: string) {
  return lintPolicySet({ policies: [{ path: "policies/p.yaml", text }] }, { dev: false })
    .filter((f) => f.rule === "RP023")
    .map((f) => ({ line: f.line, message: f.message, fix: f.fix }));
}

describe("RP023 x509-uri-without-id", () => {
  it("flags a URI with a re-registrable name claim, at the URI, and names the ID to use", () => {
    const found = rp023(policy("github", `spiffe://acme.dev/ci/\${repository}`));
    expect(found).toHaveLength(1);
    expect(found[0]?.line).toBe(11);
    expect(found[0]?.message).toContain(`\${repository}`);
    expect(found[0]?.fix).toContain(`\${repository_id}`);
    expect(rp023(policy("gitlab", `spiffe://acme.dev/ci/\${project_path}`))[0]?.fix).toContain(
      `\${project_id}`,
    );
  });

  it("flags a URI without any ID claim: every matching run gets the same identity", () => {
    expect(rp023(policy("github", "spiffe://acme.dev/ci/deploy"))[0]?.message).toContain("no ID claim");
    expect(rp023(policy("github", `spiffe://acme.dev/ci/\${ref}`))[0]?.message).toContain("no ID claim");
  });

  it("is quiet for URIs built from immutable IDs", () => {
    expect(rp023(policy("github", `spiffe://acme.dev/ci/github/\${repository_id}/\${ref}`))).toEqual([]);
    expect(rp023(policy("gitlab", `spiffe://acme.dev/ci/gitlab/\${project_id}`))).toEqual([]);
  });
});
