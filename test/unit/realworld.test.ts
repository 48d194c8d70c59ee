// Real CI tokens gathered from public sources (/work/shared/realworld, read in place): offline explain verifies
// them against JWKS snapshots at their own iat, and policies pinning their owner/repository IDs decide them.

import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OfflineExplainResult, offlineExplain } from "../../src/cli/explain.ts";
import { identityOf } from "../../src/core/oidc/claims.ts";
import { PRESET_ISSUERS } from "../../src/core/oidc/issuers.ts";
import { loadPolicySet } from "../../src/core/policy/load.ts";
import type { PolicyBundle } from "../../src/core/policy/types.ts";

const REAL = "/work/shared/realworld";
const HAVE_REAL = existsSync(join(REAL, "manifest.json"));

interface ManifestEntry {
  token: string;
  kid: string;
  iss: string | null;
  aud: string | null;
  iat: number;
  exp: number;
  primary_jwks: string;
  signature_verified_with: Record<string, boolean>;
}

const manifest: { tokens: ManifestEntry[] } = HAVE_REAL
  ? (JSON.parse(readFileSync(join(REAL, "manifest.json"), "utf8")) as { tokens: ManifestEntry[] })
  : { tokens: [] };

const read = (path: string) => readFileSync(join(REAL, path), "utf8");
const tokenOf = (e: ManifestEntry) => read(e.token).trim();
const payloadOf = (e: ManifestEntry) =>
  (JSON.parse(read(e.token.replace(/\.jwt$/, ".decoded.json"))) as { payload: Record<string, unknown> })
    .payload;
const jwksOf = (path: string) => {
  const doc = JSON.parse(read(path)) as { keys?: JWK[] } & JWK;
  return Array.isArray(doc.keys) ? { keys: doc.keys } : { keys: [doc as JWK] };
};
const label = (e: ManifestEntry) =>
  e.token
    .split("/")
    .pop()
    ?.replace(/\.jwt$/, "") ?? e.token;

const githubTokens = manifest.tokens.filter(
  (e) => e.token.startsWith("github-oidc/tokens/") && !e.token.includes("/negative/"),
);
const withIds = githubTokens.filter((e) => typeof payloadOf(e).repository_owner_id === "string");
const withoutIds = githubTokens.filter((e) => typeof payloadOf(e).repository_owner_id !== "string");

/** A bundle with one policy `p` for `issuer`, its audience set to the token's, allowing `allow` (YAML lines). */
async function bundleFor(issuer: "github" | "gitlab", audience: string, allow: Record<string, string>) {
  const lines = Object.entries(allow).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`);
  const text = `issuer: ${issuer}\naudience: ${JSON.stringify(audience)}\nallow:\n${lines.join("\n")}\ngrants:\n  token: { audience: "https://deploy.example.test" }\n`;
  const result = await loadPolicySet({ policies: [{ path: "p.yaml", text }] }, { dev: false });
  expect(result.problems).toEqual([]);
  return result.bundle as PolicyBundle;
}

async function explainAt(
  bundle: PolicyBundle,
  e: ManifestEntry,
  jwksPath: string,
  atUnix: number,
): Promise<OfflineExplainResult> {
  return offlineExplain({
    bundle,
    policy: "p",
    token: tokenOf(e),
    jwks: jwksOf(jwksPath),
    clock: () => atUnix * 1000,
    fetch: () => Promise.reject(new Error("offline tests never fetch")),
  });
}

describe.skipIf(!HAVE_REAL)("real GitHub Actions ID tokens", () => {
  it("the fixtures cover both token shapes (with and without owner/repository IDs) and several kids", () => {
    expect(withIds.length).toBeGreaterThanOrEqual(8);
    expect(withoutIds.length).toBeGreaterThanOrEqual(1);
    expect(new Set(githubTokens.map((e) => e.kid)).size).toBeGreaterThanOrEqual(4);
  });

  for (const e of withIds) {
    describe(label(e), () => {
      const claims = payloadOf(e);
      const pins = {
        repository_owner_id: claims.repository_owner_id as string,
        repository_id: claims.repository_id as string,
      };

      it("is allowed at its iat by a policy pinning its owner and repository IDs", async () => {
        const bundle = await bundleFor("github", e.aud as string, pins);
        const out = await explainAt(bundle, e, e.primary_jwks, e.iat);
        expect(out.error).toBeUndefined();
        expect(out.reasons).toEqual([]);
        expect(out.decision).toBe("allow");
        expect(out.claims.sub).toBe(claims.sub);
        expect(out.claims.repository_owner_id).toBe(pins.repository_owner_id);
      });

      it("parses into an identity with a numeric run key", async () => {
        const bundle = await bundleFor("github", e.aud as string, pins);
        const out = await explainAt(bundle, e, e.primary_jwks, e.iat);
        const identity = identityOf(PRESET_ISSUERS.github, out.claims);
        expect(identity).toMatchObject({
          kind: "github",
          ownerId: pins.repository_owner_id,
          repositoryId: pins.repository_id,
          ownerName: claims.repository_owner,
          ref: claims.ref,
        });
        expect(identity.runKey).toBe(
          `github:github:${pins.repository_id}:${claims.run_id}:${claims.run_attempt}`,
        );
      });

      it("is denied, with a verified signature, by a policy pinning a different owner id", async () => {
        const bundle = await bundleFor("github", e.aud as string, { repository_owner_id: "1342004" });
        const out = await explainAt(bundle, e, e.primary_jwks, e.iat);
        expect(out.decision).toBe("deny");
        expect(out.error).toBe("access_denied");
        expect(out.reasons).toEqual([
          { code: "claim_mismatch", claim: "repository_owner_id", expected: ["1342004"] },
        ]);
        expect(out.claims.repository).toBe(claims.repository);
      });

      it("is denied by a policy pinning its owner name's id on another repository", async () => {
        const bundle = await bundleFor("github", e.aud as string, {
          repository_owner_id: pins.repository_owner_id,
          repository_id: "1",
        });
        const out = await explainAt(bundle, e, e.primary_jwks, e.iat);
        expect(out.decision).toBe("deny");
        expect(out.reasons.map((r) => `${r.code}:${r.claim}`)).toEqual(["claim_mismatch:repository_id"]);
      });

      it("verifies against every independent JWKS snapshot that carries its key", async () => {
        const bundle = await bundleFor("github", e.aud as string, pins);
        const snapshots = Object.entries(e.signature_verified_with).filter(([, ok]) => ok);
        expect(snapshots.length).toBeGreaterThan(0);
        for (const [jwks] of snapshots) {
          const out = await explainAt(bundle, e, jwks, e.iat);
          expect(out.decision, jwks).toBe("allow");
        }
      });

      it("is refused once expired (past exp plus 60 s skew)", async () => {
        const bundle = await bundleFor("github", e.aud as string, pins);
        const out = await explainAt(bundle, e, e.primary_jwks, e.exp + 61);
        expect(out.error).toBe("invalid_token");
        expect(out.reasons).toEqual([{ code: "expired" }]);
      });

      it("is refused when the policy expects another audience, which runpass does not accept", async () => {
        const bundle = await bundleFor("github", "https://runpass.example.test", pins);
        const out = await explainAt(bundle, e, e.primary_jwks, e.iat);
        expect(out.error).toBe("invalid_token");
        expect(out.reasons).toEqual([{ code: "audience_invalid" }]);
      });
    });
  }

  for (const e of withoutIds) {
    describe(`${label(e)} (no owner/repository IDs)`, () => {
      it("verifies, but an ID-pinned policy denies it: the absent claims never match", async () => {
        const claims = payloadOf(e);
        const bundle = await bundleFor("github", e.aud as string, {
          repository_owner_id: "1",
          repository_id: "2",
        });
        const out = await explainAt(bundle, e, e.primary_jwks, e.iat);
        expect(out.decision).toBe("deny");
        expect(out.error).toBe("access_denied");
        expect(out.reasons).toEqual([
          { code: "claim_absent", claim: "repository_owner_id", expected: ["1"] },
          { code: "claim_absent", claim: "repository_id", expected: ["2"] },
        ]);
        expect(out.claims.repository).toBe(claims.repository);
        expect(identityOf(PRESET_ISSUERS.github, out.claims).runKey).toBeUndefined();
      });
    });
  }

  it("a 6 h token is not capped by its lifetime, only by the 10 min token age", async () => {
    const long = withIds.find((e) => e.exp - e.iat >= 6 * 3600);
    expect(long).toBeDefined();
    const e = long as ManifestEntry;
    const claims = payloadOf(e);
    const bundle = await bundleFor("github", e.aud as string, {
      repository_owner_id: claims.repository_owner_id as string,
    });
    expect((await explainAt(bundle, e, e.primary_jwks, e.iat + 5 * 60)).decision).toBe("allow");
    const old = await explainAt(bundle, e, e.primary_jwks, e.iat + 11 * 60 + 1);
    expect(old.error).toBe("invalid_token");
    expect(old.reasons).toEqual([{ code: "token_too_old" }]);
  });

  it("a JWKS snapshot without the token's kid gives unknown_key", async () => {
    const e = withoutIds[0] ?? (withIds[0] as ManifestEntry);
    const newer = "github-oidc/jwks/github_jwks_2025-09plus_forgejo-test.json";
    expect(jwksOf(newer).keys.some((k) => k.kid === e.kid)).toBe(false);
    const bundle = await bundleFor("github", e.aud as string, { repository_owner_id: "1" });
    const out = await explainAt(bundle, e, newer, e.iat);
    expect(out.error).toBe("invalid_token");
    expect(out.reasons).toEqual([{ code: "unknown_key" }]);
  });

  it("an Actions runtime token (same issuer and key, no sub) is invalid_token", async () => {
    const e = manifest.tokens.find((t) => t.token.includes("RUNTIME-token")) as ManifestEntry;
    expect(e).toBeDefined();
    const bundle = await bundleFor("github", e.aud as string, { repository_owner_id: "4860914" });
    const out = await explainAt(bundle, e, e.primary_jwks, e.iat);
    expect(out.decision).toBe("deny");
    expect(out.error).toBe("invalid_token");
    expect(out.reasons).toEqual([{ code: "claim_missing", claim: "sub" }]);
  });
});

describe.skipIf(!HAVE_REAL)("real GitLab tokens", () => {
  const find = (part: string) => manifest.tokens.find((t) => t.token.includes(part)) as ManifestEntry;

  it("a legacy CI_JOB_JWT v1 (iss without scheme, no aud) is refused as from an untrusted issuer", async () => {
    const e = find("CI_JOB_JWT_v1");
    const bundle = await bundleFor("gitlab", "https://runpass.example.test", { project_id: "28009271" });
    const out = await explainAt(bundle, e, e.primary_jwks, e.iat);
    expect(out.error).toBe("invalid_token");
    expect(out.reasons).toEqual([{ code: "issuer_untrusted" }]);
  });

  it("user-login ID tokens from gitlab.com (no jti) are not accepted as CI tokens", async () => {
    const logins = manifest.tokens.filter((t) => t.token.includes("NOT-CI"));
    expect(logins.length).toBeGreaterThan(0);
    for (const e of logins) {
      const bundle = await bundleFor("gitlab", e.aud as string, { project_id: "1" });
      const out = await explainAt(bundle, e, e.primary_jwks, e.iat);
      expect(out.error, label(e)).toBe("invalid_token");
      expect(out.reasons, label(e)).toEqual([{ code: "claim_missing", claim: "jti" }]);
    }
  });

  it("a modern-shaped token with a real kid but a forged signature is signature_invalid", async () => {
    const e = find("FORGED-signature");
    const bundle = await bundleFor("gitlab", e.aud as string, { project_id: "55235664" });
    const out = await explainAt(bundle, e, e.primary_jwks, e.iat);
    expect(out.decision).toBe("deny");
    expect(out.error).toBe("invalid_token");
    expect(out.reasons).toEqual([{ code: "signature_invalid" }]);
    expect(out.claims).toEqual({});
  });
});

describe.skipIf(!HAVE_REAL)("the CLI on a real token", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "runpass-real-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function run(args: string[]): Promise<{ code: number | null; stdout: string }> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env))
      if (v !== undefined && !k.startsWith("RUNPASS_")) env[k] = v;
    return new Promise((done, fail) => {
      const child = spawn(
        process.execPath,
        [resolve(import.meta.dirname, "../../bin/runpass.mjs"), ...args],
        {
          env: { ...env, NODE_NO_WARNINGS: "1" },
          stdio: ["ignore", "pipe", "ignore"],
        },
      );
      let stdout = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        stdout += d;
      });
      child.on("error", fail);
      child.on("close", (code) => done({ code, stdout }));
    });
  }

  it("policy explain --at <iat> allows the newest real token for its own IDs and denies another owner", async () => {
    const e = [...withIds].sort((a, b) => b.iat - a.iat)[0] as ManifestEntry;
    const claims = payloadOf(e);
    const policy = (owner: string) =>
      `issuer: github\naudience: ${JSON.stringify(e.aud)}\nallow:\n  repository_owner_id: "${owner}"\n  repository_id: "${String(claims.repository_id)}"\ngrants:\n  token: { audience: "https://deploy.example.test" }\n`;
    await writeFile(join(dir, "mine.yaml"), policy(String(claims.repository_owner_id)));
    await writeFile(join(dir, "other.yaml"), policy("1342004"));
    const args = (name: string) => [
      "policy",
      "explain",
      "--policies",
      dir,
      "--policy",
      name,
      "--token",
      join(REAL, e.token),
      "--jwks",
      join(REAL, e.primary_jwks),
      "--at",
      new Date(e.iat * 1000).toISOString(),
    ];
    const mine = await run(args("mine"));
    expect(mine.code).toBe(0);
    expect(JSON.parse(mine.stdout)).toMatchObject({
      decision: "allow",
      reasons: [],
      claims: { sub: claims.sub },
    });
    expect(mine.stdout.includes(tokenOf(e))).toBe(false);
    const other = await run(args("other"));
    expect(other.code).toBe(1);
    expect(JSON.parse(other.stdout)).toMatchObject({
      decision: "deny",
      error: "access_denied",
      reasons: [{ code: "claim_mismatch", claim: "repository_owner_id" }],
    });
  });
});
