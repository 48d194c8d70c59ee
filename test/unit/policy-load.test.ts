// Loading policies (docs/policies.md): strict schema with file:line:col problems, load-time pin rules, issuers, versions.

import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { readPolicyDir } from "../../src/cli/policy-files.ts";
import type { IssuerConfig } from "../../src/core/oidc/issuers.ts";
import { type LoadResult, loadPolicySet, type Problem } from "../../src/core/policy/load.ts";

const GH = `issuer: github
allow:
  repository_owner_id: "1342004"
  repository_id: "519345000"
  ref: refs/heads/main
  event_name: [push, workflow_dispatch]
grants:
  token: { audience: "https://deploy.acme.dev" }
`;

const GL = `issuer: gitlab
allow:
  namespace_id: "72"
  project_id: "20"
  ref_protected: "true"
grants:
  token: { audience: "https://deploy.acme.dev" }
`;

/** A policy for `issuer` whose allow block is `allow` (indented YAML lines). */
function policy(issuer: string, allow: string, extra = ""): string {
  return `issuer: ${issuer}\nallow:\n${allow}\n${extra}grants:\n  token: { audience: "https://deploy.acme.dev" }\n`;
}

const DEV_ISSUER: IssuerConfig = {
  name: "dev",
  url: "http://127.0.0.1:8787/dev/oidc",
  kind: "github",
  maxTokenAge: 600,
  algorithms: ["RS256"],
  jwks: { keys: [] },
};

async function load(
  policies: Record<string, string>,
  options: { issuers?: string; dev?: boolean; devIssuer?: IssuerConfig } = {},
): Promise<LoadResult> {
  return loadPolicySet(
    {
      policies: Object.entries(policies).map(([name, text]) => ({ path: `policies/${name}.yaml`, text })),
      ...(options.issuers !== undefined
        ? { issuers: { path: "policies/issuers.yaml", text: options.issuers } }
        : {}),
    },
    { dev: options.dev ?? false, ...(options.devIssuer ? { devIssuer: options.devIssuer } : {}) },
  );
}

function errors(result: LoadResult): Problem[] {
  return result.problems.filter((p) => p.severity === "error");
}

/** Exactly one error, which is returned. */
function oneError(result: LoadResult): Problem {
  const errs = errors(result);
  expect(errs.map((e) => `${e.file}:${e.line}:${e.col}: ${e.message}`)).toHaveLength(1);
  expect(result.bundle).toBeUndefined();
  return errs[0] as Problem;
}

describe("a valid policy set", () => {
  it("loads with no problems, names policies after their files and normalises values to lists", async () => {
    const result = await load({ "api-deploy": GH });
    expect(result.problems).toEqual([]);
    const bundle = result.bundle;
    expect(bundle?.format).toBe(1);
    expect(bundle?.dev).toBe(false);
    const p = bundle?.policies[0];
    expect(p?.name).toBe("api-deploy");
    expect(p?.issuer).toBe("github");
    expect(p?.allow).toEqual({
      repository_owner_id: ["1342004"],
      repository_id: ["519345000"],
      ref: ["refs/heads/main"],
      event_name: ["push", "workflow_dispatch"],
    });
    expect(p?.deny).toEqual([]);
    expect(p?.ttl).toBe(3600);
    expect(p?.grants.token).toEqual({ audience: "https://deploy.acme.dev", ttl: 900 });
  });

  it("parses ttl, deny rules, audience and description", async () => {
    const text = `description: Deploy
issuer: github
audience: https://runpass.acme.dev
allow:
  repository_owner_id: "1342004"
deny:
  - runner_environment: self-hosted
  - event_name: pull_request_target
    ref: refs/heads/main
ttl: 1h30m
grants:
  token: { audience: "https://deploy.acme.dev", ttl: 10m }
`;
    const result = await load({ p: text });
    expect(result.problems).toEqual([]);
    const p = result.bundle?.policies[0];
    expect(p?.description).toBe("Deploy");
    expect(p?.audience).toBe("https://runpass.acme.dev");
    expect(p?.deny).toEqual([
      { runner_environment: ["self-hosted"] },
      { event_name: ["pull_request_target"], ref: ["refs/heads/main"] },
    ]);
    expect(p?.ttl).toBe(5400);
    expect(p?.grants.token?.ttl).toBe(600);
  });

  it("the shipped policies/ folder loads for production, leaving out only the dev-only policy", async () => {
    const sources = await readPolicyDir(resolve(import.meta.dirname, "../../policies"));
    const result = await loadPolicySet(sources, { dev: false });
    expect(errors(result)).toEqual([]);
    expect(result.bundle?.dev).toBe(false);
    const names = result.bundle?.policies.map((p) => p.name) ?? [];
    expect(names).toEqual(expect.arrayContaining(["api-deploy", "cli-release", "infra-apply"]));
    expect(names).not.toContain("dev-demo");
    expect(result.bundle?.issuers.map((i) => i.name)).not.toContain("dev");
    for (const issuer of result.bundle?.issuers ?? []) expect(issuer.url).toMatch(/^https:\/\//);
    expect(result.notices.some((n) => n.includes("dev-demo.yaml"))).toBe(true);
  });
});

describe("strict schema with file:line:col", () => {
  it("an unknown top-level key is an error at the key's line and column, with a suggestion", async () => {
    const text = `issuer: github
allow:
  repository_owner_id: "1342004"
alow_extra: 1
grants:
  token: { audience: "https://deploy.acme.dev" }
`;
    const p = oneError(await load({ p: text }));
    expect(p).toMatchObject({ file: "policies/p.yaml", line: 4, col: 1, severity: "error" });
    expect(p.message).toContain('"alow_extra"');
  });

  it("a misspelt key gets a did-you-mean hint", async () => {
    const text = `issuer: github
allow:
  repository_owner_id: "1342004"
grants:
  token: { audience: "https://deploy.acme.dev" }
tll: 1h
`;
    const p = oneError(await load({ p: text }));
    expect(p).toMatchObject({ line: 6, col: 1 });
    expect(p.message).toContain('"tll"');
    expect(p.message).toContain('"ttl"');
  });

  it("an unknown key inside a grant is reported where it is", async () => {
    const text = `issuer: github
allow:
  repository_owner_id: "1342004"
grants:
  token:
    audience: "https://deploy.acme.dev"
    scope: admin
`;
    const p = oneError(await load({ p: text }));
    expect(p).toMatchObject({ file: "policies/p.yaml", line: 7, col: 5 });
    expect(p.message).toContain('"scope"');
  });

  it("a grant kind runpass does not know is an unknown key", async () => {
    const text = `issuer: github
allow:
  repository_owner_id: "1342004"
grants:
  token: { audience: "https://deploy.acme.dev" }
  root: { all: true }
`;
    const p = oneError(await load({ p: text }));
    expect(p).toMatchObject({ line: 6, col: 3 });
    expect(p.message).toContain('"root"');
  });

  it("a missing required key is an error", async () => {
    const text = `issuer: github
allow:
  repository_owner_id: "1342004"
`;
    const p = oneError(await load({ p: text }));
    expect(p.file).toBe("policies/p.yaml");
    expect(p.message).toContain('"grants"');
  });

  it("a value of the wrong type is an error at that value", async () => {
    const text = `issuer: github
allow:
  repository_owner_id: "1342004"
ttl: 60
grants:
  token: { audience: "https://deploy.acme.dev" }
`;
    const p = oneError(await load({ p: text }));
    expect(p).toMatchObject({ line: 4, col: 6 });
    expect(p.message).toMatch(/^ttl: expected/);
  });

  it("a condition value that is a map is refused", async () => {
    const p = oneError(await load({ p: policy("github", '  repository_owner_id: "1"\n  ref: { a: 1 }') }));
    expect(p.line).toBe(4);
    expect(p.message).toContain("allow.ref");
  });

  it("an unparseable duration is an error", async () => {
    const p = oneError(await load({ p: policy("github", '  repository_owner_id: "1"', "ttl: forever\n") }));
    expect(p).toMatchObject({ line: 4, col: 6 });
  });

  it("a ttl over 24h is refused", async () => {
    const p = oneError(await load({ p: policy("github", '  repository_owner_id: "1"', "ttl: 25h\n") }));
    expect(p.line).toBe(4);
  });

  it("broken YAML is an error with the line of the break", async () => {
    const text = `issuer: github
allow:
  repository_owner_id: "1342004"
  event_name: [push, workflow_dispatch
grants:
  token: { audience: "https://deploy.acme.dev" }
`;
    const result = await load({ p: text });
    expect(result.bundle).toBeUndefined();
    const errs = errors(result);
    expect(errs.length).toBeGreaterThan(0);
    for (const e of errs) {
      expect(e.file).toBe("policies/p.yaml");
      expect(e.message).toMatch(/^YAML: /);
      expect(e.line).toBeGreaterThanOrEqual(4);
      expect(e.col).toBeGreaterThanOrEqual(1);
    }
    expect(errs[0]?.line).toBeLessThanOrEqual(5);
  });

  it("a tab-indented line is a YAML error on that line", async () => {
    const text = 'issuer: github\nallow:\n\trepository_owner_id: "1"\n';
    const errs = errors(await load({ p: text }));
    expect(errs.length).toBeGreaterThan(0);
    expect(errs[0]?.line).toBe(3);
  });

  it("a duplicate key is an error, not last-one-wins", async () => {
    const text = policy(
      "github",
      '  repository_owner_id: "1342004"\n  ref: refs/heads/main\n  ref: refs/heads/evil',
    );
    const result = await load({ p: text });
    expect(result.bundle).toBeUndefined();
    expect(errors(result)[0]).toMatchObject({ file: "policies/p.yaml", line: 5 });
  });

  it("several documents in one file are an error", async () => {
    const result = await load({ p: `${GH}---\nissuer: gitlab\n` });
    expect(result.bundle).toBeUndefined();
    expect(errors(result)[0]?.line).toBe(9);
  });

  it("an empty file is an error", async () => {
    const p = oneError(await load({ p: "" }));
    expect(p).toMatchObject({ file: "policies/p.yaml", line: 1, col: 1 });
  });

  it("problems from several files all carry their own file name", async () => {
    const result = await load({ a: "issuer: [", b: `${GH}bogus: 1\n`, c: GH });
    expect(result.bundle).toBeUndefined();
    const files = new Set(errors(result).map((p) => p.file));
    expect(files).toEqual(new Set(["policies/a.yaml", "policies/b.yaml"]));
  });

  it("a file name that is not a valid policy name is refused", async () => {
    const result = await load({ "bad name": GH });
    expect(result.bundle).toBeUndefined();
    expect(errors(result)[0]).toMatchObject({ file: "policies/bad name.yaml", line: 1, col: 1 });
  });

  it("matching a claim that verification checks (iss, aud, exp) is refused", async () => {
    for (const claim of ["iss", "aud", "exp", "iat", "nbf"]) {
      const p = oneError(await load({ p: policy("github", `  repository_owner_id: "1"\n  ${claim}: x`) }));
      expect(p.line, claim).toBe(4);
      expect(p.message).toContain(`"${claim}"`);
    }
  });

  it("an empty allow map, an empty list or an empty string is refused", async () => {
    expect(errors(await load({ p: policy("github", "  {}") })).length).toBeGreaterThan(0);
    expect(oneError(await load({ p: policy("github", '  repository_owner_id: "1"\n  ref: []') })).line).toBe(
      4,
    );
    expect(oneError(await load({ p: policy("github", '  repository_owner_id: "1"\n  ref: ""') })).line).toBe(
      4,
    );
  });

  it("a *** pattern is refused", async () => {
    const p = oneError(await load({ p: policy("github", '  repository_owner_id: "1"\n  ref: "refs/***"') }));
    expect(p.line).toBe(4);
  });

  it("a policy with no grant is refused", async () => {
    const text = 'issuer: github\nallow:\n  repository_owner_id: "1"\ngrants: {}\n';
    const p = oneError(await load({ p: text }));
    expect(p.line).toBe(4);
  });

  // BUG (src/core/policy/schema.ts `Conditions = z.record(...)`, consumed by load.ts normaliseConditions):
  // zod drops a `__proto__` key from records, so `allow: { __proto__: "x" }` loads with that condition silently
  // removed instead of being refused. Strict validation should never drop a condition the author wrote.
  it("a __proto__ condition is refused rather than silently dropped", async () => {
    const result = await load({ p: policy("github", '  repository_owner_id: "1"\n  __proto__: "x"') });
    expect(result.bundle).toBeUndefined();
  });
});

describe("token grant audiences a cloud accepts are refused at load (no confused deputy)", () => {
  const withAudience = (audience: string) =>
    GH.replace(
      'token: { audience: "https://deploy.acme.dev" }',
      `token: { audience: ${JSON.stringify(audience)} }`,
    );

  it("refuses AWS STS, Azure AD token exchange and Google IAM audiences, any case, at the audience", async () => {
    for (const audience of [
      "sts.amazonaws.com",
      "STS.AmazonAWS.com",
      "https://sts.amazonaws.com",
      "https://sts.amazonaws.com/",
      "https://STS.amazonaws.com:443",
      "https://sts.us-east-1.amazonaws.com",
      "sts.eu-west-1.amazonaws.com",
      "https://sts.example.net",
      "https://sts.amazonaws.com.",
      "api://AzureADTokenExchange",
      "api://azureadtokenexchange",
      "API://AzureADTokenExchangeUSGov",
      "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/runpass",
      "//IAM.googleapis.com/projects/1",
      "https://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/runpass",
    ]) {
      const text = withAudience(audience);
      const e = oneError(await load({ p: text }));
      expect(e.message, audience).toMatch(/grants\.token\.audience/);
      expect(e.message, audience).toMatch(/confused deputy|accepts/);
      expect(e.message, audience).toContain(JSON.stringify(audience));
      const line = text.split("\n").findIndex((l) => l.includes("token:")) + 1;
      expect(e.line, audience).toBe(line);
    }
  });

  it("accepts audiences that only look like one", async () => {
    for (const audience of [
      "https://deploy.acme.dev",
      "https://ststore.acme.dev",
      "https://deploy.acme.dev/sts.amazonaws.com",
      "https://acme.dev/?aud=sts.amazonaws.com",
      "api://acme-deploy",
      "https://iam.acme.dev/projects/1",
    ]) {
      const result = await load({ p: withAudience(audience) });
      expect(errors(result), audience).toEqual([]);
    }
  });
});

describe("load-time pin rules", () => {
  it("a GitHub-kind policy without repository_owner_id or repository_id is refused", async () => {
    const p = oneError(await load({ p: policy("github", "  ref: refs/heads/main\n  event_name: push") }));
    expect(p.file).toBe("policies/p.yaml");
    expect(p.line).toBe(3);
    expect(p.message).toContain("repository_owner_id");
    expect(p.message).toContain("repository_id");
  });

  it("a GitHub-kind policy pinning names instead of IDs is refused", async () => {
    const p = oneError(
      await load({ p: policy("github", "  repository_owner: acme\n  repository: acme/api") }),
    );
    expect(p.message).toContain("repository_owner_id");
  });

  it("a GitHub pin must be an exact string: a glob, a number or a boolean does not count", async () => {
    for (const value of ['"13420*"', "1342004", "true", '["1342004", "1*"]']) {
      const p = oneError(await load({ p: policy("github", `  repository_owner_id: ${value}`) }));
      expect(p.message, value).toContain("repository_owner_id");
    }
  });

  it("either GitHub pin alone is enough, and a list of exact IDs counts", async () => {
    expect(errors(await load({ p: policy("github", '  repository_owner_id: "1342004"') }))).toEqual([]);
    expect(errors(await load({ p: policy("github", '  repository_id: "519345000"') }))).toEqual([]);
    expect(errors(await load({ p: policy("github", '  repository_id: ["1", "2"]') }))).toEqual([]);
  });

  it("a GitLab-kind policy without namespace_id or project_id is refused", async () => {
    const p = oneError(await load({ p: policy("gitlab", "  namespace_path: acme-group\n  ref: main") }));
    expect(p.message).toContain("namespace_id");
    expect(p.message).toContain("project_id");
  });

  it("a GitLab pin must be an exact string", async () => {
    const p = oneError(await load({ p: policy("gitlab", "  project_id: 20") }));
    expect(p.message).toContain("project_id");
    expect(errors(await load({ p: policy("gitlab", '  project_id: "20"') }))).toEqual([]);
    expect(errors(await load({ infra: GL }))).toEqual([]);
  });

  it("GitHub pins do not satisfy a GitLab policy, nor the other way round", async () => {
    expect(errors(await load({ p: policy("gitlab", '  repository_id: "1"') }))).toHaveLength(1);
    expect(errors(await load({ p: policy("github", '  project_id: "1"') }))).toHaveLength(1);
  });

  it("a custom github-kind issuer (GHES) gets the GitHub pin rule", async () => {
    const issuers = "ghes: { url: https://github.acme.corp/_services/token, kind: github }\n";
    expect(errors(await load({ p: policy("ghes", "  ref: refs/heads/main") }, { issuers }))).toHaveLength(1);
    expect(errors(await load({ p: policy("ghes", '  repository_id: "7"') }, { issuers }))).toEqual([]);
  });

  it("a generic-kind policy without an exact sub is refused", async () => {
    const issuers = "circleci: { url: https://oidc.circleci.com/org/abc, kind: generic }\n";
    const missing = oneError(
      await load({ p: policy("circleci", '  "oidc.circleci.com:project": "x"') }, { issuers }),
    );
    expect(missing.message).toContain('"sub"');
    const glob = oneError(await load({ p: policy("circleci", '  sub: "org/abc/project/*"') }, { issuers }));
    expect(glob.message).toContain('"sub"');
    expect(
      errors(await load({ p: policy("circleci", '  sub: "org/abc/project/def/user/ghi"') }, { issuers })),
    ).toEqual([]);
  });
  // BUG (src/core/policy/load.ts:70 CLAIM_NAME): "/" is not allowed in claim names, yet CircleCI (the generic
  // issuer docs/policies.md shows) names its claims "oidc.circleci.com/project-id", "oidc.circleci.com/context-ids", ….
  // Such a policy is refused with '"oidc.circleci.com/project-id" is not a valid claim name'.
  it("a generic policy may match CircleCI's namespaced claims such as oidc.circleci.com/project-id", async () => {
    const issuers = "circleci: { url: https://oidc.circleci.com/org/abc, kind: generic }\n";
    const text = policy(
      "circleci",
      '  sub: "org/abc/project/def/user/ghi"\n  "oidc.circleci.com/project-id": "def"',
    );
    expect(errors(await load({ p: text }, { issuers }))).toEqual([]);
  });
});

describe("issuers", () => {
  it("an unknown issuer name is refused at the issuer line", async () => {
    const p = oneError(await load({ p: policy("jenkins", '  sub: "x"') }));
    expect(p).toMatchObject({ file: "policies/p.yaml", line: 1, col: 9 });
    expect(p.message).toContain('"jenkins"');
  });

  it("only issuers referenced by a policy are trusted", async () => {
    const issuers = `ghes: { url: https://github.acme.corp/_services/token, kind: github }
gl-acme: { url: https://gitlab.acme.corp, kind: gitlab, max_token_age: 24h }
circleci: { url: https://oidc.circleci.com/org/abc, kind: generic }
`;
    const result = await load({ p: policy("ghes", '  repository_id: "7"') }, { issuers });
    expect(errors(result)).toEqual([]);
    expect(result.bundle?.issuers.map((i) => i.name)).toEqual(["ghes"]);
  });

  it("presets are trusted only when referenced", async () => {
    const gh = await load({ p: GH });
    expect(gh.bundle?.issuers.map((i) => i.name)).toEqual(["github"]);
    const both = await load({ a: GH, b: GL });
    expect(both.bundle?.issuers.map((i) => [i.name, i.url, i.kind])).toEqual([
      ["github", "https://token.actions.githubusercontent.com", "github"],
      ["gitlab", "https://gitlab.com", "gitlab"],
    ]);
  });

  it("issuers.yaml entries compile with their kind defaults and overrides", async () => {
    const issuers = `ghes: { url: "https://github.acme.corp/_services/token", kind: github }
gl-acme: { url: "https://gitlab.acme.corp", kind: gitlab, max_token_age: 24h }
circleci: { url: "https://oidc.circleci.com/org/00000000-0000-0000-0000-000000000000", kind: generic, max_token_age: 2h }
buildkite: { url: "https://agent.buildkite.com", kind: generic, algorithms: [ES384], jwks_uri: "https://agent.buildkite.com/.well-known/jwks" }
`;
    const result = await load(
      {
        a: policy("ghes", '  repository_owner_id: "1"'),
        b: policy("gl-acme", '  namespace_id: "2"'),
        c: policy("circleci", '  sub: "org/1/project/2/user/3"'),
        d: policy("buildkite", '  sub: "organization:acme:pipeline:deploy"'),
      },
      { issuers },
    );
    expect(errors(result)).toEqual([]);
    const byName = new Map(result.bundle?.issuers.map((i) => [i.name, i]));
    expect(byName.get("ghes")).toEqual({
      name: "ghes",
      url: "https://github.acme.corp/_services/token",
      kind: "github",
      maxTokenAge: 600,
      algorithms: ["RS256"],
    });
    expect(byName.get("gl-acme")).toMatchObject({
      kind: "gitlab",
      maxTokenAge: 86400,
      algorithms: ["RS256"],
    });
    expect(byName.get("circleci")).toMatchObject({
      kind: "generic",
      maxTokenAge: 7200,
      algorithms: ["RS256", "ES256"],
    });
    expect(byName.get("buildkite")).toMatchObject({
      kind: "generic",
      maxTokenAge: 3600,
      algorithms: ["ES384"],
      jwksUri: "https://agent.buildkite.com/.well-known/jwks",
    });
  });

  it("a gitlab-kind issuer defaults to a 12h token age", async () => {
    const issuers = "gl-acme: { url: https://gitlab.acme.corp, kind: gitlab }\n";
    const result = await load({ p: policy("gl-acme", '  project_id: "2"') }, { issuers });
    expect(result.bundle?.issuers[0]?.maxTokenAge).toBe(12 * 3600);
  });

  it("max_token_age over 24h or unparseable is refused", async () => {
    const over = oneError(
      await load(
        {},
        { issuers: "gl: { url: https://gitlab.acme.corp, kind: gitlab, max_token_age: 25h }\n" },
      ),
    );
    expect(over).toMatchObject({ file: "policies/issuers.yaml", line: 1 });
    const junk = oneError(
      await load(
        {},
        { issuers: "gl:\n  url: https://gitlab.acme.corp\n  kind: gitlab\n  max_token_age: soon\n" },
      ),
    );
    expect(junk).toMatchObject({ file: "policies/issuers.yaml", line: 4, col: 18 });
  });

  it("algorithms are for generic issuers only, and only asymmetric ones", async () => {
    const gh = oneError(
      await load(
        {},
        {
          issuers: "ghes:\n  url: https://ghes.test/_services/token\n  kind: github\n  algorithms: [RS256]\n",
        },
      ),
    );
    expect(gh.line).toBe(4);
    for (const algs of ["[HS256]", "[none]", "[]", "[RS256, HS256]"]) {
      const p = oneError(
        await load({}, { issuers: `ci: { url: "https://ci.test", kind: generic, algorithms: ${algs} }\n` }),
      );
      expect(p.file, algs).toBe("policies/issuers.yaml");
    }
  });

  it("issuers.yaml may not redefine github, gitlab or dev, nor use names unfit for run keys", async () => {
    for (const name of ["github", "gitlab", "dev", "Acme", "a:b", "-x"]) {
      const p = oneError(
        await load({}, { issuers: `"${name}": { url: "https://ci.test", kind: generic }\n` }),
      );
      expect(p, name).toMatchObject({ file: "policies/issuers.yaml", line: 1, col: 1 });
    }
  });

  it("two issuers with one URL are refused, including a clash with a preset", async () => {
    const preset = oneError(
      await load(
        {},
        { issuers: "mine: { url: https://token.actions.githubusercontent.com, kind: github }\n" },
      ),
    );
    expect(preset.message).toContain("github");
    const pair = oneError(
      await load(
        {},
        {
          issuers: "a: { url: https://ci.test, kind: generic }\nb: { url: https://ci.test, kind: generic }\n",
        },
      ),
    );
    expect(pair.line).toBe(2);
  });

  it("an unknown key or kind in issuers.yaml is an error with its line", async () => {
    const key = oneError(
      await load({}, { issuers: "ci:\n  url: https://ci.test\n  kind: generic\n  discovery: off\n" }),
    );
    expect(key).toMatchObject({ file: "policies/issuers.yaml", line: 4, col: 3 });
    const kind = oneError(await load({}, { issuers: "ci:\n  url: https://ci.test\n  kind: jenkins\n" }));
    expect(kind).toMatchObject({ file: "policies/issuers.yaml", line: 3 });
  });
});

describe("issuer URLs: https only, http only for loopback in dev", () => {
  const entry = (url: string, key = "url") =>
    key === "url"
      ? `ci: { url: "${url}", kind: generic }\n`
      : `ci: { url: "https://ci.test", kind: generic, jwks_uri: "${url}" }\n`;

  it("a production build refuses plain http, even on loopback", async () => {
    for (const url of ["http://127.0.0.1:9000", "http://localhost:9000", "http://ci.example.com"]) {
      const p = oneError(await load({}, { issuers: entry(url) }));
      expect(p, url).toMatchObject({ file: "policies/issuers.yaml", line: 1 });
      expect(p.message).toContain("http");
    }
  });

  it("a dev build accepts http on loopback hosts", async () => {
    for (const url of ["http://127.0.0.1:9000/x", "http://localhost:9000", "http://[::1]:9000"]) {
      expect(errors(await load({}, { issuers: entry(url), dev: true })), url).toEqual([]);
    }
  });

  it("a dev build still refuses http on hosts that only look like loopback", async () => {
    for (const url of [
      "http://ci.example.com",
      "http://127.0.0.1.nip.io",
      "http://127.1.2.3",
      "http://localhost.evil.test",
      "http://10.0.0.1",
    ]) {
      expect(errors(await load({}, { issuers: entry(url), dev: true })), url).toHaveLength(1);
    }
  });

  it("other schemes, credentials, queries and fragments are refused", async () => {
    for (const url of [
      "ftp://ci.test",
      "https://user:pw@ci.test",
      "https://ci.test/?x=1",
      "https://ci.test/#f",
      "not a url",
    ]) {
      expect(errors(await load({}, { issuers: entry(url), dev: true })), url).toHaveLength(1);
    }
  });

  it("jwks_uri follows the same rules", async () => {
    expect(
      errors(await load({}, { issuers: entry("http://keys.example.com/jwks", "jwks_uri") })),
    ).toHaveLength(1);
    expect(errors(await load({}, { issuers: entry("https://keys.example.com/jwks", "jwks_uri") }))).toEqual(
      [],
    );
  });
});

describe("dev-only policies", () => {
  const DEV = policy("dev", '  repository_owner_id: "1000001"');

  it("a production build leaves out issuer: dev policies with a notice, and trusts no dev issuer", async () => {
    const result = await load({ "dev-demo": DEV, "api-deploy": GH });
    expect(errors(result)).toEqual([]);
    expect(result.bundle?.policies.map((p) => p.name)).toEqual(["api-deploy"]);
    expect(result.bundle?.issuers.map((i) => i.name)).toEqual(["github"]);
    expect(result.notices).toHaveLength(1);
    expect(result.notices[0]).toContain("policies/dev-demo.yaml");
  });

  it("a production build ignores a dev issuer handed to it", async () => {
    const result = await load({ "dev-demo": DEV }, { dev: false, devIssuer: DEV_ISSUER });
    expect(result.bundle?.policies).toEqual([]);
    expect(result.bundle?.issuers).toEqual([]);
  });

  it("a dev build includes them with the loopback dev issuer", async () => {
    const result = await load({ "dev-demo": DEV }, { dev: true, devIssuer: DEV_ISSUER });
    expect(errors(result)).toEqual([]);
    expect(result.notices).toEqual([]);
    expect(result.bundle?.dev).toBe(true);
    expect(result.bundle?.policies.map((p) => p.issuer)).toEqual(["dev"]);
    expect(result.bundle?.issuers[0]?.url).toBe(DEV_ISSUER.url);
  });

  it("a dev build without a dev issuer refuses issuer: dev as unknown", async () => {
    const p = oneError(await load({ "dev-demo": DEV }, { dev: true }));
    expect(p.message).toContain('"dev"');
  });
});

describe("versions", () => {
  it("a policy version is a sha256 digest, stable across loads, comments, layout and key order", async () => {
    const a = await load({ p: GH });
    const b = await load({ p: GH });
    const relaid = `# comment
grants: { token: { audience: "https://deploy.acme.dev" } }
allow:
  event_name:
    - push
    - workflow_dispatch
  ref: "refs/heads/main"
  repository_id: '519345000'
  repository_owner_id: "1342004"
issuer: github
`;
    const c = await load({ p: relaid });
    const v = a.bundle?.policies[0]?.version;
    expect(v).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(b.bundle?.policies[0]?.version).toBe(v);
    expect(c.bundle?.policies[0]?.version).toBe(v);
    expect(c.bundle?.version).toBe(a.bundle?.version);
  });

  it("a policy version changes when the policy changes", async () => {
    const base = (await load({ p: GH })).bundle?.policies[0]?.version;
    const variants = [
      GH.replace("refs/heads/main", "refs/heads/release"),
      GH.replace("[push, workflow_dispatch]", "[push]"),
      GH.replace("https://deploy.acme.dev", "https://deploy2.acme.dev"),
      `${GH}ttl: 30m\n`,
      `${GH}deny:\n  - runner_environment: self-hosted\n`,
    ];
    const versions = new Set<string | undefined>([base]);
    for (const text of variants) versions.add((await load({ p: text })).bundle?.policies[0]?.version);
    expect(versions.size).toBe(variants.length + 1);
  });

  it("a policy version changes when its issuer's configuration changes", async () => {
    const p = { p: policy("gl-acme", '  project_id: "2"') };
    const a = await load(p, { issuers: "gl-acme: { url: https://gitlab.acme.corp, kind: gitlab }\n" });
    const b = await load(p, {
      issuers: "gl-acme: { url: https://gitlab.acme.corp, kind: gitlab, max_token_age: 24h }\n",
    });
    expect(a.bundle?.policies[0]?.version).not.toBe(b.bundle?.policies[0]?.version);
  });

  it("the policy set version is stable, independent of input order, and changes with any policy", async () => {
    const one = await loadPolicySet(
      {
        policies: [
          { path: "policies/a.yaml", text: GH },
          { path: "policies/b.yaml", text: GL },
        ],
      },
      { dev: false },
    );
    const two = await loadPolicySet(
      {
        policies: [
          { path: "policies/b.yaml", text: GL },
          { path: "policies/a.yaml", text: GH },
        ],
      },
      { dev: false },
    );
    expect(one.bundle?.version).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(two.bundle?.version).toBe(one.bundle?.version);
    const changed = await load({ a: GH, b: GL.replace('"20"', '"21"') });
    expect(changed.bundle?.version).not.toBe(one.bundle?.version);
    expect(changed.bundle?.policies.find((p) => p.name === "a")?.version).toBe(
      one.bundle?.policies.find((p) => p.name === "a")?.version,
    );
    const renamed = await load({ a: GH, c: GL });
    expect(renamed.bundle?.version).not.toBe(one.bundle?.version);
  });

  it("an unreferenced issuers.yaml entry changes neither version", async () => {
    const a = await load({ p: GH });
    const b = await load(
      { p: GH },
      { issuers: "ghes: { url: https://github.acme.corp/_services/token, kind: github }\n" },
    );
    expect(b.bundle?.version).toBe(a.bundle?.version);
    expect(b.bundle?.policies[0]?.version).toBe(a.bundle?.policies[0]?.version);
  });

  it("a dev build and a production build of the same policies have different set versions", async () => {
    const prod = await load({ p: GH });
    const dev = await load({ p: GH }, { dev: true });
    expect(dev.bundle?.version).not.toBe(prod.bundle?.version);
  });
});
