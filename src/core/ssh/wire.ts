// The SSH wire encoding (RFC 4251 §5: byte, uint32, uint64, string, mpint) that OpenSSH keys, certificates and
// KRLs are built from (docs/grants.md, ssh).

import { utf8 } from "../encoding.ts";
import { decodeUtf8 } from "../read-capped.ts";

/** Malformed SSH wire data: callers turn it into their own error. */
export class SshWireError extends Error {}

/** Appends SSH wire fields and returns the concatenation. */
export class SshWriter {
  readonly #parts: Uint8Array[] = [];
  #length = 0;

  /** Raw bytes, no length prefix. */
  raw(bytes: Uint8Array): this {
    this.#parts.push(bytes);
    this.#length += bytes.length;
    return this;
  }

  byte(value: number): this {
    return this.raw(Uint8Array.of(value & 0xff));
  }

  uint32(value: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0);
    return this.raw(b);
  }

  uint64(value: bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, value));
    return this.raw(b);
  }

  /** A length-prefixed string of bytes (text is UTF-8). */
  string(value: Uint8Array | string): this {
    const bytes = typeof value === "string" ? utf8(value) : value;
    return this.uint32(bytes.length).raw(bytes);
  }

  /** A non-negative mpint from unsigned big-endian magnitude bytes (leading zeros dropped, sign byte added). */
  mpint(magnitude: Uint8Array): this {
    let start = 0;
    while (start < magnitude.length && magnitude[start] === 0) start++;
    const trimmed = magnitude.subarray(start);
    if (trimmed.length > 0 && (trimmed[0] as number) & 0x80) {
      return this.uint32(trimmed.length + 1)
        .byte(0)
        .raw(trimmed);
    }
    return this.string(trimmed);
  }

  bytes(): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** Reads SSH wire fields; every read past the end or malformed throws SshWireError. */
export class SshReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes read so far. */
  get offset(): number {
    return this.#at;
  }

  get done(): boolean {
    return this.#at === this.#bytes.length;
  }

  #need(n: number): void {
    if (n < 0 || this.#at + n > this.#bytes.length) throw new SshWireError("truncated SSH data");
  }

  raw(n: number): Uint8Array {
    this.#need(n);
    const out = this.#bytes.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  byte(): number {
    return this.raw(1)[0] as number;
  }

  uint32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.#at);
    this.#at += 4;
    return v;
  }

  uint64(): bigint {
    this.#need(8);
    const v = this.#view.getBigUint64(this.#at);
    this.#at += 8;
    return v;
  }

  string(): Uint8Array {
    return this.raw(this.uint32());
  }

  /** A string that must be UTF-8 text. */
  text(): string {
    try {
      return decodeUtf8(this.string());
    } catch (e) {
      if (e instanceof SshWireError) throw e;
      throw new SshWireError("SSH string is not UTF-8");
    }
  }

  /** A non-negative mpint's magnitude (unsigned big-endian, no leading zeros); negative values are refused. */
  mpint(): Uint8Array {
    const b = this.string();
    if (b.length > 0 && (b[0] as number) & 0x80) throw new SshWireError("negative mpint");
    let start = 0;
    while (start < b.length && b[start] === 0) start++;
    return b.subarray(start);
  }

  /** Everything not read yet. */
  rest(): Uint8Array {
    return this.raw(this.#bytes.length - this.#at);
  }
}

/** Bytes of standard base64; throws SshWireError on anything else. */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new SshWireError("not base64");
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** Bytes of unpadded base64url (JWK members); throws SshWireError on anything else. */
export function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return fromBase64(b64.padEnd(Math.ceil(b64.length / 4) * 4, "="));
}
