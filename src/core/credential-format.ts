// runpass's own opaque credentials in a form secret scanners recognise (docs/leaks.md, Scanner rules): a fixed
// prefix, random base62, and a CRC32 checksum in base62 — the layout GitHub uses for its tokens — so a rule can
// match them with few false positives and a checksum can tell a real one from a look-alike without a lookup.

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** Random characters in a checksummed credential: 40 base62 characters, about 238 bits. */
const RANDOM_CHARS = 40;
/** CRC32 fits in 6 base62 characters (62^6 > 2^32). */
const CHECKSUM_CHARS = 6;

let table: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3, as zlib computes it) of a string's UTF-8 bytes. */
export function crc32(text: string): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of new TextEncoder().encode(text)) {
    crc = (table[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function base62(n: number, width: number): string {
  let out = "";
  for (let rest = n; rest > 0; rest = Math.floor(rest / 62)) out = BASE62[rest % 62] + out;
  return out.padStart(width, "0");
}

/** Uniformly random base62 characters (rejection sampling: no modulo bias). */
function randomBase62(count: number): string {
  let out = "";
  while (out.length < count) {
    for (const b of crypto.getRandomValues(new Uint8Array(count * 2))) {
      if (b < 248 && out.length < count) out += BASE62[b % 62];
    }
  }
  return out;
}

/** A new credential `<prefix>_<40 random base62><6 base62 CRC32 of the random part>`. */
export function checksummedCredential(prefix: string): string {
  const random = randomBase62(RANDOM_CHARS);
  return `${prefix}_${random}${base62(crc32(random), CHECKSUM_CHARS)}`;
}

/** Whether `value` has the layout and a correct checksum (it may still be unknown to runpass). */
export function credentialChecksumValid(value: string): boolean {
  const m = /^[a-z]{2,8}_([0-9A-Za-z]{40})([0-9A-Za-z]{6})$/.exec(value);
  return m !== null && base62(crc32(m[1] as string), CHECKSUM_CHARS) === m[2];
}

/** The lease revoke token's prefix (kept from before it carried a checksum). */
export const REVOKE_TOKEN_PREFIX = "rvk";

/** The postgres grant's role passwords (docs/grants.md, "postgres"): a leaked one is recognisable in a scan. */
export const POSTGRES_PASSWORD_PREFIX = "rpg";
