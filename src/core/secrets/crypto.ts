// Secrets at rest (DESIGN §4.8): each version under its own random AES-256-GCM data key; the data key wrapped
// by a master key from RUNPASS_MASTER_KEYS; path and version bound as AAD into both, so a record copied to
// another path or version, or any flipped byte, fails to decrypt.

import { ConfigError } from "../../errors.ts";
import { base64url, utf8 } from "../encoding.ts";

export interface MasterKeys {
  active: string;
  keys: ReadonlyMap<string, CryptoKey>;
}

/** An encrypted secret version as stored (all fields base64url). */
export interface SealedValue {
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

function aad(kind: "value" | "key", path: string, version: number, kid?: string): Uint8Array<ArrayBuffer> {
  return utf8(`runpass-secret/v1\n${kind}\n${path}\n${version}${kid ? `\n${kid}` : ""}`);
}

async function wrapDataKey(
  master: MasterKeys,
  kid: string,
  dek: Uint8Array<ArrayBuffer>,
  path: string,
  version: number,
) {
  const key = master.keys.get(kid) as CryptoKey;
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: aad("key", path, version, kid) },
    key,
    dek,
  );
  return `${base64url(iv)}.${base64url(new Uint8Array(ct))}`;
}

async function unwrapDataKey(master: MasterKeys, sealed: SealedValue, path: string, version: number) {
  const key = master.keys.get(sealed.kid);
  if (!key) {
    throw new SecretDecryptError(`master key "${sealed.kid}" is not in RUNPASS_MASTER_KEYS`, sealed.kid);
  }
  const [iv, ct] = sealed.wrapped.split(".");
  try {
    const raw = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: fromB64(iv ?? ""), additionalData: aad("key", path, version, sealed.kid) },
      key,
      fromB64(ct ?? ""),
    );
    return new Uint8Array(raw);
  } catch {
    throw new SecretDecryptError(
      "the data key does not unwrap (tampered, or moved to another path or version)",
    );
  }
}

/** Encrypts one version's value under a fresh data key wrapped by the active master key. */
export async function sealValue(
  master: MasterKeys,
  path: string,
  version: number,
  value: Uint8Array<ArrayBuffer>,
): Promise<SealedValue> {
  const dek = crypto.getRandomValues(new Uint8Array(32));
  const key = await crypto.subtle.importKey("raw", dek, "AES-GCM", false, ["encrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: aad("value", path, version) },
    key,
    value,
  );
  const wrapped = await wrapDataKey(master, master.active, dek, path, version);
  dek.fill(0);
  return { kid: master.active, wrapped, iv: base64url(iv), ciphertext: base64url(new Uint8Array(ct)) };
}

/** Decrypts one version; throws SecretDecryptError on an unknown kid or any tampering. */
export async function openValue(
  master: MasterKeys,
  path: string,
  version: number,
  sealed: SealedValue,
): Promise<Uint8Array> {
  const dek = await unwrapDataKey(master, sealed, path, version);
  try {
    const key = await crypto.subtle.importKey("raw", dek, "AES-GCM", false, ["decrypt"]);
    const pt = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: fromB64(sealed.iv), additionalData: aad("value", path, version) },
      key,
      fromB64(sealed.ciphertext),
    );
    return new Uint8Array(pt);
  } catch {
    throw new SecretDecryptError(
      "the secret does not decrypt (tampered, or moved to another path or version)",
    );
  } finally {
    dek.fill(0);
  }
}

/** Re-wraps a version's data key under the active master key (the value itself is untouched). */
export async function rewrapValue(
  master: MasterKeys,
  path: string,
  version: number,
  sealed: SealedValue,
): Promise<SealedValue> {
  if (sealed.kid === master.active) return sealed;
  const dek = await unwrapDataKey(master, sealed, path, version);
  const wrapped = await wrapDataKey(master, master.active, dek as Uint8Array<ArrayBuffer>, path, version);
  dek.fill(0);
  return { ...sealed, kid: master.active, wrapped };
}
