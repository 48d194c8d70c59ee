// `runpass init`: every key and secret a deployment needs, written once to an owner-only, git-ignored file and
// never printed; with --apply, the Cloudflare side through wrangler, each command shown (docs/deploy.md).

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { checkIssuerUrl } from "../core/oidc/issuers.ts";
import { generateSecrets, OPTIONAL_ENGINES, type OptionalEngine } from "./keygen.ts";
import { readSecretsFile, secretsPath, writeSecretsFile } from "./secrets-file.ts";
import { UsageError } from "./usage-error.ts";

export const INIT_USAGE = `  init           [--issuer-url URL] [--out FILE] [--with ssh,x509] [--apply] [--force]
      Generates every key and secret a deployment needs (signing JWKs, audit key, admin token, master key,
      webhook secrets; --with adds the SSH CA and an X.509 issuing CA) into FILE (default .runpass/secrets.json,
      mode 0600, git-ignored) — never printed — and prints the steps that remain. Refuses to replace an existing
      file without --force. --apply (needs --issuer-url) runs those steps through wrangler in this folder: D1 and
      KV created and their ids written to wrangler.toml, RUNPASS_ISSUER_URL set, the secrets uploaded with
      \`wrangler secret bulk\` (an existing secrets file is uploaded as it is).`;

/** The placeholders wrangler.toml ships with; an id other than these was created already and is kept. */
const D1_PLACEHOLDER = "00000000-0000-4000-8000-000000000000";
const KV_PLACEHOLDER = "00000000000000000000000000000000";
const D1_NAME = "runpass-audit";

/** The line range [start, end) of the `[[header]]` table whose `binding` is `binding`, or undefined. */
function tableOf(lines: string[], header: string, binding: string): [number, number] | undefined {
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.trim() !== header) continue;
    let end = i + 1;
    while (end < lines.length && !/^\s*\[/.test(lines[end] ?? "")) end++;
    const block = lines.slice(i + 1, end);
    if (block.some((l) => new RegExp(`^\\s*binding\\s*=\\s*"${binding}"`).test(l))) return [i, end];
  }
  return undefined;
}

/** The value of `key = "…"` in the `[[header]]` table bound as `binding`. */
export function tomlTableValue(
  toml: string,
  header: string,
  binding: string,
  key: string,
): string | undefined {
  const lines = toml.split("\n");
  const range = tableOf(lines, header, binding);
  if (!range) return undefined;
  for (const l of lines.slice(range[0] + 1, range[1])) {
    const m = new RegExp(`^\\s*${key}\\s*=\\s*"([^"]*)"`).exec(l);
    if (m) return m[1];
  }
  return undefined;
}

/** Sets `key = "value"` in the `[[header]]` table bound as `binding` (a targeted edit; comments are kept). */
export function setTomlTableValue(
  toml: string,
  header: string,
  binding: string,
  key: string,
  value: string,
): string {
  const lines = toml.split("\n");
  const range = tableOf(lines, header, binding);
  if (!range) throw new Error(`wrangler.toml has no ${header} table with binding = "${binding}"`);
  const at = lines.findIndex(
    (l, i) => i > range[0] && i < range[1] && new RegExp(`^\\s*${key}\\s*=`).test(l),
  );
  if (at >= 0) lines[at] = `${key} = "${value}"`;
  else lines.splice(range[0] + 1, 0, `${key} = "${value}"`);
  return lines.join("\n");
}

/** Sets `NAME = "value"` under `[vars]`, adding the table when there is none. */
export function setTomlVar(toml: string, name: string, value: string): string {
  const lines = toml.split("\n");
  const start = lines.findIndex((l) => l.trim() === "[vars]");
  const line = `${name} = ${JSON.stringify(value)}`;
  if (start < 0) return `${toml.replace(/\n*$/, "\n")}\n[vars]\n${line}\n`;
  let end = start + 1;
  while (end < lines.length && !/^\s*\[/.test(lines[end] ?? "")) end++;
  const at = lines.findIndex((l, i) => i > start && i < end && new RegExp(`^\\s*${name}\\s*=`).test(l));
  if (at >= 0) lines[at] = line;
  else lines.splice(start + 1, 0, line);
  return lines.join("\n");
}

/** Adds `.runpass/` to the folder's .gitignore unless it is there already. */
function ignoreSecretsFolder(dir: string): void {
  const file = join(dir, ".gitignore");
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  if (text.split("\n").some((l) => l.trim() === ".runpass/" || l.trim() === ".runpass")) return;
  writeFileSync(file, `${text}${text === "" || text.endsWith("\n") ? "" : "\n"}.runpass/\n`);
}

function parseEngines(text: string | undefined): OptionalEngine[] {
  if (!text) return [];
  const names = text.split(",").map((s) => s.trim());
  for (const n of names) {
    if (!(OPTIONAL_ENGINES as readonly string[]).includes(n))
      throw new UsageError(`--with takes ${OPTIONAL_ENGINES.join(",")}, not "${n}"`);
  }
  return names as OptionalEngine[];
}

/** Runs `wrangler …` from PATH in `cwd`, showing the command first; returns its stdout (echoed to stderr). */
function wrangler(cwd: string, args: string[]): string {
  console.error(`$ wrangler ${args.join(" ")}`);
  const r = spawnSync("wrangler", args, { cwd, encoding: "utf8", stdio: ["inherit", "pipe", "inherit"] });
  if (r.error)
    throw new Error(`could not run wrangler (${r.error.message}); run it through npx, or install wrangler`);
  if (r.stdout) process.stderr.write(r.stdout);
  if (r.status !== 0) throw new Error(`wrangler ${args.slice(0, 3).join(" ")} failed (exit ${r.status})`);
  return r.stdout ?? "";
}

/** The id wrangler printed (its TOML or JSON snippet), or an error naming the command to run by hand. */
function printedId(out: string, key: string, shape: RegExp, what: string): string {
  const m = new RegExp(`"?${key}"?\\s*[=:]\\s*"(${shape.source})"`).exec(out);
  if (!m?.[1])
    throw new Error(`could not find the ${what} id in wrangler's output; put it in wrangler.toml by hand`);
  return m[1];
}

function steps(rel: string, url: string, applied: boolean): string {
  const lines = applied
    ? []
    : [
        `  npx wrangler d1 create ${D1_NAME}          # its database_id into wrangler.toml ([[d1_databases]] AUDIT_DB)`,
        "  npx wrangler kv namespace create POLICY_KV    # its id into wrangler.toml ([[kv_namespaces]] POLICY_KV)",
        `  RUNPASS_ISSUER_URL = "${url}" under [vars] in wrangler.toml`,
        `  npx wrangler secret bulk ${rel}`,
      ];
  return [
    "next steps (docs/deploy.md walks through each):",
    ...lines,
    `  npx runpass github-app manifest --url ${url}   # create the GitHub App from it; then set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY`,
    "  npm run deploy",
    `  RUNPASS_ADMIN_TOKEN=… npx runpass doctor --url ${url}   # the admin token is in ${rel}`,
  ].join("\n");
}

/** `runpass init`. Exit 0 done, 1 refused (existing file) or wrangler failed. */
export async function initCommand(args: string[], cwd = process.cwd()): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      "issuer-url": { type: "string" },
      out: { type: "string" },
      with: { type: "string" },
      apply: { type: "boolean", default: false },
      force: { type: "boolean", default: false },
    },
    strict: true,
  });
  const engines = parseEngines(values.with);
  const url = values["issuer-url"]?.replace(/\/+$/, "");
  if (url !== undefined) {
    const problem = checkIssuerUrl(url, false);
    if (problem) throw new UsageError(`--issuer-url: ${problem}`);
  }
  if (values.apply && !url) throw new UsageError("--apply needs --issuer-url (runpass's public https URL)");
  const path = secretsPath(values.out, cwd);
  const rel = relative(cwd, path) || path;
  const exists = existsSync(path);
  if (exists && !values.force && !values.apply) {
    console.error(
      `runpass: ${rel} already exists; runpass init never replaces deployment keys silently. ` +
        "Use --apply to deploy it as it is, or --force to generate new keys (the deployed ones stop working once replaced).",
    );
    return 1;
  }
  if (!exists || values.force) {
    const secrets = await generateSecrets({ with: engines });
    writeSecretsFile(path, secrets, exists);
    ignoreSecretsFolder(cwd);
    console.log(
      `wrote ${Object.keys(secrets).length} secrets to ${rel} (mode 0600): ${Object.keys(secrets).join(", ")}`,
    );
  } else {
    const names = Object.keys(readSecretsFile(path));
    console.log(`using the existing ${rel} (${names.length} secrets); --force generates new ones`);
  }
  const issuer = url ?? "https://runpass.example.com";
  if (!values.apply) {
    console.log(steps(rel, issuer, false));
    return 0;
  }
  try {
    const tomlPath = join(cwd, "wrangler.toml");
    if (!existsSync(tomlPath))
      throw new Error("no wrangler.toml in this folder (run init from the project folder)");
    let toml = readFileSync(tomlPath, "utf8");
    const d1 = tomlTableValue(toml, "[[d1_databases]]", "AUDIT_DB", "database_id");
    if (!d1 || d1 === D1_PLACEHOLDER) {
      const out = wrangler(cwd, ["d1", "create", D1_NAME]);
      toml = setTomlTableValue(
        toml,
        "[[d1_databases]]",
        "AUDIT_DB",
        "database_id",
        printedId(out, "database_id", /[0-9a-f-]{36}/, "D1 database"),
      );
    } else console.error(`runpass: wrangler.toml already names D1 database ${d1}; kept`);
    const kv = tomlTableValue(toml, "[[kv_namespaces]]", "POLICY_KV", "id");
    if (!kv || kv === KV_PLACEHOLDER) {
      const out = wrangler(cwd, ["kv", "namespace", "create", "POLICY_KV"]);
      toml = setTomlTableValue(
        toml,
        "[[kv_namespaces]]",
        "POLICY_KV",
        "id",
        printedId(out, "id", /[0-9a-f]{32}/, "KV namespace"),
      );
    } else console.error(`runpass: wrangler.toml already names KV namespace ${kv}; kept`);
    toml = setTomlVar(toml, "RUNPASS_ISSUER_URL", issuer);
    writeFileSync(tomlPath, toml);
    console.error("runpass: wrote the D1 and KV ids and RUNPASS_ISSUER_URL into wrangler.toml");
    wrangler(cwd, ["secret", "bulk", rel]);
  } catch (e) {
    console.error(`runpass: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  console.log(steps(rel, issuer, true));
  return 0;
}
