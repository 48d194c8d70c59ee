// The error-code union of docs/api.md (Errors), the reason codes behind it, and their HTTP mapping.

/** Wire error codes (docs/api.md, Errors). Callers switch on these, never on message text. */
export type ErrorCode =
  | "invalid_request"
  | "invalid_token"
  | "access_denied"
  | "token_replayed"
  | "request_too_large"
  | "unsupported_media_type"
  | "rate_limited"
  | "upstream_error"
  | "temporarily_unavailable"
  | "not_found"
  | "conflict"
  | "server_error";

/** HTTP status for each wire error code. */
export const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_token: 401,
  access_denied: 403,
  not_found: 404,
  token_replayed: 409,
  conflict: 409,
  request_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  server_error: 500,
  upstream_error: 502,
  temporarily_unavailable: 503,
};

/** Why a check failed. Stable codes, shown to callers only under the redaction rule, always written to audit. */
export type ReasonCode =
  // token-level (401 invalid_token, 413, 503)
  | "token_missing"
  | "token_too_large"
  | "malformed"
  | "issuer_untrusted"
  | "alg_not_allowed"
  | "forbidden_header"
  | "unknown_key"
  | "keys_unavailable"
  | "signature_invalid"
  | "claim_missing"
  | "audience_invalid"
  | "expired"
  | "not_yet_valid"
  | "token_too_old"
  // policy-level (403 access_denied)
  | "policy_unknown"
  | "issuer_mismatch"
  | "audience_mismatch"
  | "claim_absent"
  | "type_mismatch"
  | "claim_mismatch"
  | "denied_by"
  | "grant_not_allowed"
  | "lease_too_short"
  | "secrets_already_delivered"
  | "target_invalid"
  // run ledger
  | "replayed"
  | "run_ended"
  // webhooks, lease deletion, introspection
  | "signature_missing"
  | "signature_invalid"
  | "webhook_token_invalid"
  | "duplicate_delivery"
  | "revoke_token_invalid"
  | "admin_token_invalid"
  | "lease_id_invalid"
  | "renewed_too_soon"
  | "grant_changed"
  // a secret version a leak report quarantined (docs/leaks.md)
  | "secret_compromised"
  | "out_of_scope"
  // the web console (docs/console.md)
  | "csrf_token_invalid";

/** One failed check. `expected` holds policy values, never the token's own claim values. */
export interface Reason {
  code: ReasonCode;
  claim?: string;
  /** Values the policy expected (policy data, shown only when reasons are visible). */
  expected?: Array<string | number | boolean>;
  /** Index of the deny rule that matched (for `denied_by`). */
  rule?: number;
  /** Claims of the deny rule that matched (for `denied_by`). */
  claims?: string[];
  /** Grant name (for `grant_not_allowed`). */
  grant?: string;
}

/** An error that already knows its wire code; `reasons` are the full trace (redacted before leaving). */
export class RunpassError extends Error {
  readonly code: ErrorCode;
  readonly reasons: Reason[];
  readonly retryAfter: number | undefined;
  /** Extra response fields (e.g. `retryable`). */
  readonly extra: Record<string, unknown> | undefined;
  /** Whether `reasons` may be shown to the caller (docs/api.md, Redaction). */
  readonly reasonsVisible: boolean;
  #auditDetail: string | undefined;

  constructor(
    code: ErrorCode,
    description: string,
    options: {
      reasons?: Reason[];
      retryAfter?: number;
      extra?: Record<string, unknown>;
      reasonsVisible?: boolean;
      auditDetail?: string;
    } = {},
  ) {
    super(description);
    this.name = "RunpassError";
    this.code = code;
    this.reasons = options.reasons ?? [];
    this.retryAfter = options.retryAfter;
    this.extra = options.extra;
    this.reasonsVisible = options.reasonsVisible ?? false;
    this.#auditDetail = options.auditDetail;
  }

  /** Operator detail for the audit record only (e.g. upstream error text); never sent to the caller. */
  get auditDetail(): string | undefined {
    return this.#auditDetail;
  }

  /** Adds operator detail for the audit record (after what is already there) and returns the same error. */
  annotate(detail: string): this {
    this.#auditDetail = this.#auditDetail ? `${this.#auditDetail} (${detail})` : detail;
    return this;
  }

  get status(): number {
    return STATUS[this.code];
  }
}

/** A configuration problem an operator must fix; always fails closed as 503 naming what is wrong. */
export class ConfigError extends RunpassError {
  constructor(description: string) {
    super("temporarily_unavailable", `runpass is misconfigured: ${description}`, { retryAfter: 60 });
    this.name = "ConfigError";
  }
}

/** Turns anything thrown into a short message without stack traces or foreign text. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
