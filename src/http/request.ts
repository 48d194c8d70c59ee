// Request parsing at the edge: media type, size caps before parsing, bearer tokens, strict zod bodies.

import type { Context } from "hono";
import type * as z from "zod/mini";
import { MAX_BODY_BYTES, MAX_TOKEN_BYTES } from "../core/constants.ts";
import { RunpassError } from "../core/errors.ts";
import { decodeUtf8, readCapped, TooLargeError } from "../core/read-capped.ts";
import { err, ok, type Result } from "../core/result.ts";

/** Refuses a declared Content-Length over the cap, before anything is read. */
export function checkDeclaredLength(c: Context, cap = MAX_BODY_BYTES): void {
  const declared = c.req.header("content-length");
  if (declared !== undefined && Number(declared) > cap) {
    throw new RunpassError("request_too_large", `the request body is larger than ${cap} bytes`);
  }
}

/** Reads the raw body under the 64 KiB cap (Content-Length first, then while streaming). */
export async function readBodyBytes(c: Context, cap = MAX_BODY_BYTES): Promise<Uint8Array> {
  checkDeclaredLength(c, cap);
  try {
    return await readCapped(c.req.raw.body, cap);
  } catch (e) {
    if (e instanceof TooLargeError)
      throw new RunpassError("request_too_large", `the request body is larger than ${cap} bytes`);
    throw new RunpassError("invalid_request", "the request body could not be read");
  }
}

/** Requires a media type (ignoring parameters such as charset). */
export function requireMediaType(c: Context, expected: string): void {
  const type = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== expected) {
    throw new RunpassError("unsupported_media_type", `the request body must be ${expected}`);
  }
}

/** Describes the first zod issue without echoing the input's values. */
export function describeIssue(issues: readonly z.core.$ZodIssue[]): string {
  const issue = issues[0];
  if (!issue) return "the request body is not valid";
  if (issue.code === "unrecognized_keys") return `unknown field "${issue.keys[0]}"`;
  const field = issue.path.length ? `"${issue.path.join(".")}"` : "the body";
  if (issue.code === "invalid_type") return `${field} must be ${issue.expected}`;
  if (issue.code === "invalid_value")
    return `${field} must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
  return `${field} is not valid`;
}

/** Parses JSON bytes against a strict schema (400 on any problem). */
export function parseJson<T>(bytes: Uint8Array, schema: z.ZodMiniType<T>): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decodeUtf8(bytes));
  } catch {
    throw new RunpassError("invalid_request", "the request body is not valid JSON");
  }
  const result = schema.safeParse(parsed);
  if (!result.success) throw new RunpassError("invalid_request", describeIssue(result.error.issues));
  return result.data;
}

/** What an Authorization header holds: a bearer token, or why not. */
export type BearerParse = Result<string, "too_large" | "malformed">;

const isSpace = (code: number) => code === 0x20 || code === 0x09;

/**
 * Parses `Bearer <token>` in one pass with no backtracking, length first (docs/security.md, "Cheap
 * rejections stay cheap"): a regex with two adjacent whitespace runs is quadratic on a header of spaces.
 */
export function parseBearer(header: string, cap: number): BearerParse {
  if (header.length > cap + 64) return err("too_large");
  if (header.length < 7 || header.slice(0, 6).toLowerCase() !== "bearer" || header.charCodeAt(6) !== 0x20)
    return err("malformed");
  let start = 7;
  while (start < header.length && header.charCodeAt(start) === 0x20) start++;
  let end = start;
  while (end < header.length && !isSpace(header.charCodeAt(end))) end++;
  for (let i = end; i < header.length; i++) if (!isSpace(header.charCodeAt(i))) return err("malformed");
  if (end - start > cap) return err("too_large");
  if (end === start) return err("malformed");
  return ok(header.slice(start, end));
}

/** The bearer credential from Authorization, size-capped before anything looks at it. Undefined when absent. */
export function bearer(c: Context, cap = MAX_TOKEN_BYTES): string | undefined {
  const header = c.req.header("authorization");
  if (header === undefined) return undefined;
  const parsed = parseBearer(header, cap);
  if (parsed.ok) return parsed.value;
  if (parsed.error === "too_large") {
    throw new RunpassError("request_too_large", `the bearer token is larger than ${cap} bytes`);
  }
  throw new RunpassError("invalid_token", "the Authorization header must be `Bearer <token>`", {
    reasons: [{ code: "malformed" }],
  });
}

/** Reads and parses a JSON body: size (413), media type (415), JSON and schema (400). */
export async function jsonBody<T>(c: Context, schema: z.ZodMiniType<T>): Promise<T> {
  checkDeclaredLength(c);
  requireMediaType(c, "application/json");
  return parseJson(await readBodyBytes(c), schema);
}
