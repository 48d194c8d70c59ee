// Policy security lint (docs/policies.md for the language, docs/policy-tooling.md "Lint rules"): every rule fires on a positive fixture at the right
// line and stays quiet on a negative one; the shipped policies are clean; `policy check` prints text or SARIF
// and exits 0 (warnings allowed), 1 (errors, or warnings with --strict), 2 (usage).

import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readPolicyDir } from "../../src/cli/policy-files.ts";
import type { IssuerConfig } from "../../src/core/oidc/issuers.ts";
import { type Finding, LINT_RULES, lintPolicySet } from "../../src/core/policy/lint.ts";
import { loadPolicySet } from "../../src/core/policy/load.ts";
import { ROOT, runpass } from "../support/run-cli.ts";

const DEV_ISSUER: IssuerConfig = {
  name: "dev",
  url: "http://127.0.0.1:8787/dev/oidc",
  kind: "github",
  maxTokenAge: 600,
  algorithms: ["RS256"],
  jwks: { keys: [] },
};

function lint(
  policies: Record<string, string>,
  options: { issuers?: string; dev?: boolean } = {},
): Finding[] {
  return lintPolicySet(
    {
      policies: Object.entries(policies).map(([name, text]) => ({ path: `policies/${name}.yaml`, text })),
      ...(options.issuers !== undefined
        ? { issuers: { path: "policies/issuers.yaml", text: options.issuers } }
        : {}),
    },
    { dev: options.dev ?? false, ...(options.dev ? { devIssuer: DEV_ISSUER } : {}) },
  );
}

/** Findings of one rule. */
function of(findings: Finding[], rule: string): Finding[] {
  return findings.filter((f) => f.rule === rule);
}

/** 1-based line and column of the first occurrence of `needle` in `text`. */
function at(text: string, needle: string): { line: number; col: number } {
  const i = text.indexOf(needle);
  if (i < 0) throw new Error(`fixture lacks ${needle}`);
  const before = text.slice(0, i).split("\n");
  return { line: before.length, col: (before.at(-1) as string).length + 1 };
}

/** Lints one policy (named p) and returns the single finding of `rule`, checking where it points. */
function one(text: string, rule: string, needle: string, extra: Record<string, string> = {}): Finding {
  const found = of(lint({ p: text, ...extra }), rule);
  expect(
    found.map((f) => `${f.line}:${f.col} ${f.message}`),
    rule,
  ).toHaveLength(1);
  const f = found[0] as Finding;
  expect({ file: f.file, ...at(text, needle) }).toEqual({
    file: "policies/p.yaml",
    line: f.line,
    col: f.col,
  });
  expect(f.why.length).toBeGreaterThan(10);
  expect(f.fix.length).toBeGreaterThan(5);
  return f;
}

function none(text: string | Record<string, string>, rule: string, options: { issuers?: string } = {}): void {
  const policies = typeof text === "string" ? { p: text } : text;
  expect(of(lint(policies, options), rule).map((f) => `${f.file}:${f.line}: ${f.message}`)).toEqual([]);
}

/** A GitHub policy that passes every rule. */
const GH_CLEAN = `issuer: github
allow:
  repository_owner_id: "1342004"
  repository_id: "519345000"
  ref: refs/heads/main
  event_name: [push, workflow_dispatch]
  runner_environment: github-hosted
grants:
  aws: { role_arn: "arn:aws:iam::111111111111:role/deploy", duration: 30m }
  github: { owner: acme, repositories: [api], permissions: { contents: read, deployments: write } }
  secrets: { STRIPE_API_KEY: acme/api/stripe }
`;

/** A GitLab policy that passes every rule. */
const GL_CLEAN = `issuer: gitlab
allow:
  namespace_id: "72"
  project_id: "20"
  ref_protected: "true"
  pipeline_source: [push, web]
  runner_environment: gitlab-hosted
grants:
  secrets: { DB_PASSWORD: acme/infra/db }
`;

/** A GitHub policy whose allow block is `allow` (indented YAML lines) and whose grants are `grants`. */
function gh(allow: string, grants = '  token: { audience: "https://deploy.acme.dev" }', extra = ""): string {
  return `issuer: github\nallow:\n${allow}\n${extra}grants:\n${grants}\n`;
}

function gl(allow: string, grants = '  token: { audience: "https://deploy.acme.dev" }', extra = ""): string {
  return `issuer: gitlab\nallow:\n${allow}\n${extra}grants:\n${grants}\n`;
}

const PINS = '  repository_owner_id: "1342004"\n  repository_id: "519345000"';
const EVENTS = "  event_name: [push, workflow_dispatch]";

describe("clean policies", () => {
  it("the clean fixtures and the shipped policies have no findings (production and dev checks)", async () => {
    expect(lint({ gh: GH_CLEAN, gl: GL_CLEAN })).toEqual([]);
    const sources = await readPolicyDir(join(ROOT, "policies"));
    expect(lintPolicySet(sources, { dev: false })).toEqual([]);
    expect(lintPolicySet(sources, { dev: true, devIssuer: DEV_ISSUER })).toEqual([]);
  });

  it("skips files the loader refuses for syntax, schema or issuer reasons", () => {
    expect(
      lint({
        yaml: "issuer: github\nallow: [\n",
        schema: "issuer: github\nalow: {}\n",
        iss: gh(PINS).replace("github", "nope"),
      }),
    ).toEqual([]);
  });
});

describe("RP001 missing-id-pin", () => {
  it("fires (error) where the loader refuses the policy, with the same position and rule id", async () => {
    const text = gh("  repository_owner: acme\n  event_name: push");
    const f = one(text, "RP001", "repository_owner:");
    expect(f.severity).toBe("error");
    const loaded = await loadPolicySet({ policies: [{ path: "policies/p.yaml", text }] }, { dev: false });
    const p = loaded.problems.find((x) => x.rule === "RP001");
    expect(p).toMatchObject({ file: "policies/p.yaml", line: f.line, col: f.col, message: f.message });
  });

  it("fires for a glob ID pin and for a generic issuer without an exact sub", () => {
    one(gh('  repository_id: "5*"\n  event_name: push'), "RP001", "repository_id");
    const generic = `issuer: ci\nallow:\n  sub: "org/*"\ngrants:\n  token: { audience: "https://x.test" }\n`;
    expect(
      of(lint({ g: generic }, { issuers: 'ci: { url: "https://ci.test", kind: generic }\n' }), "RP001"),
    ).toHaveLength(1);
  });

  it("does not fire when an ID is pinned exactly", () => {
    none(GH_CLEAN, "RP001");
    none(gl('  project_id: "20"'), "RP001");
  });
});

describe("RP002 name-without-id", () => {
  it("fires for repository without repository_id, project_path without project_id, a repo: sub without repository_id", () => {
    one(gh(`  repository_owner_id: "1342004"\n  repository: acme/api\n${EVENTS}`), "RP002", "repository:");
    one(gl('  namespace_id: "72"\n  project_path: acme-group/infra'), "RP002", "project_path");
    one(
      gh(`  repository_owner_id: "1342004"\n  sub: "repo:acme/api:ref:refs/heads/main"\n${EVENTS}`),
      "RP002",
      "sub:",
    );
  });

  it("does not fire when the matching (or a stronger) ID is pinned", () => {
    none(gh(`${PINS}\n  repository: acme/api\n  repository_owner: acme\n${EVENTS}`), "RP002");
    none(gh(`  repository_id: "519345000"\n  repository_owner: acme\n${EVENTS}`), "RP002");
    none(gl('  project_id: "20"\n  project_path: acme-group/infra\n  namespace_path: acme-group'), "RP002");
  });
});

describe("RP003 glob-in-owner", () => {
  it("fires for a glob in the owner or repository segment", () => {
    const a = one(gh(`${PINS}\n  repository: "acme-*/api"\n${EVENTS}`), "RP003", '"acme-*/api"');
    expect(a.message).toMatch(/owner segment/);
    const b = one(
      gh(`${PINS}\n  job_workflow_ref: "*/shared/.github/workflows/deploy.yml@refs/heads/main"\n${EVENTS}`),
      "RP003",
      '"*/shared',
    );
    expect(b.message).toMatch(/owner segment/);
    const c = one(
      gh(`${PINS}\n  sub: "repo:acme/*:ref:refs/heads/main"\n${EVENTS}`),
      "RP003",
      '"repo:acme/*',
    );
    expect(c.message).toMatch(/repository segment/);
    const d = one(gl('  namespace_id: "72"\n  project_path: "acme-group/**"'), "RP003", '"acme-group/**"');
    expect(d.message).toMatch(/group segment/);
  });

  it("does not fire for globs in the ref or file part, or in deny", () => {
    none(
      gh(
        `${PINS}\n  job_workflow_ref: "acme/cli/.github/workflows/release.yml@refs/tags/v*"\n  ref: "refs/tags/v*"\n${EVENTS}`,
      ),
      "RP003",
    );
    none(gh(`${PINS}\n${EVENTS}`, undefined, 'deny:\n  - repository: "acme/*-sandbox"\n'), "RP003");
  });
});

describe("RP004 no-event-allowlist", () => {
  it("fires at allow when a github policy has no event_name, and at a glob event_name value", () => {
    const text = gh(PINS);
    one(text, "RP004", "allow:");
    one(gh(`${PINS}\n  event_name: "pull*"`), "RP004", '"pull*"');
  });

  it("does not fire with an exact allow-list, for gitlab, or when ref is pinned (RP006 reports that)", () => {
    none(GH_CLEAN, "RP004");
    none(gl('  project_id: "20"'), "RP004");
    none(gh(`${PINS}\n  ref: refs/heads/main`), "RP004");
  });
});

describe("RP005 untrusted-trigger", () => {
  it("is an error for a listed pull_request_target with aws/secrets/github-write grants", () => {
    const text = gh(
      `${PINS}\n  event_name: [push, pull_request_target]`,
      '  aws: { role_arn: "arn:aws:iam::111111111111:role/x", duration: 15m }',
      "deny:\n  - runner_environment: self-hosted\n",
    );
    const f = one(text, "RP005", "pull_request_target");
    expect(f.severity).toBe("error");
    expect(f.message).toMatch(/pull_request_target with aws grants/);
  });

  it("is a warning for workflow_run / issue_comment, a matching glob, or pull_request_target with a token grant only", () => {
    expect(one(gh(`${PINS}\n  event_name: [push, workflow_run]`), "RP005", "workflow_run").severity).toBe(
      "warning",
    );
    expect(
      one(gh(`${PINS}\n  event_name: pull_request_target`), "RP005", "pull_request_target").severity,
    ).toBe("warning");
    const glob = one(gh(`${PINS}\n  event_name: "issue_*"`), "RP005", '"issue_*"');
    expect(glob.message).toMatch(/"issue_\*" matches issue_comment/);
  });

  it("warns when event_name is unconstrained and the policy has write-capable grants", () => {
    const f = one(gh(PINS, "  secrets: { A: acme/a }"), "RP005", "allow:");
    expect(f.message).toMatch(/pull_request_target, workflow_run, issue_comment/);
    expect(f.severity).toBe("warning");
  });

  it("does not fire for trusted events, a deny on the event, or an unconstrained token-only policy", () => {
    none(GH_CLEAN, "RP005");
    none(
      gh(
        `${PINS}\n  event_name: "*"`,
        "  secrets: { A: acme/a }",
        "deny:\n  - event_name: [pull_request_target, workflow_run, issue_comment]\n",
      ),
      "RP005",
    );
    none(gh(PINS), "RP005");
  });
});

describe("RP006 ref-without-event", () => {
  it("fires at ref when ref is pinned without event_name", () => {
    one(gh(`${PINS}\n  ref: refs/heads/main`), "RP006", "ref:");
  });

  it("does not fire with event_name", () => {
    none(GH_CLEAN, "RP006");
  });
});

describe("RP007 workflow-without-job-workflow-ref", () => {
  it("fires for workflow_ref or workflow (display name) without job_workflow_ref", () => {
    one(
      gh(`${PINS}\n${EVENTS}\n  workflow_ref: "acme/api/.github/workflows/deploy.yml@refs/heads/main"`),
      "RP007",
      "workflow_ref:",
    );
    one(gh(`${PINS}\n${EVENTS}\n  workflow: Deploy`), "RP007", "workflow:");
  });

  it("does not fire when job_workflow_ref is pinned", () => {
    none(
      gh(
        `${PINS}\n${EVENTS}\n  workflow_ref: "acme/api/.github/workflows/ci.yml@refs/heads/main"\n  job_workflow_ref: "acme/platform/.github/workflows/deploy.yml@refs/tags/v1"`,
      ),
      "RP007",
    );
    none(GH_CLEAN, "RP007");
  });
});

describe("RP008 gitlab-merge-request-pipelines", () => {
  it("fires at allow when neither ref_protected nor pipeline_source is constrained", () => {
    const f = one(gl('  project_id: "20"'), "RP008", "allow:");
    expect(f.message).toMatch(/ref_protected/);
    expect(f.message).toMatch(/pipeline_source is unconstrained/);
  });

  it("fires at the merge_request_event value, and when only one of the two is constrained", () => {
    one(
      gl('  project_id: "20"\n  ref_protected: "true"\n  pipeline_source: [push, merge_request_event]'),
      "RP008",
      "merge_request_event",
    );
    const f = one(gl('  project_id: "20"\n  pipeline_source: [push, web]'), "RP008", "allow:");
    expect(f.message).toMatch(/ref_protected: "true" is not required/);
  });

  it('does not fire with ref_protected "true" and MR sources excluded (allow-list or deny)', () => {
    none(GL_CLEAN, "RP008");
    none(
      gl(
        '  project_id: "20"\n  ref_protected: "true"',
        undefined,
        "deny:\n  - pipeline_source: [merge_request_event, external_pull_request_event]\n",
      ),
      "RP008",
    );
    none(GH_CLEAN, "RP008");
  });
});

describe("RP009 unquoted-boolean", () => {
  it("is an error for ref_protected: true (github and gitlab)", () => {
    const f = one(gh(`${PINS}\n${EVENTS}\n  ref_protected: true`), "RP009", "true");
    expect(f.severity).toBe("error");
    expect(f.message).toMatch(/this policy can never match/);
    expect(f.fix).toBe('Quote it: ref_protected: "true".');
    one(gl('  project_id: "20"\n  ref_protected: true\n  pipeline_source: push'), "RP009", "true");
  });

  it("is a warning when another value in the list can match; an error in deny says the rule never fires", () => {
    expect(one(gl('  project_id: "20"\n  ref_protected: [true, "true"]'), "RP009", "true").severity).toBe(
      "warning",
    );
    const deny = one(
      gh(`${PINS}\n${EVENTS}`, undefined, "deny:\n  - ref_protected: false\n"),
      "RP009",
      "false",
    );
    expect(deny.message).toMatch(/this deny entry can never fire/);
  });

  it("does not fire for quoted booleans", () => {
    none(GL_CLEAN, "RP009");
    none(gh(`${PINS}\n${EVENTS}\n  ref_protected: "true"`), "RP009");
  });
});

describe("RP010 type-never-matches", () => {
  it("fires for a number where the issuer sends a string, a string for GitLab runner_id, and list claims", () => {
    const f = one(
      gh(`  repository_owner_id: "1342004"\n  repository_id: 519345000\n${EVENTS}`),
      "RP010",
      "519345000",
    );
    expect(f.severity).toBe("error");
    expect(f.fix).toBe('Quote it: repository_id: "519345000".');
    expect(one(gl('  project_id: "20"\n  runner_id: "12"'), "RP010", '"12"').fix).toBe(
      "Use a number: runner_id: 12.",
    );
    one(gl('  project_id: "20"\n  groups_direct: [acme]'), "RP010", "groups_direct");
  });

  it("does not fire for the right types or for generic issuers", () => {
    none(gl('  project_id: "20"\n  runner_id: 12'), "RP010");
    none(GH_CLEAN, "RP010");
    const generic = `issuer: ci\nallow:\n  sub: org/x\n  level: 3\ngrants:\n  token: { audience: "https://x.test" }\n`;
    none({ g: generic }, "RP010", { issuers: 'ci: { url: "https://ci.test", kind: generic }\n' });
  });
});

describe("RP011 unknown-claim", () => {
  it("warns for an unknown claim in allow, with a did-you-mean hint", () => {
    const f = one(gh(`${PINS}\n${EVENTS}\n  repositry_visibility: private`), "RP011", "repositry_visibility");
    expect(f.severity).toBe("warning");
    expect(f.message).toMatch(/did you mean "repository_visibility"/);
  });

  it("is an error for a typo in deny (the deny would silently never fire), a warning for a far-off name", () => {
    const f = one(
      gh(`${PINS}\n${EVENTS}`, undefined, "deny:\n  - runer_environment: self-hosted\n"),
      "RP011",
      "runer_environment",
    );
    expect(f.severity).toBe("error");
    expect(f.fix).toBe("Rename it to runner_environment.");
    expect(
      one(gh(`${PINS}\n${EVENTS}`, undefined, "deny:\n  - custom_team: ops\n"), "RP011", "custom_team")
        .severity,
    ).toBe("warning");
  });

  it("knows every claim of the issuer kind (including GitLab's job_project_* claims) and skips generic issuers", () => {
    none(
      gl(
        '  project_id: "20"\n  job_project_id: "20"\n  ci_config_ref_uri: "gitlab.com/g/p//.gitlab-ci.yml@refs/heads/main"',
      ),
      "RP011",
    );
    none(gh(`${PINS}\n${EVENTS}\n  job_workflow_sha: abc\n  runner_environment: github-hosted`), "RP011");
    const generic = `issuer: ci\nallow:\n  sub: org/x\n  anything: y\ngrants:\n  token: { audience: "https://x.test" }\n`;
    none({ g: generic }, "RP011", { issuers: 'ci: { url: "https://ci.test", kind: generic }\n' });
  });
});

describe("RP012 self-hosted-runners", () => {
  it("fires at the first production grant when self-hosted runners are not excluded", () => {
    const text = gh(
      `${PINS}\n${EVENTS}`,
      '  aws: { role_arn: "arn:aws:iam::111111111111:role/x", duration: 15m }',
    );
    one(text, "RP012", "aws:");
    one(
      gl('  project_id: "20"\n  ref_protected: "true"\n  pipeline_source: push', "  secrets: { A: acme/a }"),
      "RP012",
      "secrets:",
    );
    // A deny entry with another key does not exclude self-hosted runners in general.
    one(
      gh(
        `${PINS}\n${EVENTS}`,
        "  secrets: { A: acme/a }",
        "deny:\n  - runner_environment: self-hosted\n    ref: refs/heads/dev\n",
      ),
      "RP012",
      "secrets:",
    );
  });

  it("does not fire with a deny or a hosted-only allow, for token-only policies, or for custom issuers", () => {
    none(GH_CLEAN, "RP012");
    none(gh(`${PINS}\n${EVENTS}\n  runner_environment: github-hosted`, "  secrets: { A: acme/a }"), "RP012");
    none(gh(`${PINS}\n${EVENTS}`), "RP012");
    none(
      { p: gh(`${PINS}\n${EVENTS}`, "  secrets: { A: acme/a }").replace("issuer: github", "issuer: ghes") },
      "RP012",
      { issuers: 'ghes: { url: "https://github.acme.corp/_services/token", kind: github }\n' },
    );
  });
});

describe("RP013 github-grant-broad", () => {
  it("fires for admin, for write on a permission that controls the repository, and for write on 10+ repositories", () => {
    const perms = (p: string, repos = "[api]") =>
      gh(
        `${PINS}\n${EVENTS}`,
        `  github: { owner: acme, repositories: ${repos}, permissions: { ${p} } }`,
        "deny:\n  - runner_environment: self-hosted\n",
      );
    one(perms("repository_projects: admin"), "RP013", "repository_projects");
    one(perms("contents: read, workflows: write"), "RP013", "workflows");
    const many = `[${Array.from({ length: 10 }, (_, i) => `r${i}`).join(", ")}]`;
    one(perms("contents: write", many), "RP013", "repositories");
  });

  it("does not fire for read on many repositories or ordinary write on a few", () => {
    const many = `[${Array.from({ length: 12 }, (_, i) => `r${i}`).join(", ")}]`;
    none(
      gh(
        `${PINS}\n${EVENTS}`,
        `  github: { owner: acme, repositories: ${many}, permissions: { contents: read } }`,
      ),
      "RP013",
    );
    none(GH_CLEAN, "RP013");
  });
});

describe("RP014 aws-session-long", () => {
  it("fires for a duration over 1h", () => {
    const text = gh(
      `${PINS}\n${EVENTS}`,
      '  aws: { role_arn: "arn:aws:iam::111111111111:role/x", duration: 2h }',
      "ttl: 3h\n",
    );
    one(text, "RP014", "2h");
  });

  it("does not fire for 1h or the default", () => {
    none(
      gh(`${PINS}\n${EVENTS}`, '  aws: { role_arn: "arn:aws:iam::111111111111:role/x", duration: 1h }'),
      "RP014",
    );
    none(
      gh(`${PINS}\n${EVENTS}`, '  aws: { role_arn: "arn:aws:iam::111111111111:role/x" }', "ttl: 8h\n"),
      "RP014",
    );
  });
});

describe("RP015 secret-widely-shared", () => {
  const secret = (ref: string, id: string) =>
    gh(
      `  repository_owner_id: "1342004"\n  repository_id: "${id}"\n${EVENTS}`,
      `  secrets: { SENTRY_DSN: ${ref} }`,
      "deny:\n  - runner_environment: self-hosted\n",
    );

  it("fires in every policy granting a path that 3 policies grant (any version)", () => {
    const a = secret("shared/sentry", "1");
    const found = of(
      lint({ a, b: secret("shared/sentry@2", "2"), c: secret("shared/sentry", "3") }),
      "RP015",
    );
    expect(found.map((f) => f.file)).toEqual(["policies/a.yaml", "policies/b.yaml", "policies/c.yaml"]);
    expect(found[0]).toMatchObject(at(a, "shared/sentry"));
    expect(found[0]?.message).toMatch(/granted by 3 policies \(a, b, c\)/);
  });

  it("does not fire for 2 policies", () => {
    none({ a: secret("shared/sentry", "1"), b: secret("shared/sentry", "2") }, "RP015");
  });
});

describe("RP016 dead-policy", () => {
  it("fires at a deny entry that matches everything allow accepts (exact or glob cover)", () => {
    one(
      gh(`${PINS}\n  event_name: push`, undefined, "deny:\n  - event_name: [push, workflow_dispatch]\n"),
      "RP016",
      "event_name: [push, workflow_dispatch]",
    );
    one(
      gh(
        `${PINS}\n  ref: refs/heads/main\n${EVENTS}`,
        undefined,
        'deny:\n  - runner_environment: self-hosted\n  - ref: "refs/heads/*"\n    repository_id: "519345000"\n',
      ),
      "RP016",
      'ref: "refs/heads/*"',
    );
  });

  it("does not fire for a deny that only narrows, or names a claim allow does not require", () => {
    none(gh(`${PINS}\n${EVENTS}`, undefined, "deny:\n  - event_name: workflow_dispatch\n"), "RP016");
    none(
      gh(`${PINS}\n  ref: "refs/heads/*"\n${EVENTS}`, undefined, "deny:\n  - ref: refs/heads/main\n"),
      "RP016",
    );
    none(GH_CLEAN, "RP016");
  });
});

describe("RP017 duplicate-policy", () => {
  it("fires on the second of two policies with the same issuer, audience, allow and deny (any order)", () => {
    const a = gh(`${PINS}\n${EVENTS}`);
    const b = gh(
      `  event_name: [workflow_dispatch, push]\n  repository_id: "519345000"\n  repository_owner_id: "1342004"`,
    );
    const found = of(lint({ a, b }), "RP017");
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ file: "policies/b.yaml", ...at(b, "allow:") });
    expect(found[0]?.message).toMatch(/policy "a".*redundant/);
  });

  it("does not fire when the audience, allow or deny differ", () => {
    const a = gh(`${PINS}\n${EVENTS}`);
    none({ a, b: gh(`${PINS}\n  event_name: push`) }, "RP017");
    none({ a, b: `audience: https://other.test\n${a}` }, "RP017");
  });
});

describe("RP018 deny-on-optional-claim", () => {
  it("fires at a deny key on a claim the issuer may omit, saying to allow-list it instead", () => {
    const text = gh(`${PINS}\n${EVENTS}`, undefined, "deny:\n  - runner_environment: self-hosted\n");
    const f = one(text, "RP018", "runner_environment");
    expect(f.severity).toBe("warning");
    expect(f.message).toMatch(/runner_environment/);
    expect(f.message).toMatch(/never fires|not denied/);
    expect(f.fix).toMatch(/allow/);
    expect(f.fix).toMatch(/runner_environment: github-hosted/);
    one(
      gl('  namespace_id: "72"\n  project_id: "20"', undefined, "deny:\n  - environment: sandbox\n"),
      "RP018",
      "environment",
    );
  });

  it("fires on every deny key of a generic issuer but sub", () => {
    const issuers = 'ci: { url: "https://ci.acme.dev", kind: generic }\n';
    const text =
      'issuer: ci\nallow:\n  sub: "job:deploy"\ndeny:\n  - sub: "job:deploy-old"\n  - team: sandbox\ngrants:\n  token: { audience: "https://deploy.acme.dev" }\n';
    const found = of(lint({ p: text }, { issuers }), "RP018");
    expect(found.map((f) => f.message)).toEqual([expect.stringMatching(/"team"/)]);
    expect(found[0]).toMatchObject(at(text, "team"));
  });

  it("does not fire on claims every token carries, or that allow already requires", () => {
    none(GH_CLEAN, "RP018");
    none(GL_CLEAN, "RP018");
    none(gh(`${PINS}\n${EVENTS}`, undefined, "deny:\n  - event_name: workflow_dispatch\n"), "RP018");
    none(gh(`${PINS}\n${EVENTS}`, undefined, 'deny:\n  - ref: "refs/heads/dev*"\n'), "RP018");
    none(
      gl(
        '  namespace_id: "72"\n  project_id: "20"',
        undefined,
        "deny:\n  - pipeline_source: merge_request_event\n",
      ),
      "RP018",
    );
    // allow requires the claim, so every token the policy admits carries it and the deny can see it.
    none(
      gh(
        `${PINS}\n${EVENTS}\n  environment: [prod, prod-eu]`,
        undefined,
        "deny:\n  - environment: prod-eu\n",
      ),
      "RP018",
    );
    // An unknown claim is RP011's finding, not this one's.
    none(gh(`${PINS}\n${EVENTS}`, undefined, "deny:\n  - custom_team: ops\n"), "RP018");
  });
});

describe("RP019–RP022 the cloud grants", () => {
  const PROVIDER = "projects/1/locations/global/workloadIdentityPools/ci-pool/providers/runpass";
  const gcp = (fields: string) =>
    gh(`${PINS}\n${EVENTS}`, `  gcp:\n    workload_identity_provider: ${PROVIDER}\n${fields}`, "ttl: 3h\n");
  const azure = (scope: string) =>
    gh(
      `${PINS}\n${EVENTS}`,
      `  azure:\n    tenant_id: 00000000-0000-0000-0000-000000000000\n    client_id: 11111111-1111-1111-1111-111111111111\n    scope: ${scope}`,
    );
  const SA = "    service_account: deployer@acme-prod.iam.gserviceaccount.com\n";

  it("RP019 fires for a gcp grant without service_account, and explains the pool's principal", () => {
    const f = one(gcp("    lifetime: 15m"), "RP019", "gcp");
    expect(`${f.message} ${f.why}`).toMatch(/pool's principal/);
    none(gcp(`${SA}    lifetime: 15m`), "RP019");
  });

  it("RP020 fires for a gcp lifetime over 1h, not for 1h", () => {
    one(gcp(`${SA}    lifetime: 2h`), "RP020", "2h");
    none(gcp(`${SA}    lifetime: 1h`), "RP020");
  });

  it("RP021 fires for an azure scope not ending in /.default; RP022 notes every azure grant", () => {
    const text = azure("https://management.azure.com/user_impersonation");
    one(text, "RP021", "https://management.azure.com/user_impersonation");
    none(azure("https://management.azure.com/.default"), "RP021");
    const note = one(azure("https://management.azure.com/.default"), "RP022", "azure");
    expect(note.message).toMatch(/outlive the lease/);
    none(gcp(`${SA}    lifetime: 15m`), "RP022");
  });
});

describe("RP024–RP025 the ssh grant", () => {
  const ssh = (fields: string) => gh(`${PINS}\n${EVENTS}`, `  ssh:\n${fields}`);

  it("RP024 fires for each forwarding extension, not for permit-pty", () => {
    const text = ssh(
      "    principals: [deploy]\n    extensions: [permit-pty, permit-agent-forwarding, permit-port-forwarding]",
    );
    one(
      ssh("    principals: [deploy]\n    extensions: [permit-pty, permit-X11-forwarding]"),
      "RP024",
      "permit-X11",
    );
    const found = of(lint({ p: text }), "RP024");
    expect(found.map((x) => x.message.match(/permit-\S+/)?.[0])).toEqual([
      "permit-agent-forwarding",
      "permit-port-forwarding",
    ]);
    none(ssh("    principals: [deploy]\n    extensions: [permit-pty, permit-user-rc]"), "RP024");
  });

  it("RP025 fires for privileged principals whatever their case, not for a deploy user", () => {
    one(ssh("    principals: [deploy, Root]"), "RP025", "Root");
    one(ssh("    principals: [admin]"), "RP025", "admin");
    none(ssh("    principals: [deploy, ops]"), "RP025");
  });
});

describe("the rule table", () => {
  it("has unique ids and names, and docs/policy-tooling.md's Lint rules table lists each with its severity", () => {
    expect(new Set(LINT_RULES.map((r) => r.id)).size).toBe(LINT_RULES.length);
    expect(new Set(LINT_RULES.map((r) => r.name)).size).toBe(LINT_RULES.length);
    const doc = readFileSync(join(ROOT, "docs/policy-tooling.md"), "utf8");
    expect(doc).toContain("\n## Lint rules\n");
    const section = doc.slice(doc.indexOf("\n## Lint rules\n"));
    for (const r of LINT_RULES) {
      expect(section, r.id).toMatch(new RegExp(`\\| ${r.id} \\| \`${r.name}\` \\| ${r.severity}`));
    }
  });
});

// ---- the CLI ----

/** The CLI run from the scratch folder, so reported paths are predictable. */
const cli = (args: string[]) => runpass(args, { cwd: dir });

let dir: string;
const WARN_ONLY = gh(PINS); // RP004 only
const LINT_ERROR = gh(`${PINS}\n${EVENTS}\n  ref_protected: true`); // RP009 (loads fine)

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "runpass-lint-"));
  for (const [name, files] of Object.entries({
    warn: { "warn-only.yaml": WARN_ONLY },
    error: { "lint-error.yaml": LINT_ERROR, "warn-only.yaml": WARN_ONLY },
    broken: {
      "unpinned.yaml": gh("  repository_owner: acme\n  event_name: push"),
      "warn-only.yaml": WARN_ONLY,
    },
  })) {
    await mkdir(join(dir, name));
    for (const [file, text] of Object.entries(files)) await writeFile(join(dir, name, file), text);
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("runpass policy check (lint)", () => {
  it("prints warnings as file:line:col: warning RULE: message with why/fix, and exits 0 (1 with --strict)", async () => {
    const r = await cli(["policy", "check", "--policies", "warn"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    const i = lines.findIndex((l) =>
      l.startsWith(`${join(dir, "warn", "warn-only.yaml")}:2:1: warning RP004: `),
    );
    expect(i, r.stdout).toBeGreaterThanOrEqual(0);
    expect(lines[i + 1]).toMatch(/^ {2}why: \S/);
    expect(lines[i + 2]).toMatch(/^ {2}fix: \S/);
    expect(r.stdout).toMatch(/^1 warning \(policy check --strict fails on warnings\)$/m);
    expect(r.stdout).toMatch(/^ok: 1 policies, 1 issuers \(sha256:[0-9a-f]{64}\)$/m);

    const strict = await cli(["policy", "check", "--policies", "warn", "--strict"]);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toMatch(/^1 warning in .*warn \(--strict: warnings fail the check\)$/m);
    expect(strict.stdout).not.toMatch(/^ok:/m);
  });

  it("exits 1 on a lint error even though every policy loads", async () => {
    const r = await cli(["policy", "check", "--policies", "error"]);
    expect(r.code).toBe(1);
    const { line, col } = at(LINT_ERROR, "true");
    expect(r.stdout).toContain(`${join(dir, "error", "lint-error.yaml")}:${line}:${col}: error RP009: `);
    expect(r.stdout).toMatch(/^1 error in .*error \(and 1 warning\)$/m);
  });

  it("the shipped policies pass --strict", async () => {
    const r = await cli(["policy", "check", "--policies", join(ROOT, "policies"), "--strict"]);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).not.toMatch(/warning|error/);
  });

  it("exits 2 on a bad --format", async () => {
    const r = await cli(["policy", "check", "--policies", "warn", "--format", "xml"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--format must be text or sarif");
    expect(r.stderr).toContain("usage:");
  });

  it("--format sarif prints one SARIF 2.1.0 log with rules, levels and relative locations", async () => {
    const r = await cli(["policy", "check", "--policies", "broken", "--format", "sarif"]);
    expect(r.code).toBe(1);
    const log = JSON.parse(r.stdout) as {
      version: string;
      $schema: string;
      runs: Array<{
        tool: {
          driver: {
            name: string;
            rules: Array<{
              id: string;
              name: string;
              shortDescription: { text: string };
              fullDescription: { text: string };
              help: { text: string };
              defaultConfiguration: { level: string };
            }>;
          };
        };
        originalUriBaseIds: Record<string, { uri: string }>;
        results: Array<{
          ruleId: string;
          ruleIndex: number;
          level: string;
          message: { text: string };
          locations: Array<{
            physicalLocation: {
              artifactLocation: { uri: string; uriBaseId: string };
              region: { startLine: number; startColumn: number };
            };
          }>;
        }>;
      }>;
    };
    expect(log.version).toBe("2.1.0");
    expect(log.$schema).toMatch(/sarif-2\.1\.0/);
    expect(log.runs).toHaveLength(1);
    const run = log.runs[0] as (typeof log.runs)[number];
    expect(run.tool.driver.name).toBe("runpass");
    const ids = run.tool.driver.rules.map((x) => x.id);
    expect(ids).toEqual(["RP000", ...LINT_RULES.map((x) => x.id)]);
    for (const rule of run.tool.driver.rules) {
      expect(rule.shortDescription.text.length, rule.id).toBeGreaterThan(0);
      expect(rule.fullDescription.text.length, rule.id).toBeGreaterThan(0);
      expect(rule.help.text.length, rule.id).toBeGreaterThan(0);
      expect(["error", "warning"]).toContain(rule.defaultConfiguration.level);
    }
    expect(run.originalUriBaseIds["%SRCROOT%"]?.uri).toMatch(/^file:\/\/.*\/$/);
    for (const result of run.results) {
      expect(ids[result.ruleIndex]).toBe(result.ruleId);
      expect(["error", "warning", "note"]).toContain(result.level);
      expect(result.message.text.length).toBeGreaterThan(0);
      expect(result.locations).toHaveLength(1);
      const loc = result.locations[0]?.physicalLocation;
      expect(loc?.artifactLocation.uri).toMatch(/^broken\/[\w-]+\.yaml$/);
      expect(loc?.artifactLocation.uriBaseId).toBe("%SRCROOT%");
      expect(loc?.region.startLine).toBeGreaterThanOrEqual(1);
      expect(loc?.region.startColumn).toBeGreaterThanOrEqual(1);
    }
    const summary = run.results.map((x) => {
      const loc = x.locations[0]?.physicalLocation;
      return `${loc?.artifactLocation.uri}:${loc?.region.startLine}:${loc?.region.startColumn} ${x.level} ${x.ruleId}`;
    });
    // The loader's refusal and the linter's RP001 are one result.
    expect(summary.filter((s) => s.includes("RP001"))).toEqual(["broken/unpinned.yaml:3:3 error RP001"]);
    expect(summary).toContain("broken/unpinned.yaml:3:3 warning RP002");
    expect(summary).toContain("broken/warn-only.yaml:2:1 warning RP004");
  });
});
