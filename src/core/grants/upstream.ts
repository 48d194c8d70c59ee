// Upstream (STS, GitHub API) failures as the core sees them, and the bounded retry every client uses.

import { RunpassError } from "../errors.ts";

/** A failed upstream call. `detail` goes to the audit record only, never to the caller. */
export class UpstreamError extends Error {
  override name = "UpstreamError";
  readonly retryable: boolean;
  readonly retryAfter: number | undefined;
  readonly detail: string;

  constructor(detail: string, options: { retryable: boolean; retryAfter?: number }) {
    super(detail);
    this.detail = detail;
    this.retryable = options.retryable;
    this.retryAfter = options.retryAfter;
  }
}

/**
 * The caller-facing error for an upstream failure: a generic sentence, a retryable flag, maybe Retry-After; the
 * upstream's own text only in `auditDetail`.
 */
export function upstreamFailure(service: string, error: UpstreamError, auditDetail?: string): RunpassError {
  return new RunpassError(
    "upstream_error",
    `${service} did not issue the credential${error.retryable ? "; retry shortly" : ""}`,
    {
      extra: { retryable: error.retryable },
      ...(error.retryAfter !== undefined ? { retryAfter: error.retryAfter } : {}),
      ...(auditDetail !== undefined ? { auditDetail } : {}),
    },
  );
}

export interface RetryOptions {
  attempts: number;
  /** First backoff, ms; doubles each attempt, with full jitter. */
  baseDelayMs: number;
  sleep?: (ms: number) => Promise<void>;
}

/** docs/grants.md (aws, STS failures): throttling and 5xx are retried (3 attempts, jittered, within a few seconds); others are not. */
export const DEFAULT_RETRY: RetryOptions = { attempts: 3, baseDelayMs: 250 };

/** Runs `call`, retrying retryable UpstreamErrors with jittered exponential backoff. */
export async function withRetry<T>(
  call: () => Promise<T>,
  options: RetryOptions = DEFAULT_RETRY,
): Promise<T> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (e) {
      const retry = e instanceof UpstreamError && e.retryable && e.retryAfter === undefined;
      if (!retry || attempt >= options.attempts) throw e;
      const cap = options.baseDelayMs * 2 ** (attempt - 1);
      await sleep(Math.floor(Math.random() * cap) + cap / 2);
    }
  }
}
