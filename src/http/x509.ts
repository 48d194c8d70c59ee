// The x509 grant's public endpoints (docs/api.md, "X.509"): the CA chains relying parties trust, and each CA's CRL
// listing the certificates whose lease ended before they expired.

import type { Context, Hono } from "hono";
import { revocationRegistry } from "../adapters/revocation-registry.ts";
import { X509_CRL_MAX_AGE_SECONDS, X509_CRL_VALIDITY_SECONDS } from "../core/constants.ts";
import { hex } from "../core/encoding.ts";
import { RunpassError } from "../core/errors.ts";
import type { X509Ca } from "../core/x509/ca.ts";
import { signCrl } from "../core/x509/crl.ts";
import { x509 } from "../core/x509/lib.ts";
import type { AppEnv } from "./types.ts";

/**
 * A signed CRL is reused while its list is unchanged for this long, so repeated fetches get the same bytes (and
 * ETag) and `nextUpdate` stays at least X509_CRL_VALIDITY_SECONDS minus this ahead.
 */
const CRL_REUSE_SECONDS = 60;

interface SignedCrl {
  list: string;
  thisUpdate: number;
  der: Uint8Array<ArrayBuffer>;
  etag: string;
}

/** Per-isolate: the last CRL signed for each CA. */
const signed = new Map<string, SignedCrl>();

function noCa(): RunpassError {
  return new RunpassError("not_found", "this runpass has no x509 CA configured (RUNPASS_X509_CA)");
}

async function authority(c: Context<AppEnv>) {
  if (!c.env.RUNPASS_X509_CA) throw noCa();
  return c.get("runtime").context(c.env).grants.x509();
}

/** `ca`'s current CRL: re-signed when the list changed or the last one is older than CRL_REUSE_SECONDS. */
async function currentCrl(c: Context<AppEnv>, ca: X509Ca): Promise<SignedCrl> {
  const now = Math.floor(c.get("runtime").clock() / 1000);
  const ended = await revocationRegistry(c.env).endedCertificates("x509", ca.id, now);
  const list = ended.map((e) => `${e.serial}@${e.endedAt}`).join(",");
  const last = signed.get(ca.id);
  if (last && last.list === list && now - last.thisUpdate < CRL_REUSE_SECONDS && now >= last.thisUpdate)
    return last;
  const der = await signCrl(
    ca,
    ended.map((e) => ({ serial: e.serial, revokedAt: e.endedAt })),
    now,
    now + X509_CRL_VALIDITY_SECONDS,
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
  const crl = { list, thisUpdate: now, der, etag: `"${hex(digest.slice(0, 16))}"` };
  signed.set(ca.id, crl);
  return crl;
}

function crlResponse(c: Context<AppEnv>, crl: SignedCrl): Response {
  const headers = {
    etag: crl.etag,
    "cache-control": `public, max-age=${X509_CRL_MAX_AGE_SECONDS}`,
  };
  if (c.req.header("if-none-match") === crl.etag) return c.body(null, 304, headers);
  return c.body(crl.der, 200, { ...headers, "content-type": "application/pkix-crl" });
}

/** Registers /v1/x509/ca.pem, /v1/x509/crl, /v1/x509/crl/{ca} and /v1/x509/crl.pem. */
export function x509Routes(app: Hono<AppEnv>): void {
  app.get("/v1/x509/ca.pem", async (c) => {
    const cas = await authority(c);
    return c.body(cas.chainsPem(), 200, {
      "content-type": "application/pem-certificate-chain",
      "cache-control": "public, max-age=300",
    });
  });

  // Every CA's CRL in one PEM file: what nginx's ssl_crl and OpenSSL's CRL files take, rotation included.
  app.get("/v1/x509/crl.pem", async (c) => {
    const cas = await authority(c);
    const crls = await Promise.all(cas.cas.map((ca) => currentCrl(c, ca)));
    const etag = `"${crls.map((crl) => crl.etag.slice(1, 9)).join("")}"`;
    const headers = { etag, "cache-control": `public, max-age=${X509_CRL_MAX_AGE_SECONDS}` };
    if (c.req.header("if-none-match") === etag) return c.body(null, 304, headers);
    const pem = crls.map((crl) => x509.PemConverter.encode(crl.der.buffer, "X509 CRL")).join("\n");
    return c.body(`${pem}\n`, 200, { ...headers, "content-type": "application/x-pem-file" });
  });

  // The issuing CA's CRL (DER).
  app.get("/v1/x509/crl", async (c) => crlResponse(c, await currentCrl(c, (await authority(c)).issuing)));

  // One CA's CRL (DER): the distribution point its certificates name, correct across rotations.
  app.get("/v1/x509/crl/:ca", async (c) => {
    const ca = (await authority(c)).byId(c.req.param("ca"));
    if (!ca) throw new RunpassError("not_found", "no configured x509 CA has this id");
    return crlResponse(c, await currentCrl(c, ca));
  });
}
