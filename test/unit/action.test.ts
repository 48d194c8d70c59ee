// The GitHub Action end to end without GitHub: the real broker (wrangler dev in a scratch copy of the project,
// with secrets stored through the admin API), a local stand-in for the runner's ACTIONS_ID_TOKEN_REQUEST_URL
// that hands out fresh dev tokens, and the committed bundle (action/dist) run with GitHub's INPUT_*, GITHUB_ENV,
// GITHUB_OUTPUT, GITHUB_STATE and STATE_* conventions. A preload marks every file-command append on stdout, so
// the test can prove each credential was masked before anything was written anywhere.
// Credential values are only ever compared, never printed (assertions use booleans with plain messages).

import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevBroker, freePort, scratchProject, startDevBroker } from "../support/dev-broker.ts";

let scratch = "";
let port = 0;
let base = "";
let adminToken = "";
let broker: DevBroker | undefined;
let idServer: Server | undefined;
let idUrl = "";
const ID_REQUEST_TOKEN = `req-${randomBytes(12).toString("hex")}`;
/** Every OIDC token the stand-in handed out, and the audiences asked for. */
const minted: string[] = [];
const audiences: string[] = [];
let badIdRequests = 0;
/** Tokens to hand out before minting fresh ones (to replay a used token). */
const preset: string[] = [];

const rand = () => randomBytes(12).toString("hex");
const DEPLOY_KEY = `-----BEGIN TEST KEY ${rand()}-----\nline-a-${rand()}\n  indented-${rand()}\n-----END TEST KEY-----\n`;
const API_KEY = `sk_test_${rand()}`;
const KEYSTORE_TEXT = `keystore-one-${rand()}\nkeystore-two-${rand()}`;
const KEYSTORE_B64 = Buffer.from(KEYSTORE_TEXT).toString("base64");

const OK_POLICY = `
issuer: dev
allow:
  repository_owner_id: "1000001"
  repository_id: "2000001"
  ref: refs/heads/main
  event_name: [push]
ttl: 30m
grants:
  token: { audience: "https://example.internal", ttl: 10m }
  secrets:
    DEPLOY_KEY: ci/deploy-key
    API_KEY: ci/api-key
    KEYSTORE: ci/keystore
`;
const DENIED_POLICY = `
issuer: dev
allow:
  repository_owner_id: "1000001"
  repository_id: "2000001"
  ref: refs/heads/release
  event_name: [push]
grants:
  token: { audience: "https://example.internal", ttl: 10m }
`;

function devToken(aud: string): Promise<string> {
  return new Promise((done, fail) => {
    execFile(
      process.execPath,
      [join(scratch, "bin/runpass.mjs"), "dev", "token", "--aud", aud],
      { cwd: scratch, env: { ...process.env, PORT: String(port) } },
      (error, stdout) => (error ? fail(new Error("runpass dev token failed")) : done(stdout.trim())),
    );
  });
}

/** Plays the runner's ID token endpoint: GET ?api-version=2.0&audience=… with the request bearer. */
async function startIdServer(): Promise<void> {
  idServer = createHttpServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (req.headers.authorization?.toLowerCase() !== `bearer ${ID_REQUEST_TOKEN}`) {
      badIdRequests++;
      res.writeHead(401).end();
      return;
    }
    const aud = url.searchParams.get("audience") ?? "";
    audiences.push(aud);
    try {
      const value = preset.shift() ?? (await devToken(aud));
      minted.push(value);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ value }));
    } catch {
      res.writeHead(500).end();
    }
  });
  await new Promise<void>((done) => idServer!.listen(0, "127.0.0.1", () => done()));
  const { port: p } = idServer.address() as { port: number };
  idUrl = `http://127.0.0.1:${p}/token?api-version=2.0`;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  env: string;
  output: string;
  state: string;
}

/** Runs action/dist/{main,post}.js like the runner does: INPUT_*, file commands in a temp dir, STATE_*. */
async function runAction(script: "main" | "post", vars: Record<string, string>): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), "runpass-action-run-"));
  const files = { env: join(dir, "env"), output: join(dir, "output"), state: join(dir, "state") };
  for (const f of Object.values(files)) await writeFile(f, "");
  const preload = join(dir, "mark-appends.mjs");
  await writeFile(
    preload,
    [
      'import fs from "node:fs";',
      'import { syncBuiltinESMExports } from "node:module";',
      "const append = fs.appendFileSync;",
      "fs.appendFileSync = function (file, ...rest) {",
      '  fs.writeSync(1, "##test-append " + String(file).split("/").pop() + "\\n");',
      "  return append.call(this, file, ...rest);",
      "};",
      "syncBuiltinESMExports();",
    ].join("\n"),
  );
  // A clean environment: nothing from a surrounding CI job (its GITHUB_ENV, its ID token variables) leaks in.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GITHUB_ENV: files.env,
    GITHUB_OUTPUT: files.output,
    GITHUB_STATE: files.state,
    RUNNER_TEMP: dir,
    ...vars,
  };
  const result = await new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
    execFile(
      process.execPath,
      ["--import", pathToFileURL(preload).href, join(scratch, `action/dist/${script}.js`)],
      { cwd: dir, env, timeout: 60_000 },
      (error, stdout, stderr) =>
        done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  const read = async (f: string) => readFile(f, "utf8");
  const run = {
    ...result,
    env: await read(files.env),
    output: await read(files.output),
    state: await read(files.state),
  };
  await rm(dir, { recursive: true, force: true });
  return run;
}

/** Parses the GITHUB_ENV / GITHUB_OUTPUT / GITHUB_STATE heredoc format (`NAME<<delim\nvalue\ndelim`). */
function parseFileCommands(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<=]+)<<(ghadelimiter_[0-9a-f-]+)$/.exec(lines[i]!);
    if (!m) continue;
    const value: string[] = [];
    for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i]!);
    out.set(m[1]!, value.join("\n"));
  }
  return out;
}

/** The runner's escaping of command data (what `::add-mask::` carries). */
function escapeData(s: string): string {
  return s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
}

/** stdout without the mask registrations (which carry the values): safe to match against and to print. */
function visible(stdout: string): string {
  return stdout
    .split("\n")
    .filter((l) => !l.startsWith("::add-mask::"))
    .join("\n");
}

function valueLines(v: string): string[] {
  return v.split("\n").filter((l) => l.trim() !== "");
}

function inputs(policy: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    INPUT_URL: `${base}/`,
    INPUT_POLICY: policy,
    "INPUT_EXPORT-ENV": "true",
    "INPUT_OUTPUT-FORMAT": "outputs",
    "INPUT_GITHUB-TOKEN-ENV": "RUNPASS_GITHUB_TOKEN",
    ACTIONS_ID_TOKEN_REQUEST_URL: idUrl,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: ID_REQUEST_TOKEN,
    ...extra,
  };
}

async function introspect(token: string): Promise<{ active: boolean }> {
  const res = await fetch(`${base}/v1/introspect`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token }).toString(),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { active: boolean };
}

async function putSecret(path: string, body: Record<string, string>): Promise<void> {
  const res = await fetch(`${base}/v1/admin/secrets/${path}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status, `PUT ${path}`).toBe(201);
}

beforeAll(async () => {
  scratch = await scratchProject("runpass-action-", [
    "src",
    "scripts",
    "policies",
    "bin",
    "action",
    "wrangler.toml",
    "package.json",
    "tsconfig.json",
  ]);
  await mkdir(join(scratch, "action-policies"));
  await writeFile(join(scratch, "action-policies/action-ok.yaml"), OK_POLICY);
  await writeFile(join(scratch, "action-policies/action-denied.yaml"), DENIED_POLICY);
  broker = await startDevBroker(scratch, {
    RUNPASS_POLICIES_DIR: join(scratch, "action-policies"),
    RUNPASS_MASTER_KEYS: JSON.stringify({ m1: randomBytes(32).toString("base64") }),
  });
  port = broker.port;
  base = broker.base;
  adminToken = (JSON.parse(await readFile(join(scratch, ".dev/keys.json"), "utf8")) as { adminToken: string })
    .adminToken;
  await putSecret("ci/deploy-key", { value: DEPLOY_KEY });
  await putSecret("ci/api-key", { value: API_KEY });
  await putSecret("ci/keystore", { value_base64: KEYSTORE_B64 });
  await startIdServer();
}, 120_000);

afterAll(async () => {
  await new Promise<void>((done) => (idServer ? idServer.close(() => done()) : done()));
  if (broker) await broker.stop();
  else if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("the action against a real broker", () => {
  it("exchanges, masks every credential before writing it, exports, outputs, saves state; post revokes", async () => {
    const main = await runAction("main", inputs("action-ok"));
    expect(main.code, `main failed:\n${visible(main.stdout)}`).toBe(0);

    // The runner's ID token endpoint was asked, with its bearer, for the broker's URL as audience.
    expect(badIdRequests).toBe(0);
    expect(audiences.at(-1)).toBe(base);

    const env = parseFileCommands(main.env);
    const outputs = parseFileCommands(main.output);
    const state = parseFileCommands(main.state);

    // Exports: the token grant and each secret under its policy name; no AWS or GitHub grant in this policy.
    expect([...env.keys()].sort()).toEqual(["API_KEY", "DEPLOY_KEY", "KEYSTORE", "RUNPASS_TOKEN"]);
    expect(env.get("DEPLOY_KEY") === DEPLOY_KEY, "DEPLOY_KEY exported byte for byte").toBe(true);
    expect(env.get("API_KEY") === API_KEY, "API_KEY exported").toBe(true);
    expect(env.get("KEYSTORE") === KEYSTORE_B64, "KEYSTORE exported base64-encoded").toBe(true);
    const token = env.get("RUNPASS_TOKEN") ?? "";
    expect(token.split(".")).toHaveLength(3);

    // Outputs.
    expect(outputs.get("lease-id")).toMatch(/^lse_/);
    expect(Number.isNaN(Date.parse(outputs.get("expires-at") ?? ""))).toBe(false);
    expect(outputs.get("run")).toMatch(/^github:dev:2000001:\d+:1$/);
    expect(outputs.get("token") === token, "token output").toBe(true);
    expect(outputs.get("secret-API_KEY") === API_KEY, "secret output").toBe(true);

    // State for the post step: the lease, its revoke token, the broker URL (no trailing slash).
    expect(state.get("lease_id")).toBe(outputs.get("lease-id"));
    expect(state.get("url")).toBe(base);
    const revokeToken = state.get("revoke_token") ?? "";
    expect(revokeToken.length).toBeGreaterThan(10);

    // Masking: every credential, every line of every multi-line secret, the base64 secret and its decoded text,
    // the OIDC token and the revoke token are registered before the first file-command append, and appear
    // nowhere else on stdout.
    const sensitive = [
      token,
      revokeToken,
      API_KEY,
      KEYSTORE_B64,
      KEYSTORE_TEXT,
      ...valueLines(KEYSTORE_TEXT),
      ...valueLines(DEPLOY_KEY),
      ...valueLines(DEPLOY_KEY).map((l) => l.trim()),
      ...minted,
    ];
    const firstAppend = main.stdout.indexOf("##test-append ");
    expect(firstAppend).toBeGreaterThan(0);
    const lines = main.stdout.split("\n");
    const masks = new Set(
      lines.filter((l) => l.startsWith("::add-mask::")).map((l) => l.slice("::add-mask::".length)),
    );
    const rest = visible(main.stdout);
    sensitive.forEach((value, i) => {
      const maskLine = `::add-mask::${escapeData(value)}\n`;
      const at = main.stdout.indexOf(maskLine);
      expect(at >= 0, `sensitive value #${i} was not masked`).toBe(true);
      expect(at < firstAppend, `sensitive value #${i} was masked only after a file write`).toBe(true);
      expect(masks.has(escapeData(value))).toBe(true);
      expect(rest.includes(value), `sensitive value #${i} appears in stdout outside its mask line`).toBe(
        false,
      );
      expect(main.stderr.includes(value), `sensitive value #${i} appears in stderr`).toBe(false);
    });
    // The multi-line secret whole is masked as well (escaped as one command).
    expect(masks.has(escapeData(DEPLOY_KEY))).toBe(true);
    expect(rest).toContain("runpass: exported RUNPASS_TOKEN, DEPLOY_KEY, API_KEY, KEYSTORE");
    expect(rest).toMatch(/runpass: lease lse_\S+ for run github:dev:2000001:\d+:1 until /);

    // The lease is live, then the post step revokes it.
    expect((await introspect(token)).active).toBe(true);
    const post = await runAction("post", {
      STATE_lease_id: state.get("lease_id") ?? "",
      STATE_revoke_token: revokeToken,
      STATE_url: state.get("url") ?? "",
    });
    expect(post.code).toBe(0);
    expect(visible(post.stdout)).toContain(`runpass: lease ${state.get("lease_id")} revoked`);
    expect(post.stdout.includes(`::add-mask::${revokeToken}`)).toBe(true);
    expect(visible(post.stdout).includes(revokeToken)).toBe(false);
    expect((await introspect(token)).active).toBe(false);
  }, 60_000);

  it("output-format env keeps credentials out of step outputs; export-env false keeps them out of the env", async () => {
    const envOnly = await runAction("main", inputs("action-ok", { "INPUT_OUTPUT-FORMAT": "env" }));
    expect(envOnly.code, visible(envOnly.stdout)).toBe(0);
    expect([...parseFileCommands(envOnly.output).keys()].sort()).toEqual(["expires-at", "lease-id", "run"]);
    expect(parseFileCommands(envOnly.env).has("RUNPASS_TOKEN")).toBe(true);

    const outputsOnly = await runAction("main", inputs("action-ok", { "INPUT_EXPORT-ENV": "false" }));
    expect(outputsOnly.code, visible(outputsOnly.stdout)).toBe(0);
    expect(outputsOnly.env).toBe("");
    expect(parseFileCommands(outputsOnly.output).has("token")).toBe(true);
    expect(visible(outputsOnly.stdout)).toContain("nothing exported to the environment");

    const neither = await runAction(
      "main",
      inputs("action-ok", { "INPUT_EXPORT-ENV": "false", "INPUT_OUTPUT-FORMAT": "env" }),
    );
    expect(neither.code).toBe(1);
    expect(visible(neither.stdout)).toContain("would deliver no credentials");
  }, 60_000);

  it("a replayed OIDC token (409) is replaced by a fresh one, once", async () => {
    const used = await devToken(base);
    const first = await fetch(`${base}/v1/exchange`, {
      method: "POST",
      headers: { authorization: `Bearer ${used}`, "content-type": "application/json" },
      body: JSON.stringify({ policy: "action-ok", grants: ["token"] }),
    });
    expect(first.status).toBe(200);
    preset.push(used);
    const before = audiences.length;
    const run = await runAction("main", inputs("action-ok", { INPUT_GRANTS: "token" }));
    expect(run.code, visible(run.stdout)).toBe(0);
    expect(audiences.length - before).toBe(2);
    expect([...parseFileCommands(run.env).keys()]).toEqual(["RUNPASS_TOKEN"]);
  }, 60_000);

  it("without id-token: write (no ACTIONS_ID_TOKEN_REQUEST_URL) fails with one clear line", async () => {
    const vars = inputs("action-ok");
    delete vars.ACTIONS_ID_TOKEN_REQUEST_URL;
    delete vars.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
    const run = await runAction("main", vars);
    expect(run.code).toBe(1);
    const printed = run.stdout.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("##test-append"));
    expect(printed).toEqual([
      "::error::runpass: no OIDC token available to this job: the workflow or job needs `permissions: id-token: write`",
    ]);
    expect(run.env + run.output + run.state).toBe("");
  });

  it("a denied policy fails with the reasons and the request id, and saves no lease", async () => {
    const run = await runAction("main", inputs("action-denied"));
    expect(run.code).toBe(1);
    expect(visible(run.stdout)).toMatch(
      /^::error::runpass: denied: claim_mismatch ref \(expected refs\/heads\/release\) — request_id \S+$/m,
    );
    expect(run.env + run.output + run.state).toBe("");
  }, 30_000);

  it("refuses a plain-http broker URL that is not loopback (the OIDC token would travel in clear text)", async () => {
    const run = await runAction("main", inputs("action-ok", { INPUT_URL: "http://runpass.example" }));
    expect(run.code).toBe(1);
    expect(visible(run.stdout)).toContain("::error::runpass: input url must be https://");
  });

  it("the post step never fails the job: broker unreachable → a warning, exit 0", async () => {
    const closed = await freePort();
    const run = await runAction("post", {
      STATE_lease_id: "lse_unreachable",
      STATE_revoke_token: "rvk_not_a_real_token_0123456789",
      STATE_url: `http://127.0.0.1:${closed}`,
    });
    expect(run.code).toBe(0);
    expect(visible(run.stdout)).toMatch(
      /^::warning::runpass: could not revoke lease lse_unreachable: network_error/m,
    );

    const nothing = await runAction("post", {});
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toContain("runpass: no lease to revoke");
  }, 30_000);
});
