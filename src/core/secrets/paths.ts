// Secret paths and references: `/`-separated segments of [A-Za-z0-9._-], no empty, `.` or `..` segment;
// a grant names `path` (the current version) or `path@N`.

const SEGMENT = /^[A-Za-z0-9._-]{1,128}$/;
const MAX_PATH = 512;

/** Why a secret path is refused, or undefined when it is valid. */
export function pathProblem(path: string): string | undefined {
  if (path.length === 0 || path.length > MAX_PATH) return `a secret path has 1 to ${MAX_PATH} characters`;
  for (const seg of path.split("/")) {
    if (seg === "" || seg === "." || seg === "..") {
      return 'a secret path has no empty, "." or ".." segment';
    }
    if (!SEGMENT.test(seg)) return "secret path segments use only A-Z a-z 0-9 . _ -";
  }
  return undefined;
}

/** The store shard a path lives in: its first segment (one Durable Object per top-level namespace). */
export function shardOf(path: string): string {
  const i = path.indexOf("/");
  return i === -1 ? path : path.slice(0, i);
}

export interface SecretRef {
  path: string;
  /** Undefined: the current version. */
  version?: number;
}

/** Parses `path` or `path@N`; undefined when malformed. */
export function parseSecretRef(text: string): SecretRef | undefined {
  const at = text.lastIndexOf("@");
  const path = at === -1 ? text : text.slice(0, at);
  if (pathProblem(path)) return undefined;
  if (at === -1) return { path };
  const v = text.slice(at + 1);
  if (!/^[1-9][0-9]{0,8}$/.test(v)) return undefined;
  return { path, version: Number(v) };
}

/** Environment variable names a secret may be delivered under. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

// Names that would change how the job itself runs, or shadow what runpass, its grants (every name a grant exports,
// test/unit/cloud-grants.test.ts keeps them in step with src/client/grant-exports.ts) and the runner set. In any
// case: Windows runners treat environment names case-insensitively, and the action refuses them in any case too.
const RESERVED_ENV =
  /^(PATH|HOME|SHELL|USER|PWD|IFS|ENV|BASH_ENV|CI|LD_[A-Z0-9_]*|DYLD_[A-Z_]*|NODE_OPTIONS|PYTHONPATH|GITHUB_[A-Z0-9_]*|RUNNER_[A-Z0-9_]*|ACTIONS_[A-Z0-9_]*|GITLAB_[A-Z0-9_]*|CI_[A-Z0-9_]*|RUNPASS_[A-Z0-9_]*|AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|REGION|DEFAULT_REGION)|CLOUDSDK_AUTH_ACCESS_TOKEN|GOOGLE_OAUTH_ACCESS_TOKEN|AZURE_(CLIENT_ID|TENANT_ID|FEDERATED_TOKEN)|PG(HOST|PORT|DATABASE|USER|PASSWORD|SSLMODE))$/i;

/** Why a secret's output name is refused, or undefined. */
export function envNameProblem(name: string): string | undefined {
  if (!ENV_NAME.test(name))
    return `"${name}" is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)`;
  if (RESERVED_ENV.test(name)) {
    return `"${name}" would override a variable the runner, the shell or runpass itself sets; choose another name`;
  }
  return undefined;
}
