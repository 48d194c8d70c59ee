// The runpass CLI as a child process: `policy check` exit codes and file:line output, offline `policy explain`.

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { githubClaims } from "../support/claims.ts";
import { deployPolicy } from "../support/policies.ts";
import { ROOT, type Run, runpass } from "../support/run-cli.ts";

const ISS = "https://ci.runpass.test";
const AUD = "https://runpass.test";
/** A fixed minting time; --at is set relative to it. */
const NOW = Date.parse("2026-01-15T12:00:00Z");
const at = (offsetSeconds: number) => new Date(NOW + offsetSeconds * 1000).toISOString();

interface ExplainOutput {
  decision: "allow" | "deny";
  error?: string;
  reasons: Array<{ code: string; claim?: string; expected?: unknown[]; rule?: number }>;
  claims: Record<string, unknown>;
}

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "runpass-cli-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("runpass policy check", () => {
  it("exits 0 on the shipped policies folder", async () => {
    const r = await runpass(["policy", "check", "--policies", join(ROOT, "policies")]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ok: \d+ policies, \d+ issuers \(sha256:[0-9a-f]{64}\)$/m);
    expect(r.stdout).toMatch(/^note: .*dev-demo\.yaml/m);
  });

  it("exits 1 on a folder with broken policies and prints file:line:col for each problem", async () => {
    const broken = join(dir, "broken");
    await mkdir(broken);
    await writeFile(
      join(broken, "typo.yaml"),
      `issuer: github
allow:
  repository_owner_id: "1342004"
alow: {}
grants:
  token: { audience: "https://deploy.acme.dev" }
`,
    );
    await writeFile(
      join(broken, "unpinned.yaml"),
      `issuer: github
allow:
  repository_owner: acme
grants:
  token: { audience: "https://deploy.acme.dev" }
`,
    );
    await writeFile(join(broken, "bad-yaml.yaml"), 'issuer: github\nallow: [\n  "x"\n');
    await writeFile(join(broken, "fine.yml"), "issuer: github\n");
    const r = await runpass(["policy", "check", "--policies", broken]);
    expect(r.code).toBe(1);
    const lines = r.stdout.split("\n");
    expect(lines).toContain(
      `${join(broken, "typo.yaml")}:4:1: error: unknown key "alow" (did you mean "allow"?)`,
    );
    expect(lines.some((l) => l.startsWith(`${join(broken, "unpinned.yaml")}:3:3: error RP001: `))).toBe(true);
    expect(lines.some((l) => /^.*bad-yaml\.yaml:\d+:\d+: error: YAML: /.test(l))).toBe(true);
    expect(lines).toContain(`${join(broken, "fine.yml")}: warning: ignored (policy files end in .yaml)`);
    expect(r.stdout).toMatch(/^\d+ errors in /m);
  });

  it("refuses an http issuer in a production check and names issuers.yaml:line", async () => {
    const http = join(dir, "http");
    await mkdir(http);
    await writeFile(join(http, "issuers.yaml"), 'local:\n  url: "http://127.0.0.1:9999"\n  kind: github\n');
    await writeFile(
      join(http, "p.yaml"),
      'issuer: local\nallow:\n  repository_id: "1"\ngrants:\n  token: { audience: "https://x.test" }\n',
    );
    const r = await runpass(["policy", "check", "--policies", http]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${join(http, "issuers.yaml")}:2:8: error: `);
  });

  it("exits 2 on an unknown option", async () => {
    const r = await runpass(["policy", "check", "--nope"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("usage:");
  });
});

describe("runpass policy explain", () => {
  let policies: string;
  let jwksFile: string;
  let privateKey: CryptoKey;
  let otherKey: CryptoKey;
  const KID = "cli-test-k1";

  beforeAll(async () => {
    const pair = await generateKeyPair("RS256", { extractable: true });
    privateKey = pair.privateKey;
    otherKey = (await generateKeyPair("RS256")).privateKey;
    const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: "RS256", use: "sig" };
    jwksFile = join(dir, "jwks.json");
    await writeFile(jwksFile, JSON.stringify({ keys: [publicJwk] }));

    policies = join(dir, "explain-policies");
    await mkdir(policies);
    await writeFile(join(policies, "issuers.yaml"), `ci: { url: "${ISS}", kind: github }\n`);
    await writeFile(join(policies, "deploy.yaml"), deployPolicy(AUD));
    await writeFile(
      join(policies, "default-aud.yaml"),
      `issuer: ci
allow:
  repository_owner_id: "1342004"
grants:
  token: { audience: "https://deploy.acme.dev" }
`,
    );
  });

  let n = 0;
  /** Signs claims and writes the token to a file; returns the path and the token (for leak checks only). */
  async function tokenFile(
    claims: JWTPayload,
    options: { key?: CryptoKey; kid?: string } = {},
  ): Promise<{ path: string; token: string }> {
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", kid: options.kid ?? KID, typ: "JWT" })
      .sign(options.key ?? privateKey);
    const path = join(dir, `token-${++n}.jwt`);
    await writeFile(path, `${token}\n`);
    return { path, token };
  }

  async function explain(
    file: string,
    extra: string[] = [],
    policy = "deploy",
  ): Promise<{ run: Run; out: ExplainOutput }> {
    const run = await runpass([
      "policy",
      "explain",
      "--policies",
      policies,
      "--policy",
      policy,
      "--token",
      file,
      "--jwks",
      jwksFile,
      "--at",
      at(1),
      ...extra,
    ]);
    let out: ExplainOutput;
    try {
      out = JSON.parse(run.stdout) as ExplainOutput;
    } catch {
      throw new Error(
        `stdout is not one JSON object (exit ${run.code}); stderr: ${run.stderr.slice(0, 500)}`,
      );
    }
    return { run, out };
  }

  const claims = (overrides: Record<string, unknown> = {}) => githubClaims(ISS, AUD, overrides, NOW);

  it("prints an allow decision with the verified claims and exits 0", async () => {
    const { path, token } = await tokenFile(claims());
    const { run, out } = await explain(path);
    expect(run.code).toBe(0);
    expect(out.decision).toBe("allow");
    expect(out.error).toBeUndefined();
    expect(out.reasons).toEqual([]);
    expect(out.claims).toMatchObject({ repository: "acme/api", repository_owner_id: "1342004", iss: ISS });
    expect(run.stdout.includes(token)).toBe(false);
    expect(run.stderr.includes(token)).toBe(false);
  });

  it("prints a deny with reasons and exits 1 when a claim does not match", async () => {
    const { path } = await tokenFile(claims({ ref: "refs/heads/main-evil" }));
    const { run, out } = await explain(path);
    expect(run.code).toBe(1);
    expect(out.decision).toBe("deny");
    expect(out.error).toBe("access_denied");
    expect(out.reasons).toEqual([{ code: "claim_mismatch", claim: "ref", expected: ["refs/heads/main"] }]);
    expect(out.claims.ref).toBe("refs/heads/main-evil");
  });

  it("denies pull_request_target on main and a self-hosted runner with their reasons", async () => {
    const prt = await explain((await tokenFile(claims({ event_name: "pull_request_target" }))).path);
    expect(prt.run.code).toBe(1);
    expect(prt.out.reasons.map((r) => `${r.code}:${r.claim}`)).toEqual(["claim_mismatch:event_name"]);
    const sh = await explain((await tokenFile(claims({ runner_environment: "self-hosted" }))).path);
    expect(sh.run.code).toBe(1);
    expect(sh.out.reasons).toEqual([{ code: "denied_by", rule: 0, claims: ["runner_environment"] }]);
  });

  it("denies a numeric repository_id as a type mismatch", async () => {
    const { run, out } = await explain((await tokenFile(claims({ repository_id: 519345000 }))).path);
    expect(run.code).toBe(1);
    expect(out.reasons).toEqual([{ code: "type_mismatch", claim: "repository_id", expected: ["519345000"] }]);
  });

  it("an expired token is invalid_token and exits 1", async () => {
    const { path } = await tokenFile(claims());
    const { run, out } = await explain(path, ["--at", at(300 + 61)]);
    expect(run.code).toBe(1);
    expect(out.decision).toBe("deny");
    expect(out.error).toBe("invalid_token");
    expect(out.reasons).toEqual([{ code: "expired" }]);
    expect(out.claims).toEqual({});
  });

  it("a token within the 60 s skew after exp is still accepted", async () => {
    const { path } = await tokenFile(claims());
    const { run, out } = await explain(path, ["--at", at(300 + 30)]);
    expect(run.code).toBe(0);
    expect(out.decision).toBe("allow");
  });

  it("a token signed by the wrong key under the right kid is invalid_token", async () => {
    const { path } = await tokenFile(claims(), { key: otherKey });
    const { run, out } = await explain(path);
    expect(run.code).toBe(1);
    expect(out.error).toBe("invalid_token");
    expect(out.reasons).toEqual([{ code: "signature_invalid" }]);
    expect(out.claims).toEqual({});
  });

  it("a token signed with a key the JWKS does not have is invalid_token", async () => {
    const { path } = await tokenFile(claims(), { key: otherKey, kid: "someone-else" });
    const { run, out } = await explain(path);
    expect(run.code).toBe(1);
    expect(out.error).toBe("invalid_token");
    expect(out.reasons).toEqual([{ code: "unknown_key" }]);
  });

  it("a token from an issuer no policy trusts is invalid_token", async () => {
    const { path } = await tokenFile(
      githubClaims("https://token.actions.githubusercontent.com", AUD, {}, NOW),
    );
    const { run, out } = await explain(path);
    expect(run.code).toBe(1);
    expect(out.error).toBe("invalid_token");
    expect(out.reasons).toEqual([{ code: "issuer_untrusted" }]);
  });

  it("a token that is not yet valid at --at is invalid_token", async () => {
    const { path } = await tokenFile(claims());
    const { out } = await explain(path, ["--at", at(-120)]);
    expect(out.error).toBe("invalid_token");
    expect(out.reasons[0]?.code).toBe("not_yet_valid");
  });

  it("an unknown policy name is access_denied with policy_unknown", async () => {
    const { path } = await tokenFile(claims());
    const { run, out } = await explain(path, [], "no-such-policy");
    expect(run.code).toBe(1);
    expect(out.error).toBe("access_denied");
    expect(out.reasons).toEqual([{ code: "policy_unknown" }]);
  });

  it("a policy without audience uses --audience as RUNPASS_AUDIENCE would", async () => {
    const { path } = await tokenFile(claims({ aud: "https://broker.example" }));
    const without = await explain(path, [], "default-aud");
    expect(without.run.code).toBe(1);
    expect(without.out.error).toBe("invalid_token");
    const withAud = await explain(path, ["--audience", "https://broker.example"], "default-aud");
    expect(withAud.run.code).toBe(0);
    expect(withAud.out.decision).toBe("allow");
  });

  it("exits 2 with usage when --token is missing or --at is not a time", async () => {
    const missing = await runpass(["policy", "explain", "--policies", policies, "--policy", "deploy"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--token");
    const { path } = await tokenFile(claims());
    const badAt = await runpass([
      "policy",
      "explain",
      "--policies",
      policies,
      "--policy",
      "deploy",
      "--token",
      path,
      "--at",
      "yesterday",
    ]);
    expect(badAt.code).toBe(2);
    expect(badAt.stdout).toBe("");
  });

  it("exits 2 when the policies folder does not load, naming the problems", async () => {
    const broken = join(dir, "explain-broken");
    await mkdir(broken);
    await writeFile(join(broken, "x.yaml"), "issuer: github\nallow: {}\n");
    const { path } = await tokenFile(claims());
    const r = await runpass(["policy", "explain", "--policies", broken, "--policy", "x", "--token", path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${join(broken, "x.yaml")}:`);
    expect(r.stdout).toBe("");
  });
});
