// A fresh Ed25519 key pair for the ssh grant when the runner sent no public key: the public key as an OpenSSH line
// and the private key in OpenSSH's own format ("openssh-key-v1", unencrypted: it only ever lives in the job's
// 0600 file), per OpenSSH's PROTOCOL.key.

import { base64 } from "../encoding.ts";
import { fromBase64url, SshWriter } from "./wire.ts";

const MAGIC = "openssh-key-v1\0";
/** Cipher "none" pads the private section to 8 bytes. */
const BLOCK = 8;

export interface GeneratedSshKey {
  /** `ssh-ed25519 AAAA… comment`. */
  publicLine: string;
  publicBlob: Uint8Array;
  /** `-----BEGIN OPENSSH PRIVATE KEY-----` PEM. */
  privateKey: string;
}

/** The openssh-key-v1 PEM of an Ed25519 key given its 32-byte seed and 32-byte public key. */
export function encodeEd25519PrivateKey(seed: Uint8Array, publicKey: Uint8Array, comment: string): string {
  const publicBlob = new SshWriter().string("ssh-ed25519").string(publicKey).bytes();
  const check = crypto.getRandomValues(new Uint32Array(1))[0] as number;
  const secret = new Uint8Array(64);
  secret.set(seed);
  secret.set(publicKey, 32);
  const section = new SshWriter()
    .uint32(check)
    .uint32(check)
    .string("ssh-ed25519")
    .string(publicKey)
    .string(secret)
    .string(comment);
  const unpadded = section.bytes().length;
  for (let i = 1; (unpadded + i - 1) % BLOCK !== 0; i++) section.byte(i);
  const body = new SshWriter()
    .raw(new TextEncoder().encode(MAGIC))
    .string("none")
    .string("none")
    .string(new Uint8Array())
    .uint32(1)
    .string(publicBlob)
    .string(section.bytes())
    .bytes();
  secret.fill(0);
  const lines = base64(body).match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/** Generates an Ed25519 pair (WebCrypto) in OpenSSH formats. */
export async function generateEd25519Key(comment: string): Promise<GeneratedSshKey> {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const jwk = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey;
  if (!jwk.d || !jwk.x) throw new Error("Ed25519 key export returned no key material");
  const seed = fromBase64url(jwk.d);
  const publicKey = fromBase64url(jwk.x);
  const publicBlob = new SshWriter().string("ssh-ed25519").string(publicKey).bytes();
  const privateKey = encodeEd25519PrivateKey(seed, publicKey, comment);
  seed.fill(0);
  return { publicLine: `ssh-ed25519 ${base64(publicBlob)} ${comment}`, publicBlob, privateKey };
}
