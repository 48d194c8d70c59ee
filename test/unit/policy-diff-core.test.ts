// The policy comparison is pure core code (src/core/policy/diff.ts): two loaded definitions in, the changes and
// their effect on access out, with no git, files or process state involved.

import { describe, expect, it } from "vitest";
import { diffPolicy, summarisePolicy } from "../../src/core/policy/diff.ts";
import type { PolicyDefinition } from "../../src/core/policy/types.ts";

const base: PolicyDefinition = {
  name: "deploy",
  version: "sha256:0",
  issuer: "github",
  allow: { repository_id: ["42"], event_name: ["push"] },
  deny: [],
  ttl: 900,
  grants: { token: { audience: "https://api.example", ttl: 300 } },
};

describe("policy diff, pure core", () => {
  it("reports an added allowed value as wider and a new deny rule as narrower", () => {
    const after: PolicyDefinition = {
      ...base,
      allow: { repository_id: ["42"], event_name: ["push", "workflow_dispatch"] },
      deny: [{ ref: ["refs/heads/dev"] }],
    };
    expect(diffPolicy(base, after)).toEqual([
      { area: "allow", effect: "wider", text: "now also allows event_name workflow_dispatch" },
      { area: "deny", effect: "narrower", text: "now denies ref refs/heads/dev" },
    ]);
  });

  it("finds nothing between a definition and itself, and summarises a new policy in one line", () => {
    expect(diffPolicy(base, structuredClone(base))).toEqual([]);
    expect(summarisePolicy(base)).toBe(
      "issuer github; allows repository_id 42, event_name push; ttl 15m; grants token (audience https://api.example, ttl 5m)",
    );
  });
});
