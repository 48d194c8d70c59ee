// Policy tooling end to end, as child processes: `policy test`, `policy claims`, `policy explain --all`, `policy diff`.

import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { githubClaims } from "../support/claims.ts";
import { deployPolicy } from "../support/policies.ts";
import { ROOT, type Run, runpass } from "../support/run-cli.ts";

const SHIPPED = join(ROOT, "policies");
const ISS = "https://ci.runpass.test";
const AUD = "https://runpass.test";
const NOW = Date.parse("2026-01-15T12:00:00Z");
const AT = new Date(NOW + 1000).toISOString();

let dir: string;
let privateKey: CryptoKey;
let otherKey: CryptoKey;
let jwksFile: string;
const KID = "policy-tools-k1";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "runpass-policy-tools-"));
  const pair = await generateKeyPair("RS256", { extractable: true });
  privateKey = pair.privateKey;
  otherKey = (await generateKeyPair("RS256")).privateKey;
  const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: "RS256", use: "sig" };
  jwksFile = join(dir, "jwks.json");
  await writeFile(jwksFile, JSON.stringify({ keys: [publicJwk] }));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
/** Signs claims and writes the token to a file; returns the path and the token (for leak checks). */
async function tokenFile(
  claims: JWTPayload,
  options: { key?: CryptoKey; into?: string } = {},
): Promise<{ path: string; token: string }> {
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", kid: KID, typ: "JWT" })
    .sign(options.key ?? privateKey);
  const path = join(options.into ?? dir, `token-${++n}.jwt`);
  await writeFile(path, `${token}\n`);
  return { path, token };
}

const claims = (overrides: Record<string, unknown> = {}) => githubClaims(ISS, AUD, overrides, NOW);

/** A policies folder trusting the test issuer, with the given policy files. */
async function policyFolder(name: string, files: Record<string, string>): Promise<string> {
  const folder = join(dir, name);
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, "issuers.yaml"), `ci: { url: "${ISS}", kind: github }\n`);
  for (const [file, text] of Object.entries(files)) await writeFile(join(folder, file), text);
  return folder;
}

const DEPLOY = deployPolicy(AUD);

describe("runpass policy test", () => {
  it("passes on the shipped example tests, which the policy build ignores", async () => {
    const r = await runpass(["policy", "test", "--policies", SHIPPED]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(/^case\s+policy\s+expected\s+got\s+ok$/);
    expect(r.stdout).toMatch(/^(\d+) cases: \1 passed, 0 failed$/m);
    for (const policy of ["api-deploy", "cli-release", "infra-apply"]) {
      expect(
        lines.some((l) => l.includes(` ${policy} `) && /\sallow\s+allow\s+ok$/.test(l)),
        policy,
      ).toBe(true);
      expect(
        lines.some((l) => l.includes(` ${policy} `) && /\sdeny\s+deny\s+ok$/.test(l)),
        policy,
      ).toBe(true);
    }
    expect(r.stdout).toMatch(/a branch named main-evil is not main\s+api-deploy\s+deny\s+deny\s+ok/);
    expect(r.stdout).toMatch(/an unprotected branch is refused\s+infra-apply\s+deny\s+deny\s+ok/);
    // The tests/ subfolder is not a policy: the shipped folder still checks clean for production.
    const check = await runpass(["policy", "check", "--policies", SHIPPED]);
    expect(check.code).toBe(0);
    expect(check.stdout).not.toContain("tests");
  });

  it("a failing expectation exits 1 and shows the row and why", async () => {
    const tests = join(dir, "failing-tests");
    await mkdir(tests);
    await writeFile(
      join(tests, "wrong.yaml"),
      `cases:
  - name: main-evil wrongly expected to deploy
    policy: api-deploy
    expect: allow
    claims:
      repository_owner_id: "1342004"
      repository_id: "519345000"
      ref: refs/heads/main-evil
      event_name: push
      runner_environment: github-hosted
  - name: right decision, wrong reason
    policy: api-deploy
    expect: deny
    claims:
      repository_owner_id: "1342004"
      repository_id: "519345000"
      ref: refs/heads/main
      event_name: pull_request_target
      runner_environment: github-hosted
    reasons:
      - { code: claim_mismatch, claim: ref }
  - name: still fine
    policy: api-deploy
    expect: deny
    claims:
      repository_owner_id: "1342004"
      repository_id: "519345000"
      ref: refs/heads/main
      event_name: push
      runner_environment: self-hosted
    reasons:
      - { code: claim_mismatch, claim: runner_environment }
`,
    );
    const r = await runpass(["policy", "test", "--policies", SHIPPED, "--tests", tests]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^main-evil wrongly expected to deploy\s+api-deploy\s+allow\s+deny\s+FAIL$/m);
    expect(r.stdout).toMatch(/^right decision, wrong reason\s+api-deploy\s+deny\s+deny\s+FAIL$/m);
    expect(r.stdout).toMatch(/^still fine\s+api-deploy\s+deny\s+deny\s+ok$/m);
    expect(r.stdout).toContain(
      `FAIL ${join(tests, "wrong.yaml")}:2: main-evil wrongly expected to deploy (policy api-deploy): expected allow, got deny; reasons: claim_mismatch:ref`,
    );
    expect(r.stdout).toContain("missing: claim_mismatch:ref; unexpected: claim_mismatch:event_name");
    expect(r.stdout).toMatch(/^3 cases: 1 passed, 2 failed$/m);
  });

  it("exits 2 on a malformed test file (file:line:col) or a case naming an unknown policy", async () => {
    const bad = join(dir, "bad-tests");
    await mkdir(bad);
    await writeFile(
      join(bad, "bad.yaml"),
      `cases:
  - name: no decision
    policy: api-deploy
    claims: { ref: refs/heads/main }
    expct: allow
`,
    );
    const r = await runpass(["policy", "test", "--policies", SHIPPED, "--tests", bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `${join(bad, "bad.yaml")}:5:5: error: case "no decision": unknown key "expct"`,
    );
    expect(r.stderr).toContain('"expect" must be allow or deny');
    expect(r.stdout).toBe("");

    const unknown = join(dir, "unknown-tests");
    await mkdir(unknown);
    await writeFile(
      join(unknown, "u.yaml"),
      "cases:\n  - name: x\n    policy: nope\n    expect: deny\n    claims: { ref: main }\n",
    );
    const u = await runpass(["policy", "test", "--policies", SHIPPED, "--tests", unknown]);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain('case "x": no policy "nope"');

    const missing = await runpass(["policy", "test", "--policies", SHIPPED, "--tests", join(dir, "nowhere")]);
    expect(missing.code).toBe(2);
  });

  it("runs token cases verified offline (jwks and at relative to the test file)", async () => {
    const policies = await policyFolder("token-case-policies", { "deploy.yaml": DEPLOY });
    const tests = join(policies, "tests");
    await mkdir(tests);
    const good = await tokenFile(claims(), { into: tests });
    const evil = await tokenFile(claims({ ref: "refs/heads/main-evil" }), { into: tests });
    const forged = await tokenFile(claims(), { into: tests, key: otherKey });
    await writeFile(join(tests, "jwks.json"), await readFile(jwksFile, "utf8"));
    const base = (file: string) => file.slice(tests.length + 1);
    await writeFile(
      join(tests, "tokens.yaml"),
      `cases:
  - { name: real token allowed, policy: deploy, token: ${base(good.path)}, jwks: jwks.json, at: "${AT}", expect: allow }
  - name: real token on main-evil
    policy: deploy
    token: ${base(evil.path)}
    jwks: jwks.json
    at: "${AT}"
    expect: deny
    reasons: [ { code: claim_mismatch, claim: ref } ]
  - name: expired by then
    policy: deploy
    token: ${base(good.path)}
    jwks: jwks.json
    at: "${new Date(NOW + 3600_000).toISOString()}"
    expect: deny
    reasons: [ { code: expired } ]
  - name: forged signature
    policy: deploy
    token: ${base(forged.path)}
    jwks: jwks.json
    at: "${AT}"
    expect: deny
    reasons: [ { code: signature_invalid } ]
`,
    );
    const r = await runpass(["policy", "test", "--policies", policies]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^4 cases: 4 passed, 0 failed$/m);
    expect(r.code).toBe(0);
    expect(r.stdout.includes(good.token)).toBe(false);
    // The tokens and jwks.json inside tests/ are not policies either.
    const check = await runpass(["policy", "check", "--policies", policies]);
    expect(check.code).toBe(0);
  });

  it("the policy loader never reads subfolders: a broken YAML file under tests/ does not break check", async () => {
    const policies = await policyFolder("subfolder-policies", { "deploy.yaml": DEPLOY });
    await mkdir(join(policies, "tests", "nested"), { recursive: true });
    await writeFile(join(policies, "tests", "oops.yaml"), "issuer: [\n");
    await writeFile(join(policies, "tests", "nested", "x.yaml"), "not: a policy\n");
    const check = await runpass(["policy", "check", "--policies", policies]);
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/^ok: 1 policies, 1 issuers/m);
  });
});

describe("runpass policy claims", () => {
  it("prints a claims block without exp/iat/nbf/jti or the signature, ready to paste into a case", async () => {
    const { path, token } = await tokenFile(claims());
    const r = await runpass(["policy", "claims", "--token", path]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const [, , signature] = token.split(".");
    expect(r.stdout.includes(signature as string)).toBe(false);
    expect(r.stdout.includes(token)).toBe(false);
    const parsed = parseYaml(r.stdout) as { claims: Record<string, unknown> };
    expect(Object.keys(parsed.claims).slice(0, 3)).toEqual(["iss", "aud", "sub"]);
    for (const k of ["exp", "iat", "nbf", "jti"]) expect(parsed.claims).not.toHaveProperty(k);
    expect(parsed.claims.repository_id).toBe("519345000"); // quoted: still a string
    expect(r.stdout).toMatch(/repository_id: "519345000"/);

    // Round trip: the printed block is a valid claims case for a policy that trusts the issuer.
    const policies = await policyFolder("claims-roundtrip", { "deploy.yaml": DEPLOY });
    await mkdir(join(policies, "tests"));
    const block = r.stdout
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .map((l) => (l ? `    ${l}` : l))
      .join("\n");
    await writeFile(
      join(policies, "tests", "pasted.yaml"),
      `cases:\n  - name: pasted\n    policy: deploy\n    expect: allow\n${block}\n`,
    );
    const t = await runpass(["policy", "test", "--policies", policies]);
    expect(t.stderr).toBe("");
    expect(t.code).toBe(0);
  });

  it("--format json prints the object; --out writes it to a file", async () => {
    const { path } = await tokenFile(claims({ ref: "refs/tags/v1.0.0" }));
    const json = await runpass(["policy", "claims", "--token", path, "--format", "json"]);
    expect(json.code).toBe(0);
    const obj = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(obj.ref).toBe("refs/tags/v1.0.0");
    expect(obj).not.toHaveProperty("exp");
    const out = join(dir, "claims-out.yaml");
    const written = await runpass(["policy", "claims", "--token", path, "--out", out]);
    expect(written.code).toBe(0);
    expect(written.stdout).toBe("");
    expect(await readFile(out, "utf8")).toContain("ref: refs/tags/v1.0.0");
  });

  it("exits 2 for a file that is not a JWT, without echoing it", async () => {
    const junk = join(dir, "junk.jwt");
    await writeFile(junk, "secret-looking-junk\n");
    const r = await runpass(["policy", "claims", "--token", junk]);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain("secret-looking-junk");
  });
});

interface AllOutput {
  error?: string;
  reasons?: Array<{ code: string }>;
  claims: Record<string, unknown>;
  allowed: string[];
  denied: Array<{ policy: string; reasons: Array<{ code: string; claim?: string; rule?: number }> }>;
}

describe("runpass policy explain --all", () => {
  let policies: string;

  beforeAll(async () => {
    policies = await policyFolder("explain-all", {
      "deploy.yaml": DEPLOY,
      // Another policy for the same repository, allowing any branch.
      "preview.yaml": `issuer: ci
audience: ${AUD}
allow:
  repository_id: "519345000"
  ref: "refs/heads/**"
  event_name: push
grants:
  token: { audience: "https://preview.acme.dev" }
`,
      // Same owner, tag releases only: a candidate that denies a branch push.
      "release.yaml": `issuer: ci
audience: ${AUD}
allow:
  repository_owner_id: "1342004"
  repository_id: "519345000"
  ref: "refs/tags/v*"
  ref_type: tag
grants:
  token: { audience: "https://registry.acme.dev" }
`,
      // Other owners and repositories: never candidates for acme/api tokens.
      "other-owner.yaml": `issuer: ci
audience: ${AUD}
allow:
  repository_owner_id: "7777777"
  ref: refs/heads/main
grants:
  token: { audience: "https://other.example" }
`,
      "other-repo.yaml": `issuer: ci
audience: ${AUD}
allow:
  repository_id: "123"
grants:
  token: { audience: "https://other.example" }
`,
    });
  });

  async function explainAll(file: string, extra: string[] = []): Promise<{ run: Run; out: AllOutput }> {
    const run = await runpass([
      "policy",
      "explain",
      "--all",
      "--policies",
      policies,
      "--token",
      file,
      "--jwks",
      jwksFile,
      "--at",
      AT,
      ...extra,
    ]);
    let out: AllOutput;
    try {
      out = JSON.parse(run.stdout) as AllOutput;
    } catch {
      throw new Error(`stdout is not JSON (exit ${run.code}); stderr: ${run.stderr.slice(0, 500)}`);
    }
    return { run, out };
  }

  it("lists exactly the policies that allow the token, and the other candidates with reasons", async () => {
    const { path, token } = await tokenFile(claims());
    const { run, out } = await explainAll(path);
    expect(run.code).toBe(0);
    expect(out.allowed).toEqual(["deploy", "preview"]);
    expect(out.denied).toEqual([
      {
        policy: "release",
        reasons: [
          { code: "claim_mismatch", claim: "ref", expected: ["refs/tags/v*"] },
          { code: "claim_mismatch", claim: "ref_type", expected: ["tag"] },
        ],
      },
    ]);
    expect(out.claims).toMatchObject({ repository_id: "519345000", iss: ISS });
    // Policies pinning other owners/repositories are not candidates, so they are not evaluated at all.
    expect(JSON.stringify(out)).not.toContain("other-owner");
    expect(JSON.stringify(out)).not.toContain("other-repo");
    expect(run.stdout.includes(token)).toBe(false);
  });

  it("a token denied by every candidate exits 1 with every failing condition of each", async () => {
    const { path } = await tokenFile(
      claims({
        event_name: "pull_request_target",
        runner_environment: "self-hosted",
        ref: "refs/pull/1/merge",
      }),
    );
    const { run, out } = await explainAll(path);
    expect(run.code).toBe(1);
    expect(out.allowed).toEqual([]);
    const byPolicy = Object.fromEntries(
      out.denied.map((d) => [d.policy, d.reasons.map((r) => `${r.code}:${r.claim ?? r.rule}`)]),
    );
    expect(byPolicy).toEqual({
      deploy: ["claim_mismatch:ref", "claim_mismatch:event_name", "denied_by:0"],
      preview: ["claim_mismatch:ref", "claim_mismatch:event_name"],
      release: ["claim_mismatch:ref", "claim_mismatch:ref_type"],
    });
  });

  it("a token from an owner no policy pins has no candidates: nothing allowed, nothing evaluated", async () => {
    const { path } = await tokenFile(claims({ repository_owner_id: "555", repository_id: "556" }));
    const { run, out } = await explainAll(path);
    expect(run.code).toBe(1);
    expect(out).toMatchObject({ allowed: [], denied: [] });
  });

  it("a token that does not verify is reported once, with no policy evaluated", async () => {
    const { path } = await tokenFile(claims(), { key: otherKey });
    const { run, out } = await explainAll(path);
    expect(run.code).toBe(1);
    expect(out.error).toBe("invalid_token");
    expect(out.reasons).toEqual([{ code: "signature_invalid" }]);
    expect(out).toMatchObject({ claims: {}, allowed: [], denied: [] });
  });

  it("--all with --policy, or without --token, is a usage error", async () => {
    const { path } = await tokenFile(claims());
    const both = await runpass(["policy", "explain", "--all", "--policy", "deploy", "--token", path]);
    expect(both.code).toBe(2);
    const none = await runpass(["policy", "explain", "--all", "--policies", policies]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("--token");
  });
});

describe("runpass policy diff", () => {
  let repo: string;
  const gitIn = (cwd: string, ...args: string[]) =>
    execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.test", ...args], {
      cwd,
      encoding: "utf8",
      env: { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" },
    });

  beforeAll(async () => {
    repo = join(dir, "diff-repo");
    const p = join(repo, "policies");
    await mkdir(join(p, "tests"), { recursive: true });
    await writeFile(
      join(p, "api-deploy.yaml"),
      `issuer: github
allow:
  repository_owner_id: "1342004"
  repository_id: "519345000"
  ref: refs/heads/main
  event_name: push
deny:
  - runner_environment: self-hosted
ttl: 1h
grants:
  token: { audience: "https://deploy.acme.dev", ttl: 10m }
  github: { owner: acme, repositories: [api], permissions: { contents: read } }
`,
    );
    await writeFile(
      join(p, "old-job.yaml"),
      `issuer: github
allow:
  repository_id: "1"
grants:
  token: { audience: "https://x.example" }
`,
    );
    await writeFile(
      join(p, "stable.yaml"),
      `issuer: gitlab
allow:
  project_id: "20"
grants:
  secrets: { DB_URL: infra/db }
`,
    );
    await writeFile(join(p, "tests", "t.yaml"), "cases: []\n");
    gitIn(repo, "init", "-q", "-b", "main");
    gitIn(repo, "add", "-A");
    gitIn(repo, "commit", "-q", "-m", "policies");
    // The working-tree change under review.
    await writeFile(
      join(p, "api-deploy.yaml"),
      `issuer: github
allow:
  repository_owner_id: "1342004"
  repository_id: "519345000"
  ref: refs/heads/main
  event_name: [push, workflow_dispatch]
  environment: production
ttl: 2h
grants:
  token: { audience: "https://deploy.acme.dev", ttl: 10m }
  github: { owner: acme, repositories: [api, web], permissions: { contents: write, deployments: write } }
`,
    );
    await rm(join(p, "old-job.yaml"));
    await writeFile(
      join(p, "new-job.yaml"),
      `issuer: github
allow:
  repository_owner_id: "1342004"
  ref: "refs/tags/v*"
grants:
  token: { audience: "https://registry.acme.dev" }
`,
    );
  });

  it("summarises added, removed and changed policies in plain sentences", async () => {
    const r = await runpass(["policy", "diff", "--from", "HEAD", "--policies", join(repo, "policies")], {
      cwd: repo,
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n").map((l) => l.trim());
    expect(lines[0]).toBe("policy changes from HEAD to the working tree (policies)");
    expect(lines).toContain(
      "+ new-job: issuer github; allows repository_owner_id 1342004, ref refs/tags/v*; ttl 1h; grants token (audience https://registry.acme.dev, ttl 15m)",
    );
    expect(lines).toContain("- old-job");
    for (const line of [
      "api-deploy: now also allows event_name workflow_dispatch (wider)",
      "api-deploy: now also requires environment production (narrower)",
      "api-deploy: no longer denies runner_environment self-hosted (wider)",
      "api-deploy: ttl 1h → 2h (wider)",
      "api-deploy: github grant gains repositories web (wider)",
      "api-deploy: github grant contents: read → write (wider)",
      "api-deploy: github grant gains deployments: write (wider)",
    ]) {
      expect(lines).toContain(line);
    }
    expect(r.stdout).not.toContain("stable:");
    expect(r.stdout).not.toContain("tests");
    expect(lines).toContain("summary: 1 added, 1 removed, 1 changed, 1 unchanged");
    expect(lines).toContain("widens access: new-job (new), api-deploy");
  });

  it("--format json gives the same facts as data; narrowing-only changes say nothing widens", async () => {
    const r = await runpass([
      "policy",
      "diff",
      "--from",
      "HEAD",
      "--policies",
      join(repo, "policies"),
      "--format",
      "json",
    ]);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout) as {
      added: Array<{ policy: string }>;
      removed: string[];
      changed: Array<{ policy: string; changes: Array<{ area: string; effect: string; text: string }> }>;
      unchanged: string[];
    };
    expect(d.added.map((a) => a.policy)).toEqual(["new-job"]);
    expect(d.removed).toEqual(["old-job"]);
    expect(d.unchanged).toEqual(["stable"]);
    expect(d.changed[0]?.changes).toContainEqual({
      area: "grant",
      effect: "wider",
      text: "github grant gains deployments: write",
    });

    // A second repository state: only a narrowing change to one policy.
    const narrow = join(dir, "diff-narrow");
    await mkdir(join(narrow, "policies"), { recursive: true });
    const policy = (events: string) =>
      `issuer: github\nallow:\n  repository_id: "9"\n  event_name: [${events}]\ngrants:\n  token: { audience: "https://x.example", ttl: 10m }\n`;
    await writeFile(join(narrow, "policies", "p.yaml"), policy("push, workflow_dispatch"));
    gitIn(narrow, "init", "-q", "-b", "main");
    gitIn(narrow, "add", "-A");
    gitIn(narrow, "commit", "-q", "-m", "p");
    await writeFile(join(narrow, "policies", "p.yaml"), policy("push"));
    const n2 = await runpass(["policy", "diff", "--from", "HEAD", "--policies", join(narrow, "policies")]);
    expect(n2.code).toBe(0);
    expect(n2.stdout).toContain("p: no longer allows event_name workflow_dispatch (narrower)");
    expect(n2.stdout).toContain("widens access: nothing");
  });

  it("exits 2 for a ref that is not a commit, or a folder outside git", async () => {
    const bad = await runpass([
      "policy",
      "diff",
      "--from",
      "no-such-ref",
      "--policies",
      join(repo, "policies"),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--from "no-such-ref" is not a commit');
    const outside = await mkdtemp(join(tmpdir(), "runpass-nogit-"));
    try {
      const r = await runpass(["policy", "diff", "--from", "HEAD", "--policies", outside]);
      expect(r.code).toBe(2);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });
});
