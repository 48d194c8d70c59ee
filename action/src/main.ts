// The action's main step: the job's OIDC token → POST /v1/exchange → masked env vars and step outputs.
// Order matters: every credential is registered with the log masker before it is written anywhere.

import * as core from "@actions/core";
import { writeCredentialFiles } from "../../src/cli/credential-files.ts";
import { BrokerUrlError, checkBrokerUrl } from "../../src/client/broker-url.ts";
import { ExchangeError, exchange, formatExchangeError } from "../../src/client/exchange-client.ts";
import { type CredentialFile, collect, KeyMismatchError } from "../../src/client/grant-exports.ts";
import { generateRunnerKeys } from "../../src/client/runner-keys.ts";
import { githubTokenEnvProblem, plan, secretNameProblems, valuesToMask } from "./deliver.ts";

const USER_AGENT = "runpass-action/1";

/** Thrown for bad inputs: the message is the whole story. */
class InputError extends Error {}

function input(name: string, fallback = ""): string {
  return core.getInput(name) || fallback;
}

function booleanInput(name: string, fallback: boolean): boolean {
  const v = core.getInput(name);
  if (v === "") return fallback;
  if (/^(true|yes|1)$/i.test(v)) return true;
  if (/^(false|no|0)$/i.test(v)) return false;
  throw new InputError(`input ${name} must be true or false, not "${v}"`);
}

/** https, or http to a loopback broker only: the OIDC token must not cross a network in clear text. */
function brokerUrl(raw: string): string {
  try {
    return checkBrokerUrl(raw, "input url");
  } catch (e) {
    if (e instanceof BrokerUrlError) throw new InputError(e.message);
    throw e;
  }
}

function oneLine(message: string): string {
  return message.replace(/\s+/g, " ").trim().slice(0, 200);
}

async function run(): Promise<void> {
  const url = brokerUrl(core.getInput("url", { required: true }));
  const policy = core.getInput("policy", { required: true });
  const audience = input("audience", url);
  const grants = input("grants")
    .split(",")
    .map((g) => g.trim())
    .filter(Boolean);
  const ttl = input("ttl");
  const exportEnv = booleanInput("export-env", true);
  const outputFormat = input("output-format", "outputs");
  if (outputFormat !== "outputs" && outputFormat !== "env") {
    throw new InputError(`input output-format must be "outputs" or "env", not "${outputFormat}"`);
  }
  if (outputFormat === "env" && !exportEnv) {
    throw new InputError("output-format: env with export-env: false would deliver no credentials");
  }
  const githubTokenEnv = input("github-token-env", "RUNPASS_GITHUB_TOKEN");
  const envProblem = githubTokenEnvProblem(githubTokenEnv);
  if (envProblem) throw new InputError(envProblem);

  if (!process.env.ACTIONS_ID_TOKEN_REQUEST_URL || !process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) {
    core.setFailed(
      "runpass: no OIDC token available to this job: the workflow or job needs `permissions: id-token: write`",
    );
    return;
  }

  // Always, whatever the policy: the action cannot know its grants, and only public key material is sent. The
  // X.509 library loads while GitHub mints the job's OIDC token, so the two waits overlap.
  const fetchToken = async (): Promise<string> => {
    try {
      // core.getIDToken masks the token itself; a fresh one is minted on every call.
      return await core.getIDToken(audience);
    } catch (e) {
      throw new Error(oneLine(e instanceof Error ? e.message : String(e)));
    }
  };
  let firstToken: Promise<string> | undefined = fetchToken();
  firstToken.catch(() => undefined); // awaited by the exchange
  const keys = await generateRunnerKeys();
  const result = await exchange({
    url,
    policy,
    inputs: keys.inputs,
    ...(grants.length ? { grants } : {}),
    ...(ttl ? { ttl } : {}),
    userAgent: USER_AGENT,
    getToken: () => {
      const token = firstToken ?? fetchToken();
      firstToken = undefined;
      return token;
    },
  });
  if (!result.ok) {
    fail(result.error, policy);
    return;
  }
  const response = result.response;

  // 1. Mask, before anything else is written.
  for (const value of valuesToMask(response)) core.setSecret(value);
  for (const line of keys.x509.privateKeyPem.split("\n").filter((l) => l && !l.startsWith("-----")))
    core.setSecret(line);

  // 2. Remember the lease for the post step (which revokes it even if this step fails from here on).
  core.saveState("lease_id", response.lease.id);
  core.saveState("revoke_token", response.lease.revoke_token);
  core.saveState("url", url);

  // 3. Refuse secret names that would overwrite what the runner or this action sets.
  if (exportEnv) {
    const problems = secretNameProblems(Object.keys(response.credentials.secrets ?? {}), githubTokenEnv);
    if (problems.length) {
      core.setFailed(`runpass: refusing to export secrets: ${problems.join("; ")}`);
      return;
    }
  }

  // 4. Certificates and their keys become 0600 files in RUNNER_TEMP, removed by the post step.
  let files: CredentialFile[];
  try {
    files = collect(response.credentials, (grant, credential) => grant.files?.(credential, keys) ?? []);
  } catch (e) {
    if (!(e instanceof KeyMismatchError)) throw e;
    core.setFailed(`runpass: ${e.message}; nothing was written (the post step ends the lease)`);
    return;
  }
  const written = files.length ? writeCredentialFiles(files) : undefined;
  if (written) core.saveState("files_dir", written.dir);

  // 5. Deliver.
  const delivery = plan(response, {
    exportEnv,
    credentialOutputs: outputFormat === "outputs",
    githubTokenEnv,
    files: written?.paths ?? [],
  });
  for (const [name, value] of delivery.env) core.exportVariable(name, value);
  for (const [name, value] of delivery.outputs) core.setOutput(name, value);

  const granted = Object.keys(response.credentials).join(", ") || "none";
  const exported = delivery.env.map(([name]) => name);
  core.info(
    `runpass: lease ${response.lease.id} for run ${response.lease.run} until ${response.lease.expires_at} ` +
      `(policy ${response.policy}, grants: ${granted}, request_id ${result.requestId ?? "?"})`,
  );
  core.info(
    exported.length
      ? `runpass: exported ${exported.join(", ")}`
      : "runpass: nothing exported to the environment (export-env: false)",
  );
}

function fail(error: ExchangeError, policy: string): void {
  core.setFailed(`runpass: ${formatExchangeError(error)}`);
  if (error.kind === "denied" && error.reasons.length === 0 && error.code === "access_denied") {
    core.info(
      `runpass: reasons are shown only when the repository's owner is the owner policy "${policy}" pins; ` +
        "the platform team can look the request_id up in the audit log",
    );
  }
}

try {
  await run();
} catch (e) {
  if (e instanceof InputError) core.setFailed(`runpass: ${e.message}`);
  else if (e instanceof ExchangeError) core.setFailed(`runpass: ${formatExchangeError(e)}`);
  else core.setFailed(`runpass: ${oneLine(e instanceof Error ? e.message : String(e))}`);
}
