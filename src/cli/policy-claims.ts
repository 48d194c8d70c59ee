// `runpass policy claims`: a real token's claims, decoded without verification, as a test case's `claims:` block.

import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { decodeUnverified, readTokenFile } from "./policy-context.ts";
import { UsageError } from "./usage-error.ts";

/** Per-token values a test case should not pin: they change with every token. */
const DROPPED = new Set(["exp", "iat", "nbf", "jti"]);
/** Shown first, in this order; the rest keep the token's order. */
const LEADING = ["iss", "aud", "sub"];

/** The claim set for a test case: exp/iat/nbf/jti dropped, iss/aud/sub first. */
export function testClaims(payload: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of LEADING) if (Object.hasOwn(payload, key)) out[key] = payload[key];
  for (const [key, value] of Object.entries(payload)) {
    if (!DROPPED.has(key) && !Object.hasOwn(out, key)) out[key] = value;
  }
  return out;
}

/** Renders the claims: YAML as a `claims:` block to paste into a case, JSON as the bare object. */
export function renderClaims(
  claims: Record<string, unknown>,
  format: "yaml" | "json",
  source: string,
): string {
  if (format === "json") return `${JSON.stringify(claims, null, 2)}\n`;
  const body = stringify({ claims }, { version: "1.2", lineWidth: 0, defaultKeyType: "PLAIN" });
  return `# claims of ${source}, decoded without verifying the signature (exp, iat, nbf, jti dropped)\n${body}`;
}

export async function policyClaimsCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      token: { type: "string" },
      out: { type: "string" },
      format: { type: "string", default: "yaml" },
    },
    strict: true,
  });
  if (!values.token) throw new UsageError("policy claims needs --token FILE");
  if (values.format !== "yaml" && values.format !== "json")
    throw new UsageError(`--format must be yaml or json, not "${values.format}"`);
  const token = await readTokenFile(values.token);
  const text = renderClaims(testClaims(decodeUnverified(token, values.token)), values.format, values.token);
  if (values.out) {
    await writeFile(values.out, text);
    console.error(`runpass: wrote the claims of ${values.token} to ${values.out}`);
  } else {
    process.stdout.write(text);
  }
  return 0;
}
