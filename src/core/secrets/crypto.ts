// Secrets at rest (docs/security.md): each version under its own random AES-256-GCM data key; the data key
// wrapped by a master key from RUNPASS_MASTER_KEYS; path, version and (format 2) the delivery encoding bound as
// AAD into both, so a record copied to another path or version, relabelled to another encoding or format, or
// with any flipped byte, fails to decrypt.

import { base64url, utf8 } from "../encoding.ts";
import { ConfigError } from "../errors.ts";

export interface MasterKeys {
  active: string;
  keys: ReadonlyMap<string, CryptoKey>;
}

/**
 * Associated-data formats: 1 bound path and version; 2 adds the encoding the value is delivered in. New
 * versions are always sealed as 2; 1 is read so versions written before it still decrypt.
 */
export type AadFormat = 1 | 2;
export const CURRENT_AAD_FORMAT: AadFormat = 2;

/** How a version's bytes are delivered: as UTF-8 text, or base64-encoded (binary values). */
export type SecretEncoding = "utf8" | "base64";

/** An encrypted secret version as stored (all fields base64url but `aad`). */
export interface SealedValue {
  /** The associated-data format it was sealed with. */
  aad: AadFormat;
  kid: string;
  /** iv.ciphertext of the data key under the master key. */
  wrapped: string;
  iv: string;
  ciphertext: string;
}

/** A record that cannot be opened: names the kid when the master key is unknown. */
export class SecretDecryptError extends Error {
  override name = "SecretDecryptError";
  readonly kid: string | undefined;
  constructor(message: string, kid?: string) {
    super(message);
    this.kid = kid;
  }
}

const KID = /^[A-Za-z0-9._-]{1,64}$/;

function fromB64(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "="));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/**
 * Parses RUNPASS_MASTER_KEYS: `{ "active": "<kid>", "keys": { "<kid>": "<base64 of 32 bytes>" } }`, or a bare
 * `{ "<kid>": "<base64>" }` with exactly one key. Throws ConfigError naming the problem (never the key).
 */
export async function parseMasterKeys(text: string | undefined): Promise<MasterKeys> {
  if (!text) throw new ConfigError("RUNPASS_MASTER_KEYS is not set (secrets need a master key)");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError("RUNPASS_MASTER_KEYS is not valid JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(
      'RUNPASS_MASTER_KEYS must be { "active": "<kid>", "keys": { "<kid>": "<base64>" } }',
    );
  }
  const obj = parsed as Record<string, unknown>;
  let active: unknown;
  let raw: Record<string, unknown>;
  if ("keys" in obj || "active" in obj) {
    active = obj.active;
    raw = (obj.keys ?? {}) as Record<string, unknown>;
  } else {
    raw = obj;
    const kids = Object.keys(raw);
    if (kids.length !== 1)
      throw new ConfigError('RUNPASS_MASTER_KEYS with several keys must name the "active" one');
    active = kids[0];
  }
  if (typeof raw !== "object" || raw === null)
    throw new ConfigError("RUNPASS_MASTER_KEYS.keys must be an object");
  const keys = new Map<string, CryptoKey>();
  for (const [kid, value] of Object.entries(raw)) {
    if (!KID.test(kid))
      throw new ConfigError(`RUNPASS_MASTER_KEYS: key id "${kid.slice(0, 64)}" is not valid`);
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      if (typeof value !== "string") throw new Error();
      bytes = Uint8Array.from(atob(value), (c) => c.charCodeAt(0));
    } catch {
      throw new ConfigError(`RUNPASS_MASTER_KEYS: key "${kid}" is not base64`);
    }
    if (bytes.length !== 32) throw new ConfigError(`RUNPASS_MASTER_KEYS: key "${kid}" is not 32 bytes`);
    keys.set(kid, await crypto.subtle.importKey("raw", bytes, "AES-GCM", false, ["encrypt", "decrypt"]));
  }
  if (typeof active !== "string" || !keys.has(active)) {
    throw new ConfigError(`RUNPASS_MASTER_KEYS: the active key "${String(active)}" is not among its keys`);
  }
  return { active, keys };
}

/** What one version's AEAD binds: where it lives, and how it is delivered. */
export interface SealContext {
  path: string;
  version: number;
  encoding: SecretEncoding;
}

// The format number leads the text, so no string of one format can equal one of another.
function aad(
  format: AadFormat,
  kind: "value" | "key",
  at: SealContext,
  kid?: string,
): Uint8Array<ArrayBuffer> {
  const fields =
    format === 1
      ? [`runpass-secret/v1`, kind, at.path, String(at.version)]
      : [`runpass-secret/v2`, kind, at.path, String(at.version), at.encoding];
  if (kid) fields.push(kid);
  return utf8(fields.join("\n"));
}

async function wrapDataKey(
  master: MasterKeys,
  kid: string,
  dek: Uint8Array<ArrayBuffer>,
  format: AadFormat,
  at: SealContext,
) {
  const key = master.keys.get(kid) as CryptoKey;
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: aad(format, "key", at, kid) },
    key,
    dek,
  );
  return `${base64url(iv)}.${base64url(new Uint8Array(ct))}`;
}

async function unwrapDataKey(master: MasterKeys, sealed: SealedValue, at: SealContext) {
  const key = master.keys.get(sealed.kid);
  if (!key) {
    throw new SecretDecryptError(`master key "${sealed.kid}" is not in RUNPASS_MASTER_KEYS`, sealed.kid);
  }
  const [iv, ct] = sealed.wrapped.split(".");
  try {
    const raw = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: fromB64(iv ?? ""), additionalData: aad(sealed.aad, "key", at, sealed.kid) },
      key,
      fromB64(ct ?? ""),
    );
    return new Uint8Array(raw);
  } catch {
    throw new SecretDecryptError(
      "the data key does not unwrap (tampered, or moved to another path, version, encoding or format)",
    );
  }
}

/** Encrypts one version's value under a fresh data key wrapped by the active master key (current format). */
export async function sealValue(
  master: MasterKeys,
  at: SealContext,
  value: Uint8Array<ArrayBuffer>,
): Promise<SealedValue> {
  const format = CURRENT_AAD_FORMAT;
  const dek = crypto.getRandomValues(new Uint8Array(32));
  const key = await crypto.subtle.importKey("raw", dek, "AES-GCM", false, ["encrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: aad(format, "value", at) },
    key,
    value,
  );
  const wrapped = await wrapDataKey(master, master.active, dek, format, at);
  dek.fill(0);
  return {
    aad: format,
    kid: master.active,
    wrapped,
    iv: base64url(iv),
    ciphertext: base64url(new Uint8Array(ct)),
  };
}

/** Decrypts one version with the format it records; throws SecretDecryptError on an unknown kid or any tampering. */
export async function openValue(
  master: MasterKeys,
  at: SealContext,
  sealed: SealedValue,
): Promise<Uint8Array> {
  const dek = await unwrapDataKey(master, sealed, at);
  try {
    const key = await crypto.subtle.importKey("raw", dek, "AES-GCM", false, ["decrypt"]);
    const pt = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: fromB64(sealed.iv), additionalData: aad(sealed.aad, "value", at) },
      key,
      fromB64(sealed.ciphertext),
    );
    return new Uint8Array(pt);
  } catch {
    throw new SecretDecryptError(
      "the secret does not decrypt (tampered, or moved to another path, version, encoding or format)",
    );
  } finally {
    dek.fill(0);
  }
}

/**
 * Brings a version up to date: a record in an older associated-data format is re-sealed (new data key, current
 * format) under the active master key; otherwise only its data key is re-wrapped when another master key wraps it.
 */
export async function rewrapValue(
  master: MasterKeys,
  at: SealContext,
  sealed: SealedValue,
): Promise<SealedValue> {
  if (sealed.aad !== CURRENT_AAD_FORMAT) {
    const value = (await openValue(master, at, sealed)) as Uint8Array<ArrayBuffer>;
    try {
      return await sealValue(master, at, value);
    } finally {
      value.fill(0);
    }
  }
  if (sealed.kid === master.active) return sealed;
  const dek = await unwrapDataKey(master, sealed, at);
  const wrapped = await wrapDataKey(master, master.active, dek as Uint8Array<ArrayBuffer>, sealed.aad, at);
  dek.fill(0);
  return { ...sealed, kid: master.active, wrapped };
}
