// GitHub hands out App keys as PKCS#1 PEM ("BEGIN RSA PRIVATE KEY"); WebCrypto and jose import PKCS#8 only.
// Wrapping PKCS#1 in a PKCS#8 PrivateKeyInfo is a fixed DER envelope, so it is done here without a library.

const RSA_ALGORITHM_IDENTIFIER = [
  0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/** A DER definite length (short form below 128, else the minimal long form). */
export function derLength(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

/** The DER inside the first `label` PEM block of `pem`; undefined when there is none. */
export function pemBody(pem: string, label: string): Uint8Array | undefined {
  const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(pem);
  if (!m) return undefined;
  const bin = atob((m[1] as string).replace(/\s+/g, ""));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** `der` as a `label` PEM block, 64-character lines, ending in a newline. */
export function toPem(der: Uint8Array, label: string): string {
  let bin = "";
  for (const b of der) bin += String.fromCharCode(b);
  const b64 = btoa(bin).replace(/(.{64})/g, "$1\n");
  return `-----BEGIN ${label}-----\n${b64.trimEnd()}\n-----END ${label}-----\n`;
}

/** Returns a PKCS#8 PEM for a PKCS#1 or PKCS#8 RSA private key PEM; undefined when it is neither. */
export function toPkcs8Pem(pem: string): string | undefined {
  const normalised = pem.replace(/\\n/g, "\n").trim();
  if (pemBody(normalised, "PRIVATE KEY")) return normalised;
  const pkcs1 = pemBody(normalised, "RSA PRIVATE KEY");
  if (!pkcs1) return undefined;
  const octet = [0x04, ...derLength(pkcs1.length), ...pkcs1];
  const body = [0x02, 0x01, 0x00, ...RSA_ALGORITHM_IDENTIFIER, ...octet];
  return toPem(Uint8Array.from([0x30, ...derLength(body.length), ...body]), "PRIVATE KEY");
}
