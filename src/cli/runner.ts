// The runner side of runpass: `exchange` and `revoke`, for GitLab and any CI system. Part of the `runpass`
// command, and also bundled alone into one dependency-free file the broker serves at /v1/cli/runpass.mjs
// (so a runner with Node but no npm access can use it). Exit codes: 0 ok, 1 denied, 2 usage, 3 unavailable.

import { randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BrokerUrlError, checkBrokerUrl } from "../client/broker-url.ts";
import { type ExchangeResponse, exchange, formatExchangeError, revoke } from "../client/exchange-client.ts";
import { type CredentialFile, collect, KeyMismatchError } from "../client/grant-exports.ts";
import { generateRunnerKeys } from "../client/runner-keys.ts";
import { ENV_NAME } from "../core/secrets/paths.ts";
import { removeCredentialFiles, writeCredentialFiles } from "./credential-files.ts";
import { ExistingFileError, refuseExisting, writeExclusive } from "./exclusive-file.ts";

export const EXIT = { ok: 0, denied: 1, usage: 2, unavailable: 3 } as const;

export const RUNNER_USAGE = `  exchange       --url URL --policy NAME [--token-env VAR | --token-file FILE] [--grants aws,secrets]
                 [--ttl 30m] [--format env|dotenv|json|github-env] [--out FILE] [--state FILE] [--timeout 60]
      Exchanges the job's OIDC token (default from $RUNPASS_ID_TOKEN) and prints the credentials in the
      chosen format (env: \`export NAME='…'\` lines for eval; dotenv; json; github-env for $GITHUB_ENV).
      --out writes them to FILE (mode 0600) instead of stdout. Keeps the lease in a state file for revoke.
      --out and the state file are created fresh: an existing file or symlink there is refused. The URL
      must be https:// (http:// only to 127.0.0.1, localhost, [::1]). A variable name that is not a shell
      name ([A-Za-z_][A-Za-z0-9_]*) in the broker's answer is refused: nothing printed or written, exit 3.
      Retries 5xx/429/network errors with backoff for up to --timeout seconds (default 60).
      Certificates (x509) are written with their key to 0600 files in a new folder in the job's temp dir
      ($RUNNER_TEMP or $TMPDIR), their paths exported (RUNPASS_X509_CERT_FILE…); the key is made here, never sent.
      Exit 0 ok, 1 denied (reasons printed when the broker shows them), 2 usage, 3 unavailable.
  revoke         [--state FILE] [--url URL]
      Ends the lease recorded by \`exchange\` (DELETE /v1/leases/{id}), removes the credential files and the
      state file.
      Never fails the job: exit 0.`;

export type Format = "env" | "dotenv" | "json" | "github-env";

/** The environment variables a response becomes (secrets under their policy names; `files`: [variable, path]). */
export function variables(
  res: ExchangeResponse,
  files: Array<[string, string]> = [],
): Array<[string, string]> {
  const out = collect(res.credentials, (grant, credential) => grant.env(credential));
  out.push(...files);
  out.push(["RUNPASS_LEASE_ID", res.lease.id], ["RUNPASS_LEASE_EXPIRES_AT", res.lease.expires_at]);
  return out;
}

/**
 * The variable names of a response that are not shell names, which no output format may carry: a name comes
 * from the broker's answer, and `export NAME=…`, `NAME=…` or `NAME<<EOF` with a hostile name is code, not data.
 */
export function unsafeNames(res: ExchangeResponse): string[] {
  return variables(res)
    .map(([name]) => name)
    .filter((name) => !ENV_NAME.test(name));
}

/** A refused name as it may be shown: JSON-quoted (no raw control characters), and not too long. */
function shownName(name: string): string {
  return JSON.stringify(name.length > 100 ? `${name.slice(0, 100)}…` : name);
}

/** POSIX single quotes: nothing inside is expanded; a quote is closed, escaped and reopened. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** dotenv double quotes, with the escapes dotenv readers (docker, python-dotenv, wrangler) understand. */
export function dotenvQuote(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\$/g, "\\$").replace(/\r/g, "\\r").replace(/\n/g, "\\n")}"`;
}

/** Renders the variables in a format (`files`: the credential files written, [variable, path]). */
export function render(res: ExchangeResponse, format: Format, files: Array<[string, string]> = []): string {
  if (format === "json") {
    const { revoke_token: _secret, ...lease } = res.lease;
    const written = files.length ? { files: Object.fromEntries(files) } : {};
    return `${JSON.stringify({ ...res, lease, ...written }, null, 2)}\n`;
  }
  const vars = variables(res, files);
  if (format === "env") return vars.map(([k, v]) => `export ${k}=${shellQuote(v)}\n`).join("");
  if (format === "dotenv") return vars.map(([k, v]) => `${k}=${dotenvQuote(v)}\n`).join("");
  // $GITHUB_ENV multi-line syntax, with a delimiter that cannot occur in the value.
  return vars
    .map(([k, v]) => {
      let delim = `RUNPASS_EOF_${randomBytes(8).toString("hex")}`;
      while (v.includes(delim)) delim = `RUNPASS_EOF_${randomBytes(8).toString("hex")}`;
      return `${k}<<${delim}\n${v}\n${delim}\n`;
    })
    .join("");
}

/** Where `exchange` keeps the lease for `revoke`: the job's temp dir, one file per job. */
export function defaultStateFile(env: NodeJS.ProcessEnv = process.env): string {
  const job =
    env.CI_JOB_ID ?? env.GITHUB_RUN_ID ?? env.BUILDKITE_JOB_ID ?? env.CIRCLE_WORKFLOW_JOB_ID ?? "local";
  const dir = env.RUNNER_TEMP ?? env.TMPDIR ?? tmpdir();
  return join(dir, `runpass-state-${job.replace(/[^\w.-]/g, "_")}.json`);
}

class Usage extends Error {}

async function exchangeCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      url: { type: "string" },
      policy: { type: "string" },
      "token-env": { type: "string" },
      "token-file": { type: "string" },
      grants: { type: "string" },
      ttl: { type: "string" },
      format: { type: "string", default: "env" },
      out: { type: "string" },
      state: { type: "string" },
      timeout: { type: "string" },
    },
    strict: true,
  });
  const rawUrl = values.url ?? process.env.RUNPASS_URL;
  let budgetMs: number | undefined;
  if (values.timeout !== undefined) {
    budgetMs = Number(values.timeout) * 1000;
    if (!Number.isFinite(budgetMs) || budgetMs <= 0) throw new Usage("--timeout is a number of seconds");
  }
  if (!rawUrl || !values.policy) throw new Usage("exchange needs --url (or RUNPASS_URL) and --policy");
  const url = checkBrokerUrl(rawUrl, values.url ? "--url" : "RUNPASS_URL");
  const format = values.format as Format;
  if (!["env", "dotenv", "json", "github-env"].includes(format)) {
    throw new Usage("--format must be env, dotenv, json or github-env");
  }
  if (values["token-env"] && values["token-file"])
    throw new Usage("give --token-env or --token-file, not both");
  const tokenEnv = values["token-env"] ?? "RUNPASS_ID_TOKEN";
  const readToken = (): string => {
    if (!values["token-file"]) return (process.env[tokenEnv] ?? "").trim();
    try {
      return readFileSync(values["token-file"], "utf8").trim();
    } catch {
      return "";
    }
  };
  if (!readToken()) {
    // A job without its ID token is a configuration problem, not an outage.
    throw new Usage(
      values["token-file"]
        ? `${values["token-file"]} is missing or empty`
        : `$${tokenEnv} is empty: in GitLab CI add \`id_tokens: { ${tokenEnv}: { aud: ${url.replace(/\/+$/, "")} } }\` to the job`,
    );
  }
  // Checked before the exchange so a refusal costs no lease; created exclusively after it all the same.
  const state = values.state ?? defaultStateFile();
  refuseExisting(state, "the state file");
  if (values.out) refuseExisting(values.out, "--out");
  const getToken = async (): Promise<string> => readToken();
  // Always, whatever the policy: the runner cannot know its grants, and only public key material is sent.
  const keys = await generateRunnerKeys();
  const result = await exchange({
    url,
    policy: values.policy,
    getToken,
    inputs: keys.inputs,
    ...(values.grants
      ? {
          grants: values.grants
            .split(",")
            .map((g) => g.trim())
            .filter(Boolean),
        }
      : {}),
    ...(values.ttl ? { ttl: values.ttl } : {}),
    userAgent: "runpass-cli/1",
    ...(budgetMs !== undefined ? { budgetMs, attemptTimeoutMs: Math.min(budgetMs, 30_000) } : {}),
  });
  if (!result.ok) {
    console.error(`runpass: ${formatExchangeError(result.error)}`);
    return EXIT[result.error.kind];
  }
  const res = result.response;
  const unsafe = unsafeNames(res);
  if (unsafe.length) {
    console.error(
      `runpass: refusing variable name ${unsafe.map(shownName).join(", ")} in the broker's answer: not a shell variable name ([A-Za-z_][A-Za-z0-9_]*); nothing was printed or written`,
    );
    await endUndelivered(url, res);
    return EXIT.unavailable;
  }
  let files: CredentialFile[];
  try {
    files = collect(res.credentials, (grant, credential) => grant.files?.(credential, keys) ?? []);
  } catch (e) {
    if (!(e instanceof KeyMismatchError)) throw e;
    console.error(`runpass: ${e.message}; nothing was printed or written`);
    await endUndelivered(url, res);
    return EXIT.unavailable;
  }
  let text: string;
  let stateWritten = false;
  let written: ReturnType<typeof writeCredentialFiles> | undefined;
  try {
    if (files.length) written = writeCredentialFiles(files);
    text = render(res, format, written?.paths ?? []);
    writeExclusive(
      state,
      `${JSON.stringify({ url, lease_id: res.lease.id, revoke_token: res.lease.revoke_token, expires_at: res.lease.expires_at, ...(written ? { files_dir: written.dir } : {}) })}\n`,
      "the state file",
    );
    stateWritten = true;
    if (values.out) writeExclusive(values.out, text, "--out");
  } catch (e) {
    // E.g. a file created at the path since the check: the credentials go nowhere, so their lease ends here.
    if (stateWritten) rmSync(state, { force: true });
    removeCredentialFiles(written?.dir);
    await endUndelivered(url, res);
    throw e;
  }
  if (values.out) {
    console.error(
      `runpass: credentials written to ${values.out}; lease ${res.lease.id} until ${res.lease.expires_at}`,
    );
  } else {
    process.stdout.write(text);
    console.error(`runpass: lease ${res.lease.id} until ${res.lease.expires_at}`);
  }
  return EXIT.ok;
}

/** Ends the lease of credentials the CLI refused to deliver; a failure only leaves it to the run's end or TTL. */
async function endUndelivered(url: string, res: ExchangeResponse): Promise<void> {
  const ended = await revoke({ url, leaseId: res.lease.id, revokeToken: res.lease.revoke_token });
  console.error(
    ended.ok
      ? `runpass: lease ${res.lease.id} ended`
      : `runpass: warning: could not end lease ${res.lease.id} (${ended.code}); it ends with the run or its TTL`,
  );
}

async function revokeCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { state: { type: "string" }, url: { type: "string" } },
    strict: true,
  });
  const file = values.state ?? defaultStateFile();
  let state: { url?: string; lease_id?: string; revoke_token?: string; files_dir?: string };
  try {
    state = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    console.error(
      `runpass: no lease to revoke (${file} not found); the run's end and the lease TTL end it anyway`,
    );
    return EXIT.ok;
  }
  // The job is done with its certificates and keys whether or not the broker can be reached.
  if (removeCredentialFiles(state.files_dir)) console.error("runpass: credential files removed");
  const rawUrl = values.url ?? state.url;
  if (!rawUrl || !state.lease_id || !state.revoke_token) {
    console.error(`runpass: ${file} is not a runpass state file`);
    return EXIT.ok;
  }
  let url: string;
  try {
    url = checkBrokerUrl(rawUrl, values.url ? "--url" : `the url in ${file}`);
  } catch (e) {
    if (!(e instanceof BrokerUrlError)) throw e;
    console.error(
      `runpass: warning: not revoking lease ${state.lease_id}: ${e.message}; it ends with the run or its TTL`,
    );
    return EXIT.ok;
  }
  const result = await revoke({ url, leaseId: state.lease_id, revokeToken: state.revoke_token });
  if (result.ok) {
    console.error(`runpass: lease ${state.lease_id} ended`);
    // Ended for good: the revoke token is useless now, and the path is free for the next exchange.
    rmSync(file, { force: true });
  } else
    console.error(
      `runpass: warning: could not end lease ${state.lease_id} (${result.code}); it ends with the run or its TTL`,
    );
  return EXIT.ok;
}

/** Runs `exchange` or `revoke`; undefined when `command` is neither. */
export async function runner(command: string | undefined, args: string[]): Promise<number | undefined> {
  try {
    if (command === "exchange") return await exchangeCommand(args);
    if (command === "revoke") return await revokeCommand(args);
    return undefined;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    console.error(`runpass: ${message}`);
    if (e instanceof BrokerUrlError || e instanceof ExistingFileError) return EXIT.usage;
    if (e instanceof Usage || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`usage:\n${RUNNER_USAGE}`);
      return EXIT.usage;
    }
    return EXIT.unavailable;
  }
}
