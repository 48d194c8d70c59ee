// OpenSSH user certificates (PROTOCOL.certkeys): the certificate body over a user's public key, signed by a CA
// key, and a parser for reading one back (clients check a certificate names their key; tests read ssh-keygen's).

import type { SshCa, SshKeyType, SshPublicKey } from "./keys.ts";
import { SshReader, SshWireError, SshWriter } from "./wire.ts";

/** The certificate type of each user key type. */
export const CERT_TYPES: Record<SshKeyType, string> = {
  "ssh-ed25519": "ssh-ed25519-cert-v01@openssh.com",
  "ecdsa-sha2-nistp256": "ecdsa-sha2-nistp256-cert-v01@openssh.com",
  "ssh-rsa": "ssh-rsa-cert-v01@openssh.com",
};

const SSH_CERT_TYPE_USER = 1;

/** What a user certificate says. Times are seconds since the epoch. */
export interface UserCertificate {
  key: SshPublicKey;
  /** uint64, never 0 (a KRL cannot list serial 0). */
  serial: bigint;
  keyId: string;
  principals: string[];
  validAfter: number;
  validBefore: number;
  /** Critical options by name: `force-command` → the command, `source-address` → comma-separated CIDRs. */
  criticalOptions: Record<string, string>;
  /** Extension names (flags with empty data). */
  extensions: string[];
  /** 32 random bytes; given only to reproduce a certificate byte for byte. */
  nonce?: Uint8Array;
}

/** Sorted by name, as PROTOCOL.certkeys requires; option data is itself a string, flags are empty. */
function options(entries: Array<[string, string | undefined]>): Uint8Array {
  const w = new SshWriter();
  for (const [name, value] of [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    w.string(name).string(value === undefined ? new Uint8Array() : new SshWriter().string(value).bytes());
  }
  return w.bytes();
}

/** Signs a user certificate with `ca`; returns its wire blob. */
export async function signUserCertificate(cert: UserCertificate, ca: SshCa): Promise<Uint8Array> {
  const keyFields = new SshReader(cert.key.blob);
  keyFields.string(); // the key's type; the certificate carries its own
  const principals = new SshWriter();
  for (const p of cert.principals) principals.string(p);
  const body = new SshWriter()
    .string(CERT_TYPES[cert.key.type])
    .string(cert.nonce ?? crypto.getRandomValues(new Uint8Array(32)))
    .raw(keyFields.rest())
    .uint64(cert.serial)
    .uint32(SSH_CERT_TYPE_USER)
    .string(cert.keyId)
    .string(principals.bytes())
    .uint64(BigInt(cert.validAfter))
    .uint64(BigInt(cert.validBefore))
    .string(options(Object.entries(cert.criticalOptions)))
    .string(options(cert.extensions.map((e) => [e, undefined])))
    .string(new Uint8Array()) // reserved
    .string(ca.publicBlob)
    .bytes();
  return new SshWriter()
    .raw(body)
    .string(await ca.sign(body))
    .bytes();
}

/** A certificate read back: its fields, the signing CA's blob, the signed body and the signature blob. */
export interface ParsedCertificate extends Omit<UserCertificate, "key" | "nonce"> {
  certType: string;
  nonce: Uint8Array;
  /** The certified public key's blob (its plain key type, then its fields). */
  keyBlob: Uint8Array;
  /** 1 user, 2 host. */
  type: number;
  caBlob: Uint8Array;
  signed: Uint8Array;
  signature: Uint8Array;
}

const KEY_FIELDS: Record<string, { type: SshKeyType; fields: number }> = {
  "ssh-ed25519-cert-v01@openssh.com": { type: "ssh-ed25519", fields: 1 },
  "ecdsa-sha2-nistp256-cert-v01@openssh.com": { type: "ecdsa-sha2-nistp256", fields: 2 },
  "ssh-rsa-cert-v01@openssh.com": { type: "ssh-rsa", fields: 2 },
};

function readOptions(bytes: Uint8Array, flags: boolean): Array<[string, string]> {
  const r = new SshReader(bytes);
  const out: Array<[string, string]> = [];
  while (!r.done) {
    const name = r.text();
    const data = r.string();
    out.push([name, flags || data.length === 0 ? "" : new SshReader(data).text()]);
  }
  return out;
}

/** Parses a certificate blob of a type runpass issues. Throws SshWireError when malformed. */
export function parseCertificate(blob: Uint8Array): ParsedCertificate {
  const r = new SshReader(blob);
  const certType = r.text();
  const shape = KEY_FIELDS[certType];
  if (!shape) throw new SshWireError(`unsupported certificate type ${certType}`);
  const nonce = r.string();
  const key = new SshWriter().string(shape.type);
  for (let i = 0; i < shape.fields; i++) key.string(r.string());
  const serial = r.uint64();
  const type = r.uint32();
  const keyId = r.text();
  const principalReader = new SshReader(r.string());
  const principals: string[] = [];
  while (!principalReader.done) principals.push(principalReader.text());
  const validAfter = Number(r.uint64());
  const validBefore = r.uint64();
  const criticalOptions = Object.fromEntries(readOptions(r.string(), false));
  const extensions = readOptions(r.string(), true).map(([name]) => name);
  r.string(); // reserved
  const caBlob = r.string();
  const signed = blob.subarray(0, r.offset);
  const signature = r.string();
  if (!r.done) throw new SshWireError("trailing bytes after the certificate");
  return {
    certType,
    nonce,
    keyBlob: key.bytes(),
    serial,
    type,
    keyId,
    principals,
    validAfter,
    // "forever" is 2^64 − 1, beyond a safe integer; runpass never issues it.
    validBefore:
      validBefore > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(validBefore),
    criticalOptions,
    extensions,
    caBlob,
    signed,
    signature,
  };
}
