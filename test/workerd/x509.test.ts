// The x509 grant end to end inside workerd, checked with real OpenSSL (test/support/openssl.ts): a certificate
// for the runner's CSR (only its public key used) or a generated key, `openssl verify` against the served chain, an
// `openssl s_server` requiring client certificates with CRL checking that accepts the handshake while the lease
// lives and refuses it once the lease ended and the CRL was refetched; renewal, rotation, and bad input.

import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { X509Credential } from "../../src/core/grants/x509.ts";
import { x509 } from "../../src/core/x509/lib.ts";
import { BROKER_URL, ISSUER_BASE, issuersYaml, makeBroker, uniqueIssuer } from "../support/broker.ts";
import { ACME, githubClaims, mint } from "../support/claims.ts";
import { movableClock } from "../support/run-ledger.ts";
import { makeCsr, makeTestCa, type TestCa } from "../support/x509-ca.ts";

const OPENSSL = env.TEST_OPENSSL_BASE;

type X509Out = X509Credential;

interface Exchanged {
  lease: { id: string; run: string; expires_at: string; revoke_token: string };
  credentials: { x509?: X509Out; token?: { token: string } };
  error?: string;
  error_description?: string;
}

function b64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

async function openssl(args: string[], files: Record<string, string | Uint8Array> = {}) {
  const encoded = Object.fromEntries(
    Object.entries(files).map(([n, c]) => [n, typeof c === "string" ? { text: c } : { base64: b64(c) }]),
  );
  const res = await fetch(`${OPENSSL}/openssl`, {
    method: "POST",
    body: JSON.stringify({ args, files: encoded }),
  });
  if (!res.ok) throw new Error(`openssl service: ${await res.text()}`);
  return (await res.json()) as { status: number; stdout: string; stderr: string };
}

async function handshake(trust: string, crl: Uint8Array, cert: string, key: string) {
  const res = await fetch(`${OPENSSL}/mtls`, {
    method: "POST",
    body: JSON.stringify({ trust, crl: b64(crl), cert, key }),
  });
  if (!res.ok) throw new Error(`openssl service: ${await res.text()}`);
  return (await res.json()) as { accepted: boolean; server: string; client: string };
}

const X509_GRANT = `x509:
    common_name: "ci-\${repository}"
    uris: ["spiffe://acme.dev/ci/github/\${repository_id}/\${ref}"]
    dns_names: [Deploy.Acme.Internal]
    ttl: 15m`;

let sharedCa: Promise<TestCa> | undefined;
function testCa(): Promise<TestCa> {
  sharedCa ??= makeTestCa("runpass test");
  return sharedCa;
}

async function setup(options: { grants?: string; cas?: TestCa[]; clock?: () => number; ttl?: string } = {}) {
  const gh = uniqueIssuer();
  const cas = options.cas ?? [await testCa()];
  const policy = `issuer: ${gh}
allow:
  repository_owner_id: "${ACME.ownerId}"
  repository_id: "${ACME.repoId}"
ttl: ${options.ttl ?? "1h"}
grants:
  ${options.grants ?? X509_GRANT}
`;
  const broker = await makeBroker({
    policies: {
      mtls: policy,
      plain: policy.replace(/grants:[\s\S]*$/, 'grants:\n  token: { audience: "https://x" }\n'),
    },
    issuers: issuersYaml(gh),
    env: { RUNPASS_X509_CA: JSON.stringify(cas.length === 1 ? cas[0]?.entry : cas.map((c) => c.entry)) },
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const token = (o: Record<string, unknown> = {}) =>
    mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, o));
  const exchange = async (t: string, body: Record<string, unknown> = {}) => {
    const res = await broker.exchange(t, { policy: "mtls", ...body });
    return { status: res.status, body: (await res.json()) as Exchanged };
  };
  const bytes = async (path: string) => {
    const res = await broker.fetch(path);
    return { res, der: new Uint8Array(await res.arrayBuffer()) };
  };
  return { broker, token, exchange, bytes, cas };
}

async function endLease(broker: Awaited<ReturnType<typeof setup>>["broker"], lease: Exchanged["lease"]) {
  const del = await broker.fetch(`/v1/leases/${lease.id}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${lease.revoke_token}` },
  });
  expect(del.status).toBe(204);
  await runDurableObjectAlarm(env.RUN_LEDGER.get(env.RUN_LEDGER.idFromName(lease.run)));
}

describe("x509 grant", () => {
  it("signs the runner's CSR with the policy's names only: clientAuth, SAN URIs, CRL point, validity capped", async () => {
    const s = await setup();
    const { csr, keys } = await makeCsr();
    const before = Math.floor(Date.now() / 1000);
    const res = await s.exchange(await s.token({ ref: "refs/heads/feat/a b?c#d" }), { csr });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const out = res.body.credentials.x509 as X509Out;
    expect(out.private_key).toBeUndefined();
    const cert = new x509.X509Certificate(out.certificate);
    // Only the CSR's public key is used.
    const spki = new Uint8Array((await crypto.subtle.exportKey("spki", keys.publicKey)) as ArrayBuffer);
    expect(new Uint8Array(cert.publicKey.rawData)).toEqual(spki);
    expect(cert.subject).toBe("CN=ci-acme/api");
    expect(cert.serialNumber).toBe(out.serial);
    // 16 bytes, first byte 0x01–0x7f: positive, minimal DER (hex may start with 0, as in 0x08).
    expect(out.serial).toMatch(/^(0[1-9a-f]|[1-7][0-9a-f])[0-9a-f]{30}$/);
    // not_before = now − 60 s; not_after = min(15m, lease end).
    expect(Math.abs(cert.notBefore.getTime() / 1000 - (before - 60))).toBeLessThanOrEqual(2);
    expect(Date.parse(out.not_after)).toBe(cert.notAfter.getTime());
    expect(out.expires_at).toBe(out.not_after);
    expect(cert.notAfter.getTime() - cert.notBefore.getTime()).toBe(16 * 60_000);
    expect(out.chain).toBe((await testCa()).entry.certificate.replace(/\n+$/, "\n"));

    // Real OpenSSL reads it: EKU clientAuth only, the SAN URI with the sanitised ref, no CSR names, the CRL point.
    const text = await openssl(["x509", "-noout", "-text", "-in", "c.pem"], { "c.pem": out.certificate });
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/X509v3 Extended Key Usage:\s*\n\s*TLS Web Client Authentication\s*\n/);
    expect(text.stdout).toContain("URI:spiffe://acme.dev/ci/github/519345000/refs/heads/feat/a_b_c_d");
    expect(text.stdout).toContain("DNS:deploy.acme.internal");
    expect(text.stdout).not.toContain("evil.example");
    expect(text.stdout).not.toContain("Evil Corp");
    expect(text.stdout).toMatch(/CA:FALSE/);
    expect(text.stdout).toContain(`URI:${BROKER_URL}/v1/x509/crl/`);
    const verify = await openssl(["verify", "-purpose", "sslclient", "-CAfile", "chain.pem", "c.pem"], {
      "chain.pem": out.chain,
      "c.pem": out.certificate,
    });
    expect(verify.stdout.trim()).toBe("c.pem: OK");
  });

  it("an mTLS server with CRL checking accepts the certificate while the lease lives, and refuses it once the lease ended", async () => {
    const s = await setup();
    const { csr, privateKeyPem } = await makeCsr();
    const res = await s.exchange(await s.token(), { csr });
    const out = res.body.credentials.x509 as X509Out;
    const trust = await (await s.broker.fetch("/v1/x509/ca.pem")).text();

    const crl1 = await s.bytes("/v1/x509/crl");
    expect(crl1.res.headers.get("content-type")).toBe("application/pkix-crl");
    const live = await handshake(trust, crl1.der, out.certificate, privateKeyPem);
    expect(live.accepted, live.server).toBe(true);

    await endLease(s.broker, res.body.lease);
    const crl2 = await s.bytes("/v1/x509/crl");
    const parsed = await openssl(["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"], {
      "crl.der": crl2.der,
    });
    expect(parsed.status).toBe(0);
    expect(parsed.stdout.toLowerCase()).toContain(out.serial);
    const ended = await handshake(trust, crl2.der, out.certificate, privateKeyPem);
    expect(ended.accepted).toBe(false);
    expect(ended.server).toContain("certificate revoked");

    // The stale CRL fetched before the end still lets it in: a CRL is only as fresh as the server's last fetch.
    expect((await handshake(trust, crl1.der, out.certificate, privateKeyPem)).accepted).toBe(true);
  });

  it("without a CSR generates a P-256 key and returns it (masked by clients), and the pair works", async () => {
    const s = await setup();
    const res = await s.exchange(await s.token());
    const out = res.body.credentials.x509 as X509Out;
    expect(out.private_key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const cert = new x509.X509Certificate(out.certificate);
    expect((cert.publicKey.algorithm as { namedCurve?: string }).namedCurve).toBe("P-256");
    const trust = await (await s.broker.fetch("/v1/x509/ca.pem")).text();
    const crl = await s.bytes("/v1/x509/crl");
    expect((await handshake(trust, crl.der, out.certificate, out.private_key as string)).accepted).toBe(true);
  });

  it("refuses a CSR whose signature does not verify: 400, nothing issued, the token still usable", async () => {
    const s = await setup();
    const { csr } = await makeCsr();
    const der = new Uint8Array(x509.PemConverter.decodeFirst(csr));
    der[der.length - 5] = (der[der.length - 5] as number) ^ 0x01; // inside the signature
    const broken = x509.PemConverter.encode(der.buffer as ArrayBuffer, "CERTIFICATE REQUEST");
    const token = await s.token();
    const res = await s.exchange(token, { csr: broken });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe("invalid_request");
    expect(res.body.error_description).toContain("signature");
    expect(res.body.credentials).toBeUndefined();
    for (const junk of ["not a csr", (await testCa()).issuing]) {
      const r = await s.exchange(token, { csr: junk });
      expect(r.status).toBe(400);
    }
    // Nothing was consumed: the same token still exchanges.
    expect((await s.exchange(token, { csr })).status).toBe(200);
  });

  it("ignores a csr for a policy without an x509 grant (a request never reveals a policy's grants)", async () => {
    const s = await setup();
    const res = await s.broker.exchange(await s.token(), { policy: "plain", csr: "garbage" });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Exchanged;
    expect(body.credentials.x509).toBeUndefined();
  });

  it("renewal re-signs the public key kept with the lease, with a new serial", async () => {
    const time = movableClock();
    const s = await setup({ clock: time.clock });
    const { csr, keys } = await makeCsr();
    const first = await s.exchange(await s.token(), { csr });
    time.advance(8 * 60_000);
    const res = await s.broker.fetch(`/v1/leases/${first.body.lease.id}/renew`, {
      method: "POST",
      headers: { authorization: `Bearer ${first.body.lease.revoke_token}` },
    });
    expect(res.status).toBe(200);
    const renewed = ((await res.json()) as Exchanged).credentials.x509 as X509Out;
    expect(renewed.serial).not.toBe(first.body.credentials.x509?.serial);
    expect(renewed.private_key).toBeUndefined();
    const spki = new Uint8Array((await crypto.subtle.exportKey("spki", keys.publicKey)) as ArrayBuffer);
    expect(new Uint8Array(new x509.X509Certificate(renewed.certificate).publicKey.rawData)).toEqual(spki);
    expect(Date.parse(renewed.not_after)).toBeLessThanOrEqual(Date.parse(first.body.lease.expires_at));
  });

  it("caps the certificate to the lease, and the CRL's nextUpdate to 10 minutes, with an ETag", async () => {
    const s = await setup();
    const res = await s.exchange(await s.token(), { ttl: "5m" });
    expect(res.body.credentials.x509?.not_after).toBe(res.body.lease.expires_at);
    const { res: crlRes, der } = await s.bytes("/v1/x509/crl");
    const crl = new x509.X509Crl(der);
    expect(crl.nextUpdate && crl.nextUpdate.getTime() - crl.thisUpdate.getTime()).toBeLessThanOrEqual(
      600_000,
    );
    expect(crlRes.headers.get("cache-control")).toMatch(/max-age=\d+/);
    const etag = crlRes.headers.get("etag") as string;
    const again = await s.broker.fetch("/v1/x509/crl", { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
  });

  it("rotation: the first CA issues, every chain is served, each CA signs the CRL for its own certificates", async () => {
    const older = await makeTestCa("older", "rsa");
    const newer = await makeTestCa("newer");
    // Issued while the older CA was first.
    const before = await setup({ cas: [older, newer] });
    const oldCert = (await before.exchange(await before.token())).body;
    // After rotation, the newer CA is first; the older is still configured.
    const s = await setup({ cas: [newer, older] });
    const fresh = (await s.exchange(await s.token())).body.credentials.x509 as X509Out;
    const trust = await (await s.broker.fetch("/v1/x509/ca.pem")).text();
    expect(trust).toContain(older.issuing.trim());
    expect(trust).toContain(newer.issuing.trim());
    const verify = (cert: string) =>
      openssl(["verify", "-CAfile", "trust.pem", "c.pem"], { "trust.pem": trust, "c.pem": cert });
    expect((await verify(fresh.certificate)).status).toBe(0);
    expect((await verify(oldCert.credentials.x509?.certificate as string)).status).toBe(0);

    // The older certificate's lease ends: it appears on the older CA's CRL (its distribution point), signed by it.
    await endLease(before.broker, oldCert.lease);
    const point = new x509.X509Certificate(oldCert.credentials.x509?.certificate as string).getExtension(
      x509.CRLDistributionPointsExtension,
    )?.distributionPoints[0]?.distributionPoint?.fullName?.[0]?.uniformResourceIdentifier as string;
    expect(point.startsWith(`${BROKER_URL}/v1/x509/crl/`)).toBe(true);
    const { der } = await s.bytes(point.slice(BROKER_URL.length));
    const signed = await openssl(
      ["crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "older.pem", "-noout"],
      {
        "crl.der": der,
        "older.pem": older.issuing,
      },
    );
    expect(signed.stderr).toContain("verify OK");
    expect(new x509.X509Crl(der).findRevoked(oldCert.credentials.x509?.serial as string)).not.toBeNull();
    // The issuing CA's CRL does not list it; the PEM bundle carries both CAs' CRLs.
    expect(new x509.X509Crl((await s.bytes("/v1/x509/crl")).der).entries).toHaveLength(0);
    const bundle = await (await s.broker.fetch("/v1/x509/crl.pem")).text();
    expect(bundle.match(/BEGIN X509 CRL/g)).toHaveLength(2);
  });

  it("fails closed naming RUNPASS_X509_CA when the CA is missing or its key is not the certificate's", async () => {
    const a = await testCa();
    const b = await makeTestCa("other");
    const gh = uniqueIssuer();
    const policy = `issuer: ${gh}\nallow:\n  repository_owner_id: "${ACME.ownerId}"\ngrants:\n  ${X509_GRANT}\n`;
    for (const [value, hint] of [
      [undefined, "RUNPASS_X509_CA is not set"],
      [JSON.stringify({ certificate: a.entry.certificate, key: b.entry.key }), "does not belong"],
      [JSON.stringify({ certificate: a.root, key: "x" }), "PKCS#8"],
    ] as const) {
      const broker = await makeBroker({
        policies: { mtls: policy },
        issuers: issuersYaml(gh),
        env: { RUNPASS_X509_CA: value as string },
      });
      const token = await mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL));
      const res = await broker.exchange(token, { policy: "mtls" });
      expect(res.status).toBe(503);
      const text = await res.text();
      expect(text).toContain(hint);
      expect(text).not.toContain("PRIVATE KEY");
    }
  });
});
