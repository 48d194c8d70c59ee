// The runner's PKCS#10 request and certificate check for the x509 grant, without an X.509 library (docs/clients.md,
// "Certificates"). Both are fixed envelopes around what WebCrypto exports — the request wraps the exported SPKI
// and a signature, the check only finds the certificate's SPKI — like src/core/grants/pkcs.ts wraps PKCS#1.
// @peculiar/x509 would cost ~80 ms of the action's 300 ms budget on every run of every job and ~750 KB of the
// served runner CLI (docs/benchmarks.md, "The action's overhead"); the broker keeps it for everything it parses
// and signs. Runtime-neutral: WebCrypto only, it also runs in the runner CLI.

import { derLength, pemBody, toPem } from "../core/grants/pkcs.ts";

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
/** `[0]`: the certificate's explicit version and the request's implicit attributes SET. */
const CONTEXT_0 = 0xa0;

/** AlgorithmIdentifier { ecdsa-with-SHA256 (1.2.840.10045.4.3.2) }, parameters absent (RFC 5758 §3.2). */
const ECDSA_WITH_SHA256 = Uint8Array.from([
  0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
]);

/** The P-256 / SHA-256 parameters for WebCrypto's generateKey and sign. */
export const P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const length = parts.reduce((n, p) => n + p.length, 0);
  const header = [tag, ...derLength(length)];
  const bytes = new Uint8Array(header.length + length);
  bytes.set(header);
  let at = header.length;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return bytes;
}

/** An unsigned big-endian magnitude as a DER INTEGER: no redundant leading zeros, a 0x00 before a high bit. */
function derUnsignedInteger(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const minimal = magnitude.subarray(start);
  const padded = ((minimal[0] ?? 0) & 0x80) !== 0 ? Uint8Array.of(0, ...minimal) : minimal;
  return tlv(INTEGER, padded);
}

/** WebCrypto's raw ECDSA signature (r‖s, two equal halves) as DER `ECDSA-Sig-Value` (RFC 3279 §2.2.3). */
export function ecdsaSignatureToDer(raw: Uint8Array): Uint8Array {
  if (raw.length === 0 || raw.length % 2 !== 0) throw new RangeError("raw ECDSA signature must be r‖s");
  const half = raw.length / 2;
  return tlv(SEQUENCE, derUnsignedInteger(raw.subarray(0, half)), derUnsignedInteger(raw.subarray(half)));
}

/**
 * A PKCS#10 CertificationRequest (RFC 2986) for an ECDSA P-256 pair: version 0, empty subject (the policy names
 * the certificate), the SPKI as WebCrypto exports it, no attributes, signed with ecdsa-with-SHA256. PEM.
 */
export async function p256CertificationRequest(keys: CryptoKeyPair): Promise<string> {
  const spki = new Uint8Array((await crypto.subtle.exportKey("spki", keys.publicKey)) as ArrayBuffer);
  const info = tlv(
    SEQUENCE,
    Uint8Array.of(INTEGER, 1, 0),
    Uint8Array.of(SEQUENCE, 0),
    spki,
    Uint8Array.of(CONTEXT_0, 0),
  );
  const raw = new Uint8Array(await crypto.subtle.sign(P256, keys.privateKey, info));
  const signature = ecdsaSignatureToDer(raw);
  const request = tlv(SEQUENCE, info, ECDSA_WITH_SHA256, tlv(BIT_STRING, Uint8Array.of(0), signature));
  return toPem(request, "CERTIFICATE REQUEST");
}

/** Malformed DER where a certificate was expected. */
export class CertificateDerError extends Error {
  override name = "CertificateDerError";
}

/** One DER element: its tag and where its whole encoding and its contents lie in the input. */
interface Element {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/**
 * Reads the DER elements between `at` and `end` one by one: single-byte tags, definite minimal lengths only, no
 * element past `end`. Anything else throws CertificateDerError.
 */
class DerReader {
  readonly #bytes: Uint8Array;
  readonly #end: number;
  #at: number;

  constructor(bytes: Uint8Array, start: number, end: number) {
    this.#bytes = bytes;
    this.#at = start;
    this.#end = end;
  }

  get done(): boolean {
    return this.#at === this.#end;
  }

  peekTag(): number | undefined {
    return this.done ? undefined : this.#bytes[this.#at];
  }

  /** The next element, which must carry `tag` when given. */
  read(tag?: number): Element {
    const start = this.#at;
    const got = this.#byte(start);
    if ((got & 0x1f) === 0x1f) throw new CertificateDerError("multi-byte tag");
    if (tag !== undefined && got !== tag) throw new CertificateDerError(`expected tag ${tag}, got ${got}`);
    const first = this.#byte(start + 1);
    let length = first;
    let contentStart = start + 2;
    if (first === 0x80) throw new CertificateDerError("indefinite length");
    if (first > 0x80) {
      const count = first & 0x7f;
      if (count > 3) throw new CertificateDerError("length too long");
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + this.#byte(contentStart + i);
      contentStart += count;
      // DER: the long form only for 128 and up, in as few bytes as it takes.
      if (length < 0x80 || this.#byte(start + 2) === 0) throw new CertificateDerError("non-minimal length");
    }
    const end = contentStart + length;
    if (end > this.#end) throw new CertificateDerError("element overruns its container");
    this.#at = end;
    return { tag: got, start, contentStart, end };
  }

  /** A reader over `element`'s contents. */
  inside(element: Element): DerReader {
    return new DerReader(this.#bytes, element.contentStart, element.end);
  }

  #byte(i: number): number {
    if (i >= this.#end) throw new CertificateDerError("truncated");
    return this.#bytes[i] as number;
  }
}

/**
 * The SubjectPublicKeyInfo (its whole DER) of a DER Certificate (RFC 5280 §4.1); throws CertificateDerError on
 * anything that is not one, including trailing bytes.
 */
export function certificateSpkiDer(der: Uint8Array): Uint8Array {
  const top = new DerReader(der, 0, der.length);
  const certificate = top.read(SEQUENCE);
  if (!top.done) throw new CertificateDerError("trailing bytes after the certificate");
  const fields = top.inside(certificate);
  const tbs = fields.read(SEQUENCE);
  fields.read(SEQUENCE); // signatureAlgorithm
  fields.read(BIT_STRING); // signatureValue
  if (!fields.done) throw new CertificateDerError("trailing fields in the certificate");
  const t = fields.inside(tbs);
  if (t.peekTag() === CONTEXT_0) t.read(CONTEXT_0); // version, absent in v1
  t.read(INTEGER); // serialNumber
  t.read(SEQUENCE); // signature
  t.read(SEQUENCE); // issuer
  t.read(SEQUENCE); // validity
  t.read(SEQUENCE); // subject
  const spki = t.read(SEQUENCE);
  // What may follow: issuerUniqueID [1], subjectUniqueID [2], extensions [3], each well formed.
  for (const tag of [0x81, 0x82, 0xa3]) if (t.peekTag() === tag) t.read(tag);
  if (!t.done) throw new CertificateDerError("unexpected field after subjectPublicKeyInfo");
  return der.slice(spki.start, spki.end);
}

/** The SPKI DER of the first certificate in a PEM text; throws on anything else. */
export function certificateSpkiFromPem(pem: string): Uint8Array {
  const der = pemBody(pem, "CERTIFICATE");
  if (!der) throw new CertificateDerError("no PEM certificate");
  return certificateSpkiDer(der);
}
