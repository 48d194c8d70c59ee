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

/** Grants whose assertions must be RS256 whatever the active key is: Entra refuses ES256 (docs/grants.md, gcp and azure). */
const RS256_GRANTS: ReadonlySet<RunpassGrant> = new Set(["gcp", "azure"]);

/** The ConfigError for a deployment that needs an RS256 key and has none; `who` says what needs it. */
export function missingRs256(who: string): ConfigError {
  return new ConfigError(
    `RUNPASS_SIGNING_KEYS has no RS256 key, which ${who} need (Entra refuses ES256): add an RSA private JWK with "alg": "RS256" to the list, after the active key (docs/grants.md, gcp and azure)`,
  );
}

interface SigningKey {
  key: CryptoKey;
  kid: string;
  alg: string;
}

async function importSigningKey(jwk: JWK, alg: string, index: number): Promise<CryptoKey> {
  try {
    const key = await importJWK({ ...jwk, ext: false }, alg);
    if (key instanceof Uint8Array) throw new Error("symmetric");
    return key;
  } catch {
    throw new ConfigError(`RUNPASS_SIGNING_KEYS[${index}] cannot be imported as a signing key`);
  }
}

/** Signs runpass JWTs with the active key and publishes every configured key's public half. */
export class Signer {
  readonly #active: SigningKey;
  /** The first RS256 key (the active one when it is RS256), for the grants in RS256_GRANTS. */
  readonly #rs256: SigningKey | undefined;
  readonly #public: JWK[];

  private constructor(active: SigningKey, rs256: SigningKey | undefined, publicKeys: JWK[]) {
    this.#active = active;
    this.#rs256 = rs256;
    this.#public = publicKeys;
  }

  /**
   * Parses RUNPASS_SIGNING_KEYS (a JSON array of private JWKs, or `{ "keys": [...] }`). Fails closed with a
   * ConfigError; `requireRs256` names what needs an RS256 key (the policies with gcp or azure grants), and its
   * absence is then a ConfigError too.
   */
  static async fromConfig(
    text: string | undefined,
    options: { requireRs256?: string } = {},
  ): Promise<Signer> {
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
    let active: SigningKey | undefined;
    let rs256: SigningKey | undefined;
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
      if (i === 0) active = { key: await importSigningKey(jwk, alg, i), kid, alg };
      if (alg === "RS256" && !rs256) {
        rs256 = i === 0 && active ? active : { key: await importSigningKey(jwk, alg, i), kid, alg };
      }
    }
    if (!active) throw new ConfigError("RUNPASS_SIGNING_KEYS has no active key");
    if (options.requireRs256 !== undefined && !rs256) throw missingRs256(options.requireRs256);
    return new Signer(active, rs256, publicKeys);
  }

  /** The public JWKS for /.well-known/jwks.json. */
  jwks(): { keys: JWK[] } {
    return { keys: this.#public };
  }

  /** The active key's algorithm. */
  get algorithm(): string {
    return this.#active.alg;
  }

  /** Every algorithm runpass signs with: the active key's, then RS256 when an RS256 key signs gcp/azure assertions. */
  get algorithms(): string[] {
    return [...new Set([this.#active.alg, ...(this.#rs256 ? [this.#rs256.alg] : [])])];
  }

  /**
   * Signs `claims` as a JWT for `grant`, with the active key or, for gcp and azure, the RS256 key (a ConfigError
   * when there is none); the grant is always stamped, last, as `runpass_grant`.
   */
  async sign(grant: RunpassGrant, claims: JWTPayload): Promise<string> {
    const signing = RS256_GRANTS.has(grant) ? this.#rs256 : this.#active;
    if (!signing) throw missingRs256(`${grant} grants`);
    return new SignJWT({ ...claims, runpass_grant: grant })
      .setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ: "JWT" })
      .sign(signing.key);
  }
}
