// Response helpers: JSON with no-store, the error shape of docs/api.md, and the request id on everything.

import type { Context } from "hono";
import { type ErrorCode, RunpassError, STATUS } from "../core/errors.ts";

/** Headers for anything that may carry a credential. */
export const NO_STORE = { "cache-control": "no-store", pragma: "no-cache" } as const;

/** Builds the error response for a RunpassError. Reasons appear only when the redaction rule allows. */
export function errorResponse(requestId: string, error: RunpassError): Response {
  const body: Record<string, unknown> = {
    error: error.code,
    error_description: error.message,
    request_id: requestId,
    ...(error.extra ?? {}),
  };
  if (error.reasonsVisible && error.reasons.length > 0) body.reasons = error.reasons;
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-request-id": requestId,
    ...NO_STORE,
  };
  if (error.retryAfter !== undefined) headers["retry-after"] = String(error.retryAfter);
  if (error.code === "invalid_token") headers["www-authenticate"] = 'Bearer error="invalid_token"';
  return new Response(JSON.stringify(body), { status: error.status, headers });
}

/** A plain error response for a code (404s, unexpected failures). */
export function codeResponse(requestId: string, code: ErrorCode, description: string): Response {
  return errorResponse(requestId, new RunpassError(code, description));
}

/** JSON success response with no-store. */
export function jsonNoStore(c: Context, body: unknown, status: 200 | 201 = 200): Response {
  return c.json(body, status, NO_STORE);
}

export { STATUS };
