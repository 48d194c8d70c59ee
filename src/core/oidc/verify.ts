// OIDC token verification, in the order docs/security.md fixes (Verification before everything): size, issuer allow-list, header, that issuer's key, signature, claims, time.

import { compactVerify, decodeJwt, decodeProtectedHeader, errors as joseErrors } from "jose";
import type { Clock } from "../clock.ts";
import { CLOCK_SKEW_SECONDS, MAX_TOKEN_BYTES } from "../constants.ts";
import { sha256 } from "../crypto.ts";
import type { Reason } from "../errors.ts";
import { err, ok, type Result } from "../result.ts";
import { type Identity, identityOf, StandardClaims } from "./claims.ts";
import type { IssuerConfig } from "./issuers.ts";
import { isCompactJws } from "./jws.ts";
import type { KeySource } from "./key-source.ts";

export interface VerifierOptions {
  /** Trusted issuers keyed by their exact `iss` string. */
  issuers: ReadonlyMap<string, IssuerConfig>;
  keys: KeySource;
  /** Every audience some policy (or RUNPASS_AUDIENCE) accepts. */
  audiences: ReadonlySet<string>;
  clock: Clock;
}

/** A token whose signature, issuer, audience and lifetime all check out. Its claims are data for policies. */
export interface VerifiedToken {
  issuer: IssuerConfig;
  claims: Record<string, unknown>;
  standard: StandardClaims;
  identity: Identity;
  /** What makes this token single-use: its jti, or its SHA-256 for generic issuers without one. */
  singleUseId: string;
}

export interface TokenFailure {
  code: "invalid_token" | "request_too_large" | "temporarily_unavailable";
  reason: Reason;
  description: string;
  retryAfter?: number;
  /** The matched issuer when the failure came after the allow-list (for audit). */
  issuer?: IssuerConfig;
}

/** Header parameters that name keys or key locations. runpass never uses them; a token carrying one is refused. */
const FORBIDDEN_HEADERS = ["jku", "x5u", "jwk", "x5c"] as const;

/** The reason codes token verification can fail with. */
type TokenReasonCode =
  | "token_missing"
  | "token_too_large"
  | "malformed"
  | "issuer_untrusted"
  | "audience_invalid"
  | "alg_not_allowed"
  | "forbidden_header"
  | "unknown_key"
  | "signature_invalid"
  | "claim_missing"
  | "expired"
  | "not_yet_valid"
  | "token_too_old"
  | "keys_unavailable";

/** Each failure's wire code and sentence: exhaustive, so a new reason cannot fall through to a default. */
const FAILURES: Record<TokenReasonCode, { code: TokenFailure["code"]; description: string }> = {
  token_missing: {
    code: "invalid_token",
    description: "an OIDC token is required as `Authorization: Bearer <token>`",
  },
  token_too_large: { code: "request_too_large", description: "the token is larger than runpass accepts" },
  malformed: { code: "invalid_token", description: "the token is not a well-formed signed JWT" },
  issuer_untrusted: {
    code: "invalid_token",
    description: "the token's issuer or audience is not accepted by this broker",
  },
  audience_invalid: {
    code: "invalid_token",
    description:
      "the token's issuer or audience is not accepted by this broker (it needs exactly one audience)",
  },
  alg_not_allowed: {
    code: "invalid_token",
    description: "the token's signature algorithm is not accepted for its issuer",
  },
  forbidden_header: {
    code: "invalid_token",
    description: "the token header names a key or key URL (jku, x5u, jwk, x5c), which runpass never uses",
  },
  unknown_key: {
    code: "invalid_token",
    description: "the token was signed with a key its issuer does not publish",
  },
  signature_invalid: { code: "invalid_token", description: "the token's signature does not verify" },
  claim_missing: {
    code: "invalid_token",
    description: "the token lacks a required claim, or a required claim has the wrong type",
  },
  expired: { code: "invalid_token", description: "the token has expired" },
  not_yet_valid: {
    code: "invalid_token",
    description: "the token is not valid yet (nbf or iat is in the future)",
  },
  token_too_old: {
    code: "invalid_token",
    description: "the token is older than its issuer's maximum token age",
  },
  keys_unavailable: {
    code: "temporarily_unavailable",
    description: "the issuer's signing keys cannot be fetched right now; retry shortly",
  },
};

function fail(
  reason: Reason & { code: TokenReasonCode },
  extra: Partial<TokenFailure> = {},
): { ok: false; error: TokenFailure } {
  const { code } = FAILURES[reason.code];
  let { description } = FAILURES[reason.code];
  if (reason.code === "claim_missing" && reason.claim) {
    description = `the token lacks the required claim "${reason.claim}", or it has the wrong type`;
  }
  return err({ code, reason, description, ...extra });
}

/** Verifies an OIDC token. Never fetches anything for an issuer that is not on the allow-list. */
export async function verifyToken(
  token: string,
  options: VerifierOptions,
): Promise<Result<VerifiedToken, TokenFailure>> {
  // The cap is in bytes: count UTF-8 only when characters alone could not already decide it.
  if (
    token.length > MAX_TOKEN_BYTES ||
    (token.length * 3 > MAX_TOKEN_BYTES && new TextEncoder().encode(token).length > MAX_TOKEN_BYTES)
  )
    return fail({ code: "token_too_large" });
  if (token.length === 0) return fail({ code: "token_missing" });
  if (!isCompactJws(token)) return fail({ code: "malformed" });

  let header: Record<string, unknown>;
  let unverified: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token) as Record<string, unknown>;
    unverified = decodeJwt(token) as Record<string, unknown>;
  } catch {
    return fail({ code: "malformed" });
  }

  // The allow-list lookup is an exact string match: no normalisation, no discovery for strangers.
  if (typeof unverified.iss !== "string") return fail({ code: "claim_missing", claim: "iss" });
  const issuer = options.issuers.get(unverified.iss);
  if (!issuer) return fail({ code: "issuer_untrusted" });

  const alg = header.alg;
  if (typeof alg !== "string" || !issuer.algorithms.includes(alg))
    return fail({ code: "alg_not_allowed" }, { issuer });
  if (FORBIDDEN_HEADERS.some((h) => h in header)) return fail({ code: "forbidden_header" }, { issuer });
  if (header.kid !== undefined && typeof header.kid !== "string")
    return fail({ code: "malformed" }, { issuer });

  const key = await options.keys.getKey(issuer, header.kid as string | undefined, alg);
  if (!key.ok) {
    if (key.error.reason === "keys_unavailable") {
      return fail({ code: "keys_unavailable" }, { issuer, retryAfter: key.error.retryAfter });
    }
    return fail({ code: "unknown_key" }, { issuer });
  }

  let claims: Record<string, unknown>;
  try {
    const { payload } = await compactVerify(token, key.value, { algorithms: [alg] });
    const parsed: unknown = JSON.parse(new TextDecoder().decode(payload));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      return fail({ code: "malformed" }, { issuer });
    claims = parsed as Record<string, unknown>;
  } catch (e) {
    if (e instanceof joseErrors.JWSSignatureVerificationFailed)
      return fail({ code: "signature_invalid" }, { issuer });
    return fail({ code: "malformed" }, { issuer });
  }

  if (Array.isArray(claims.aud)) return fail({ code: "audience_invalid" }, { issuer });
  const std = StandardClaims.safeParse(claims);
  if (!std.success) {
    const claim = String(std.error.issues[0]?.path[0] ?? "");
    return fail({ code: "claim_missing", claim }, { issuer });
  }
  const standard = std.data;
  if (issuer.kind !== "generic") {
    if (standard.jti === undefined) return fail({ code: "claim_missing", claim: "jti" }, { issuer });
    if (standard.nbf === undefined) return fail({ code: "claim_missing", claim: "nbf" }, { issuer });
  }
  if (!options.audiences.has(standard.aud)) return fail({ code: "audience_invalid" }, { issuer });

  const now = Math.floor(options.clock() / 1000);
  if (now - CLOCK_SKEW_SECONDS >= standard.exp) return fail({ code: "expired" }, { issuer });
  if (standard.iat > now + CLOCK_SKEW_SECONDS)
    return fail({ code: "not_yet_valid", claim: "iat" }, { issuer });
  if (standard.nbf !== undefined && standard.nbf > now + CLOCK_SKEW_SECONDS) {
    return fail({ code: "not_yet_valid", claim: "nbf" }, { issuer });
  }
  if (standard.exp <= standard.iat) return fail({ code: "malformed" }, { issuer });
  if (now - standard.iat > issuer.maxTokenAge + CLOCK_SKEW_SECONDS)
    return fail({ code: "token_too_old" }, { issuer });

  // Without a jti, the id is the SHA-256 of what the signature covers (header.payload), not of the whole token:
  // a signature has several valid encodings (unused base64url bits; ECDSA's s and n − s), so hashing the
  // token string would let one token be exchanged once per encoding.
  const signed = token.slice(0, token.lastIndexOf("."));
  const singleUseId = standard.jti !== undefined ? `jti:${standard.jti}` : `sha:${await sha256(signed)}`;
  return ok({ issuer, claims, standard, identity: identityOf(issuer, claims), singleUseId });
}
