// The one door to @peculiar/x509 (docs/grants.md, "x509"): its ASN.1 classes need `reflect-metadata` loaded before
// the library itself, so everything (the grant, the CRL) imports X.509 through this module. The clients do not use
// it: they build their CSR by hand (src/client/csr.ts, docs/clients.md "Certificates").

import "reflect-metadata";
import { AsnConvert } from "@peculiar/asn1-schema";
import { CRLNumber, id_ce_cRLNumber } from "@peculiar/asn1-x509";
import * as x509 from "@peculiar/x509";

// WebCrypto is global in Workers and Node ≥ 19; the library otherwise looks for it lazily on first use.
x509.cryptoProvider.set(crypto);

/** The CRL number extension (RFC 5280 §5.2.3), which @peculiar/x509 has no class for; its ASN.1 package does. */
export function crlNumberExtension(value: number): x509.Extension {
  return new x509.Extension(id_ce_cRLNumber, false, AsnConvert.serialize(new CRLNumber(value)));
}

export { x509 };
