// The `secrets` grant: a bundle of secret store values under environment variable names, delivered at exchange
// only (renewal does not re-deliver), all or nothing.

import * as z from "zod/mini";
import { RunpassError } from "../errors.ts";
import type { SecretGrantEntry } from "../policy/types.ts";
import { err, ok, type Result } from "../result.ts";
import { envNameProblem, parseSecretRef } from "../secrets/paths.ts";
import { type GrantModule, iso, type Report } from "./module.ts";

/** One decrypted secret version, or why it cannot be delivered. */
export type SecretRead = Result<
  { version: number; value: string; encoding: "utf8" | "base64" },
  { code: string; detail: string }
>;

/** The secret store as the core needs it. */
export interface SecretReader {
  read(path: string, version?: number): Promise<SecretRead>;
}

/** The secret store's answer as it crosses the Durable Object boundary (a plain object), as the core's Result. */
export function secretReadResult(
  read:
    | { ok: true; version: number; value: string; encoding: "utf8" | "base64" }
    | { ok: false; code: string; detail: string },
): SecretRead {
  return read.ok
    ? ok({ version: read.version, value: read.value, encoding: read.encoding })
    : err({ code: read.code, detail: read.detail });
}

/** The secrets grant's credential in the exchange response: ENV_NAME → value. */
export type SecretsCredential = Record<string, string>;

/**
 * What a secret delivery's grant id digests: the path and version delivered (a version's content never changes),
 * so `/v1/admin/audit-hash` of `secret:<path>@<version>` finds its deliveries.
 */
export function secretGrantId(path: string, version: number): string {
  return `secret:${path}@${version}`;
}

const SecretsGrantSchema = z.record(z.string(), z.string());

/** Validates grants.secrets: environment-variable output names and `path[@version]` references. */
export function loadSecretsGrant(
  raw: Record<string, string>,
  report: Report,
): Record<string, SecretGrantEntry> {
  const out: Record<string, SecretGrantEntry> = {};
  const names = Object.keys(raw);
  if (names.length === 0) report(["grants", "secrets"], "secrets: name at least one secret");
  for (const name of names) {
    const problem = envNameProblem(name);
    if (problem) report(["grants", "secrets", name], problem, true);
    const ref = parseSecretRef(raw[name] as string);
    if (!ref) {
      report(
        ["grants", "secrets", name],
        `${name}: "${raw[name]}" is not a secret path[@version] (segments of A-Z a-z 0-9 . _ -, no empty, "." or "..")`,
      );
      continue;
    }
    out[name] = ref;
  }
  return out;
}

type SecretsDef = Record<string, SecretGrantEntry>;

/** The `secrets` grant module. */
export const secretsGrant: GrantModule<
  "secrets",
  Record<string, string>,
  SecretsDef,
  SecretsDef,
  SecretsCredential
> = {
  name: "secrets",
  schema: SecretsGrantSchema,
  costly: true,
  renewable: false,
  load: (raw, ctx) => loadSecretsGrant(raw, ctx.report),
  plan: (def) => def,
  async mint(plan, { deps, lease }) {
    const reader = deps.secrets();
    const entries = Object.entries(plan);
    const reads = await Promise.all(entries.map(([, ref]) => reader.read(ref.path, ref.version)));
    const failures = reads.flatMap((r, i) => (r.ok ? [] : [`${entries[i]?.[0]}: ${r.error.detail}`]));
    if (failures.length > 0) {
      // No partial bundles: one missing secret and nothing is delivered.
      // A version a leak report quarantined says so (docs/leaks.md): the fix is a new version, not a retry.
      const compromised = reads.some((r) => !r.ok && r.error.code === "compromised");
      throw new RunpassError("upstream_error", "a granted secret is not available; nothing was issued", {
        extra: { retryable: false },
        ...(compromised ? { reasons: [{ code: "secret_compromised" as const }], reasonsVisible: true } : {}),
        auditDetail: `secrets: ${failures.join("; ").slice(0, 500)}`,
      });
    }
    const bundle: SecretsCredential = {};
    const encodings: Record<string, "base64"> = {};
    const grants = [];
    for (const [i, [name, ref]] of entries.entries()) {
      const r = (reads[i] as Extract<SecretRead, { ok: true }>).value;
      bundle[name] = r.value;
      if (r.encoding === "base64") encodings[name] = "base64";
      grants.push({
        type: "secrets" as const,
        // Never a digest of the value: audit-hash would then confirm guesses of it (docs/security.md).
        id: await deps.hasher.digest(secretGrantId(ref.path, r.version)),
        expires_at: iso(lease.expiresAt),
        name,
        path: ref.path,
        version: r.version,
      });
    }
    return { credential: bundle, grants, encodings };
  },
  secretValues: (c) => Object.values(c),
};
