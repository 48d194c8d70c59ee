// What each grant's credential becomes on a runner (docs/architecture.md, "Adding a grant"): environment
// variables, step outputs, and the values to mask. The clients (action, runner CLI) are bundled without the
// broker's grant modules, so this is their mirror of the registry; its type requires an entry for every grant
// name, and a test checks `values` against the broker modules' own list, so a new grant cannot be forgotten here.

import type { Credentials } from "../core/grants/issue.ts";
import type { GrantName } from "../core/policy/types.ts";

/** The variable the github grant's token is exported under unless the action is told otherwise. */
export const GITHUB_TOKEN_ENV = "RUNPASS_GITHUB_TOKEN";

export interface GrantExports<C> {
  /** Environment variables, in export order. */
  env(credential: C): Array<[string, string]>;
  /** Step outputs that are not credentials (always set). */
  outputs(credential: C): Array<[string, string]>;
  /** Step outputs that are credentials (set only when the action is asked to). */
  credentialOutputs(credential: C): Array<[string, string]>;
  /** Every credential value, for the runner's log masker. */
  values(credential: C): string[];
}

/** Per grant, in the order clients export them. */
export const GRANT_EXPORTS: { [K in GrantName]: GrantExports<NonNullable<Credentials[K]>> } = {
  aws: {
    env: (c) => [
      ["AWS_ACCESS_KEY_ID", c.access_key_id],
      ["AWS_SECRET_ACCESS_KEY", c.secret_access_key],
      ["AWS_SESSION_TOKEN", c.session_token],
      ["AWS_REGION", c.region],
      ["AWS_DEFAULT_REGION", c.region],
    ],
    outputs: (c) => [["aws-region", c.region]],
    credentialOutputs: (c) => [
      ["aws-access-key-id", c.access_key_id],
      ["aws-secret-access-key", c.secret_access_key],
      ["aws-session-token", c.session_token],
    ],
    values: (c) => [c.access_key_id, c.secret_access_key, c.session_token],
  },
  token: {
    env: (c) => [["RUNPASS_TOKEN", c.token]],
    outputs: () => [],
    credentialOutputs: (c) => [["token", c.token]],
    values: (c) => [c.token],
  },
  github: {
    env: (c) => [[GITHUB_TOKEN_ENV, c.token]],
    outputs: () => [],
    credentialOutputs: (c) => [["github-token", c.token]],
    values: (c) => [c.token],
  },
  secrets: {
    env: (c) => Object.entries(c),
    outputs: () => [],
    credentialOutputs: (c) => Object.entries(c).map(([name, value]) => [`secret-${name}`, value]),
    values: (c) => Object.values(c),
  },
};

/** Client export order. */
const ORDER = Object.keys(GRANT_EXPORTS) as GrantName[];

function exportsOf<K extends GrantName>(name: K): GrantExports<NonNullable<Credentials[K]>> {
  return GRANT_EXPORTS[name];
}

/** Runs `pick` over each grant present in `credentials`, in client export order, and concatenates the results. */
export function collect<T>(
  credentials: Credentials,
  pick: <K extends GrantName>(
    exports: GrantExports<NonNullable<Credentials[K]>>,
    credential: NonNullable<Credentials[K]>,
    name: K,
  ) => T[],
): T[] {
  return ORDER.flatMap((name) => {
    const credential = credentials[name];
    return credential === undefined
      ? []
      : pick(exportsOf(name), credential as NonNullable<Credentials[typeof name]>, name);
  });
}
