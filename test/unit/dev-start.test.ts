// The README walk-through, for real: `npm start`'s launcher runs wrangler dev in a scratch copy of the
// project; the CLI mints a dev token; curl's request is made with fetch; `runpass token verify` checks the
// result; the admin CLI lists and revokes the lease. Also proves env passthrough and RUNPASS_POLICIES_DIR.

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
let scratch = "";
let port = 0;
let child: ChildProcess | undefined;
let log = "";

async function freePort(): Promise<number> {
  return new Promise((done) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port: p } = server.address() as { port: number };
      server.close(() => done(p));
    });
  });
}

async function cli(
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    RUNPASS_URL: `http://127.0.0.1:${port}`,
  };
  delete env.RUNPASS_ADMIN_TOKEN;
  return new Promise((done) => {
    const p = execFile(
      process.execPath,
      [join(scratch, "bin/runpass.mjs"), ...args],
      { cwd: scratch, env },
      (error, stdout, stderr) =>
        done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) p.stdin?.end(input);
  });
}

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "runpass-dev-"));
  for (const item of [
    "src",
    "scripts",
    "policies",
    "bin",
    "wrangler.toml",
    "package.json",
    "tsconfig.json",
  ]) {
    await cp(join(ROOT, item), join(scratch, item), { recursive: true });
  }
  await symlink(join(ROOT, "node_modules"), join(scratch, "node_modules"));
  // A second policy folder: only what is in it is trusted.
  await mkdir(join(scratch, "other-policies"));
  await cp(join(ROOT, "policies/dev-demo.yaml"), join(scratch, "other-policies/walk.yaml"));
  port = await freePort();
  const env = {
    ...process.env,
    PORT: String(port),
    RUNPASS_POLICIES_DIR: join(scratch, "other-policies"),
    // Passed through to the Worker: a value with characters a dotenv file must escape.
    GITHUB_WEBHOOK_SECRET: `s3cr$t "quoted" \\ back`,
    WRANGLER_SEND_METRICS: "false",
    PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}`,
  };
  child = spawn(process.execPath, [join(scratch, "scripts/dev.ts")], { cwd: scratch, env, detached: true });
  child.stdout?.on("data", (d) => {
    log += String(d);
  });
  child.stderr?.on("data", (d) => {
    log += String(d);
  });
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`npm start did not come up:\n${log.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}, 120_000);

afterAll(async () => {
  if (child?.pid) {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  await new Promise((r) => setTimeout(r, 500));
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("npm start and the README walk-through", () => {
  it("mints a dev token, exchanges it, verifies the JWT against /.well-known/jwks.json", async () => {
    const minted = await cli(["dev", "token", "--repo", "acme/api"]);
    expect(minted.code, minted.stderr).toBe(0);
    const token = minted.stdout.trim();
    const res = await fetch(`http://127.0.0.1:${port}/v1/exchange`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ policy: "walk" }),
    });
    expect(res.status).toBe(200);
    const exchange = await res.text();
    const verified = await cli(
      ["token", "verify", "--url", `http://127.0.0.1:${port}`, "--audience", "https://example.internal"],
      exchange,
    );
    expect(verified.code, verified.stdout).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ valid: true, claims: { policy: "walk" } });
    const wrongAudience = await cli(
      ["token", "verify", "--url", `http://127.0.0.1:${port}`, "--audience", "https://other"],
      exchange,
    );
    expect(wrongAudience.code).toBe(1);

    // The shipped dev-demo policy is not in this folder: only the folder's policies exist.
    const other = await fetch(`http://127.0.0.1:${port}/v1/exchange`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${(await cli(["dev", "token"])).stdout.trim()}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ policy: "dev-demo" }),
    });
    expect(other.status).toBe(403);

    const leases = await cli(["admin", "leases", "--active"]);
    expect(leases.code, leases.stderr).toBe(0);
    const lease = (JSON.parse(exchange) as { lease: { id: string } }).lease;
    // The lease index is fed asynchronously (outbox → D1): wait for it briefly.
    let listed = JSON.parse(leases.stdout) as { leases: Array<{ id: string }> };
    for (let i = 0; i < 20 && !listed.leases.some((l) => l.id === lease.id); i++) {
      await new Promise((r) => setTimeout(r, 250));
      listed = JSON.parse((await cli(["admin", "leases", "--active"])).stdout);
    }
    expect(listed.leases.map((l) => l.id)).toContain(lease.id);
    const revoked = await cli(["admin", "revoke", "--policy", "walk"]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(JSON.parse(revoked.stdout).ended_leases).toBeGreaterThanOrEqual(1);
    const usage = await cli(["admin", "revoke"]);
    expect(usage.code).toBe(2);
  }, 60_000);

  it("passes GITHUB_*/RUNPASS_* variables through to the Worker, quotes and $ intact", async () => {
    const env = await readFile(join(scratch, ".dev/runpass.env"), "utf8");
    expect(env).toContain("GITHUB_WEBHOOK_SECRET=");
    // The Worker received the exact secret: a body signed with it verifies (202/200), anything else is 401.
    const body = JSON.stringify({ zen: "hi" });
    const { createHmac } = await import("node:crypto");
    const sign = (secret: string) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
    const post = (signature: string) =>
      fetch(`http://127.0.0.1:${port}/v1/webhooks/github`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-github-event": "ping",
          "x-github-delivery": "d-1",
          "x-hub-signature-256": signature,
        },
        body,
      });
    expect((await post(sign(`s3cr$t "quoted" \\ back`))).status).toBe(200);
    expect((await post(sign("s3cr"))).status).toBe(401);
  });
});
