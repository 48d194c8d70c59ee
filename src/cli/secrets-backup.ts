// `runpass admin secrets export|import`: the secret store's backup as ciphertexts and wrapped data keys only
// (docs/operations.md, "Backup and restore of the secret store"); the file is written owner-only, never over another.

import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { adminCall, adminTarget } from "./admin.ts";
import { ExistingFileError, refuseExisting, writeExclusive } from "./exclusive-file.ts";
import { UsageError } from "./usage-error.ts";

/** `admin secrets export --out FILE [--url URL]`: writes the export (mode 0600) and prints counts only. */
export async function exportSecrets(root: string, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { url: { type: "string" }, out: { type: "string" } },
    strict: true,
  });
  if (!values.out)
    throw new UsageError("admin secrets export needs --out FILE (a new file, written with mode 0600)");
  try {
    refuseExisting(values.out, "the export file");
  } catch (e) {
    if (!(e instanceof ExistingFileError)) throw e;
    console.error(`runpass: ${e.message}`);
    return 1;
  }
  const dump = (await adminCall(adminTarget(root, values.url), "/v1/admin/secrets-export")) as {
    shards?: Array<{ paths: unknown[]; versions: unknown[] }>;
  };
  writeExclusive(values.out, `${JSON.stringify(dump)}\n`, "the export file");
  const shards = dump.shards ?? [];
  const count = (k: "paths" | "versions") => shards.reduce((n, s) => n + s[k].length, 0);
  console.log(
    JSON.stringify({
      file: values.out,
      shards: shards.length,
      paths: count("paths"),
      versions: count("versions"),
    }),
  );
  return 0;
}

/** `admin secrets import FILE [--url URL]`: restores an export; paths the store already has are skipped. */
export async function importSecrets(root: string, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { url: { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  const [file] = positionals;
  if (!file || positionals.length !== 1) throw new UsageError("admin secrets import needs exactly one FILE");
  const result = (await adminCall(adminTarget(root, values.url), "/v1/admin/secrets-import", {
    method: "POST",
    body: await readFile(file, "utf8"),
  })) as { skipped?: string[] };
  console.log(JSON.stringify(result, null, 2));
  for (const path of result.skipped ?? [])
    console.error(`runpass: ${path} exists in the store; kept as it is (not restored)`);
  return 0;
}
