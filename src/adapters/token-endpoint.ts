// One POST to a cloud token endpoint (Google STS, IAM Credentials, Entra) with the bounded retry every upstream
// client uses: throttling (429), 5xx and network failures are retried; the upstream's error text goes only into
// the UpstreamError's detail, which reaches audit records and never the caller (docs/grants.md, gcp and azure).

import { type RetryOptions, UpstreamError, withRetry } from "../core/grants/upstream.ts";
import { decodeUtf8, readCapped } from "../core/read-capped.ts";

/** Token responses are a few KiB (Google's tokens up to 12 KiB); anything far larger is not one. */
const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
/** How much of an upstream's error text the audit record keeps. */
const MAX_DETAIL_CHARS = 200;

export interface TokenEndpointCall {
  url: string;
  /** A form (URLSearchParams) or a JSON value. */
  body: URLSearchParams | Record<string, unknown>;
  bearer?: string;
  /** What is being called, for the audit detail ("Google STS token exchange"). */
  what: string;
}

/** The error code and text of an OAuth ({error, error_description}) or Google API ({error: {status, message}}) error body. */
function errorText(body: unknown): string {
  if (!body || typeof body !== "object") return "";
  const e = (body as { error?: unknown; error_description?: unknown }).error;
  if (typeof e === "string") {
    const d = (body as { error_description?: unknown }).error_description;
    return `${e}${typeof d === "string" ? `: ${d}` : ""}`;
  }
  if (e && typeof e === "object") {
    const { status, message } = e as { status?: unknown; message?: unknown };
    return `${typeof status === "string" ? status : "error"}${typeof message === "string" ? `: ${message}` : ""}`;
  }
  return "";
}

async function readJson(res: Response): Promise<unknown> {
  try {
    return JSON.parse(decodeUtf8(await readCapped(res.body, MAX_TOKEN_RESPONSE_BYTES)));
  } catch {
    return undefined;
  }
}

/** POSTs once per attempt and returns the 2xx JSON body; throws UpstreamError (retryable for 429, 5xx, network). */
export function postToTokenEndpoint(
  call: TokenEndpointCall,
  fetcher: typeof fetch,
  retry?: RetryOptions,
): Promise<Record<string, unknown>> {
  const form = call.body instanceof URLSearchParams;
  return withRetry(async () => {
    let res: Response;
    try {
      res = await fetcher(call.url, {
        method: "POST",
        redirect: "manual",
        headers: {
          accept: "application/json",
          "content-type": form ? "application/x-www-form-urlencoded" : "application/json",
          "user-agent": "runpass",
          ...(call.bearer !== undefined ? { authorization: `Bearer ${call.bearer}` } : {}),
        },
        body: form ? call.body.toString() : JSON.stringify(call.body),
      });
    } catch {
      throw new UpstreamError(`${call.what}: unreachable`, { retryable: true });
    }
    const body = await readJson(res);
    if (res.status >= 200 && res.status < 300 && body && typeof body === "object") {
      return body as Record<string, unknown>;
    }
    const text = errorText(body).replace(/\s+/g, " ").slice(0, MAX_DETAIL_CHARS);
    return Promise.reject(
      new UpstreamError(`${call.what}: HTTP ${res.status}${text ? ` ${text}` : ""}`, {
        retryable: res.status === 429 || res.status >= 500,
      }),
    );
  }, retry);
}

/** A required string member of a token response, or an UpstreamError naming what was missing. */
export function member(body: Record<string, unknown>, name: string, what: string): string {
  const value = body[name];
  if (typeof value !== "string" || value.length === 0) {
    throw new UpstreamError(`${what}: answered without ${name}`, { retryable: false });
  }
  return value;
}
