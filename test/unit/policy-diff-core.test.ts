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

  it("reports ssh grant changes by their effect: principals and forwarding widen, force_command narrows", () => {
    const ssh = {
      principals: ["deploy"],
      ttl: 900,
      extensions: [] as "permit-pty"[],
      force_command: "/bin/deploy",
    };
    const before: PolicyDefinition = { ...base, grants: { ssh } };
    const after: PolicyDefinition = {
      ...base,
      grants: {
        ssh: {
          principals: ["deploy", "root"],
          ttl: 1800,
          extensions: ["permit-agent-forwarding"],
          source_address: ["10.0.0.0/8"],
        },
      },
    };
    expect(diffPolicy(before, after)).toEqual([
      { area: "grant", effect: "wider", text: "ssh grant gains principals root" },
      { area: "grant", effect: "wider", text: "ssh grant gains extensions permit-agent-forwarding" },
      { area: "grant", effect: "changed", text: "ssh grant gains source_address 10.0.0.0/8" },
      { area: "grant", effect: "wider", text: "ssh grant force_command /bin/deploy → (none)" },
      { area: "grant", effect: "wider", text: "ssh grant ttl 15m → 30m" },
    ]);
    expect(diffPolicy(base, before)).toContainEqual({
      area: "grant",
      effect: "wider",
      text: "gains a ssh grant (principals deploy, 15m)",
    });
  });
  it("reports x509 and postgres grant changes: more SANs and more roles widen, a longer ttl widens", () => {
    const x509 = { common_name: "ci", uris: ["spiffe://acme/ci/1"], dns_names: [], ttl: 900 };
    const postgres = { connection: "db", roles: ["reader"], statements: [], ttl: 900, connection_limit: 10 };
    const before: PolicyDefinition = { ...base, grants: { x509, postgres } };
    const after: PolicyDefinition = {
      ...base,
      grants: {
        x509: { ...x509, dns_names: ["api.internal"], ttl: 600 },
        postgres: { ...postgres, roles: ["reader", "writer"], connection_limit: 20 },
      },
    };
    expect(diffPolicy(before, after)).toEqual([
      { area: "grant", effect: "wider", text: "x509 grant DNS names: gains api.internal" },
      { area: "grant", effect: "narrower", text: "x509 grant ttl 15m → 10m" },
      { area: "grant", effect: "wider", text: "postgres grant roles: gains writer" },
      { area: "grant", effect: "wider", text: "postgres grant connection_limit 10 → 20" },
    ]);
    expect(diffPolicy(after, base)).toContainEqual({
      area: "grant",
      effect: "narrower",
      text: "loses its postgres grant (was connection db, roles reader, writer, 15m)",
    });
  });
});
