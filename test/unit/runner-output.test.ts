// The runner CLI's output is safe to eval and its files are its own (docs/security.md, "Clients"). Run as
// `runpass exchange|revoke` and as the standalone file the broker serves at /v1/cli/runpass.mjs (built here from
// the same source), against a scripted broker whose answers may be hostile. Credential values are only ever
// compared, never printed.

import { randomBytes } from "node:crypto";
import { existsSync, lstatSync, statSync } from "node:fs";
import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { bundleRunner } from "../../scripts/bundle-runner.ts";
import {
  type FakeBrokerHttp,
  type RecordedRequest,
  startFakeBrokerHttp,
} from "../support/fake-broker-http.ts";
import { ROOT, type Run, runpass } from "../support/run-cli.ts";

const ID_TOKEN = `oidc-${randomBytes(12).toString("hex")}`;
const REVOKE = `rvk_${randomBytes(12).toString("hex")}`;
const VALUE = `value-${randomBytes(12).toString("hex")}`;
const FORMATS = ["env", "dotenv", "json", "github-env"] as const;
/** Names a hostile or buggy broker could send: each would be shell (or dotenv, or $GITHUB_ENV) syntax. */
const HOSTILE_NAMES = ["X$(touch /tmp/runpass-pwned)", "A=1; id; B", "X\nid", "1ABC", "A B", "X'Y", "ÄX", ""];

let scratch = "";
let served = "";
let broker: FakeBrokerHttp;
let secrets: Record<string, string> = {};

function exchangeBody(): unknown {
  return {
    policy: "deploy",
    policy_version: "sha256:aa",
    lease: { id: "lse_test.1", run: "gitlab:x:1", expires_at: "2030-01-01T00:00:00Z", revoke_token: REVOKE },
    credentials: { secrets },
  };
}

function answer(req: RecordedRequest) {
  if (req.method === "POST" && req.path === "/v1/exchange") return { status: 200, body: exchangeBody() };
  if (req.method === "DELETE" && req.path.startsWith("/v1/leases/")) return { status: 204 };
  return { status: 404, body: { error: "not_found", error_description: "no such route" } };
}

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "runpass-runner-"));
  served = join(scratch, "runpass.mjs");
  await writeFile(served, await bundleRunner(ROOT));
  broker = await startFakeBrokerHttp(answer);
}, 60_000);

afterAll(async () => {
  await broker?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

afterEach(() => {
  broker.requests.length = 0;
  secrets = {};
});

let n = 0;
/** A path in the scratch folder that does not exist yet. */
function fresh(name: string): string {
  n++;
  return join(scratch, `${n}-${name}`);
}

/** Nothing secret anywhere in what the CLI printed. */
function leaksNothing(r: Run): boolean {
  const all = r.stdout + r.stderr;
  return !all.includes(ID_TOKEN) && !all.includes(REVOKE) && !all.includes(VALUE);
}

const CLIENTS = [
  { name: "runpass exchange|revoke", script: undefined as string | undefined },
  { name: "the served runpass.mjs", script: "served" },
];

describe.each(CLIENTS)("$name", (client) => {
  const run = (args: string[]) =>
    runpass(args, {
      env: { RUNPASS_ID_TOKEN: ID_TOKEN },
      ...(client.script ? { script: served } : {}),
    });

  it.each(FORMATS)(
    "--format %s refuses every variable name that is not a shell name: exit 3, nothing on stdout, no file written, the lease ended",
    async (format) => {
      for (const name of HOSTILE_NAMES) {
        secrets = { GOOD: VALUE, [name]: VALUE };
        broker.requests.length = 0;
        const state = fresh("state.json");
        const toStdout = await run([
          "exchange",
          "--url",
          broker.url,
          "--policy",
          "deploy",
          "--format",
          format,
          "--state",
          state,
        ]);
        expect(toStdout.code, `name ${JSON.stringify(name)}`).toBe(3);
        expect(toStdout.stdout).toBe("");
        expect(toStdout.stderr).toContain(`refusing variable name ${JSON.stringify(name)}`);
        expect(leaksNothing(toStdout)).toBe(true);
        expect(existsSync(state)).toBe(false);
        // The credentials are never delivered, so their lease is ended at once.
        expect(broker.requests.map((r) => r.method)).toEqual(["POST", "DELETE"]);
      }
      // The same refusal when the output would go to --out: neither file is created.
      secrets = { GOOD: VALUE, "X$(id)": VALUE };
      const state = fresh("state.json");
      const out = fresh("creds");
      const toFile = await run([
        "exchange",
        "--url",
        broker.url,
        "--policy",
        "deploy",
        "--format",
        format,
        "--state",
        state,
        "--out",
        out,
      ]);
      expect(toFile.code).toBe(3);
      expect(toFile.stdout).toBe("");
      expect(leaksNothing(toFile)).toBe(true);
      expect(existsSync(out)).toBe(false);
      expect(existsSync(state)).toBe(false);
    },
    120_000,
  );

  it("delivers shell-name variables over http to a loopback broker, with a fresh 0600 state file", async () => {
    secrets = { GOOD_1: VALUE, _under: VALUE };
    for (const host of ["127.0.0.1", "localhost"]) {
      const state = fresh("state.json");
      const r = await run([
        "exchange",
        "--url",
        broker.url.replace("127.0.0.1", host),
        "--policy",
        "deploy",
        "--state",
        state,
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("export GOOD_1=");
      expect(r.stdout).toContain("export _under=");
      expect(statSync(state).mode & 0o777).toBe(0o600);
    }
  });

  it("refuses a plain-http broker that is not loopback before the token leaves: exit 2, names the URL", async () => {
    const remote = await startFakeBrokerHttp(answer, "127.0.0.2");
    try {
      const state = fresh("state.json");
      const r = await run(["exchange", "--url", remote.url, "--policy", "deploy", "--state", state]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(remote.url);
      expect(leaksNothing(r)).toBe(true);
      expect(remote.requests).toEqual([]);
      expect(existsSync(state)).toBe(false);
      const ftp = await run(["exchange", "--url", "ftp://runpass.example", "--policy", "deploy"]);
      expect(ftp.code).toBe(2);
    } finally {
      await remote.close();
    }
  });

  it("refuses a state file or --out file that already exists, or is a symlink, before exchanging", async () => {
    secrets = { GOOD: VALUE };
    const victim = fresh("victim");
    await writeFile(victim, "keep\n");
    const existing = fresh("existing");
    await writeFile(existing, "keep\n");
    const link = fresh("link");
    await symlink(victim, link);
    const dangling = fresh("dangling");
    const nowhere = fresh("nowhere");
    await symlink(nowhere, dangling);

    for (const [flag, path] of [
      ["--state", existing],
      ["--state", link],
      ["--state", dangling],
      ["--out", existing],
      ["--out", link],
      ["--out", dangling],
    ] as const) {
      const args = ["exchange", "--url", broker.url, "--policy", "deploy", flag, path];
      if (flag === "--out") args.push("--state", fresh("state.json"));
      const r = await run(args);
      expect(r.code, `${flag} ${path}`).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(path);
      expect(leaksNothing(r)).toBe(true);
    }
    expect(broker.requests).toEqual([]);
    expect(await readFile(victim, "utf8")).toBe("keep\n");
    expect(await readFile(existing, "utf8")).toBe("keep\n");
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(existsSync(nowhere)).toBe(false);
  });

  it("writes --out credentials to a new 0600 file", async () => {
    secrets = { GOOD: VALUE };
    const out = fresh("creds.env");
    const r = await run([
      "exchange",
      "--url",
      broker.url,
      "--policy",
      "deploy",
      "--state",
      fresh("state.json"),
      "--out",
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("");
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect((await readFile(out, "utf8")).includes(VALUE)).toBe(true);
  });

  it("revoke never sends the revoke token to a plain-http broker that is not loopback", async () => {
    const remote = await startFakeBrokerHttp(answer, "127.0.0.2");
    try {
      const state = fresh("state.json");
      await writeFile(
        state,
        JSON.stringify({ url: remote.url, lease_id: "lse_test.1", revoke_token: REVOKE }),
        { mode: 0o600 },
      );
      const r = await run(["revoke", "--state", state]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(remote.url);
      expect(leaksNothing(r)).toBe(true);
      expect(remote.requests).toEqual([]);
    } finally {
      await remote.close();
    }
  });
});
