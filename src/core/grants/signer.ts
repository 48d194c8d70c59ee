// runpass's own signing keys (RUNPASS_SIGNING_KEYS): the first key signs, all are published in the JWKS.

import { calculateJwkThumbprint, importJWK, type JWK, type JWTPayload, SignJWT } from "jose";
import { ConfigError } from "../errors.ts";

const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] as const;

function algFor(jwk: JWK): string | undefined {
  if (jwk.alg) return jwk.alg;
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ES256";
  if (jwk.kty === "EC" && jwk.crv === "P-384") return "ES384";
  if (jwk.kty === "RSA") return "RS256";
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  return undefined;
}

/**
 * Which grant a runpass JWT was signed for (its `runpass_grant` claim). A relying party can then refuse a runpass
 * token minted for another grant, even when it carries the audience it expects.
 */
export type RunpassGrant = "token" | "aws" | "gcp" | "azure";

/** Signs runpass JWTs with the active key and publishes every configured key's public half. */
export class Signer {
  readonly #key: CryptoKey;
  readonly #kid: string;
  readonly #alg: string;
  readonly #public: JWK[];

  private constructor(key: CryptoKey, kid: string, alg: string, publicKeys: JWK[]) {
    this.#key = key;
    this.#kid = kid;
    this.#alg = alg;
    this.#public = publicKeys;
  }

  /** Parses RUNPASS_SIGNING_KEYS (a JSON array of private JWKs, or `{ "keys": [...] }`). Fails closed with a ConfigError. */
  static async fromConfig(text: string | undefined): Promise<Signer> {
    if (!text)
      throw new ConfigError(
        "RUNPASS_SIGNING_KEYS is not set (a JSON array of private JWKs; the first signs)",
      );
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ConfigError("RUNPASS_SIGNING_KEYS is not valid JSON");
    }
    const list = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown })?.keys;
    if (!Array.isArray(list) || list.length === 0) {
      throw new ConfigError("RUNPASS_SIGNING_KEYS must be a non-empty JSON array of private JWKs");
    }
    const publicKeys: JWK[] = [];
    let active: { key: CryptoKey; kid: string; alg: string } | undefined;
    for (const [i, raw] of list.entries()) {
      const jwk = raw as JWK;
      const alg = typeof jwk === "object" && jwk ? algFor(jwk) : undefined;
      if (!alg || !jwk.d || alg.startsWith("HS")) {
        throw new ConfigError(
          `RUNPASS_SIGNING_KEYS[${i}] is not an asymmetric private JWK (ES256, RS256 or EdDSA)`,
        );
      }
      const kid = jwk.kid ?? (await calculateJwkThumbprint(jwk));
      const pub: JWK = { ...jwk, kid, alg, use: "sig" };
      for (const m of PRIVATE_MEMBERS) delete pub[m];
      delete pub.key_ops;
      delete pub.ext;
      publicKeys.push(pub);
      if (i === 0) {
        try {
          const key = await importJWK({ ...jwk, ext: false }, alg);
          if (key instanceof Uint8Array) throw new Error("symmetric");
          active = { key, kid, alg };
        } catch {
          throw new ConfigError("RUNPASS_SIGNING_KEYS[0] cannot be imported as a signing key");
        }
      }
    }
    if (!active) throw new ConfigError("RUNPASS_SIGNING_KEYS has no active key");
    return new Signer(active.key, active.kid, active.alg, publicKeys);
  }

  /** The public JWKS for /.well-known/jwks.json. */
  jwks(): { keys: JWK[] } {
    return { keys: this.#public };
  }

  get algorithm(): string {
    return this.#alg;
  }

  /** Signs `claims` as a JWT for `grant` with the active key; the grant is always stamped, last, as `runpass_grant`. */
  async sign(grant: RunpassGrant, claims: JWTPayload): Promise<string> {
    return new SignJWT({ ...claims, runpass_grant: grant })
      .setProtectedHeader({ alg: this.#alg, kid: this.#kid, typ: "JWT" })
      .sign(this.#key);
  }
}
