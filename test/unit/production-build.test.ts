// docs/security.md, No dev shortcuts in production: the production build (`wrangler deploy --dry-run`, as CI would deploy) carries no dev
// issuer or dev-only policy, and refuses a policy folder with a plain-http issuer. Runs wrangler for real
// in a scratch copy of the project so the working tree's generated bundle is never touched.

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");
let scratch = "";

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "runpass-prod-"));
  for (const item of ["src", "scripts", "policies", "wrangler.toml", "package.json", "tsconfig.json"]) {
    await cp(join(ROOT, item), join(scratch, item), { recursive: true });
  }
  await symlink(join(ROOT, "node_modules"), join(scratch, "node_modules"));
});

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** Runs `wrangler deploy --dry-run` in the scratch project with a production environment. */
async function dryRun(policiesDir: string, outdir: string, extraEnv: Record<string, string> = {}) {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RUNPASS_POLICIES_DIR: policiesDir,
    WRANGLER_SEND_METRICS: "false",
  };
  delete env.RUNPASS_DEV;
  Object.assign(env, extraEnv);
  try {
    const { stdout, stderr } = await run(
      join(scratch, "node_modules/.bin/wrangler"),
      ["deploy", "--dry-run", "--outdir", outdir],
      { cwd: scratch, env, maxBuffer: 16 * 1024 * 1024 },
    );
    return { code: 0, output: `${stdout}\n${stderr}` };
  } catch (e) {
    const failure = e as { code?: number; stdout?: string; stderr?: string };
    return { code: failure.code ?? 1, output: `${failure.stdout ?? ""}\n${failure.stderr ?? ""}` };
  }
}

describe("production build", () => {
  it("the shipped policies build for production without the dev issuer or the dev-only policy", async () => {
    const out = join(scratch, "out-prod");
    const result = await dryRun(join(scratch, "policies"), out);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain("production build");
    const bundle = await readFile(join(out, "index.js"), "utf8");
    const generated = await readFile(join(scratch, "generated/policy-bundle.ts"), "utf8");
    expect(generated).toContain('"dev": false');
    expect(generated).not.toContain("dev-demo");
    expect(generated).not.toContain("http://");
    expect(generated).toContain("api-deploy");
    expect(bundle).not.toContain("dev-demo");
    // docs/benchmarks.md, Targets: the deployed bundle stays under 1 MiB gzip.
    expect(gzipSync(bundle).length).toBeLessThan(1024 * 1024);
  }, 120_000);

  it("RUNPASS_DEV=1 wrangler deploy is refused by the build: a development bundle is never deployed", async () => {
    const out = join(scratch, "out-dev");
    // Even with the marker `npm start` sets for its own build: wrangler says this build is for a deploy.
    const result = await dryRun(join(scratch, "policies"), out, {
      RUNPASS_DEV: "1",
      RUNPASS_DEV_SERVER: "1",
    });
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(
      /RUNPASS_DEV=1 builds a development bundle .* refused for `wrangler deploy`/,
    );
    expect(existsSync(join(out, "index.js"))).toBe(false);
  }, 120_000);

  it("a policy folder with a plain-http issuer fails the production build with a named error", async () => {
    const dir = join(scratch, "policies-http");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "issuers.yaml"), 'corp: { url: "http://127.0.0.1:9000/oidc", kind: github }\n');
    await writeFile(
      join(dir, "deploy.yaml"),
      'issuer: corp\nallow:\n  repository_owner_id: "1"\n  event_name: push\ngrants:\n  token: { audience: x }\n',
    );
    const result = await dryRun(dir, join(scratch, "out-http"));
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/issuers\.yaml:1/);
    expect(result.output).toMatch(/https/);
    expect(existsSync(join(scratch, "out-http", "index.js"))).toBe(false);
  }, 120_000);
});
