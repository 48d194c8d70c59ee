// The `x509` grant (docs/grants.md, "x509"): a short-lived X.509 client certificate for mTLS, naming the run with
// SAN URIs (SPIFFE-style) the policy writes. The runner's CSR is verified and only its public key used; without one,
// runpass generates a P-256 pair. Validity ends with the lease at the latest; a lease that ends early puts the
// serial on the CA's CRL (src/adapters/revokers.ts).

import * as z from "zod/mini";
import {
  DEFAULT_X509_CERT_TTL_SECONDS,
  X509_MAX_SAN_NAMES,
  X509_NOT_BEFORE_BACKDATE_SECONDS,
} from "../constants.ts";
import { ConfigError, RunpassError } from "../errors.ts";
import type { X509Grant } from "../policy/types.ts";
import type { X509Authority } from "../x509/ca.ts";
import { csrPublicKey, generateKey, randomSerial, signClientCertificate } from "../x509/certificate.ts";
import { type GrantModule, type GrantSubject, iso } from "./module.ts";
import { checkTemplate, fillOrDeny, templateClaims } from "./template.ts";

/** The x509 grant's port: the configured CAs (rejects with a ConfigError naming RUNPASS_X509_CA). */
export interface X509Ports {
  x509: () => Promise<X509Authority>;
}

/** The path of a CA's CRL under runpass's URL: the distribution point each certificate names. */
export function crlPath(caId: string): string {
  return `/v1/x509/crl/${caId}`;
}

/** What the lease keeps to put a certificate on its CA's CRL: not secret (a CRL publishes it). */
export interface X509RevocationHandle {
  ca: string;
  serial: string;
}

/** The x509 credential in the exchange response. */
export interface X509Credential {
  certificate: string;
  /** The issuing CA first, then its issuers. */
  chain: string;
  /** Only when the runner sent no CSR: the generated key, PKCS#8 PEM. */
  private_key?: string;
  /** Lowercase hex. */
  serial: string;
  not_before: string;
  not_after: string;
  expires_at: string;
}

/** What minting needs, resolved from the policy, the claims and the request. */
export interface X509Plan {
  commonName: string;
  uris: string[];
  dnsNames: string[];
  ttl: number;
  /** The runner's PKCS#10 request (PEM), verified when minting. */
  csr?: string;
}

const X509GrantSchema = z.strictObject({
  common_name: z.string(),
  uris: z.optional(z.array(z.string())),
  dns_names: z.optional(z.array(z.string())),
  ttl: z.optional(z.string()),
});

// The upper bound of X.520's ub-common-name; longer names are cut.
const MAX_COMMON_NAME = 64;
const HOSTNAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
// What a URI template must start with before its first placeholder: a scheme and, for hierarchical URIs, the whole
// authority — so a claim value can never choose the host or trust domain.
const URI_PREFIX = /^[A-Za-z][A-Za-z0-9+.-]*:(?:\/\/[^/?#@$]+\/|(?!\/)[^$]*:)/;

/** A common name from a filled template: printable ASCII that means the same to every TLS stack, ≤ 64 characters. */
export function sanitiseCommonName(value: string): string {
  const out = value
    .replace(/[^A-Za-z0-9 ._:@/+=-]/g, "_")
    .trim()
    .slice(0, MAX_COMMON_NAME);
  return out.length > 0 ? out : "_";
}

/**
 * A claim value inside a URI: letters, digits, `.`, `_`, `-` and `/` survive (what SPIFFE IDs allow), anything else
 * becomes `_`, and empty, `.` and `..` segments become `_` — so a value can add path segments but never change the
 * URI's structure or climb out of the path the policy wrote.
 */
export function sanitiseUriValue(value: string): string {
  return value
    .replace(/[^A-Za-z0-9._/-]/g, "_")
    .split("/")
    .map((segment) => (segment === "" || segment === "." || segment === ".." ? "_" : segment))
    .join("/");
}

/** Fills a URI template: each placeholder on its own and sanitised, so the policy's own text is kept as written. */
function fillUri(template: string, subject: GrantSubject): string {
  return template.replace(/\$\{[^}]*\}/g, (placeholder) =>
    sanitiseUriValue(fillOrDeny(placeholder, subject, "x509")),
  );
}

/** The `x509` grant module. */
export const x509Grant: GrantModule<
  "x509",
  z.infer<typeof X509GrantSchema>,
  X509Grant,
  X509Plan,
  X509Credential
> = {
  name: "x509",
  schema: X509GrantSchema,
  upstream: "the x509 CA",
  costly: false,
  renewable: true,
  load(raw, ctx) {
    const at = (...p: Array<string | number>) => ["grants", "x509", ...p];
    if (raw.common_name.trim().length === 0) ctx.report(at("common_name"), "common_name must not be empty");
    checkTemplate(ctx.report, at("common_name"), raw.common_name);
    const uris = raw.uris ?? [];
    uris.forEach((uri, i) => {
      checkTemplate(ctx.report, at("uris", i), uri);
      const sample = uri.replace(/\$\{[^}]*\}/g, "x");
      let parsed: URL | undefined;
      try {
        parsed = new URL(sample);
      } catch {
        parsed = undefined;
      }
      if (!parsed || /\s/.test(uri)) {
        ctx.report(
          at("uris", i),
          `uris: "${uri}" is not an absolute URI (e.g. spiffe://acme.dev/ci/\${repository_id})`,
        );
      } else if (parsed.username || parsed.password) {
        ctx.report(at("uris", i), `uris: "${uri}" carries user information`);
      } else if (templateClaims(uri).length > 0 && !URI_PREFIX.test(uri.slice(0, uri.indexOf("${")))) {
        ctx.report(at("uris", i), `uris: "${uri}": a \${claim} may not stand in the scheme or the host`);
      }
    });
    const dnsNames = (raw.dns_names ?? []).map((name, i) => {
      const lower = name.toLowerCase();
      if (name.includes("${")) ctx.report(at("dns_names", i), `dns_names take no \${claim} templates`);
      else if (!HOSTNAME.test(lower))
        ctx.report(at("dns_names", i), `dns_names: "${name}" is not a host name`);
      return lower;
    });
    if (uris.length + dnsNames.length > X509_MAX_SAN_NAMES) {
      ctx.report(at(), `at most ${X509_MAX_SAN_NAMES} names in uris and dns_names together`);
    }
    const ttl = ctx.duration(at("ttl"), raw.ttl, Math.min(DEFAULT_X509_CERT_TTL_SECONDS, ctx.leaseTtl));
    if (ttl < 60) ctx.report(at("ttl"), "ttl: at least 1m");
    if (ttl > ctx.leaseTtl) {
      ctx.report(
        at("ttl"),
        "ttl: longer than the policy's lease ttl; the certificate could outlive the lease",
      );
    }
    return { common_name: raw.common_name, uris, dns_names: dnsNames, ttl };
  },
  plan(def, ctx) {
    return {
      commonName: sanitiseCommonName(fillOrDeny(def.common_name, ctx.subject, "x509")),
      uris: def.uris.map((u) => fillUri(u, ctx.subject)),
      dnsNames: def.dns_names,
      ttl: def.ttl,
      ...(ctx.inputs.csr !== undefined ? { csr: ctx.inputs.csr } : {}),
    };
  },
  async mint(plan, ctx) {
    let publicKey: Awaited<ReturnType<typeof generateKey>>["publicKey"];
    let privateKey: string | undefined;
    let kept: string;
    if (plan.csr !== undefined) {
      const read = await csrPublicKey(plan.csr);
      if (!read.ok) throw new RunpassError("invalid_request", read.error);
      publicKey = read.value;
      kept = plan.csr;
    } else {
      const generated = await generateKey();
      publicKey = generated.publicKey;
      privateKey = generated.privateKeyPem;
      kept = generated.csrPem;
    }
    const ca = (await ctx.deps.x509()).issuing;
    const notBefore = ctx.now - X509_NOT_BEFORE_BACKDATE_SECONDS;
    // Never past the lease, and never past the CA's own expiry (the chain would not verify).
    const caEnd = Math.floor(ca.certificate.notAfter.getTime() / 1000);
    const notAfter = Math.min(ctx.now + plan.ttl, ctx.lease.expiresAt, caEnd);
    if (notAfter <= ctx.now) {
      throw new ConfigError(
        `RUNPASS_X509_CA: the issuing CA ${ca.id} expired at ${iso(caEnd)}; put a new CA first`,
      );
    }
    const serial = randomSerial();
    const certificate = await signClientCertificate(ca, {
      publicKey,
      commonName: plan.commonName,
      uris: plan.uris,
      dnsNames: plan.dnsNames,
      serial,
      notBefore,
      notAfter,
      crlUrl: `${ctx.deps.issuerUrl}${crlPath(ca.id)}`,
    });
    const handle: X509RevocationHandle = { ca: ca.id, serial };
    return {
      credential: {
        certificate: certificate.toString("pem"),
        chain: ca.chainPem,
        ...(privateKey !== undefined ? { private_key: privateKey } : {}),
        serial,
        not_before: iso(notBefore),
        not_after: iso(notAfter),
        expires_at: iso(notAfter),
      },
      grants: [
        {
          type: "x509",
          id: await ctx.deps.hasher.digest(`x509:${ca.id}:${serial}`),
          expires_at: iso(notAfter),
          revocation: JSON.stringify(handle),
          inputs: { csr: kept },
        },
      ],
    };
  },
  secretValues: (c) => (c.private_key !== undefined ? [c.private_key] : []),
};
