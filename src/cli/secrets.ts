// `runpass admin secrets …`: write, list, show, roll back, delete, destroy and re-wrap secrets over the admin
// API, and the `policy check --admin-url` pass that checks every secrets grant against a broker's store.
// Values go in from stdin or a file, never from the command line, and nothing here ever prints one.

import { readFile } from "node:fs/promises";
import { hostname, userInfo } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LineCounter, parseDocument } from "yaml";
import { MAX_SECRET_BYTES } from "../core/constants.ts";
import type { Problem } from "../core/policy/load.ts";
import type { PolicyBundle } from "../core/policy/types.ts";
import { pathProblem } from "../core/secrets/paths.ts";
import { type AdminTarget, adminCall, adminTarget, BrokerError } from "./admin.ts";
import { exportSecrets, importSecrets } from "./secrets-backup.ts";
import { UsageError } from "./usage-error.ts";

/** What the broker's GET /v1/admin/secrets/PATH returns (metadata only). */
interface SecretMeta {
  path: string;
  current_version: number;
  deleted: boolean;
  deleted_at?: string;
  versions: Array<{ version: number; state: "active" | "destroyed" }>;
}

const URL_OPTION = { url: { type: "string" } } as const;

/** Who is making a change, for the version list (X-Runpass-Actor): user@host. */
export function actorHeader(): Record<string, string> {
  let user = process.env.USER ?? "unknown";
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (some containers): keep $USER
  }
  // Header values must be printable ASCII; the broker narrows the charset further.
  const actor = `${user}@${hostname()}`.replace(/[^\x20-\x7e]/g, "");
  return { "x-runpass-actor": actor };
}

/** The URL path of a secret: each segment encoded, the slashes kept. */
export function secretUrl(path: string): string {
  return `/v1/admin/secrets/${path.split("/").map(encodeURIComponent).join("/")}`;
}

function print(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

/** The single PATH argument of `admin secrets <command>`, checked as the broker would. */
function onePath(command: string, positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError(`admin secrets ${command} needs exactly one PATH`);
  const path = positionals[0] as string;
  const problem = pathProblem(path);
  if (problem) throw new UsageError(`"${path}" is not a secret path: ${problem}`);
  return path;
}

function versionOf(command: string, text: string | undefined): number {
  if (text === undefined) throw new UsageError(`admin secrets ${command} needs --version N`);
  if (!/^[1-9][0-9]{0,8}$/.test(text)) throw new UsageError(`--version "${text}" is not a version number`);
  return Number(text);
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

async function put(root: string, args: string[]): Promise<number> {
  if (args.some((a) => a === "--value" || a.startsWith("--value="))) {
    throw new UsageError(
      "admin secrets put has no --value: pipe the value to stdin or use --file FILE (command lines end up in shell history and process lists)",
    );
  }
  const { values, positionals } = parseArgs({
    args,
    options: { ...URL_OPTION, file: { type: "string" }, binary: { type: "boolean", default: false } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 1) {
    // Never echo the extra argument: it is most likely the secret itself.
    throw new UsageError(
      "admin secrets put takes only PATH: the value is read from stdin or --file FILE, never from the command line (command lines end up in shell history and process lists); nothing was stored",
    );
  }
  const path = onePath("put", positionals);
  const target = adminTarget(root, values.url);
  let bytes: Buffer;
  if (values.file !== undefined && values.file !== "-") {
    bytes = await readFile(values.file);
  } else {
    if (process.stdin.isTTY) {
      console.error("runpass: reading the value from stdin; end it with Ctrl-D (a final newline is kept)");
    }
    bytes = await readAll(process.stdin);
  }
  if (bytes.length === 0) throw new Error("the secret value is empty; nothing was stored");
  if (bytes.length > MAX_SECRET_BYTES) {
    throw new Error(
      `the secret value is ${bytes.length} bytes; the broker stores at most ${MAX_SECRET_BYTES}`,
    );
  }
  let body: { value: string } | { value_base64: string };
  if (values.binary) {
    body = { value_base64: bytes.toString("base64") };
  } else {
    let text: string;
    try {
      // Exactly the bytes read: no trimming, a leading BOM kept, invalid UTF-8 refused rather than replaced.
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
    } catch {
      throw new Error("the value is not valid UTF-8; store it with --binary (delivered base64-encoded)");
    }
    body = { value: text };
  }
  const result = await adminCall(
    target,
    secretUrl(path),
    { method: "PUT", body: JSON.stringify(body) },
    actorHeader(),
  );
  const { version } = result as { version: number };
  print({ path, version });
  return 0;
}

async function list(root: string, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...URL_OPTION, prefix: { type: "string" } },
    strict: true,
  });
  const query = values.prefix === undefined ? "" : `?${new URLSearchParams({ prefix: values.prefix })}`;
  print(await adminCall(adminTarget(root, values.url), `/v1/admin/secrets${query}`));
  return 0;
}

async function show(root: string, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: URL_OPTION,
    allowPositionals: true,
    strict: true,
  });
  const path = onePath("show", positionals);
  print(await adminCall(adminTarget(root, values.url), secretUrl(path)));
  return 0;
}

async function rollback(root: string, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...URL_OPTION, version: { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  const path = onePath("rollback", positionals);
  const version = versionOf("rollback", values.version);
  const result = await adminCall(
    adminTarget(root, values.url),
    `${secretUrl(path)}/rollback`,
    { method: "POST", body: JSON.stringify({ version }) },
    actorHeader(),
  );
  print(result);
  return 0;
}

async function softDelete(root: string, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: URL_OPTION,
    allowPositionals: true,
    strict: true,
  });
  const path = onePath("delete", positionals);
  await adminCall(adminTarget(root, values.url), secretUrl(path), { method: "DELETE" }, actorHeader());
  print({ path, deleted: true });
  return 0;
}

async function destroy(root: string, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...URL_OPTION, version: { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  const path = onePath("destroy", positionals);
  const version = versionOf("destroy", values.version);
  await adminCall(
    adminTarget(root, values.url),
    `${secretUrl(path)}?${new URLSearchParams({ version: String(version), destroy: "1" })}`,
    { method: "DELETE" },
    actorHeader(),
  );
  print({ path, version, destroyed: true });
  return 0;
}

async function rewrap(root: string, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: URL_OPTION, strict: true });
  const result = (await adminCall(
    adminTarget(root, values.url),
    "/v1/admin/secrets-rewrap",
    { method: "POST" },
    actorHeader(),
  )) as { failed?: Array<{ path: string; version: number; kid: string }> };
  print(result);
  const failed = result.failed ?? [];
  for (const f of failed) {
    console.error(
      `runpass: ${f.path}@${f.version} was not re-wrapped: its data key is wrapped by master key "${f.kid}", which the broker cannot use`,
    );
  }
  return failed.length ? 1 : 0;
}

const COMMANDS: Record<string, (root: string, args: string[]) => Promise<number>> = {
  put,
  list,
  show,
  rollback,
  delete: softDelete,
  destroy,
  rewrap,
  export: exportSecrets,
  import: importSecrets,
};

/**
 * `runpass admin secrets <command> …`. The admin token comes from RUNPASS_ADMIN_TOKEN or, for a local broker,
 * `root`'s .dev/keys.json. A broker refusal exits 1 with its error description; usage mistakes throw.
 */
export async function adminSecrets(root: string, args: string[]): Promise<number> {
  const [command, ...rest] = args;
  const run = command !== undefined && Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!run) {
    throw new UsageError(`unknown command "admin secrets${command ? ` ${command}` : ""}"`);
  }
  try {
    return await run(root, rest);
  } catch (e) {
    if (e instanceof BrokerError) {
      console.error(`runpass: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

/** Where `grants.secrets.NAME`'s value is in a policy file, for file:line:col (1:1 when it cannot be found). */
async function locateGrant(file: string, name: string): Promise<{ line: number; col: number }> {
  return locateIn(file, ["grants", "secrets", name]);
}

/** Where the YAML node at `path` starts in a policy file (line 1 when it cannot be found). */
export async function locateIn(file: string, path: string[]): Promise<{ line: number; col: number }> {
  try {
    const lineCounter = new LineCounter();
    const doc = parseDocument(await readFile(file, "utf8"), { lineCounter });
    const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    if (node?.range) return lineCounter.linePos(node.range[0]);
  } catch {
    // the loader already read this file; fall back to its first line
  }
  return { line: 1, col: 1 };
}

/** Why a grant of `path` (at `version`, or the current one) could not be delivered now, or undefined. */
function grantProblem(
  ref: { path: string; version?: number },
  meta: SecretMeta | undefined,
  url: string,
): string | undefined {
  if (!meta) return `no secret "${ref.path}" at ${url}`;
  if (meta.deleted)
    return `secret "${ref.path}" is deleted (put a new version or roll one back to restore it)`;
  if (ref.version !== undefined) {
    const v = meta.versions.find((x) => x.version === ref.version);
    if (!v) {
      const latest = Math.max(0, ...meta.versions.map((x) => x.version));
      return `secret "${ref.path}" has no version ${ref.version} (the latest is ${latest})`;
    }
    if (v.state === "destroyed") return `version ${ref.version} of secret "${ref.path}" is destroyed`;
    return undefined;
  }
  const current = meta.versions.find((x) => x.version === meta.current_version);
  if (!current || current.state === "destroyed") {
    return `the current version (${meta.current_version}) of secret "${ref.path}" is destroyed (put a new version or roll back to an earlier one)`;
  }
  return undefined;
}

/**
 * `policy check --admin-url`: looks up every path a secrets grant names in the broker's store and reports, as
 * errors at the grant, paths that do not exist, are deleted, or whose named (or current) version is gone.
 * Policy files are `<dir>/<name>.yaml` (the bundle keeps names, not paths). Throws BrokerError when the broker
 * refuses a lookup for any other reason than "no such secret".
 */
export async function checkSecretGrants(
  target: AdminTarget,
  dir: string,
  bundle: PolicyBundle,
): Promise<{ problems: Problem[]; checked: number }> {
  const metas = new Map<string, SecretMeta | undefined>();
  const problems: Problem[] = [];
  let checked = 0;
  for (const policy of bundle.policies) {
    const file = join(dir, `${policy.name}.yaml`);
    for (const [name, ref] of Object.entries(policy.grants.secrets ?? {})) {
      checked++;
      if (!metas.has(ref.path)) {
        try {
          metas.set(ref.path, (await adminCall(target, secretUrl(ref.path))) as SecretMeta);
        } catch (e) {
          if (!(e instanceof BrokerError && e.status === 404 && e.code === "not_found")) throw e;
          metas.set(ref.path, undefined);
        }
      }
      const message = grantProblem(ref, metas.get(ref.path), target.url);
      if (message) {
        problems.push({
          file,
          ...(await locateGrant(file, name)),
          severity: "error",
          message: `grants.secrets.${name}: ${message}`,
        });
      }
    }
  }
  return { problems, checked };
}
