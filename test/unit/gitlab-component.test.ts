// The GitLab CI/CD component (templates/runpass.yml) treats its inputs as data and keeps credentials out of
// shell traces (docs/security.md, "Clients"). Rendered as GitLab renders it — every input checked against its
// spec `regex` (an unanchored RE2 search, so the patterns anchor themselves; defaults are checked too), then
// `$[[ inputs.* ]]` substituted into the job's string values — and its before_script/after_script run under
// bash with `set -eo pipefail` and `set -x` (CI_DEBUG_TRACE), with stub `curl`, `node` and `id` first on PATH.
// Credential values are only ever compared, never printed.

import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, statSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { POLICY_NAME } from "../../src/core/policy/load.ts";
import { ROOT } from "../support/run-cli.ts";

const ID_TOKEN = `oidc-${randomBytes(12).toString("hex")}`;
const AWS_SECRET = `aws-secret-${randomBytes(12).toString("hex")}`;
// A secret whose value is shell syntax: it must arrive as data, and never show up in a trace either.
const DEPLOY_KEY = `it's $(id) \`id\` ${randomBytes(8).toString("hex")}`;
const CLI_TEXT = "// stand-in for the runner CLI the broker serves\n";
const CLI_SHA256 = createHash("sha256").update(CLI_TEXT).digest("hex");
const JOB_ID = "4242";

interface SpecInput {
  default?: string;
  regex?: string;
}
interface Job {
  id_tokens: Record<string, { aud: string }>;
  variables: Record<string, string>;
  before_script: string[];
  after_script: string[];
}

let spec: Record<string, SpecInput> = {};
let template: unknown;

/** GitLab's input check: unknown and missing inputs are errors, each value (or default) must match its regex. */
function checkInputs(given: Record<string, string>): Record<string, string> {
  for (const name of Object.keys(given)) {
    if (!Object.hasOwn(spec, name)) throw new Error(`unknown input name provided: \`${name}\``);
  }
  const values: Record<string, string> = {};
  for (const [name, input] of Object.entries(spec)) {
    const value = given[name] ?? input.default;
    if (value === undefined) throw new Error(`\`${name}\` input: required value has not been provided`);
    if (input.regex !== undefined && !new RegExp(input.regex).test(value)) {
      throw new Error(`\`${name}\` input: provided value does not match required RegEx pattern`);
    }
    values[name] = value;
  }
  return values;
}

/** `$[[ inputs.NAME ]]` substituted textually inside every string of the job's configuration. */
function interpolate(node: unknown, values: Record<string, string>): unknown {
  if (typeof node === "string") {
    return node.replace(/\$\[\[\s*inputs\.([\w-]+)\s*\]\]/g, (_, name: string) => {
      const v = values[name];
      if (v === undefined) throw new Error(`unknown interpolation key: \`${name}\``);
      return v;
    });
  }
  if (Array.isArray(node)) return node.map((n) => interpolate(n, values));
  if (node && typeof node === "object") {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolate(v, values)]));
  }
  return node;
}

/** The `.runpass` job as GitLab would create it from `inputs`; throws as GitLab refuses the include. */
function render(inputs: Record<string, string>, options: { skipRegex?: boolean } = {}): Job {
  const values = options.skipRegex ? { grants: "", cli_sha256: "", ...inputs } : checkInputs(inputs);
  return (interpolate(template, values) as { ".runpass": Job })[".runpass"];
}

let work = "";
let bin = "";
let stubLog = "";
let n = 0;

beforeAll(async () => {
  const docs = parseAllDocuments(await readFile(join(ROOT, "templates/runpass.yml"), "utf8"));
  const [header, content] = Array.isArray(docs) ? docs : [];
  if (!header || !content) throw new Error("expected a spec document and a job document");
  spec = (header.toJS() as { spec: { inputs: Record<string, SpecInput> } }).spec.inputs;
  template = content.toJS();

  work = await mkdtemp(join(tmpdir(), "runpass-gitlab-"));
  bin = join(work, "bin");
  stubLog = join(work, "stub.log");
  await mkdir(bin);
  await writeFile(join(work, "cli.txt"), CLI_TEXT);
  await writeFile(
    join(work, "credentials.env"),
    `export AWS_SECRET_ACCESS_KEY='${AWS_SECRET}'\nexport DEPLOY_KEY='${DEPLOY_KEY.replace(/'/g, `'\\''`)}'\n`,
  );
  // curl: records its arguments, "downloads" the CLI to -o.
  await writeFile(
    join(bin, "curl"),
    `#!/usr/bin/env bash
printf 'curl' >> "$STUB_LOG"; printf ' %q' "$@" >> "$STUB_LOG"; printf '\\n' >> "$STUB_LOG"
while [ $# -gt 0 ]; do if [ "$1" = -o ]; then cp "$STUB_DIR/cli.txt" "$2"; shift; fi; shift; done
`,
  );
  // node: records what it was asked to run; `exchange` prints the credentials and writes the state file.
  await writeFile(
    join(bin, "node-stub.mjs"),
    `import { appendFileSync, readFileSync, rmSync, writeFileSync } from "node:fs";
const [script, command, ...args] = process.argv.slice(2);
appendFileSync(process.env.STUB_LOG, "node " + JSON.stringify({ script, command, args }) + "\\n");
const state = args.includes("--state") ? args[args.indexOf("--state") + 1] : undefined;
if (command === "exchange" && process.env.STUB_EXCHANGE_EXIT) process.exit(Number(process.env.STUB_EXCHANGE_EXIT));
if (command === "exchange") {
  if (state) writeFileSync(state, "{}", { flag: "wx", mode: 0o600 });
  process.stdout.write(readFileSync(process.env.STUB_DIR + "/credentials.env", "utf8"));
}
if (command === "revoke" && state) rmSync(state);
`,
  );
  await writeFile(
    join(bin, "node"),
    `#!/usr/bin/env bash\nexec ${JSON.stringify(process.execPath)} "$STUB_DIR/bin/node-stub.mjs" "$@"\n`,
  );
  // id: proof of injection if it ever runs.
  await writeFile(join(bin, "id"), `#!/usr/bin/env bash\necho injected >> "$STUB_DIR/pwned"\n`);
  for (const f of ["curl", "node", "id"]) await chmod(join(bin, f), 0o755);
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

interface JobRun {
  before: { code: number | null; trace: string };
  after: { code: number | null; trace: string };
  tmp: string;
  /** What the stubs were asked to do. */
  log: string;
  delivered: boolean;
}

/**
 * Runs the job like GitLab's runner: before_script and `script` in one shell, after_script in another, both
 * with `set -eo pipefail` and, as CI_DEBUG_TRACE does, `set -x`. `script` checks the delivered credentials
 * with tracing off (so the check itself prints nothing).
 */
async function runJob(
  job: Job,
  options: { prepare?: (tmp: string) => Promise<void>; env?: Record<string, string> } = {},
): Promise<JobRun> {
  n++;
  const tmp = join(work, `tmp-${n}`);
  mkdirSync(tmp);
  await rm(stubLog, { force: true });
  if (options.prepare) await options.prepare(tmp);
  const env = {
    PATH: `${bin}:${process.env.PATH ?? ""}`,
    HOME: work,
    TMPDIR: tmp,
    CI_JOB_ID: JOB_ID,
    CI_DEBUG_TRACE: "true",
    RUNPASS_ID_TOKEN: ID_TOKEN,
    STUB_LOG: stubLog,
    STUB_DIR: work,
    ...options.env,
    ...job.variables,
  };
  const expected = createHash("sha256").update(`${AWS_SECRET}\n${DEPLOY_KEY}`).digest("hex");
  const check = `{ set +x; } 2>/dev/null; if [ "$(printf '%s\\n%s' "$AWS_SECRET_ACCESS_KEY" "$DEPLOY_KEY" | sha256sum | cut -c1-64)" = ${expected} ]; then touch "$TMPDIR/delivered"; fi`;
  const shell = (lines: string[]) => {
    const r = spawnSync("bash", ["-c", ["set -eo pipefail", "set -x", ...lines].join("\n")], {
      cwd: tmp,
      env,
      encoding: "utf8",
    });
    return { code: r.status, trace: `${r.stdout}${r.stderr}` };
  };
  const before = shell([...job.before_script, check]);
  const delivered = existsSync(join(tmp, "delivered"));
  const after = shell(job.after_script);
  const log = existsSync(stubLog) ? await readFile(stubLog, "utf8") : "";
  return { before, after, tmp, log, delivered };
}

function nodeCalls(log: string): Array<{ script: string; command: string; args: string[] }> {
  return log
    .split("\n")
    .filter((l) => l.startsWith("node "))
    .map((l) => JSON.parse(l.slice(5)));
}

/** No credential in a trace: neither the exchanged values nor the job's ID token. */
function clean(trace: string): boolean {
  return !trace.includes(AWS_SECRET) && !trace.includes(DEPLOY_KEY) && !trace.includes(ID_TOKEN);
}

const OK_INPUTS = { url: "https://runpass.acme.dev", policy: "infra-apply" };

describe("the GitLab component's inputs", () => {
  it("refuses inputs that are not what they claim to be, as GitLab refuses the include", () => {
    const refused: Array<Record<string, string>> = [
      { ...OK_INPUTS, policy: 'x"; id; echo "' },
      { ...OK_INPUTS, policy: "x$(id)" },
      { ...OK_INPUTS, policy: "x\nid" },
      { ...OK_INPUTS, url: "http://runpass.acme.dev" },
      { ...OK_INPUTS, url: "https://runpass.acme.dev/$(id)" },
      { ...OK_INPUTS, url: "https://runpass.acme.dev\nid" },
      { ...OK_INPUTS, grants: "aws;id" },
      { ...OK_INPUTS, grants: "aws secrets" },
      { ...OK_INPUTS, cli_sha256: "abc" },
      { ...OK_INPUTS, cli_sha256: `${CLI_SHA256} ` },
      { ...OK_INPUTS, cli_sha256: CLI_SHA256.toUpperCase() },
    ];
    for (const inputs of refused) {
      expect(() => render(inputs), JSON.stringify(inputs)).toThrow(/does not match required RegEx pattern/);
    }
  });

  it("accepts the documented forms, and optional inputs left out", () => {
    expect(() => render(OK_INPUTS)).not.toThrow();
    expect(() =>
      render({
        url: "https://runpass.acme.dev:8443/broker/",
        policy: "api-deploy_v2.1",
        grants: "aws,secrets",
        cli_sha256: CLI_SHA256,
      }),
    ).not.toThrow();
  });

  it("checks policy names by the broker's own rule", () => {
    expect(spec.policy?.regex).toBe(POLICY_NAME.source);
  });

  it("passes every input as a variable: no input is pasted into a script line", () => {
    const job = render(OK_INPUTS);
    const scripts = [...job.before_script, ...job.after_script].join("\n");
    expect(scripts).not.toContain("infra-apply");
    expect(scripts).not.toContain("runpass.acme.dev");
    expect(job.variables).toMatchObject({
      RUNPASS_URL: OK_INPUTS.url,
      RUNPASS_POLICY: OK_INPUTS.policy,
      RUNPASS_GRANTS: "",
      RUNPASS_CLI_SHA256: "",
    });
    expect(job.id_tokens.RUNPASS_ID_TOKEN?.aud).toBe(OK_INPUTS.url);
  });
});

describe("the GitLab component's job, run under bash with CI_DEBUG_TRACE", () => {
  it("delivers the credentials with no credential in the trace, then revokes and cleans up in after_script", async () => {
    const run = await runJob(render({ ...OK_INPUTS, grants: "aws,secrets", cli_sha256: CLI_SHA256 }));
    expect(run.before.code, "before_script").toBe(0);
    expect(run.delivered).toBe(true);
    expect(clean(run.before.trace)).toBe(true);
    expect(clean(run.after.trace)).toBe(true);
    // Tracing was on (so the test would see a leak) and is back on after the exchange.
    expect(run.before.trace).toContain("+ curl ");
    expect(run.before.trace).toContain("+ '[' 0 -eq 0 ']'");

    const dir = join(run.tmp, `runpass-job-${JOB_ID}`);
    expect(run.log).toMatch(/^curl --proto =https --proto-redir =https /m);
    expect(run.log).toContain(`-o ${dir}/runpass.mjs`);
    const calls = nodeCalls(run.log);
    expect(calls.map((c) => [c.script, c.command])).toEqual([
      [`${dir}/runpass.mjs`, "exchange"],
      [`${dir}/runpass.mjs`, "revoke"],
    ]);
    expect(calls[0]?.args).toEqual([
      "--url",
      OK_INPUTS.url,
      "--policy",
      OK_INPUTS.policy,
      "--token-env",
      "RUNPASS_ID_TOKEN",
      "--state",
      `${dir}/state.json`,
      "--format",
      "env",
      "--grants",
      "aws,secrets",
    ]);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(join(work, "pwned"))).toBe(false);
  });

  it("downloads into a 0700 directory of the job's own", async () => {
    const job = render(OK_INPUTS);
    const run = await runJob({
      ...job,
      before_script: [...job.before_script, `stat -c %a "$TMPDIR/runpass-job-${JOB_ID}" > "$TMPDIR/mode"`],
    });
    expect(run.before.code).toBe(0);
    expect(Number.parseInt(await readFile(join(run.tmp, "mode"), "utf8"), 8)).toBe(0o700);
  });

  it("a malicious policy input is never executed, even if it got past the regex", async () => {
    const policy = 'x"; id; echo "';
    const run = await runJob(render({ ...OK_INPUTS, policy }, { skipRegex: true }));
    expect(existsSync(join(work, "pwned"))).toBe(false);
    const exchange = nodeCalls(run.log).find((c) => c.command === "exchange");
    expect(exchange?.args[exchange.args.indexOf("--policy") + 1]).toBe(policy);
  });

  it("refuses to run a CLI that does not match cli_sha256, in before_script and after_script", async () => {
    const run = await runJob(render({ ...OK_INPUTS, cli_sha256: "0".repeat(64) }));
    expect(run.before.code).not.toBe(0);
    expect(run.before.trace).toContain("does not match cli_sha256");
    expect(run.delivered).toBe(false);
    expect(nodeCalls(run.log)).toEqual([]);
    expect(run.after.code).toBe(0);
  });

  it("refuses a job directory someone else created first, and after_script never runs anything from it", async () => {
    const run = await runJob(render(OK_INPUTS), {
      prepare: async (tmp) => {
        const planted = join(tmp, "planted");
        await mkdir(planted);
        await writeFile(join(planted, "runpass.mjs"), "planted");
        await writeFile(join(planted, "state.json"), "{}");
        await symlink(planted, join(tmp, `runpass-job-${JOB_ID}`));
      },
    });
    expect(run.before.code).not.toBe(0);
    expect(run.delivered).toBe(false);
    expect(nodeCalls(run.log)).toEqual([]);
    expect(run.log).not.toContain("curl");
    expect(lstatSync(join(run.tmp, `runpass-job-${JOB_ID}`)).isSymbolicLink()).toBe(true);
    expect(statSync(join(run.tmp, "planted", "runpass.mjs")).size).toBe("planted".length);
  });

  it("a failed exchange fails before_script with the CLI's exit code, no credential in the trace", async () => {
    const run = await runJob(render(OK_INPUTS), { env: { STUB_EXCHANGE_EXIT: "3" } });
    expect(run.before.code).toBe(3);
    expect(run.delivered).toBe(false);
    expect(clean(run.before.trace)).toBe(true);
  });
});
