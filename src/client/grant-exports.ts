// What each grant's credential becomes on a runner (docs/architecture.md, "Adding a grant"): environment
// variables, step outputs, and the values to mask. The clients (action, runner CLI) are bundled without the
// broker's grant modules, so this is their mirror of the registry; its type requires an entry for every grant
// name, and a test checks `values` against the broker modules' own list, so a new grant cannot be forgotten here.

import type { Credentials } from "../core/grants/issue.ts";
import type { GrantName } from "../core/policy/types.ts";
import type { RunnerKeys } from "./runner-keys.ts";

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
  /**
   * Files the credential becomes, written owner-only into the job's temp dir; each file's path is exported under
   * its `env` name (src/cli/credential-files.ts). Throws when the credential does not match the runner's keys.
   */
  files?(credential: C, keys: RunnerKeys): CredentialFile[];
}

/** One credential file: the variable its path is exported under, its file name, and what it holds. */
export interface CredentialFile {
  env: string;
  name: string;
  content: string;
}

/** Thrown when a certificate in the response is not for the key this runner generated: nothing is written. */
export class KeyMismatchError extends Error {}

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
  gcp: {
    // gcloud reads CLOUDSDK_AUTH_ACCESS_TOKEN, Terraform's google provider GOOGLE_OAUTH_ACCESS_TOKEN.
    env: (c) => [
      ["CLOUDSDK_AUTH_ACCESS_TOKEN", c.access_token],
      ["GOOGLE_OAUTH_ACCESS_TOKEN", c.access_token],
    ],
    outputs: (c) => [
      ["gcp-expires-at", c.expires_at],
      ...(c.service_account !== undefined
        ? ([["gcp-service-account", c.service_account]] as Array<[string, string]>)
        : []),
    ],
    credentialOutputs: (c) => [["gcp-access-token", c.access_token]],
    values: (c) => [c.access_token],
  },
  azure: {
    // The Azure SDKs' names; `az login --service-principal -u "$AZURE_CLIENT_ID" --tenant "$AZURE_TENANT_ID"
    // --federated-token "$AZURE_FEDERATED_TOKEN"` logs the Azure CLI in.
    env: (c) => [
      ["AZURE_CLIENT_ID", c.client_id],
      ["AZURE_TENANT_ID", c.tenant_id],
      ["AZURE_FEDERATED_TOKEN", c.federated_token],
      ["RUNPASS_AZURE_ACCESS_TOKEN", c.access_token],
    ],
    outputs: (c) => [
      ["azure-client-id", c.client_id],
      ["azure-tenant-id", c.tenant_id],
      ["azure-expires-at", c.expires_at],
    ],
    credentialOutputs: (c) => [
      ["azure-access-token", c.access_token],
      ["azure-federated-token", c.federated_token],
    ],
    values: (c) => [c.access_token, c.federated_token],
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
  x509: {
    // The certificate, its chain and its key reach the job as files (docs/clients.md, "Certificates").
    env: () => [],
    outputs: (c) => [
      ["x509-serial", c.serial],
      ["x509-expires-at", c.expires_at],
    ],
    credentialOutputs: () => [],
    values: (c) => (c.private_key !== undefined ? [c.private_key] : []),
    files(c, keys) {
      // A key the broker generated (no CSR reached it) comes with the certificate; otherwise it must be ours.
      if (c.private_key === undefined && !keys.x509.certifies(c.certificate)) {
        throw new KeyMismatchError(
          "the x509 certificate in the response is not for the key this runner generated",
        );
      }
      return [
        { env: "RUNPASS_X509_CERT_FILE", name: "x509-cert.pem", content: c.certificate },
        {
          env: "RUNPASS_X509_KEY_FILE",
          name: "x509-key.pem",
          content: c.private_key ?? keys.x509.privateKeyPem,
        },
        { env: "RUNPASS_X509_CHAIN_FILE", name: "x509-chain.pem", content: c.chain },
      ];
    },
  },
  ssh: {
    // Key, certificate and known_hosts reach the job as files: `ssh -i "$RUNPASS_SSH_KEY_FILE" -o
    // CertificateFile="$RUNPASS_SSH_CERT_FILE" -o UserKnownHostsFile="$RUNPASS_SSH_KNOWN_HOSTS_FILE"` (docs/clients.md).
    env: () => [],
    outputs: (c) => [
      ["ssh-serial", c.serial],
      ["ssh-principals", c.principals.join(",")],
      ["ssh-expires-at", c.expires_at],
    ],
    credentialOutputs: () => [],
    values: (c) => (c.private_key !== undefined ? [c.private_key] : []),
    files(c, keys) {
      // A key the broker generated (no public key reached it) comes with the certificate; otherwise it must be ours.
      if (c.private_key === undefined && !keys.ssh.certifies(c.certificate)) {
        throw new KeyMismatchError(
          "the ssh certificate in the response is not for the key this runner generated",
        );
      }
      return [
        { env: "RUNPASS_SSH_KEY_FILE", name: "ssh-key", content: c.private_key ?? keys.ssh.privateKey },
        { env: "RUNPASS_SSH_CERT_FILE", name: "ssh-key-cert.pub", content: `${c.certificate}\n` },
        ...(c.known_hosts !== undefined
          ? [{ env: "RUNPASS_SSH_KNOWN_HOSTS_FILE", name: "ssh-known_hosts", content: c.known_hosts }]
          : []),
      ];
    },
  },
  postgres: {
    // libpq's variables: psql, pg_dump and most drivers read them with no flags.
    env: (c) => [
      ["PGHOST", c.host],
      ["PGPORT", String(c.port)],
      ["PGDATABASE", c.database],
      ["PGUSER", c.username],
      ["PGPASSWORD", c.password],
      ["PGSSLMODE", c.sslmode],
      ["RUNPASS_POSTGRES_URL", c.url],
    ],
    outputs: (c) => [
      ["postgres-host", c.host],
      ["postgres-port", String(c.port)],
      ["postgres-database", c.database],
      ["postgres-username", c.username],
      ["postgres-expires-at", c.expires_at],
    ],
    credentialOutputs: (c) => [
      ["postgres-password", c.password],
      ["postgres-url", c.url],
    ],
    values: (c) => [c.password, c.url],
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

/**
 * Every environment variable a grant sets on the runner: its `env` names and its files' path variables, read off
 * GRANT_EXPORTS itself (each grant's functions run once on a placeholder credential whose every field is "") so
 * the clients' reserved names cannot drift from what they export. Secret names are the policy's own: none here.
 */
export const GRANT_ENV_NAMES: readonly string[] = (() => {
  const placeholder = new Proxy({}, { get: () => "" }) as never;
  const names = ORDER.flatMap((name) => {
    const grant = exportsOf(name) as GrantExports<never>;
    return [
      ...grant.env(placeholder).map(([env]) => env),
      ...(grant.files?.(placeholder, placeholder) ?? []).map((file) => file.env),
    ];
  });
  return [...new Set(names)];
})();
