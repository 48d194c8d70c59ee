// What the action masks, exports and outputs for an exchange response. Pure: no @actions/core, no I/O.

import type { ExchangeResponse } from "../../src/client/exchange-client.ts";
import { collect, GITHUB_TOKEN_ENV, GRANT_ENV_NAMES } from "../../src/client/grant-exports.ts";

/** Environment variable names (the broker's rule for secret output names). */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** Names that change how the job runs or belong to the runner: never overwritten by a delivered value. */
const RUNNER_RESERVED =
  /^(PATH|HOME|SHELL|USER|PWD|IFS|ENV|BASH_ENV|CI|LD_[A-Z0-9_]*|DYLD_[A-Z0-9_]*|NODE_OPTIONS|PYTHONPATH|GITHUB_[A-Z0-9_]*|RUNNER_[A-Z0-9_]*|ACTIONS_[A-Z0-9_]*|GITLAB_[A-Z0-9_]*|CI_[A-Z0-9_]*)$/i;

/** The variables the grants export (aws, gcp, azure, postgres, the token, file paths), upper-cased. */
const GRANT_ENV = new Set(GRANT_ENV_NAMES.map((name) => name.toUpperCase()));

/**
 * Why `github-token-env` is refused, or undefined. `GITHUB_TOKEN` itself is allowed (the user asked for it), and
 * so is the default, the github grant's own variable.
 */
export function githubTokenEnvProblem(name: string): string | undefined {
  if (name === "GITHUB_TOKEN" || name === GITHUB_TOKEN_ENV) return undefined;
  if (!ENV_NAME.test(name)) return `github-token-env "${name}" is not an environment variable name`;
  const upper = name.toUpperCase();
  if (GRANT_ENV.has(upper) || RUNNER_RESERVED.test(name)) {
    return `github-token-env "${name}" would overwrite a variable the runner or this action sets`;
  }
  return undefined;
}

/** Secret output names that cannot be exported (collisions and reserved names), with why. */
export function secretNameProblems(names: string[], githubTokenEnv: string): string[] {
  const problems: string[] = [];
  for (const name of names) {
    const upper = name.toUpperCase();
    if (!ENV_NAME.test(name)) problems.push(`${JSON.stringify(name)} is not an environment variable name`);
    else if (
      GRANT_ENV.has(upper) ||
      upper.startsWith("RUNPASS_") ||
      (githubTokenEnv && upper === githubTokenEnv.toUpperCase())
    )
      problems.push(`${name} collides with a variable this action exports`);
    else if (RUNNER_RESERVED.test(name)) problems.push(`${name} would overwrite a runner or shell variable`);
  }
  return problems;
}

function lines(value: string): string[] {
  const out: string[] = [];
  for (const line of value.split(/\r\n|\n|\r/)) {
    if (line.trim() === "") continue;
    out.push(line);
    if (line.trim() !== line) out.push(line.trim());
  }
  return out;
}

/** A base64 secret's decoded text, when it is UTF-8 text; undefined for binary. */
export function decodeBase64Text(value: string): string | undefined {
  try {
    const bytes = Uint8Array.from(atob(value.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Every value to register with the runner's log masker, before anything else happens: each credential, the
 * revoke token, each secret whole and line by line (the masker matches within one log line, so a multi-line
 * value is only masked through its lines), and for base64 secrets the decoded text and its lines too.
 */
export function valuesToMask(r: ExchangeResponse): string[] {
  const out = new Set<string>();
  const add = (v: string | undefined) => {
    if (!v || v.trim() === "") return;
    out.add(v);
    for (const line of lines(v)) out.add(line);
  };
  add(r.lease.revoke_token);
  for (const value of collect(r.credentials, (grant, credential) => grant.values(credential))) add(value);
  for (const [name, value] of Object.entries(r.credentials.secrets ?? {})) {
    if (r.secret_encodings?.[name] === "base64") add(decodeBase64Text(value));
  }
  return [...out];
}

export interface Delivery {
  /** In export order. */
  env: Array<[string, string]>;
  outputs: Array<[string, string]>;
}

/** The environment variables and step outputs for a response (masking must already have happened). */
export function plan(
  r: ExchangeResponse,
  o: {
    exportEnv: boolean;
    credentialOutputs: boolean;
    githubTokenEnv: string;
    /** Credential files written, [variable, path]: exported, and output as e.g. `x509-cert-file`. */
    files?: Array<[string, string]>;
  },
): Delivery {
  const env: Array<[string, string]> = [];
  const outputs: Array<[string, string]> = [
    ["lease-id", r.lease.id],
    ["expires-at", r.lease.expires_at],
    ["run", r.lease.run],
  ];
  env.push(
    ...collect(r.credentials, (grant, credential) =>
      grant.env(credential).flatMap(([name, value]): Array<[string, string]> => {
        // The github token goes where the workflow said (nowhere when `github-token-env` is empty).
        if (name !== GITHUB_TOKEN_ENV) return [[name, value]];
        return o.githubTokenEnv ? [[o.githubTokenEnv, value]] : [];
      }),
    ),
  );
  outputs.push(
    ...collect(r.credentials, (grant, credential) => [
      ...grant.outputs(credential),
      ...(o.credentialOutputs ? grant.credentialOutputs(credential) : []),
    ]),
  );
  for (const [name, path] of o.files ?? []) {
    env.push([name, path]);
    outputs.push([
      name
        .replace(/^RUNPASS_/, "")
        .toLowerCase()
        .replaceAll("_", "-"),
      path,
    ]);
  }
  return { env: o.exportEnv ? env : [], outputs };
}
