// The x509 building blocks against vectors made by real OpenSSL (test/support/openssl.ts): CSRs from `openssl req`
// (accepted, or refused for a broken signature or a weak key), CAs made by openssl as RUNPASS_X509_CA, certificates
// and CRLs that `openssl verify` and `openssl crl` accept; and the grant's load-time rules and sanitisers.

import { describe, expect, it } from "vitest";
import { sanitiseCommonName, sanitiseUriValue, x509Grant } from "../../src/core/grants/x509.ts";
import { X509Authority } from "../../src/core/x509/ca.ts";
import { csrPublicKey, randomSerial, signClientCertificate } from "../../src/core/x509/certificate.ts";
import { signCrl } from "../../src/core/x509/crl.ts";
import { x509 } from "../../src/core/x509/lib.ts";
import { runOpenssl } from "../support/openssl.ts";

/** A CSR made by `openssl req` for a new key (`newkey` as openssl takes it), asking for names of its own. */
async function opensslCsr(newkey: string[]): Promise<{ csr: string; pubkey: string }> {
  const r = await runOpenssl(
    ["req", "-new", ...newkey, "-nodes", "-keyout", "/dev/null", "-subj", "/CN=root/O=Evil"].concat([
      "-addext",
      "subjectAltName=DNS:evil.example",
    ]),
  );
  expect(r.status, r.stderr).toBe(0);
  const pub = await runOpenssl(["req", "-noout", "-pubkey"], {}, r.stdout);
  return { csr: r.stdout, pubkey: pub.stdout };
}

/** A private key from `openssl genpkey` (PKCS#8 PEM). */
async function opensslKey(kind: "ec" | "rsa"): Promise<string> {
  const args =
    kind === "ec"
      ? ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
      : ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
  const r = await runOpenssl(args);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

/** A self-signed certificate from `openssl req -x509` for a new key, with `extensions` (-addext values). */
async function opensslSelfSigned(
  kind: "ec" | "rsa",
  extensions: string[],
): Promise<{ certificate: string; key: string }> {
  const key = await opensslKey(kind);
  const r = await runOpenssl(
    ["req", "-x509", "-key", "k.pem", "-subj", "/CN=openssl CA", "-days", "2"].concat(
      extensions.flatMap((e) => ["-addext", e]),
    ),
    { "k.pem": key },
  );
  expect(r.status, r.stderr).toBe(0);
  return { certificate: r.stdout, key };
}

function opensslCa(kind: "ec" | "rsa"): Promise<{ certificate: string; key: string }> {
  return opensslSelfSigned(kind, [
    "basicConstraints=critical,CA:TRUE",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
}

function spkiOfPem(pem: string): Uint8Array {
  return new Uint8Array(x509.PemConverter.decodeFirst(pem));
}

describe("CSRs made by openssl req", () => {
  it("accepts P-256, P-384, Ed25519 and RSA-3072 requests and returns exactly their public key", async () => {
    for (const newkey of [
      ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
      ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
      ["-newkey", "ed25519"],
      ["-newkey", "rsa:3072"],
    ]) {
      const { csr, pubkey } = await opensslCsr(newkey);
      const read = await csrPublicKey(csr);
      expect(read.ok, `${newkey.join(" ")}: ${read.ok ? "" : read.error}`).toBe(true);
      if (read.ok) expect(new Uint8Array(read.value.rawData)).toEqual(spkiOfPem(pubkey));
    }
  });

  it("refuses a request whose signature was altered, weak keys, and anything that is not one CSR", async () => {
    const { csr } = await opensslCsr(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    const der = new Uint8Array(x509.PemConverter.decodeFirst(csr));
    der[der.length - 3] = (der[der.length - 3] as number) ^ 0x40;
    const broken = x509.PemConverter.encode(der.buffer as ArrayBuffer, "CERTIFICATE REQUEST");
    // openssl agrees the altered request does not verify.
    const check = await runOpenssl(["req", "-verify", "-noout"], {}, broken);
    expect(check.stderr + check.stdout).toContain("verify failure");
    const refused = await csrPublicKey(broken);
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.error).toContain("signature");

    const weak = await csrPublicKey((await opensslCsr(["-newkey", "rsa:2048"])).csr);
    expect(weak.ok).toBe(false);
    if (!weak.ok) expect(weak.error).toContain("3072");
    const p521 = await csrPublicKey(
      (await opensslCsr(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"])).csr,
    );
    expect(p521.ok).toBe(false);

    const ca = await opensslCa("ec");
    for (const junk of ["", "garbage", ca.certificate, `${csr}${csr}`])
      expect((await csrPublicKey(junk)).ok).toBe(false);
  });
});

describe("certificates and CRLs from a CA made by openssl", () => {
  it("issues a clientAuth certificate openssl verifies, and a CRL openssl verifies and reads, for EC and RSA CAs", async () => {
    for (const kind of ["ec", "rsa"] as const) {
      const caPem = await opensslCa(kind);
      const authority = await X509Authority.fromConfig(JSON.stringify([caPem]));
      const ca = authority.issuing;
      const { csr } = await opensslCsr(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
      const key = await csrPublicKey(csr);
      if (!key.ok) throw new Error(key.error);
      const now = Math.floor(Date.now() / 1000);
      const serial = randomSerial();
      const cert = await signClientCertificate(ca, {
        publicKey: key.value,
        commonName: "ci-acme/api",
        uris: ["spiffe://acme.dev/ci/github/519345000"],
        dnsNames: [],
        serial,
        notBefore: now - 60,
        notAfter: now + 900,
        crlUrl: "https://runpass.test/v1/x509/crl/abc",
      });
      const files = { "ca.pem": authority.chainsPem(), "c.pem": cert.toString("pem") };
      const verify = await runOpenssl(
        ["verify", "-purpose", "sslclient", "-CAfile", "ca.pem", "c.pem"],
        files,
      );
      expect(verify.stdout.trim(), verify.stderr).toBe("c.pem: OK");
      // Not a server certificate: EKU is clientAuth only.
      const server = await runOpenssl(
        ["verify", "-purpose", "sslserver", "-CAfile", "ca.pem", "c.pem"],
        files,
      );
      expect(server.status).not.toBe(0);
      const text = await runOpenssl(["x509", "-noout", "-text", "-in", "c.pem"], files);
      expect(text.stdout).toContain(`Serial Number:`);
      expect(text.stdout.replace(/[:\s]/g, "")).toContain(serial);
      expect(text.stdout).toContain("URI:https://runpass.test/v1/x509/crl/abc");

      const crl = await signCrl(ca, [{ serial, revokedAt: now }], now, now + 600);
      const crlText = await runOpenssl(
        ["crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout", "-text"],
        {
          "crl.der": crl,
          "ca.pem": authority.chainsPem(),
        },
      );
      expect(crlText.stderr).toContain("verify OK");
      expect(crlText.stdout.toUpperCase()).toContain(serial.toUpperCase());
      expect(crlText.stdout).toContain("X509v3 CRL Number");
      expect(crlText.stdout).toContain("Cessation Of Operation");
    }
  });

  it("refuses a CA whose certificate is not a CA, or whose key is another", async () => {
    const ca = await opensslCa("ec");
    const other = await opensslCa("ec");
    await expect(
      X509Authority.fromConfig(JSON.stringify({ certificate: ca.certificate, key: other.key })),
    ).rejects.toThrow(/does not belong/);
    const leaf = await opensslSelfSigned("ec", ["basicConstraints=critical,CA:FALSE"]);
    await expect(X509Authority.fromConfig(JSON.stringify(leaf))).rejects.toThrow(/CA:TRUE/);
    await expect(X509Authority.fromConfig("[]")).rejects.toThrow(/RUNPASS_X509_CA must be/);
  });
});

describe("the x509 grant's rules", () => {
  function load(raw: Record<string, unknown>, leaseTtl = 3600): string[] {
    const problems: string[] = [];
    x509Grant.load(raw as never, {
      policyName: "p",
      leaseTtl,
      report: (_path, message) => problems.push(message),
      duration: (_p, text, fallback) => (text === undefined ? fallback : Number.parseInt(text, 10) * 60),
    });
    return problems;
  }

  it("keeps claims out of a URI's scheme and host, templates out of DNS names, and the ttl inside the lease", () => {
    expect(load({ common_name: "ci", uris: [`spiffe://acme.dev/ci/\${repository_id}`] })).toEqual([]);
    expect(load({ common_name: "ci", uris: [`spiffe://\${repository_owner}.dev/ci`] })[0]).toContain("host");
    expect(load({ common_name: "ci", uris: [`\${scheme}://acme.dev/x`] }).length).toBeGreaterThan(0);
    expect(load({ common_name: "ci", uris: ["not a uri"] })[0]).toContain("absolute URI");
    expect(load({ common_name: "ci", dns_names: [`\${repository}.acme.dev`] })[0]).toContain("templates");
    expect(load({ common_name: "ci", dns_names: ["*.acme.dev"] })[0]).toContain("host name");
    expect(load({ common_name: "ci", ttl: "120" }, 3600)[0]).toContain("lease");
    expect(load({ common_name: " " })[0]).toContain("common_name");
  });

  it("sanitises claim values so they only add path segments, and common names to printable text", () => {
    expect(sanitiseUriValue("acme/api")).toBe("acme/api");
    expect(sanitiseUriValue("../../etc")).toBe("_/_/etc");
    expect(sanitiseUriValue("a b?c#d@e:f")).toBe("a_b_c_d_e_f");
    expect(sanitiseUriValue("/x//y/")).toBe("_/x/_/y/_");
    expect(sanitiseCommonName("ci-acme/api\u0000\n<script>")).toBe("ci-acme/api___script_");
    expect(sanitiseCommonName("x".repeat(100))).toHaveLength(64);
  });

  it("serials are 16 positive bytes in DER, random", () => {
    const serials = new Set(Array.from({ length: 200 }, randomSerial));
    expect(serials.size).toBe(200);
    for (const s of serials) expect(s).toMatch(/^(0[1-9a-f]|[1-7][0-9a-f])[0-9a-f]{30}$/);
  });
});
