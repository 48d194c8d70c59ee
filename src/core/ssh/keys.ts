// OpenSSH public keys: parsing a runner's key line (Ed25519, ECDSA P-256, RSA ≥ 3072 bits) into its wire blob, and
// the CA keys (private JWKs, WebCrypto) that sign certificates, with their public lines and signature blobs
// (RFC 8709 for Ed25519, RFC 5656 for ECDSA). docs/grants.md, ssh.

import { SSH_RSA_MAX_BITS, SSH_RSA_MIN_BITS } from "../constants.ts";
import { base64 } from "../encoding.ts";
import { fromBase64, fromBase64url, SshReader, SshWireError, SshWriter } from "./wire.ts";

/** The user key types runpass certifies. */
export type SshKeyType = "ssh-ed25519" | "ecdsa-sha2-nistp256" | "ssh-rsa";

/** A parsed public key: its type and its wire blob (the type string, then the key's own fields). */
export interface SshPublicKey {
  type: SshKeyType;
  blob: Uint8Array;
}

/** Why a public key line is refused (the message names what is wrong, never echoes the key). */
export class SshKeyError extends Error {}

const P256_RAW_POINT_BYTES = 65;

/**
 * Parses `type base64 [comment]` without async checks (policy planning is synchronous); throws SshKeyError.
 * parsePublicKeyLine adds the ECDSA on-curve check.
 */
export function readPublicKeyLine(line: string): SshPublicKey {
  const parts = line.trim().split(/[ \t]+/);
  const [type, encoded] = parts;
  if (type === undefined || encoded === undefined)
    throw new SshKeyError("expected an OpenSSH public key line: <type> <base64> [comment]");
  if (type !== "ssh-ed25519" && type !== "ecdsa-sha2-nistp256" && type !== "ssh-rsa")
    throw new SshKeyError("key type must be ssh-ed25519, ecdsa-sha2-nistp256 or ssh-rsa (≥ 3072 bits)");
  try {
    const blob = fromBase64(encoded);
    checkBlob(type, blob);
    return { type, blob };
  } catch (e) {
    if (e instanceof SshWireError) throw new SshKeyError(`malformed ${type} key: ${e.message}`);
    throw e;
  }
}

/** Parses a public key line and checks an ECDSA point lies on P-256; throws SshKeyError. */
export async function parsePublicKeyLine(line: string): Promise<SshPublicKey> {
  const key = readPublicKeyLine(line);
  if (key.type === "ecdsa-sha2-nistp256") {
    const r = new SshReader(key.blob);
    r.string();
    r.string();
    try {
      await crypto.subtle.importKey(
        "raw",
        r.string() as Uint8Array<ArrayBuffer>,
        { name: "ECDSA", namedCurve: "P-256" },
        true,
        ["verify"],
      );
    } catch {
      throw new SshKeyError("the ECDSA point is not on P-256");
    }
  }
  return key;
}

function checkBlob(type: SshKeyType, blob: Uint8Array): void {
  const r = new SshReader(blob);
  if (r.text() !== type) throw new SshKeyError("the key's type does not match its line");
  if (type === "ssh-ed25519") {
    if (r.string().length !== 32) throw new SshKeyError("an Ed25519 key is 32 bytes");
  } else if (type === "ecdsa-sha2-nistp256") {
    if (r.text() !== "nistp256") throw new SshKeyError("the ECDSA curve must be nistp256");
    const point = r.string();
    if (point.length !== P256_RAW_POINT_BYTES || point[0] !== 4)
      throw new SshKeyError("the ECDSA point must be uncompressed");
  } else {
    const e = r.mpint();
    const n = r.mpint();
    const bits = bitLength(n);
    if (bits < SSH_RSA_MIN_BITS)
      throw new SshKeyError(`RSA keys must have at least ${SSH_RSA_MIN_BITS} bits`);
    if (bits > SSH_RSA_MAX_BITS) throw new SshKeyError(`RSA keys may have at most ${SSH_RSA_MAX_BITS} bits`);
    if (
      e.length === 0 ||
      e.length > 4 ||
      !((e[e.length - 1] as number) & 1) ||
      (e.length === 1 && (e[0] as number) < 3)
    )
      throw new SshKeyError("the RSA public exponent must be odd and at least 3");
  }
  if (!r.done) throw new SshWireError("trailing bytes after the key");
}

function bitLength(magnitude: Uint8Array): number {
  if (magnitude.length === 0) return 0;
  return (magnitude.length - 1) * 8 + (32 - Math.clz32(magnitude[0] as number));
}

/** `type base64 comment` of a wire blob. */
export function keyLine(type: string, blob: Uint8Array, comment?: string): string {
  return `${type} ${base64(blob)}${comment ? ` ${comment}` : ""}`;
}

/** SHA256 fingerprint as OpenSSH prints it (`SHA256:` + unpadded base64 of the blob's digest). */
export async function fingerprint(blob: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", blob as Uint8Array<ArrayBuffer>));
  return `SHA256:${base64(digest).replace(/=+$/, "")}`;
}

/** A private JWK of a CA key as configured (RUNPASS_SSH_CA_KEYS): Ed25519 `OKP` or P-256 `EC`, with a `kid`. */
export interface CaJwk {
  kty: "OKP" | "EC";
  crv: "Ed25519" | "P-256";
  kid: string;
  x: string;
  y?: string;
  d: string;
}

/** A certificate authority key: signs certificate bodies and describes itself as an OpenSSH public key. */
export interface SshCa {
  kid: string;
  type: "ssh-ed25519" | "ecdsa-sha2-nistp256";
  /** The CA's public key blob (the certificate's `signature key`, a KRL section's `ca_key`). */
  publicBlob: Uint8Array;
  /** The SSH signature blob over `data` (RFC 8709 / RFC 5656 format). */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/** Imports a CA key from its private JWK. Throws (WebCrypto's error) when the key does not import. */
export async function importCa(jwk: CaJwk): Promise<SshCa> {
  if (jwk.kty === "OKP") {
    const key = await crypto.subtle.importKey(
      "jwk",
      { ...jwk, key_ops: ["sign"] },
      { name: "Ed25519" },
      false,
      ["sign"],
    );
    const publicBlob = new SshWriter().string("ssh-ed25519").string(fromBase64url(jwk.x)).bytes();
    return {
      kid: jwk.kid,
      type: "ssh-ed25519",
      publicBlob,
      async sign(data) {
        const sig = new Uint8Array(await crypto.subtle.sign("Ed25519", key, data as Uint8Array<ArrayBuffer>));
        return new SshWriter().string("ssh-ed25519").string(sig).bytes();
      },
    };
  }
  const key = await crypto.subtle.importKey(
    "jwk",
    { ...jwk, key_ops: ["sign"] },
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  const point = new Uint8Array(P256_RAW_POINT_BYTES);
  point[0] = 4;
  point.set(fromBase64url(jwk.x), 1);
  point.set(fromBase64url(jwk.y ?? ""), 33);
  const publicBlob = new SshWriter().string("ecdsa-sha2-nistp256").string("nistp256").string(point).bytes();
  return {
    kid: jwk.kid,
    type: "ecdsa-sha2-nistp256",
    publicBlob,
    async sign(data) {
      // WebCrypto answers r ‖ s (32 bytes each); SSH wants string(mpint r, mpint s).
      const rs = new Uint8Array(
        await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, data as Uint8Array<ArrayBuffer>),
      );
      const inner = new SshWriter().mpint(rs.subarray(0, 32)).mpint(rs.subarray(32)).bytes();
      return new SshWriter().string("ecdsa-sha2-nistp256").string(inner).bytes();
    },
  };
}

/** The TrustedUserCAKeys line of a CA: `type base64 runpass-ca:<kid>`. */
export function caLine(ca: SshCa): string {
  return keyLine(ca.type, ca.publicBlob, `runpass-ca:${ca.kid}`);
}
