// The README walk-through, for real: `npm start`'s launcher runs wrangler dev in a scratch copy of the
// project; the CLI mints a dev token; curl's request is made with fetch; `runpass token verify` checks the
// result; the admin CLI lists and revokes the lease. Also proves env passthrough and RUNPASS_POLICIES_DIR, and
// drives `runpass admin secrets …` and `policy check --admin-url` against the broker's secret store.

import { execFile } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { cp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevBroker, ROOT, scratchProject, startDevBroker } from "../support/dev-broker.ts";

let scratch = "";
let port = 0;
let broker: DevBroker | undefined;

async function cli(
  args: string[],
  input?: string,
  extraEnv: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    RUNPASS_URL: `http://127.0.0.1:${port}`,
    ...extraEnv,
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
  scratch = await scratchProject("runpass-dev-", [
    "src",
    "scripts",
    "policies",
    "bin",
    "wrangler.toml",
    "package.json",
    "tsconfig.json",
  ]);
  // A second policy folder: only what is in it is trusted.
  await mkdir(join(scratch, "other-policies"));
  await cp(join(ROOT, "policies/dev-demo.yaml"), join(scratch, "other-policies/walk.yaml"));
  // A policy granting secrets that do not exist yet: fine for the broker until an exchange needs them.
  const walk = await readFile(join(ROOT, "policies/dev-demo.yaml"), "utf8");
  await writeFile(
    join(scratch, "other-policies/vault.yaml"),
    walk.replace(/^grants:[\s\S]*$/m, "grants:\n  secrets: { PEM_KEY: ci/pem, BLOB: ci/blob }\n"),
  );
  await writeFile(
    join(scratch, "other-policies/hostile.yaml"),
    walk.replace(
      /^grants:[\s\S]*$/m,
      'grants:\n  token: { audience: "https://example.internal" }\n  secrets: { HOSTILE: ci/hostile }\n',
    ),
  );
  broker = await startDevBroker(scratch, {
    RUNPASS_POLICIES_DIR: join(scratch, "other-policies"),
    // The secret store's master keys (random per run).
    RUNPASS_MASTER_KEYS: JSON.stringify({ active: "m1", keys: { m1: randomBytes(32).toString("base64") } }),
    // Passed through to the Worker: a value with characters a dotenv file must escape.
    GITHUB_WEBHOOK_SECRET: `s3cr$t "quoted" \\ back`,
  });
  port = broker.port;
}, 120_000);

afterAll(async () => {
  if (broker) await broker.stop();
  else if (scratch) await rm(scratch, { recursive: true, force: true });
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

  it("admin secrets: put (stdin, --file --binary), list, show, rollback, delete, destroy, rewrap; policy check --admin-url", async () => {
    // Test values only; still, assertions compare booleans and sizes so no value ever lands in test output.
    // A real key generated per run, with one CRLF line break and the final newline (both must round-trip).
    const pem = (
      generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
        type: "pkcs8",
        format: "pem",
      }) as string
    ).replace("\n", "\r\n");
    const blob = Buffer.concat([Buffer.from([0, 255, 10, 13, 0xef, 0xbb, 0xbf]), randomBytes(200)]);
    const blobFile = join(scratch, "blob.bin");
    await writeFile(blobFile, blob);
    const leaks = (out: string) =>
      out.includes(pem.slice(28, 60)) ||
      out.includes(pem.split("\n")[2] as string) ||
      out.includes(blob.toString("base64").slice(0, 24));
    const json = (r: { code: number; stdout: string; stderr: string }) => {
      expect(r.code, r.stderr).toBe(0);
      expect(leaks(r.stdout) || leaks(r.stderr)).toBe(false);
      return JSON.parse(r.stdout);
    };
    const sameBytes = (a: Buffer, b: Buffer) => a.length === b.length && a.equals(b);

    expect(json(await cli(["admin", "secrets", "put", "ci/pem"], pem))).toEqual({
      path: "ci/pem",
      version: 1,
    });
    expect(json(await cli(["admin", "secrets", "put", "ci/blob", "--file", blobFile, "--binary"]))).toEqual({
      path: "ci/blob",
      version: 1,
    });

    // A value on the command line is refused before anything is sent, and never echoed.
    const argv = await cli(["admin", "secrets", "put", "ci/argv", "hunter2-not-stored"]);
    expect(argv.code).toBe(2);
    expect(argv.stderr).toMatch(/never from the command line/);
    expect(argv.stdout + argv.stderr).not.toContain("hunter2");
    const empty = await cli(["admin", "secrets", "put", "ci/empty"], "");
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/empty/);
    const missing = await cli(["admin", "secrets", "show", "ci/argv"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/404 not_found: no secret at ci\/argv/);

    const listed = json(await cli(["admin", "secrets", "list", "--prefix", "ci/"])) as {
      secrets: Array<{ path: string }>;
    };
    expect(listed.secrets.map((x) => x.path)).toEqual(["ci/blob", "ci/pem"]);
    const shown = json(await cli(["admin", "secrets", "show", "ci/pem"]));
    const actor = `admin:${`${userInfo().username}@${hostname()}`
      .replace(/[^\w.@+:/ -]/g, "")
      .slice(0, 64)
      .trim()}`;
    expect(shown).toMatchObject({
      path: "ci/pem",
      current_version: 1,
      deleted: false,
      versions: [
        { version: 1, state: "active", encoding: "utf8", size: Buffer.byteLength(pem), created_by: actor },
      ],
    });
    expect(json(await cli(["admin", "secrets", "show", "ci/blob"]))).toMatchObject({
      versions: [{ version: 1, encoding: "base64", size: blob.length }],
    });

    // Delivered byte for byte: the PEM with its \r\n and final newline, the binary value base64-encoded.
    const exchange = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/v1/exchange`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${(await cli(["dev", "token"])).stdout.trim()}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ policy: "vault" }),
      });
      const body = (await res.json()) as {
        credentials?: { secrets?: Record<string, string> };
        secret_encodings?: Record<string, string>;
        error?: string;
      };
      return {
        status: res.status,
        error: body.error,
        secrets: body.credentials?.secrets ?? {},
        encodings: body.secret_encodings,
      };
    };
    let got = await exchange();
    expect(got.status, got.error).toBe(200);
    expect(sameBytes(Buffer.from(got.secrets.PEM_KEY ?? "", "utf8"), Buffer.from(pem, "utf8"))).toBe(true);
    expect(sameBytes(Buffer.from(got.secrets.BLOB ?? "", "base64"), blob)).toBe(true);
    expect(got.encodings).toEqual({ BLOB: "base64" });

    // A second version, then back to the first (as version 3).
    expect(json(await cli(["admin", "secrets", "put", "ci/pem"], "replacement\n"))).toEqual({
      path: "ci/pem",
      version: 2,
    });
    expect(json(await cli(["admin", "secrets", "rollback", "ci/pem", "--version", "1"]))).toEqual({
      path: "ci/pem",
      version: 3,
    });
    got = await exchange();
    expect(got.status, got.error).toBe(200);
    expect(sameBytes(Buffer.from(got.secrets.PEM_KEY ?? "", "utf8"), Buffer.from(pem, "utf8"))).toBe(true);
    const rolled = json(await cli(["admin", "secrets", "show", "ci/pem"]));
    expect(rolled).toMatchObject({
      current_version: 3,
      versions: [{ version: 1 }, { version: 2 }, { version: 3, copied_from: 1 }],
    });
    const noVersion = await cli(["admin", "secrets", "rollback", "ci/pem", "--version", "9"]);
    expect(noVersion.code).toBe(1);
    expect(noVersion.stderr).toMatch(/404 not_found/);

    // policy check --admin-url: every secrets grant's path must exist (and be deliverable) at the broker.
    const walk = await readFile(join(scratch, "other-policies/walk.yaml"), "utf8");
    const check = async (name: string, ref: string) => {
      const dir = join(scratch, `check-${name}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, "walk.yaml"), `${walk}  secrets: { API_KEY: ${ref} }\n`);
      return cli(
        ["policy", "check", "--policies", dir, "--admin-url", `http://127.0.0.1:${port}`],
        undefined,
        {
          RUNPASS_DEV: "1",
        },
      );
    };
    const ok = await check("ok", "ci/pem");
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/ok: 1 policies, 1 issuers, 1 secret grant found at/);
    const bad = await check("missing", "ci/missing");
    expect(bad.code, bad.stdout + bad.stderr).toBe(1);
    expect(bad.stdout).toMatch(
      /check-missing\/walk\.yaml:\d+:\d+: error: grants\.secrets\.API_KEY: no secret "ci\/missing"/,
    );
    const noSuchVersion = await check("v9", "ci/pem@9");
    expect(noSuchVersion.code).toBe(1);
    expect(noSuchVersion.stdout).toMatch(/grants\.secrets\.API_KEY: secret "ci\/pem" has no version 9/);

    // Destroy version 1 for good: its rollback copy (3, the current version) goes with it, a grant pinned to
    // either is now an error, and a new version delivers again.
    expect(json(await cli(["admin", "secrets", "destroy", "ci/pem", "--version", "1"]))).toEqual({
      path: "ci/pem",
      version: 1,
      destroyed: true,
    });
    expect(json(await cli(["admin", "secrets", "show", "ci/pem"]))).toMatchObject({
      versions: [
        { version: 1, state: "destroyed" },
        { version: 2, state: "active" },
        { version: 3, state: "destroyed" },
      ],
    });
    const destroyed = await check("v1", "ci/pem@1");
    expect(destroyed.code).toBe(1);
    expect(destroyed.stdout).toMatch(/grants\.secrets\.API_KEY: version 1 of secret "ci\/pem" is destroyed/);
    expect((await check("v3", "ci/pem@3")).code).toBe(1);
    expect(json(await cli(["admin", "secrets", "put", "ci/pem"], "fresh\n"))).toMatchObject({ version: 4 });
    expect((await check("ok", "ci/pem")).code).toBe(0);
    expect((await cli(["admin", "secrets", "destroy", "ci/pem"])).code).toBe(2);

    // Soft delete: the path stops delivering and policy check says so.
    expect(json(await cli(["admin", "secrets", "delete", "ci/blob"]))).toEqual({
      path: "ci/blob",
      deleted: true,
    });
    expect(json(await cli(["admin", "secrets", "show", "ci/blob"]))).toMatchObject({ deleted: true });
    const deleted = await check("deleted", "ci/blob");
    expect(deleted.code).toBe(1);
    expect(deleted.stdout).toMatch(/grants\.secrets\.API_KEY: secret "ci\/blob" is deleted/);
    got = await exchange();
    expect(got.status).toBe(502);
    expect(got.secrets).toEqual({});

    // Every data key is already under the only master key.
    const rewrapped = json(await cli(["admin", "secrets", "rewrap"]));
    expect(rewrapped).toMatchObject({ rewrapped: 0, failed: [] });
    expect(rewrapped.already_current).toBeGreaterThanOrEqual(3);
  }, 180_000);
});

describe("the runner CLI served by the broker (GitLab and other runners)", () => {
  // Quotes, command substitution, a newline, backslashes, a dollar sign and a trailing space.
  const HOSTILE = `it's "$(touch /tmp/pwned-runpass)" \`id\` \\n\n$HOME; ok `;

  async function runnerCli(
    script: string,
    args: string[],
    env: Record<string, string>,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((done) => {
      execFile(
        process.execPath,
        [script, ...args],
        { cwd: scratch, env: { PATH: process.env.PATH ?? "", ...env } },
        (error, stdout, stderr) =>
          done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  it("downloads runpass.mjs, exchanges in every format with hostile values quoted safely, and revokes", async () => {
    const base = `http://127.0.0.1:${port}`;
    const keys = JSON.parse(await readFile(join(scratch, ".dev/keys.json"), "utf8")) as {
      adminToken: string;
    };
    const put = await fetch(`${base}/v1/admin/secrets/ci/hostile`, {
      method: "PUT",
      headers: { authorization: `Bearer ${keys.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ value: HOSTILE }),
    });
    expect(put.status).toBe(201);

    const download = await fetch(`${base}/v1/cli/runpass.mjs`);
    expect(download.status).toBe(200);
    const text = await download.text();
    const sum = (await (await fetch(`${base}/v1/cli/runpass.mjs.sha256`)).text()).split(" ")[0];
    const { createHash } = await import("node:crypto");
    expect(createHash("sha256").update(text).digest("hex")).toBe(sum);
    const script = join(scratch, "runpass.mjs");
    await writeFile(script, text);

    const tokenFor = async () => (await cli(["dev", "token"])).stdout.trim();
    let state = "";
    let exchanges = 0;
    const exchange = async (format: string, extra: string[] = []) => {
      // One state file per exchange: the CLI only writes a state file it creates itself.
      state = join(scratch, `runner-state-${++exchanges}.json`);
      return runnerCli(
        script,
        ["exchange", "--url", base, "--policy", "hostile", "--format", format, "--state", state, ...extra],
        {
          RUNPASS_ID_TOKEN: await tokenFor(),
        },
      );
    };

    // env: eval'd by a real shell, the value comes back exactly and nothing was executed.
    const env = await exchange("env");
    expect(env.code, env.stderr).toBe(0);
    const { execFileSync } = await import("node:child_process");
    const echoed = execFileSync("bash", ["-c", 'eval "$RUNPASS_OUT" && printf %s "$HOSTILE"'], {
      env: { PATH: process.env.PATH ?? "", RUNPASS_OUT: env.stdout },
    }).toString();
    expect(echoed === HOSTILE).toBe(true);
    const { existsSync } = await import("node:fs");
    expect(existsSync("/tmp/pwned-runpass")).toBe(false);
    expect(env.stdout).toMatch(/^export RUNPASS_TOKEN='/m);

    // dotenv: one line per variable, escaped.
    const dotenv = await exchange("dotenv");
    const line = dotenv.stdout.split("\n").find((l) => l.startsWith("HOSTILE="));
    expect(line).toBeDefined();
    expect(JSON.parse((line as string).slice("HOSTILE=".length).replace(/\\\$/g, "$")) === HOSTILE).toBe(
      true,
    );

    // json: the whole response, without the revoke token.
    const json = await exchange("json");
    const parsed = JSON.parse(json.stdout) as {
      credentials: { secrets: Record<string, string> };
      lease: Record<string, unknown>;
    };
    expect(parsed.credentials.secrets.HOSTILE === HOSTILE).toBe(true);
    expect(parsed.lease.revoke_token).toBeUndefined();

    // github-env: heredoc blocks, read back as GitHub's runner would.
    const gh = await exchange("github-env");
    const m = /^HOSTILE<<(\S+)\n([\s\S]*?)\n\1$/m.exec(gh.stdout);
    expect(m?.[2] === HOSTILE).toBe(true);

    // --out: credentials to a 0600 file, nothing on stdout.
    const outFile = join(scratch, "creds.env");
    const out = await exchange("env", ["--out", outFile]);
    expect(out.stdout).toBe("");
    const { statSync } = await import("node:fs");
    expect(statSync(outFile).mode & 0o777).toBe(0o600);

    // revoke ends the lease recorded in the state file.
    const lease = JSON.parse(await readFile(state, "utf8")) as { lease_id: string };
    const revoked = await runnerCli(script, ["revoke", "--state", state], {});
    expect(revoked.code).toBe(0);
    const leases = await fetch(
      `${base}/v1/admin/leases?run=${encodeURIComponent(decodeRun(lease.lease_id))}`,
      {
        headers: { authorization: `Bearer ${keys.adminToken}` },
      },
    );
    expect(leases.status).toBe(200);
    const introspect = await fetch(`${base}/v1/introspect`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        token: (JSON.parse((await exchange("json")).stdout) as { credentials: { token: { token: string } } })
          .credentials.token.token,
      }).toString(),
    });
    expect(introspect.status).toBe(200);
    void lease;
  }, 60_000);

  it("exit codes: 1 denied with reasons, 2 usage, 3 unavailable; revoke never fails the job", async () => {
    const base = `http://127.0.0.1:${port}`;
    const script = join(scratch, "runpass.mjs");
    const token = (await cli(["dev", "token", "--ref", "refs/heads/feature"])).stdout.trim();
    const denied = await runnerCli(script, ["exchange", "--url", base, "--policy", "hostile"], {
      RUNPASS_ID_TOKEN: token,
    });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(
      /denied: claim_mismatch ref \(expected refs\/heads\/main\) — request_id req_/,
    );
    expect(denied.stderr).not.toContain(token.split(".")[2] as string);

    const usage = await runnerCli(script, ["exchange", "--url", base, "--policy", "hostile"], {});
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("id_tokens");
    expect((await runnerCli(script, ["exchange", "--policy", "x"], { RUNPASS_ID_TOKEN: "t" })).code).toBe(2);
    expect(
      (
        await runnerCli(script, ["exchange", "--url", base, "--policy", "x", "--format", "yaml"], {
          RUNPASS_ID_TOKEN: "t",
        })
      ).code,
    ).toBe(2);

    const down = await runnerCli(
      script,
      ["exchange", "--url", "http://127.0.0.1:9", "--policy", "hostile", "--timeout", "1"],
      {
        RUNPASS_ID_TOKEN: token,
      },
    );
    expect(down.code).toBe(3);

    const noState = await runnerCli(script, ["revoke", "--state", join(scratch, "missing.json")], {});
    expect(noState.code).toBe(0);
    // The main `runpass` command carries the same subcommands.
    const viaMain = await cli(
      [
        "exchange",
        "--url",
        base,
        "--policy",
        "hostile",
        "--format",
        "json",
        "--state",
        join(scratch, "s2.json"),
      ],
      undefined,
      {
        RUNPASS_ID_TOKEN: (await cli(["dev", "token"])).stdout.trim(),
      },
    );
    expect(viaMain.code, viaMain.stderr).toBe(0);
  }, 60_000);
});

/** The run key inside a lease id (lse_<base64url(run)>.<random>). */
function decodeRun(leaseId: string): string {
  const b64 = leaseId.slice(4, leaseId.indexOf(".")).replace(/-/g, "+").replace(/_/g, "/");
  return Buffer.from(b64, "base64").toString("utf8");
}
