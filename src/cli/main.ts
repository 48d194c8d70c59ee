// The `runpass` command: policy check/explain, dev token, token verify, admin revoke/leases/secrets.

import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseDuration } from "../core/duration.ts";
import { errorMessage } from "../core/errors.ts";
import { adminCall, adminTarget, BrokerError } from "./admin.ts";
import { formatProblem, loadPolicyFolder } from "./build.ts";
import { adminConnections, CONNECTIONS_USAGE, checkConnectionGrants } from "./connections.ts";
import { devPort } from "./dev-keys.ts";
import { mintDevToken, readDevState } from "./dev-token.ts";
import { DOCTOR_USAGE, doctorCommand } from "./doctor.ts";
import { offlineExplain, readJwksFile } from "./explain.ts";
import { policyExplainAllCommand } from "./explain-all.ts";
import { githubAppManifestCommand, MANIFEST_USAGE } from "./github-app-manifest.ts";
import { INIT_USAGE, initCommand } from "./init.ts";
import { KEYS_USAGE, keysCommand } from "./keys-rotate.ts";
import { adminLeak } from "./leak.ts";
import { CheckReport } from "./lint-output.ts";
import { policyClaimsCommand } from "./policy-claims.ts";
import type { PolicyToolContext } from "./policy-context.ts";
import { policyDiffCommand } from "./policy-diff.ts";
import { policyTestCommand } from "./policy-tests.ts";
import { RUNNER_USAGE, runner } from "./runner.ts";
import { adminSecrets, checkSecretGrants } from "./secrets.ts";
import { UsageError } from "./usage-error.ts";
import { verifyRemote } from "./verify-token.ts";
import { WEBHOOK_SECRET_USAGE, webhookSecretCommand } from "./webhook-secret.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const POLICY_TOOLS: PolicyToolContext = { root: ROOT, policiesDir: (flag) => policiesDir(flag) };

const USAGE = `usage: runpass <command> [options]

commands:
${RUNNER_USAGE}
${INIT_USAGE}
${KEYS_USAGE}
${MANIFEST_USAGE}
${DOCTOR_USAGE}
  policy check   [--policies DIR] [--strict] [--format text|sarif] [--admin-url URL]
      Validates every policy and issuers.yaml (schema and load-time rules), then lints them for security
      (rules RP001-RP017, see docs/policy-tooling.md "Lint rules"): text prints file:line:col: error|warning RULE: message
      with indented why:/fix: lines; --format sarif prints one SARIF 2.1.0 log (for code scanning) instead.
      With --admin-url, also looks up every secrets grant's path in that broker's store (admin token as
      below): a path that does not exist, is deleted, or whose named/current version is destroyed is an error.
      Exit 0 when all load with no errors (warnings allowed), 1 on any error (or any warning with --strict),
      2 on usage errors.
  policy explain --policy NAME --token FILE [--policies DIR] [--jwks FILE] [--at ISO8601] [--audience AUD]
      Decides offline, as the server would: prints {decision, error?, reasons, claims}.
      Exit 0 on allow, 1 on deny, 2 on usage or key errors.
  policy explain --all --token FILE [--policies DIR] [--jwks FILE] [--at ISO8601] [--audience AUD]
      Verifies the token once, then evaluates the policies pinning its owner/repository/subject:
      prints {claims, allowed: [names], denied: [{policy, reasons}]}. Exit 0 if any allows, 1 if none, 2 on errors.
  policy test    [--policies DIR] [--tests DIR] [--audience AUD]
      Runs the YAML test cases in <policies>/tests/*.yaml (claims or tokens → expect allow/deny, reasons)
      and prints a table. Exit 0 when all pass, 1 on any mismatch, 2 on usage or load errors.
  policy claims  --token FILE [--out FILE] [--format yaml|json]
      Decodes a token (no verification) into a claims block for a test case (exp, iat, nbf, jti dropped).
  policy diff    --from REF [--policies DIR] [--format text|json]
      Compares the policies folder at git REF with the working tree: policies added/removed/changed,
      conditions and grants widened or narrowed. Exit 0.
  dev token      [--repo OWNER/NAME] [--owner-id ID] [--repo-id ID] [--ref REF] [--event NAME]
                 [--run-id ID] [--run-attempt N] [--aud AUD] [--ttl 10m] [--self-hosted] [--claim K=V ...]
      Mints a GitHub-shaped token from the local dev issuer (needs \`npm start\`, RUNPASS_DEV=1).
  token verify   --url BROKER_URL --audience AUD [--token FILE]
      Verifies a runpass-signed JWT against the broker's /.well-known/jwks.json, as a downstream
      service should. Reads the JWT (or a whole /v1/exchange response) from FILE or stdin.
      Prints {valid, error?, claims}; exit 0 when valid, 1 when not.
  admin revoke   [--url URL] (--run RUN | --policy NAME | --repository-id ID | --project-id ID | --issuer NAME)
      Ends matching leases now (a run is also marked ended). Prints {ended_leases, runs}.
  admin leak     [--url URL] (--value-env VAR [--source TEXT] | --gitleaks FILE | --trufflehog FILE)
      Reports leaked values (docs/leaks.md): a runpass credential ends its run, a secret version is
      quarantined. The value comes from environment variable VAR, never from the command line.
      Prints {matches, unmatched} (never a value).
  admin leases   [--url URL] [--active] [--run RUN] [--policy NAME] [--repository-id ID] [--project-id ID]
                 [--issuer NAME] [--limit N]
      Lists leases, newest first (never secrets).
  admin secrets put      PATH [--file FILE] [--binary] [--url URL]
      Stores a new version of PATH and prints {path, version}. The value is read from stdin (or FILE), never
      from the command line, and sent exactly as read (a final newline is kept); it must be UTF-8 text unless
      --binary (stored as bytes, delivered base64-encoded).
  admin secrets list     [--prefix P] [--url URL]
  admin secrets show     PATH [--url URL]
      Metadata only (versions, states, sizes, who wrote them): values can never be read back.
  admin secrets rollback PATH --version N [--url URL]
      Makes a copy of version N the new current version.
  admin secrets delete   PATH [--url URL]
      Soft delete: PATH stops delivering; versions stay (a put or rollback restores it).
  admin secrets destroy  PATH --version N [--url URL]
      Erases version N's ciphertext for good.
  admin secrets rewrap   [--url URL]
      Re-wraps every data key under the active master key; exit 1 if any could not be (listed on stderr).
  admin secrets export   --out FILE [--url URL]
      Writes the secret store's backup to a new 0600 FILE: ciphertexts and wrapped data keys only, useless
      without the master keys. Prints counts.
  admin secrets import   FILE [--url URL]
      Restores an export; a path the store already has is kept as it is (listed on stderr).
${CONNECTIONS_USAGE}
${WEBHOOK_SECRET_USAGE}
      Admin commands use RUNPASS_URL (default the local broker) and RUNPASS_ADMIN_TOKEN (for a local
      broker, the generated token in .dev/keys.json); writes send X-Runpass-Actor: user@host.
      A broker refusal exits 1 with its error description.

RUNPASS_POLICIES_DIR sets the default policies folder; RUNPASS_DEV=1 allows loopback http issuers.`;

function policiesDir(flag: string | undefined): string {
  return resolve(flag ?? process.env.RUNPASS_POLICIES_DIR ?? resolve(ROOT, "policies"));
}

/** The policies folder compiled as `npm run deploy` (or, with `dev`, `npm start` on `port`) would compile it. */
async function buildLocal(flag: string | undefined, dev = process.env.RUNPASS_DEV === "1", port = devPort()) {
  const dir = policiesDir(flag);
  const result = await loadPolicyFolder({ root: ROOT, dir, dev, port });
  if (!result.bundle) {
    for (const p of result.problems) console.error(formatProblem(p));
    throw new UsageError(`the policies in ${dir} do not load (run \`runpass policy check\`)`);
  }
  return result.bundle;
}

async function policyCheck(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      policies: { type: "string" },
      "admin-url": { type: "string" },
      strict: { type: "boolean", default: false },
      format: { type: "string", default: "text" },
    },
    strict: true,
  });
  const format = values.format;
  if (format !== "text" && format !== "sarif")
    throw new UsageError(`--format must be text or sarif, not "${format}"`);
  const dir = policiesDir(values.policies);
  // Resolved first: a missing admin token is a usage problem, whatever the policies say.
  const target = values["admin-url"] !== undefined ? adminTarget(ROOT, values["admin-url"]) : undefined;
  const dev = process.env.RUNPASS_DEV === "1";
  const port = devPort();
  const result = await loadPolicyFolder({ root: ROOT, dir, dev, port, lint: true });
  const report = new CheckReport(format);
  report.ignored(result.ignored);
  report.add(result.problems, result.findings);
  for (const n of result.notices) report.note(n);
  if (!result.bundle) return report.finish({ dir, strict: values.strict });
  let secrets = "";
  if (target) {
    let checked: Awaited<ReturnType<typeof checkSecretGrants>>;
    try {
      checked = await checkSecretGrants(target, dir, result.bundle);
      const connections = await checkConnectionGrants(target, dir, result.bundle);
      checked = { problems: [...checked.problems, ...connections.problems], checked: checked.checked };
    } catch (e) {
      if (!(e instanceof BrokerError)) throw e;
      console.error(`runpass: could not look up secrets at ${target.url}: ${e.message}`);
      return 1;
    }
    report.add(checked.problems);
    if (checked.problems.length)
      return report.finish({ dir, strict: values.strict, where: ` (secrets at ${target.url})` });
    secrets = `, ${checked.checked} secret grant${checked.checked === 1 ? "" : "s"} found at ${target.url}`;
  }
  return report.finish({
    dir,
    strict: values.strict,
    ok: `ok: ${result.bundle.policies.length} policies, ${result.bundle.issuers.length} issuers${secrets} (${result.bundle.version})`,
  });
}

async function policyExplain(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      policies: { type: "string" },
      policy: { type: "string" },
      token: { type: "string" },
      jwks: { type: "string" },
      at: { type: "string" },
      audience: { type: "string" },
    },
    strict: true,
  });
  if (!values.policy || !values.token)
    throw new UsageError("policy explain needs --policy NAME and --token FILE");
  let now = Date.now();
  if (values.at !== undefined) {
    now = Date.parse(values.at);
    if (Number.isNaN(now)) throw new UsageError(`--at "${values.at}" is not an ISO 8601 time`);
  }
  const dir = policiesDir(values.policies);
  const loaded = await loadPolicyFolder({
    root: ROOT,
    dir,
    dev: process.env.RUNPASS_DEV === "1",
    port: devPort(),
  });
  if (!loaded.bundle) {
    for (const p of loaded.problems) console.error(formatProblem(p));
    throw new UsageError(`the policies in ${dir} do not load (run \`runpass policy check\`)`);
  }
  const token = (await readFile(values.token, "utf8")).trim();
  const audience = values.audience ?? process.env.RUNPASS_AUDIENCE;
  const result = await offlineExplain({
    bundle: loaded.bundle,
    policy: values.policy,
    token,
    clock: () => now,
    ...(values.jwks ? { jwks: await readJwksFile(values.jwks) } : {}),
    ...(audience ? { audience } : {}),
  });
  console.log(JSON.stringify(result, null, 2));
  if (result.error === "temporarily_unavailable") return 2;
  return result.decision === "allow" ? 0 : 1;
}

async function devToken(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      repo: { type: "string", default: "acme/api" },
      "owner-id": { type: "string", default: "1000001" },
      "repo-id": { type: "string", default: "2000001" },
      ref: { type: "string", default: "refs/heads/main" },
      event: { type: "string", default: "push" },
      "run-id": { type: "string" },
      "run-attempt": { type: "string", default: "1" },
      aud: { type: "string" },
      ttl: { type: "string", default: "10m" },
      "self-hosted": { type: "boolean", default: false },
      claim: { type: "string", multiple: true, default: [] },
    },
    strict: true,
  });
  const ttlSeconds = parseDuration(values.ttl);
  if (ttlSeconds === undefined) throw new UsageError(`--ttl "${values.ttl}" is not a duration such as 10m`);
  if (!/^[^/\s]+\/[^/\s]+$/.test(values.repo)) throw new UsageError("--repo must be OWNER/NAME");
  const extra: Record<string, string> = {};
  for (const kv of values.claim) {
    const i = kv.indexOf("=");
    if (i < 1) throw new UsageError(`--claim "${kv}" must be NAME=VALUE`);
    extra[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const { keys, state } = await readDevState(ROOT);
  const token = await mintDevToken(keys, state, {
    repo: values.repo,
    ownerId: values["owner-id"],
    repoId: values["repo-id"],
    ref: values.ref,
    event: values.event,
    runId: values["run-id"] ?? String(Math.floor(Math.random() * 9e9) + 1e9),
    runAttempt: values["run-attempt"],
    ttlSeconds,
    runnerEnvironment: values["self-hosted"] ? "self-hosted" : "github-hosted",
    extra,
    ...(values.aud ? { audience: values.aud } : {}),
  });
  process.stdout.write(`${token}\n`);
  return 0;
}

async function tokenVerify(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { url: { type: "string" }, audience: { type: "string" }, token: { type: "string" } },
    strict: true,
  });
  if (!values.url || !values.audience) throw new UsageError("token verify needs --url and --audience");
  const input = values.token ? await readFile(values.token, "utf8") : await readStdin();
  const result = await verifyRemote({ url: values.url, audience: values.audience, input });
  console.log(JSON.stringify(result, null, 2));
  return result.valid ? 0 : 1;
}

const FILTER_OPTIONS = {
  url: { type: "string" },
  run: { type: "string" },
  policy: { type: "string" },
  "repository-id": { type: "string" },
  "project-id": { type: "string" },
  issuer: { type: "string" },
} as const;

function filterOf(values: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [flag, field] of [
    ["run", "run"],
    ["policy", "policy"],
    ["repository-id", "repository_id"],
    ["project-id", "project_id"],
    ["issuer", "issuer"],
  ] as const) {
    const v = values[flag];
    if (typeof v === "string") out[field] = v;
  }
  return out;
}

async function adminRevoke(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: FILTER_OPTIONS, strict: true });
  const filter = filterOf(values);
  if (Object.keys(filter).length !== 1) {
    throw new UsageError(
      "admin revoke needs exactly one of --run, --policy, --repository-id, --project-id, --issuer",
    );
  }
  const target = adminTarget(ROOT, values.url);
  const result = await adminCall(target, "/v1/admin/revoke", {
    method: "POST",
    body: JSON.stringify(filter),
  });
  console.log(JSON.stringify(result, null, 2));
  return 0;
}

async function adminLeases(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...FILTER_OPTIONS, active: { type: "boolean", default: false }, limit: { type: "string" } },
    strict: true,
  });
  const query = new URLSearchParams(filterOf(values));
  if (values.active) query.set("active", "1");
  if (values.limit) query.set("limit", values.limit);
  const target = adminTarget(ROOT, values.url);
  const result = await adminCall(target, `/v1/admin/leases?${query}`);
  console.log(JSON.stringify(result, null, 2));
  return 0;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [group, command, ...rest] = argv;
  if (group === "exchange" || group === "revoke") {
    return (await runner(group, argv.slice(1))) as number;
  }
  try {
    if (group === "init") return await initCommand(argv.slice(1));
    if (group === "keys") return await keysCommand(argv.slice(1));
    if (group === "github-app" && command === "manifest")
      return await githubAppManifestCommand(rest, async (dir) => (await buildLocal(dir)).policies);
    if (group === "doctor")
      return await doctorCommand(argv.slice(1), async (dir, dev, port) => {
        try {
          return await buildLocal(dir, dev, port);
        } catch (e) {
          return errorMessage(e);
        }
      });
    if (group === "policy" && command === "check") return await policyCheck(rest);
    if (group === "policy" && command === "explain" && rest.includes("--all"))
      return await policyExplainAllCommand(POLICY_TOOLS, rest);
    if (group === "policy" && command === "explain") return await policyExplain(rest);
    if (group === "policy" && command === "test") return await policyTestCommand(POLICY_TOOLS, rest);
    if (group === "policy" && command === "claims") return await policyClaimsCommand(rest);
    if (group === "policy" && command === "diff") return await policyDiffCommand(POLICY_TOOLS, rest);
    if (group === "dev" && command === "token") return await devToken(rest);
    if (group === "token" && command === "verify") return await tokenVerify(rest);
    if (group === "admin" && command === "revoke") return await adminRevoke(rest);
    if (group === "admin" && command === "leases") return await adminLeases(rest);
    if (group === "admin" && command === "leak") return await adminLeak(ROOT, rest);
    if (group === "admin" && command === "secrets") return await adminSecrets(ROOT, rest);
    if (group === "admin" && command === "connections") return await adminConnections(ROOT, rest);
    if (group === "admin" && command === "webhook-secret") return await webhookSecretCommand(rest);
    if (group === undefined || group === "help" || group === "--help" || group === "-h") {
      console.log(USAGE);
      return 0;
    }
    throw new UsageError(`unknown command "${[group, command].filter(Boolean).join(" ")}"`);
  } catch (e) {
    console.error(`runpass: ${errorMessage(e)}`);
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(USAGE);
    }
    return 2;
  }
}
