// The runner CLI's side of the x509 grant (docs/clients.md, "Certificates"), in process against a scripted broker
// that signs what it is sent: a fresh P-256 key and CSR every time (only the CSR leaves), the certificate, its key
// and chain in 0600 files in a new 0700 folder of the job's temp dir, their paths exported, the folder removed by
// `revoke`; a certificate for another key is refused with nothing written. Checked with real OpenSSL.

import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runner } from "../../src/cli/runner.ts";
import { X509Authority } from "../../src/core/x509/ca.ts";
import {
  csrPublicKey,
  generateKey,
  randomSerial,
  signClientCertificate,
} from "../../src/core/x509/certificate.ts";
import { type RecordedRequest, startFakeBrokerHttp } from "../support/fake-broker-http.ts";
import { runOpenssl } from "../support/openssl.ts";
import { leaseAnswer, runnerJob } from "../support/runner-job.ts";
import { makeTestCa } from "../support/x509-ca.ts";

const job = runnerJob("runpass-runner-x509-");

/** A broker that signs the CSR it is sent (or, with `otherKey`, a certificate for a key of its own). */
async function signingBroker(otherKey = false) {
  const ca = await makeTestCa("runner test");
  const authority = await X509Authority.fromConfig(JSON.stringify(ca.entry));
  return startFakeBrokerHttp(async (req: RecordedRequest) => {
    if (req.method === "DELETE") return { status: 204 };
    const body = JSON.parse(req.body) as { csr?: string };
    const key = otherKey
      ? { ok: true as const, value: (await generateKey()).publicKey }
      : await csrPublicKey(body.csr ?? "");
    if (!key.ok) return { status: 400, body: { error: "invalid_request", error_description: key.error } };
    const now = Math.floor(Date.now() / 1000);
    const serial = randomSerial();
    const cert = await signClientCertificate(authority.issuing, {
      publicKey: key.value,
      commonName: "ci-acme/api",
      uris: ["spiffe://acme.dev/ci/github/519345000"],
      dnsNames: [],
      serial,
      notBefore: now - 60,
      notAfter: now + 900,
      crlUrl: "https://runpass.test/v1/x509/crl/x",
    });
    const expires = new Date((now + 900) * 1000).toISOString();
    return leaseAnswer("mtls", expires, {
      x509: {
        certificate: cert.toString("pem"),
        chain: authority.issuing.chainPem,
        serial,
        not_before: new Date((now - 60) * 1000).toISOString(),
        not_after: expires,
        expires_at: expires,
      },
    });
  });
}

describe("runpass exchange with an x509 grant", () => {
  it("sends only a CSR, writes the certificate, key and chain to 0600 files, exports their paths; revoke removes them", async () => {
    const broker = await signingBroker();
    job.broker = broker;
    expect(await job.exchange("mtls", "state.json")).toBe(0);
    const sent = broker.requests[0]?.body ?? "";
    expect(sent).toContain("BEGIN CERTIFICATE REQUEST");
    expect(sent).not.toContain("PRIVATE KEY");

    const cert = job.exported("RUNPASS_X509_CERT_FILE");
    const key = job.exported("RUNPASS_X509_KEY_FILE");
    const chain = job.exported("RUNPASS_X509_CHAIN_FILE");
    const dir = join(cert, "..");
    expect(dir.startsWith(job.temp)).toBe(true);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    for (const f of [cert, key, chain]) expect((await stat(f)).mode & 0o777).toBe(0o600);
    // The key never appears in what was printed, only its path.
    expect(job.stdout).not.toContain("PRIVATE KEY");

    // Real OpenSSL: the key is the certificate's, and the certificate verifies against the chain.
    const files = {
      "c.pem": await readFile(cert, "utf8"),
      "k.pem": await readFile(key, "utf8"),
      "chain.pem": await readFile(chain, "utf8"),
    };
    const certPub = await runOpenssl(["x509", "-noout", "-pubkey", "-in", "c.pem"], files);
    const keyPub = await runOpenssl(["pkey", "-pubout", "-in", "k.pem"], files);
    expect(certPub.stdout).toBe(keyPub.stdout);
    expect((await runOpenssl(["verify", "-CAfile", "chain.pem", "c.pem"], files)).stdout.trim()).toBe(
      "c.pem: OK",
    );

    expect(await runner("revoke", ["--state", join(job.temp, "state.json")])).toBe(0);
    expect(broker.requests.at(-1)?.method).toBe("DELETE");
    await expect(stat(dir)).rejects.toThrow();
  });

  it("generates a new key for every exchange", async () => {
    const broker = await signingBroker();
    job.broker = broker;
    await job.exchange("mtls", "a.json");
    await job.exchange("mtls", "b.json");
    const csrs = broker.requests.map((r) => (JSON.parse(r.body) as { csr: string }).csr);
    expect(csrs).toHaveLength(2);
    expect(csrs[0]).not.toBe(csrs[1]);
  });

  it("refuses a certificate that is not for its key: nothing printed or written, the lease ended", async () => {
    const broker = await signingBroker(true);
    job.broker = broker;
    expect(await job.exchange("mtls", "s.json")).toBe(3);
    expect(job.stdout).toBe("");
    expect(await job.credentialDirs()).toEqual([]);
    expect(broker.requests.at(-1)?.method).toBe("DELETE");
  });
});
