// OpenSSH key revocation lists (PROTOCOL.krl): the binary list hosts load with `RevokedKeys`. runpass lists
// certificates by serial, one certificates section per CA key (docs/grants.md, ssh: revocation).

import { SshWriter } from "./wire.ts";

/** "SSHKRL\n\0". */
const KRL_MAGIC = 0x5353484b524c0a00n;
const KRL_FORMAT_VERSION = 1;
const KRL_SECTION_CERTIFICATES = 1;
const KRL_SECTION_CERT_SERIAL_LIST = 0x20;

/** Serials revoked under one CA key. */
export interface KrlCaSection {
  /** The CA's public key blob. */
  caBlob: Uint8Array;
  /** Non-zero uint64 serials. */
  serials: bigint[];
}

export interface Krl {
  /** Increases whenever the list changes. */
  version: bigint;
  /** Seconds since the epoch. */
  generatedAt: number;
  comment: string;
  sections: KrlCaSection[];
}

/** Encodes a KRL. Serials are sorted and deduplicated (hosts read them in any order; sorted keeps bytes stable). */
export function encodeKrl(krl: Krl): Uint8Array<ArrayBuffer> {
  const out = new SshWriter()
    .uint64(KRL_MAGIC)
    .uint32(KRL_FORMAT_VERSION)
    .uint64(krl.version)
    .uint64(BigInt(krl.generatedAt))
    .uint64(0n) // flags
    .string(new Uint8Array()) // reserved
    .string(krl.comment);
  for (const section of krl.sections) {
    const serials = [...new Set(section.serials)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (serials.length === 0) continue;
    const list = new SshWriter();
    for (const s of serials) list.uint64(s);
    const certs = new SshWriter()
      .string(section.caBlob)
      .string(new Uint8Array()) // reserved
      .byte(KRL_SECTION_CERT_SERIAL_LIST)
      .string(list.bytes());
    out.byte(KRL_SECTION_CERTIFICATES).string(certs.bytes());
  }
  return out.bytes();
}
