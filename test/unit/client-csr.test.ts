// The runner's hand-built PKCS#10 request and certificate SPKI reader (src/client/csr.ts, docs/clients.md,
// "Certificates"), checked against @peculiar/x509 (what the broker parses with) and real OpenSSL: the request
// parses and verifies in both, the DER signature is minimal whatever r and s look like, the SPKI reader agrees with
// the library on v1 and v3 certificates from both, and malformed DER never throws out of certifies() or matches.

import { createPublicKey, verify } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import {
  CertificateDerError,
  certificateSpkiDer,
  certificateSpkiFromPem,
  ecdsaSignatureToDer,
  P256,
  p256CertificationRequest,
} from "../../src/client/csr.ts";
import { generateRunnerKeys } from "../../src/client/runner-keys.ts";
import { pemBody, toPem } from "../../src/core/grants/pkcs.ts";
import { derToRaw } from "../../src/core/leaks/github-keys.ts";
import { X509Authority } from "../../src/core/x509/ca.ts";
import {
  csrPublicKey,
  generateKey,
  randomSerial,
  signClientCertificate,
} from "../../src/core/x509/certificate.ts";
import { x509 } from "../../src/core/x509/lib.ts";
import { runOpenssl } from "../support/openssl.ts";
import { makeTestCa } from "../support/x509-ca.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

async function p256Pair(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(P256, true, ["sign", "verify"])) as CryptoKeyPair;
}

async function spkiOf(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array((await crypto.subtle.exportKey("spki", key)) as ArrayBuffer);
}

/** A client certificate from a test CA for `publicKey` (the broker's own signing code). */
async function certificateFor(publicKey: x509.PublicKey): Promise<string> {
  const ca = await makeTestCa("client csr test");
  const authority = await X509Authority.fromConfig(JSON.stringify(ca.entry));
  const now = Math.floor(Date.now() / 1000);
  const certificate = await signClientCertificate(authority.issuing, {
    publicKey,
    commonName: "ci-acme/api",
    uris: ["spiffe://acme.dev/ci/github/1"],
    dnsNames: [],
    serial: randomSerial(),
    notBefore: now - 60,
    notAfter: now + 900,
    crlUrl: "https://runpass.test/v1/x509/crl/x",
  });
  return certificate.toString("pem");
}

describe("the runner's PKCS#10 request", () => {
  it("parses with @peculiar/x509, verifies, carries the key's SPKI, an empty subject and no attributes", async () => {
    const keys = await p256Pair();
    const pem = await p256CertificationRequest(keys);
    const csr = new x509.Pkcs10CertificateRequest(pem);
    expect(await csr.verify()).toBe(true);
    expect(hex(new Uint8Array(csr.publicKey.rawData))).toBe(hex(await spkiOf(keys.publicKey)));
    expect(csr.subject).toBe("");
    expect(csr.attributes).toHaveLength(0);
    expect(csr.signatureAlgorithm).toMatchObject({ name: "ECDSA", hash: { name: "SHA-256" } });
    // What the broker runs on every CSR it is sent.
    const read = await csrPublicKey(pem);
    expect(read.ok && hex(new Uint8Array(read.value.rawData))).toBe(hex(await spkiOf(keys.publicKey)));
  });

  it("is accepted by openssl req -verify, which reads version 0 and ecdsa-with-SHA256", async () => {
    const pem = await p256CertificationRequest(await p256Pair());
    const checked = await runOpenssl(["req", "-in", "r.csr", "-verify", "-noout"], { "r.csr": pem });
    expect(checked.stderr + checked.stdout).toContain("verify OK");
    expect(checked.status).toBe(0);
    const text = await runOpenssl(["req", "-in", "r.csr", "-noout", "-text"], { "r.csr": pem });
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/Version: 1 \(0x0\)/);
    expect(text.stdout).toContain("ecdsa-with-SHA256");
    expect(text.stdout).toContain("NIST CURVE: P-256");
  });

  it("a tampered request no longer verifies (the signature covers the request info)", async () => {
    const pem = await p256CertificationRequest(await p256Pair());
    const der = pemBody(pem, "CERTIFICATE REQUEST") as Uint8Array;
    // The version INTEGER 0 right after the two SEQUENCE headers (30 81 xx 30 81 xx 02 01 00): make it 1.
    const at = hex(der).indexOf("020100") / 2;
    expect(at).toBeGreaterThan(0);
    const tampered = der.slice();
    tampered[at + 2] = 1;
    const csr = new x509.Pkcs10CertificateRequest(toPem(tampered, "CERTIFICATE REQUEST"));
    expect(await csr.verify()).toBe(false);
  });
});

describe("the ECDSA signature in DER", () => {
  const half = (...head: number[]) => Uint8Array.from([...head, ...new Array(32 - head.length).fill(0x11)]);
  const raw = (r: Uint8Array, s: Uint8Array) => Uint8Array.from([...r, ...s]);
  const int = (...content: number[]) => [0x02, content.length, ...content];

  it("puts a 0x00 before r or s whose high bit is set, so they stay positive", () => {
    const r = half(0x80);
    const s = half(0xff, 0x00);
    const der = ecdsaSignatureToDer(raw(r, s));
    const expected = [...int(0x00, ...r), ...int(0x00, ...s)];
    expect(hex(der)).toBe(hex(Uint8Array.from([0x30, expected.length, ...expected])));
    expect(der[1]).toBe(70);
  });

  it("drops leading zero bytes, and keeps one 0x00 when the next byte has its high bit set", () => {
    const r = half(0x00, 0x00, 0x7f);
    const s = half(0x00, 0x00, 0x00, 0x80);
    const der = ecdsaSignatureToDer(raw(r, s));
    const expected = [...int(...r.subarray(2)), ...int(0x00, ...s.subarray(3))];
    expect(hex(der)).toBe(hex(Uint8Array.from([0x30, expected.length, ...expected])));
  });

  it("encodes a zero half as the one-byte INTEGER 0", () => {
    const der = ecdsaSignatureToDer(raw(new Uint8Array(32), half(0x01)));
    expect(hex(der.subarray(2, 5))).toBe("020100");
  });

  it("round-trips through the broker's DER reader and verifies with Node's DER ECDSA", async () => {
    const keys = await p256Pair();
    const data = new TextEncoder().encode("runpass");
    const signature = new Uint8Array(await crypto.subtle.sign(P256, keys.privateKey, data));
    const der = ecdsaSignatureToDer(signature);
    expect(hex(derToRaw(der) as Uint8Array)).toBe(hex(signature));
    const key = createPublicKey({
      key: Buffer.from(await spkiOf(keys.publicKey)),
      format: "der",
      type: "spki",
    });
    expect(verify("sha256", data, { key, dsaEncoding: "der" }, der)).toBe(true);
  });
});

describe("a certificate's SubjectPublicKeyInfo", () => {
  const libraryView = (pem: string) => hex(new Uint8Array(new x509.X509Certificate(pem).publicKey.rawData));

  it("agrees with @peculiar/x509 on its own v3 certificates, EC and RSA (long-form lengths)", async () => {
    const ec = await makeTestCa("spki ec");
    const rsa = await makeTestCa("spki rsa", "rsa");
    for (const pem of [ec.root, ec.issuing, rsa.root, rsa.issuing]) {
      expect(hex(certificateSpkiFromPem(pem))).toBe(libraryView(pem));
    }
  });

  it("agrees with @peculiar/x509 on openssl's v3 (req -x509) and v1 (x509 -req, no [0] version) certificates", async () => {
    const v3 = await runOpenssl(
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"].concat([
        "-keyout",
        "k.pem",
        "-subj",
        "/CN=v3",
        "-days",
        "1",
      ]),
    );
    expect(v3.status).toBe(0);
    // OpenSSL 3.0's x509 -req adds no extensions, so the certificate is v1: its tbsCertificate has no [0].
    const made = await runOpenssl(
      ["x509", "-req", "-in", "r.csr", "-signkey", "k.pem", "-days", "1"],
      await requestAndKey(),
    );
    expect(made.status).toBe(0);
    for (const [pem, version] of [
      [v3.stdout, "Version: 3 (0x2)"],
      [made.stdout, "Version: 1 (0x0)"],
    ] as const) {
      const text = await runOpenssl(["x509", "-in", "c.pem", "-noout", "-text"], { "c.pem": pem });
      expect(text.stdout).toContain(version);
      expect(hex(certificateSpkiFromPem(pem))).toBe(libraryView(pem));
    }
  });

  it("lets certifies() accept a certificate for the runner's key and refuse one for another key", async () => {
    const keys = await generateRunnerKeys();
    const read = await csrPublicKey(keys.inputs.csr as string);
    if (!read.ok) throw new Error(read.error);
    expect(keys.x509.certifies(await certificateFor(read.value))).toBe(true);
    expect(keys.x509.certifies(await certificateFor((await generateKey()).publicKey))).toBe(false);
  });
});

/** A P-256 key (PKCS#8) and the runner's request for it, as files for an openssl run. */
async function requestAndKey(): Promise<Record<string, string>> {
  const keys = await p256Pair();
  const pkcs8 = new Uint8Array((await crypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer);
  return { "r.csr": await p256CertificationRequest(keys), "k.pem": toPem(pkcs8, "PRIVATE KEY") };
}

describe("malformed certificates", () => {
  let keys: Awaited<ReturnType<typeof generateRunnerKeys>>;
  /** A certificate for the runner's key; each case below breaks its framing and nothing else. */
  let good: Uint8Array;

  beforeAll(async () => {
    keys = await generateRunnerKeys();
    const read = await csrPublicKey(keys.inputs.csr as string);
    if (!read.ok) throw new Error(read.error);
    good = pemBody(await certificateFor(read.value), "CERTIFICATE") as Uint8Array;
    // Certificate and tbsCertificate both open with 30 82 hh ll: a P-256 client certificate is a few hundred bytes.
    expect([good[0], good[1], good[4], good[5]]).toEqual([0x30, 0x82, 0x30, 0x82]);
  });

  const pem = (der: Uint8Array) => toPem(der, "CERTIFICATE");
  const u16 = (d: Uint8Array, at: number) => ((d[at] as number) << 8) | (d[at + 1] as number);
  const withOuter = (d: Uint8Array, header: number[], tail: number[] = []) =>
    Uint8Array.from([...header, ...d.subarray(4), ...tail]);
  const patched = (d: Uint8Array, at: number, ...bytes: number[]) => {
    const copy = d.slice();
    copy.set(bytes, at);
    return copy;
  };
  const outer = (d: Uint8Array) => u16(d, 2);
  const tbsEnd = (d: Uint8Array) => 8 + u16(d, 6);

  const cases: Array<[string, (d: Uint8Array) => Uint8Array]> = [
    ["truncated by one byte", (d) => d.subarray(0, d.length - 1)],
    ["truncated inside the tbsCertificate", (d) => d.subarray(0, 40)],
    ["an outer length one byte too long", (d) => withOuter(d, [0x30, 0x82, ...be16(outer(d) + 1)])],
    ["an outer length in four bytes", (d) => withOuter(d, [0x30, 0x84, 0, 0, ...be16(outer(d))])],
    ["an outer length with a leading zero byte", (d) => withOuter(d, [0x30, 0x83, 0, ...be16(outer(d))])],
    ["an indefinite outer length (BER 0x80 … 00 00)", (d) => withOuter(d, [0x30, 0x80], [0, 0])],
    ["a SET where the Certificate SEQUENCE is", (d) => patched(d, 0, 0x31)],
    ["a trailing byte after the certificate", (d) => Uint8Array.from([...d, 0x00])],
    [
      "a tbsCertificate one byte longer than the Certificate holds",
      (d) => patched(d, 6, ...be16(u16(d, 6) + 1)),
    ],
    ["a tbsCertificate one byte shorter than its fields", (d) => patched(d, 6, ...be16(u16(d, 6) - 1))],
    ["a SET where the signatureAlgorithm is", (d) => patched(d, tbsEnd(d), 0x31)],
    ["empty", () => new Uint8Array(0)],
  ];

  it.each(cases)("%s: certifies() is false, the reader throws its typed error", (_, mutate) => {
    const der = mutate(good);
    expect(keys.x509.certifies(pem(der))).toBe(false);
    expect(() => certificateSpkiDer(der)).toThrow(CertificateDerError);
  });

  it("the unmodified certificate does match (the cases above differ only in their framing)", () => {
    expect(keys.x509.certifies(pem(good))).toBe(true);
  });

  it("text that is not a PEM certificate: certifies() is false", () => {
    for (const text of [
      "",
      "not a certificate",
      toPem(good, "CERTIFICATE REQUEST"),
      "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----",
    ]) {
      expect(keys.x509.certifies(text)).toBe(false);
    }
  });
});

function be16(n: number): [number, number] {
  return [(n >> 8) & 0xff, n & 0xff];
}
