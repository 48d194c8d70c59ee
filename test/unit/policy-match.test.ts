// Matching verified claims against compiled policies (docs/policies.md, Matching rules): AND of keys, any-of lists, strict types, deny wins.

import { resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readPolicyDir } from "../../src/cli/policy-files.ts";
import type { Reason } from "../../src/core/errors.ts";
import { identityOf, StandardClaims } from "../../src/core/oidc/claims.ts";
import { type IssuerConfig, PRESET_ISSUERS } from "../../src/core/oidc/issuers.ts";
import type { VerifiedToken } from "../../src/core/oidc/verify.ts";
import { type CompiledPolicy, compilePolicySet, type PolicySet } from "../../src/core/policy/compile.ts";
import { loadPolicySet } from "../../src/core/policy/load.ts";
import { evaluatePolicy, reasonsVisible } from "../../src/core/policy/match.ts";
import { githubClaims, gitlabClaims } from "../support/claims.ts";

const AUD = "https://runpass.acme.dev";
const GITHUB = PRESET_ISSUERS.github;
const GITLAB = PRESET_ISSUERS.gitlab;

/** Loads and compiles named policy texts; fails the test on any load problem. */
async function compile(policies: Record<string, string>, issuers?: string): Promise<PolicySet> {
  const result = await loadPolicySet(
    {
      policies: Object.entries(policies).map(([name, text]) => ({ path: `${name}.yaml`, text })),
      ...(issuers ? { issuers: { path: "issuers.yaml", text: issuers } } : {}),
    },
    { dev: false },
  );
  expect(result.problems).toEqual([]);
  if (!result.bundle) throw new Error("policies did not load");
  return compilePolicySet(result.bundle);
}

async function compileOne(text: string, issuers?: string): Promise<CompiledPolicy> {
  const set = await compile({ p: text }, issuers);
  return set.policies.get("p") as CompiledPolicy;
}

/** A token as verification would hand it to the matcher. */
function verified(issuer: IssuerConfig, claims: Record<string, unknown>): VerifiedToken {
  const standard = StandardClaims.parse(claims);
  return {
    issuer,
    claims,
    standard,
    identity: identityOf(issuer, claims),
    singleUseId: `jti:${standard.jti}`,
  };
}

function gh(overrides: Record<string, unknown> = {}): VerifiedToken {
  return verified(GITHUB, githubClaims(GITHUB.url, AUD, overrides) as Record<string, unknown>);
}

function gl(overrides: Record<string, unknown> = {}): VerifiedToken {
  return verified(GITLAB, gitlabClaims(GITLAB.url, AUD, overrides) as Record<string, unknown>);
}

function codes(reasons: Reason[]): string[] {
  return reasons.map((r) => (r.claim ? `${r.code}:${r.claim}` : r.code));
}

const API_DEPLOY = `issuer: github
allow:
  repository_owner_id: "1342004"
  repository_id: "519345000"
  ref: refs/heads/main
  event_name: [push, workflow_dispatch]
deny:
  - runner_environment: self-hosted
grants:
  token: { audience: "https://deploy.acme.dev" }
`;

/** A GitHub policy pinning acme plus `allow` lines and optional deny block. */
function ghPolicy(allow: string, deny = ""): string {
  return `issuer: github\nallow:\n  repository_owner_id: "1342004"\n${allow}\n${deny}grants:\n  token: { audience: "https://deploy.acme.dev" }\n`;
}

describe("the shipped policies", () => {
  let shipped: PolicySet;
  beforeAll(async () => {
    const sources = await readPolicyDir(resolve(import.meta.dirname, "../../policies"));
    const result = await loadPolicySet(sources, { dev: false });
    if (!result.bundle) throw new Error("shipped policies do not load");
    shipped = compilePolicySet(result.bundle);
  });
  const policy = (name: string) => shipped.policies.get(name) as CompiledPolicy;

  it("api-deploy allows a push to main of acme/api from a GitHub-hosted runner", () => {
    expect(evaluatePolicy(policy("api-deploy"), gh(), AUD)).toEqual({ allowed: true, reasons: [] });
  });

  it("api-deploy denies self-hosted runners, and tokens without runner_environment, even when everything else matches", () => {
    const e = evaluatePolicy(policy("api-deploy"), gh({ runner_environment: "self-hosted" }), AUD);
    expect(e.allowed).toBe(false);
    expect(e.reasons).toEqual([
      { code: "claim_mismatch", claim: "runner_environment", expected: ["github-hosted"] },
    ]);
    const absent = evaluatePolicy(policy("api-deploy"), gh({ runner_environment: undefined }), AUD);
    expect(absent.allowed).toBe(false);
    expect(absent.reasons.map((r) => r.code)).toEqual(["claim_absent"]);
  });

  it("cli-release allows version tags through the release workflow and nothing deeper", () => {
    const tag = (ref: string) =>
      verified(
        GITHUB,
        githubClaims(GITHUB.url, AUD, {
          repository_id: "519345123",
          ref,
          ref_type: "tag",
          job_workflow_ref: `acme/cli/.github/workflows/release.yml@${ref}`,
        }) as Record<string, unknown>,
      );
    expect(evaluatePolicy(policy("cli-release"), tag("refs/tags/v1.2.3"), AUD).allowed).toBe(true);
    const evil = evaluatePolicy(policy("cli-release"), tag("refs/tags/v1/evil"), AUD);
    expect(evil.allowed).toBe(false);
    expect(codes(evil.reasons)).toEqual(["claim_mismatch:ref", "claim_mismatch:job_workflow_ref"]);
  });

  it("infra-apply allows a GitLab pipeline on a protected branch and refuses an unprotected one", () => {
    expect(evaluatePolicy(policy("infra-apply"), gl(), AUD).allowed).toBe(true);
    const e = evaluatePolicy(policy("infra-apply"), gl({ ref_protected: "false" }), AUD);
    expect(codes(e.reasons)).toEqual(["claim_mismatch:ref_protected"]);
  });

  it("a GitLab token never satisfies a GitHub policy, whatever its claims", () => {
    const token = gl({
      repository_owner_id: "1342004",
      repository_id: "519345000",
      ref: "refs/heads/main",
      event_name: "push",
    });
    const e = evaluatePolicy(policy("api-deploy"), token, AUD);
    expect(e.allowed).toBe(false);
    expect(e.reasons[0]).toEqual({ code: "issuer_mismatch", expected: ["github"] });
  });
});

describe("conditions", () => {
  it("all allow keys are ANDed: one failing key denies, and every failing key is reported", async () => {
    const p = await compileOne(API_DEPLOY);
    expect(evaluatePolicy(p, gh(), AUD).allowed).toBe(true);
    expect(codes(evaluatePolicy(p, gh({ ref: "refs/heads/dev" }), AUD).reasons)).toEqual([
      "claim_mismatch:ref",
    ]);
    const many = evaluatePolicy(
      p,
      gh({ ref: "refs/heads/dev", event_name: "schedule", repository_id: "1" }),
      AUD,
    );
    expect(many.allowed).toBe(false);
    expect(codes(many.reasons)).toEqual([
      "claim_mismatch:repository_id",
      "claim_mismatch:ref",
      "claim_mismatch:event_name",
    ]);
  });

  it("a list is any-of", async () => {
    const p = await compileOne(API_DEPLOY);
    expect(evaluatePolicy(p, gh({ event_name: "push" }), AUD).allowed).toBe(true);
    expect(evaluatePolicy(p, gh({ event_name: "workflow_dispatch" }), AUD).allowed).toBe(true);
    expect(evaluatePolicy(p, gh({ event_name: "pull_request" }), AUD).allowed).toBe(false);
  });

  it("a list may mix exact values and globs", async () => {
    const p = await compileOne(ghPolicy('  ref: [refs/heads/main, "refs/heads/release/*"]'));
    expect(evaluatePolicy(p, gh({ ref: "refs/heads/main" }), AUD).allowed).toBe(true);
    expect(evaluatePolicy(p, gh({ ref: "refs/heads/release/2.0" }), AUD).allowed).toBe(true);
    expect(evaluatePolicy(p, gh({ ref: "refs/heads/release/2.0/x" }), AUD).allowed).toBe(false);
    expect(evaluatePolicy(p, gh({ ref: "refs/heads/feature" }), AUD).allowed).toBe(false);
  });

  it("refs/heads/main-evil does not match refs/heads/main", async () => {
    const p = await compileOne(API_DEPLOY);
    const e = evaluatePolicy(p, gh({ ref: "refs/heads/main-evil" }), AUD);
    expect(e.allowed).toBe(false);
    expect(e.reasons).toEqual([{ code: "claim_mismatch", claim: "ref", expected: ["refs/heads/main"] }]);
  });

  it("exact values are compared byte for byte (no case folding, no trimming)", async () => {
    const p = await compileOne(API_DEPLOY);
    for (const ref of ["REFS/HEADS/MAIN", "refs/heads/main ", " refs/heads/main", "refs/heads/main\n"]) {
      expect(evaluatePolicy(p, gh({ ref }), AUD).allowed, JSON.stringify(ref)).toBe(false);
    }
  });

  it("the same owner name with a different owner id is denied", async () => {
    const p = await compileOne(API_DEPLOY);
    const e = evaluatePolicy(p, gh({ repository_owner: "acme", repository_owner_id: "66666666" }), AUD);
    expect(e.allowed).toBe(false);
    expect(codes(e.reasons)).toEqual(["claim_mismatch:repository_owner_id"]);
  });

  it("the same repository name with a different repository id is denied", async () => {
    const p = await compileOne(API_DEPLOY);
    const e = evaluatePolicy(p, gh({ repository: "acme/api", repository_id: "77777777" }), AUD);
    expect(codes(e.reasons)).toEqual(["claim_mismatch:repository_id"]);
  });
});

describe("strict types", () => {
  it("a policy string never matches a number claim with the same digits (type_mismatch)", async () => {
    const p = await compileOne(API_DEPLOY);
    const e = evaluatePolicy(p, gh({ repository_id: 519345000 }), AUD);
    expect(e.allowed).toBe(false);
    expect(e.reasons).toEqual([{ code: "type_mismatch", claim: "repository_id", expected: ["519345000"] }]);
  });

  it('a policy boolean never matches the string "true" GitHub and GitLab send', async () => {
    const p = await compileOne(ghPolicy("  ref_protected: true"));
    const e = evaluatePolicy(p, gh({ ref_protected: "true" }), AUD);
    expect(e.reasons).toEqual([{ code: "type_mismatch", claim: "ref_protected", expected: [true] }]);
    expect(evaluatePolicy(p, gh({ ref_protected: true }), AUD).allowed).toBe(true);
  });

  it('a policy string "true" never matches a boolean claim', async () => {
    const p = await compileOne(ghPolicy('  ref_protected: "true"'));
    expect(codes(evaluatePolicy(p, gh({ ref_protected: true }), AUD).reasons)).toEqual([
      "type_mismatch:ref_protected",
    ]);
    expect(evaluatePolicy(p, gh({ ref_protected: "true" }), AUD).allowed).toBe(true);
  });

  it("a policy number matches only a number claim (GitLab runner_id)", async () => {
    const p = await compileOne(`issuer: gitlab
allow:
  project_id: "20"
  runner_id: 1
grants:
  token: { audience: "https://deploy.acme.dev" }
`);
    expect(evaluatePolicy(p, gl({ runner_id: 1 }), AUD).allowed).toBe(true);
    expect(codes(evaluatePolicy(p, gl({ runner_id: "1" }), AUD).reasons)).toEqual([
      "type_mismatch:runner_id",
    ]);
    expect(codes(evaluatePolicy(p, gl({ runner_id: 2 }), AUD).reasons)).toEqual(["claim_mismatch:runner_id"]);
  });

  it("a glob only ever matches a string claim", async () => {
    const p = await compileOne(ghPolicy('  run_number: "4*"'));
    expect(evaluatePolicy(p, gh({ run_number: "42" }), AUD).allowed).toBe(true);
    expect(codes(evaluatePolicy(p, gh({ run_number: 42 }), AUD).reasons)).toEqual([
      "type_mismatch:run_number",
    ]);
  });

  it("a list of mixed types matches a claim of any listed type by value", async () => {
    const p = await compileOne(ghPolicy('  run_attempt: [1, "1"]'));
    expect(evaluatePolicy(p, gh({ run_attempt: "1" }), AUD).allowed).toBe(true);
    expect(evaluatePolicy(p, gh({ run_attempt: 1 }), AUD).allowed).toBe(true);
    expect(codes(evaluatePolicy(p, gh({ run_attempt: "2" }), AUD).reasons)).toEqual([
      "claim_mismatch:run_attempt",
    ]);
  });

  it("null, array and object claims never match a scalar", async () => {
    const p = await compileOne(ghPolicy('  environment: "**"'));
    for (const environment of [null, ["prod"], { name: "prod" }]) {
      const e = evaluatePolicy(p, gh({ environment }), AUD);
      expect(codes(e.reasons), JSON.stringify(environment)).toEqual(["type_mismatch:environment"]);
    }
  });
});

describe("absent claims", () => {
  it("an absent claim never matches, even a ** pattern", async () => {
    const p = await compileOne(ghPolicy('  environment: "**"'));
    const e = evaluatePolicy(p, gh(), AUD);
    expect(e.allowed).toBe(false);
    expect(e.reasons).toEqual([{ code: "claim_absent", claim: "environment", expected: ["**"] }]);
  });

  it("an absent claim never matches * or an empty-matching pattern", async () => {
    const p = await compileOne(ghPolicy('  environment: ["*", "?*"]'));
    expect(codes(evaluatePolicy(p, gh(), AUD).reasons)).toEqual(["claim_absent:environment"]);
  });

  it("a pinned owner id absent from the token (2021-era GitHub tokens) denies", async () => {
    const p = await compileOne(API_DEPLOY);
    const claims = githubClaims(GITHUB.url, AUD) as Record<string, unknown>;
    delete claims.repository_owner_id;
    delete claims.repository_id;
    const e = evaluatePolicy(p, verified(GITHUB, claims), AUD);
    expect(codes(e.reasons)).toEqual(["claim_absent:repository_owner_id", "claim_absent:repository_id"]);
  });

  it("claims inherited from Object.prototype count as absent", async () => {
    const p = await compileOne(ghPolicy('  toString: "**"\n  constructor: "**"'));
    expect(codes(evaluatePolicy(p, gh(), AUD).reasons)).toEqual([
      "claim_absent:toString",
      "claim_absent:constructor",
    ]);
  });

  it("a deny rule on an absent claim does not fire", async () => {
    const p = await compileOne(API_DEPLOY);
    const claims = githubClaims(GITHUB.url, AUD) as Record<string, unknown>;
    delete claims.runner_environment;
    expect(evaluatePolicy(p, verified(GITHUB, claims), AUD).allowed).toBe(true);
  });
});

describe("deny rules", () => {
  it("deny beats allow", async () => {
    const p = await compileOne(API_DEPLOY);
    const e = evaluatePolicy(p, gh({ runner_environment: "self-hosted" }), AUD);
    expect(e.allowed).toBe(false);
    expect(e.reasons).toEqual([{ code: "denied_by", rule: 0, claims: ["runner_environment"] }]);
  });

  it("pull_request_target on main is denied when allow lists event_name [push]", async () => {
    const p = await compileOne(ghPolicy("  ref: refs/heads/main\n  event_name: [push]"));
    const e = evaluatePolicy(p, gh({ event_name: "pull_request_target", ref: "refs/heads/main" }), AUD);
    expect(e.allowed).toBe(false);
    expect(e.reasons).toEqual([{ code: "claim_mismatch", claim: "event_name", expected: ["push"] }]);
  });

  it("pull_request_target on main is denied by a deny rule naming it", async () => {
    const p = await compileOne(
      ghPolicy("  ref: refs/heads/main", "deny:\n  - event_name: pull_request_target\n"),
    );
    expect(evaluatePolicy(p, gh({ event_name: "push" }), AUD).allowed).toBe(true);
    const e = evaluatePolicy(p, gh({ event_name: "pull_request_target", ref: "refs/heads/main" }), AUD);
    expect(e.allowed).toBe(false);
    expect(e.reasons).toEqual([{ code: "denied_by", rule: 0, claims: ["event_name"] }]);
  });

  it("a deny rule fires only when all its keys match", async () => {
    const deny = "deny:\n  - event_name: pull_request_target\n    ref: refs/heads/main\n";
    const p = await compileOne(ghPolicy('  ref: "refs/heads/**"', deny));
    expect(
      evaluatePolicy(p, gh({ event_name: "pull_request_target", ref: "refs/heads/feature" }), AUD).allowed,
    ).toBe(true);
    expect(evaluatePolicy(p, gh({ event_name: "push", ref: "refs/heads/main" }), AUD).allowed).toBe(true);
    const e = evaluatePolicy(p, gh({ event_name: "pull_request_target", ref: "refs/heads/main" }), AUD);
    expect(e.reasons).toEqual([{ code: "denied_by", rule: 0, claims: ["event_name", "ref"] }]);
  });

  it("any one matching deny rule denies, and every matching rule is named", async () => {
    const deny =
      "deny:\n  - runner_environment: self-hosted\n  - event_name: [pull_request, pull_request_target]\n";
    const p = await compileOne(ghPolicy('  ref: "refs/heads/**"', deny));
    expect(evaluatePolicy(p, gh({ event_name: "pull_request" }), AUD).reasons).toEqual([
      { code: "denied_by", rule: 1, claims: ["event_name"] },
    ]);
    const both = evaluatePolicy(
      p,
      gh({ event_name: "pull_request_target", runner_environment: "self-hosted" }),
      AUD,
    );
    expect(both.reasons.map((r) => r.rule)).toEqual([0, 1]);
  });

  it("deny rules support globs, with the same strict types", async () => {
    const p = await compileOne(ghPolicy('  ref: "refs/**"', 'deny:\n  - ref: "refs/heads/dependabot/**"\n'));
    expect(evaluatePolicy(p, gh({ ref: "refs/heads/dependabot/npm/x" }), AUD).allowed).toBe(false);
    expect(evaluatePolicy(p, gh({ ref: "refs/heads/main" }), AUD).allowed).toBe(true);
  });
});

describe("issuer and audience", () => {
  it("a policy without audience requires the deployment's default audience", async () => {
    const p = await compileOne(API_DEPLOY);
    expect(evaluatePolicy(p, gh(), AUD).allowed).toBe(true);
    expect(evaluatePolicy(p, gh(), "https://other.example").reasons).toEqual([
      { code: "audience_mismatch", expected: ["https://other.example"] },
    ]);
  });

  it("a policy audience overrides the default", async () => {
    const p = await compileOne(
      API_DEPLOY.replace("issuer: github", "issuer: github\naudience: https://special.acme.dev"),
    );
    expect(evaluatePolicy(p, gh({ aud: "https://special.acme.dev" }), AUD).allowed).toBe(true);
    expect(codes(evaluatePolicy(p, gh(), AUD).reasons)).toEqual(["audience_mismatch"]);
  });

  it("a token from another github-kind issuer does not satisfy a github.com policy", async () => {
    const issuers = "ghes: { url: https://github.acme.corp/_services/token, kind: github }\n";
    const set = await compile(
      { p: API_DEPLOY, q: API_DEPLOY.replace("issuer: github", "issuer: ghes") },
      issuers,
    );
    const ghes = set.issuersByUrl.get("https://github.acme.corp/_services/token") as IssuerConfig;
    const token = verified(ghes, githubClaims(ghes.url, AUD) as Record<string, unknown>);
    expect(codes(evaluatePolicy(set.policies.get("p") as CompiledPolicy, token, AUD).reasons)).toEqual([
      "issuer_mismatch",
    ]);
    expect(evaluatePolicy(set.policies.get("q") as CompiledPolicy, token, AUD).allowed).toBe(true);
  });
});

describe("reasons never carry the token's own claim values", () => {
  it("mismatch, type mismatch and deny reasons name claims and policy values only", async () => {
    const p = await compileOne(API_DEPLOY);
    const secret = "refs/heads/sekrit-branch-4d1f";
    const e = evaluatePolicy(
      p,
      gh({
        ref: secret,
        repository_id: 987654321,
        event_name: "sekrit-event-77",
        runner_environment: "self-hosted",
        repository_owner_id: "55501234",
      }),
      AUD,
    );
    expect(e.allowed).toBe(false);
    expect(codes(e.reasons)).toEqual([
      "claim_mismatch:repository_owner_id",
      "type_mismatch:repository_id",
      "claim_mismatch:ref",
      "claim_mismatch:event_name",
      "denied_by",
    ]);
    const text = JSON.stringify(e.reasons);
    for (const value of [secret, "987654321", "sekrit-event-77", "55501234"]) {
      expect(text.includes(value), value).toBe(false);
    }
    expect(text).toContain("refs/heads/main");
    expect(text).toContain("1342004");
  });

  it("a denied_by reason lists the rule's claim names without values", async () => {
    const p = await compileOne(API_DEPLOY);
    const [reason] = evaluatePolicy(p, gh({ runner_environment: "self-hosted" }), AUD).reasons;
    expect(Object.keys(reason ?? {}).sort()).toEqual(["claims", "code", "rule"]);
  });
});

describe("who may see reasons", () => {
  let policy: CompiledPolicy;
  beforeAll(async () => {
    policy = await compileOne(API_DEPLOY);
  });

  it("a token whose owner id equals the pinned owner sees reasons", () => {
    expect(reasonsVisible(policy, gh({ repository_id: "1", ref: "refs/heads/x" }), false)).toBe(true);
  });

  it("an outsider does not, even with the same owner name", () => {
    expect(reasonsVisible(policy, gh({ repository_owner_id: "999", repository_id: "998" }), false)).toBe(
      false,
    );
    expect(
      reasonsVisible(
        policy,
        gh({ repository_owner: "acme", repository_owner_id: "999", repository_id: "998" }),
        false,
      ),
    ).toBe(false);
  });

  it("a numeric owner id equal in digits does not count", () => {
    expect(
      reasonsVisible(policy, gh({ repository_owner_id: 1342004, repository_id: 519345000 }), false),
    ).toBe(false);
  });

  it("an outsider with the owner's id in an unrelated claim does not see reasons", () => {
    expect(
      reasonsVisible(
        policy,
        gh({ repository_owner_id: "999", repository_id: "998", actor_id: "1342004" }),
        false,
      ),
    ).toBe(false);
  });

  it("the same owner id from another issuer does not count", async () => {
    const issuers = "ghes: { url: https://github.acme.corp/_services/token, kind: github }\n";
    const set = await compile({ p: API_DEPLOY }, issuers);
    const ghes: IssuerConfig = {
      name: "ghes",
      url: "https://github.acme.corp/_services/token",
      kind: "github",
      maxTokenAge: 600,
      algorithms: ["RS256"],
    };
    const token = verified(ghes, githubClaims(ghes.url, AUD) as Record<string, unknown>);
    expect(reasonsVisible(set.policies.get("p"), token, false)).toBe(false);
  });

  it("RUNPASS_EXPLAIN=full shows reasons to everyone, even for an unknown policy", () => {
    const outsider = gh({ repository_owner_id: "999", repository_id: "998" });
    expect(reasonsVisible(policy, outsider, true)).toBe(true);
    expect(reasonsVisible(undefined, outsider, true)).toBe(true);
  });

  it("an unknown policy shows no reasons without explain=full", () => {
    expect(reasonsVisible(undefined, gh(), false)).toBe(false);
  });

  it("GitLab: the pinned namespace sees reasons, another namespace does not", async () => {
    const p = await compileOne(`issuer: gitlab
allow:
  namespace_id: "72"
  ref_protected: "true"
grants:
  token: { audience: "https://deploy.acme.dev" }
`);
    expect(reasonsVisible(p, gl({ project_id: "9999" }), false)).toBe(true);
    expect(reasonsVisible(p, gl({ namespace_id: "73", project_id: "9999" }), false)).toBe(false);
  });
});
