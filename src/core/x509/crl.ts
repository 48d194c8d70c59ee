// Certificate revocation lists (docs/grants.md, "x509"): one per CA, signed by that CA, listing the serials of its
// certificates whose lease ended before they expired, until they expire.

import type { X509Ca } from "./ca.ts";
import { crlNumberExtension, x509 } from "./lib.ts";

/** One certificate a CRL lists. */
export interface RevokedSerial {
  /** Lowercase hex. */
  serial: string;
  /** When its lease ended, seconds since the epoch. */
  revokedAt: number;
}

/**
 * Signs `ca`'s CRL (DER). `thisUpdate` and `nextUpdate` are seconds since the epoch; the CRL number is `thisUpdate`
 * in seconds, so it grows with time as RFC 5280 asks without a counter to keep.
 */
export async function signCrl(
  ca: X509Ca,
  revoked: readonly RevokedSerial[],
  thisUpdate: number,
  nextUpdate: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.certificate.subjectName,
    thisUpdate: new Date(thisUpdate * 1000),
    nextUpdate: new Date(nextUpdate * 1000),
    signingKey: ca.key,
    signingAlgorithm: ca.signingAlgorithm,
    extensions: [new x509.AuthorityKeyIdentifierExtension(ca.keyIdentifier), crlNumberExtension(thisUpdate)],
    entries: revoked.map((r) => ({
      serialNumber: r.serial,
      revocationDate: new Date(r.revokedAt * 1000),
      reason: x509.X509CrlReason.cessationOfOperation,
    })),
  });
  return new Uint8Array(crl.rawData);
}
