// The runner CLI's side of the x509 grant (docs/clients.md, "Certificates"), in process against a scripted broker
// that signs what it is sent: a fresh P-256 key and CSR every time (only the CSR leaves), the certificate, its key
// and chain in 0600 files in a new 0700 folder of the job's temp dir, their paths exported, the folder removed by
// `revoke`; a certificate for another key is refused with nothing written. Checked with real OpenSSL.

import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runner } from "../../src/cli/runner.ts";
import { X509Authority } from "../../src/core/x509/ca.ts";
import {
  csrPublicKey,
  generateKey,
  randomSerial,
  signClientCertificate,
} from "../../src/core/x509/certificate.ts";
import {
  type FakeBrokerHttp,
  type RecordedRequest,
  startFakeBrokerHttp,
} from "../support/fake-broker-http.ts";
import { runOpenssl } from "../support/openssl.ts";
import { makeTestCa } from "../support/x509-ca.ts";

let temp = "";
let broker: FakeBrokerHttp | undefined;
let stdout = "";

beforeEach(async () => {
  temp = await mkdtemp(join(tmpdir(), "runpass-runner-x509-"));
  stdout = "";
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  vi.spyOn(console, "error").mockImplementation(() => undefined);
  vi.stubEnv("RUNPASS_ID_TOKEN", "header.payload.signature");
  vi.stubEnv("RUNNER_TEMP", temp);
});

afterEach(async () => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  await broker?.close();
  broker = undefined;
  await rm(temp, { recursive: true, force: true });
});

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
    return {
      status: 200,
      body: {
        policy: "mtls",
        policy_version: "sha256:x",
        policy_set_version: "sha256:y",
        lease: {
          id: "lse_abc.def",
          run: "github:github:1:2:1",
          expires_at: expires,
          revoke_token: "rvk_secret",
        },
        credentials: {
          x509: {
            certificate: cert.toString("pem"),
            chain: authority.issuing.chainPem,
            serial,
            not_before: new Date((now - 60) * 1000).toISOString(),
            not_after: expires,
            expires_at: expires,
          },
        },
      },
    };
  });
}

function exported(name: string): string {
  const m = new RegExp(`^export ${name}='([^']*)'$`, "m").exec(stdout);
  if (!m) throw new Error(`${name} not exported`);
  return m[1] as string;
}

describe("runpass exchange with an x509 grant", () => {
  it("sends only a CSR, writes the certificate, key and chain to 0600 files, exports their paths; revoke removes them", async () => {
    broker = await signingBroker();
    const state = join(temp, "state.json");
    const code = await runner("exchange", ["--url", broker.url, "--policy", "mtls", "--state", state]);
    expect(code).toBe(0);
    const sent = broker.requests[0]?.body ?? "";
    expect(sent).toContain("BEGIN CERTIFICATE REQUEST");
    expect(sent).not.toContain("PRIVATE KEY");

    const cert = exported("RUNPASS_X509_CERT_FILE");
    const key = exported("RUNPASS_X509_KEY_FILE");
    const chain = exported("RUNPASS_X509_CHAIN_FILE");
    const dir = join(cert, "..");
    expect(dir.startsWith(temp)).toBe(true);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    for (const f of [cert, key, chain]) expect((await stat(f)).mode & 0o777).toBe(0o600);
    // The key never appears in what was printed, only its path.
    expect(stdout).not.toContain("PRIVATE KEY");

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

    expect(await runner("revoke", ["--state", state])).toBe(0);
    expect(broker.requests.at(-1)?.method).toBe("DELETE");
    await expect(stat(dir)).rejects.toThrow();
  });

  it("generates a new key for every exchange", async () => {
    broker = await signingBroker();
    await runner("exchange", ["--url", broker.url, "--policy", "mtls", "--state", join(temp, "a.json")]);
    await runner("exchange", ["--url", broker.url, "--policy", "mtls", "--state", join(temp, "b.json")]);
    const csrs = broker.requests.map((r) => (JSON.parse(r.body) as { csr: string }).csr);
    expect(csrs).toHaveLength(2);
    expect(csrs[0]).not.toBe(csrs[1]);
  });

  it("refuses a certificate that is not for its key: nothing printed or written, the lease ended", async () => {
    broker = await signingBroker(true);
    const code = await runner("exchange", [
      "--url",
      broker.url,
      "--policy",
      "mtls",
      "--state",
      join(temp, "s.json"),
    ]);
    expect(code).toBe(3);
    expect(stdout).toBe("");
    expect((await readdir(temp)).filter((f) => f.startsWith("runpass-"))).toEqual([]);
    expect(broker.requests.at(-1)?.method).toBe("DELETE");
  });
});
