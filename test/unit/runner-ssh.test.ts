// The runner CLI's side of the ssh grant (docs/clients.md, "Certificates"), in process against a scripted broker
// that certifies the public key it is sent: a fresh Ed25519 pair every time (only the public key leaves), key,
// certificate and known_hosts in 0600 files in a new 0700 folder of the job's temp dir, their paths exported, the
// folder removed by `revoke`; a certificate for another key is refused with nothing written. Checked with ssh-keygen.

import { execFileSync } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runner } from "../../src/cli/runner.ts";
import { CERT_TYPES, signUserCertificate } from "../../src/core/ssh/cert.ts";
import { importCa, keyLine, readPublicKeyLine, type SshCa } from "../../src/core/ssh/keys.ts";
import { generateEd25519Key } from "../../src/core/ssh/private-key.ts";
import { type RecordedRequest, startFakeBrokerHttp } from "../support/fake-broker-http.ts";
import { leaseAnswer, runnerJob } from "../support/runner-job.ts";
import { ensureSystemTools, SSH_CLIENT } from "../support/system-tools.ts";

const KNOWN_HOSTS =
  "@cert-authority *.prod.acme.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n";

const job = runnerJob("runpass-runner-ssh-");
let keygen = "";
let ca: SshCa;

beforeAll(async () => {
  keygen = join(dirname(ensureSystemTools(SSH_CLIENT)[0] as string), "ssh-keygen");
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const jwk = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey;
  ca = await importCa({
    kty: "OKP",
    crv: "Ed25519",
    kid: "runner-test",
    x: jwk.x as string,
    d: jwk.d as string,
  });
});

/** A broker that certifies the public key it is sent (or, with `otherKey`, a key of its own). */
function signingBroker(otherKey = false) {
  return startFakeBrokerHttp(async (req: RecordedRequest) => {
    if (req.method === "DELETE") return { status: 204 };
    const body = JSON.parse(req.body) as { ssh_public_key?: string };
    const line = otherKey ? (await generateEd25519Key("other")).publicLine : (body.ssh_public_key ?? "");
    const key = readPublicKeyLine(line);
    const now = Math.floor(Date.now() / 1000);
    const blob = await signUserCertificate(
      {
        key,
        serial: 77n,
        keyId: "runpass lease=lse_abc.def run=github:github:1:2:1 policy=deploy",
        principals: ["deploy"],
        validAfter: now - 60,
        validBefore: now + 900,
        criticalOptions: {},
        extensions: ["permit-pty"],
      },
      ca,
    );
    const expires = new Date((now + 900) * 1000).toISOString();
    return leaseAnswer("deploy", expires, {
      ssh: {
        certificate: keyLine(CERT_TYPES[key.type], blob, "runpass"),
        known_hosts: KNOWN_HOSTS,
        principals: ["deploy"],
        serial: "77",
        key_id: "runpass lease=lse_abc.def run=github:github:1:2:1 policy=deploy",
        valid_after: new Date((now - 60) * 1000).toISOString(),
        valid_before: expires,
        expires_at: expires,
      },
    });
  });
}

describe("runpass exchange with an ssh grant", () => {
  it("sends only a public key, writes key, certificate and known_hosts to 0600 files, exports their paths; revoke removes them", async () => {
    const broker = await signingBroker();
    job.broker = broker;
    expect(await job.exchange("deploy", "state.json")).toBe(0);
    const sent = JSON.parse(broker.requests[0]?.body ?? "{}") as { ssh_public_key?: string };
    expect(sent.ssh_public_key).toMatch(/^ssh-ed25519 AAAA\S+ /);
    expect(broker.requests[0]?.body).not.toContain("OPENSSH PRIVATE KEY");

    const key = job.exported("RUNPASS_SSH_KEY_FILE");
    const cert = job.exported("RUNPASS_SSH_CERT_FILE");
    const knownHosts = job.exported("RUNPASS_SSH_KNOWN_HOSTS_FILE");
    const dir = dirname(key);
    expect(dir.startsWith(job.temp)).toBe(true);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    for (const f of [key, cert, knownHosts]) expect((await stat(f)).mode & 0o777).toBe(0o600);
    expect(job.stdout).not.toContain("PRIVATE KEY");
    expect(await readFile(knownHosts, "utf8")).toBe(KNOWN_HOSTS);

    // ssh-keygen: the private key file is the one the certificate certifies, and the certificate reads.
    const derived = execFileSync(keygen, ["-y", "-f", key], { encoding: "utf8" }).trim().split(" ");
    expect(sent.ssh_public_key?.split(" ").slice(0, 2)).toEqual(derived.slice(0, 2));
    expect(execFileSync(keygen, ["-L", "-f", cert], { encoding: "utf8" })).toContain("Serial: 77");

    expect(await runner("revoke", ["--state", join(job.temp, "state.json")])).toBe(0);
    expect(broker.requests.at(-1)?.method).toBe("DELETE");
    await expect(stat(dir)).rejects.toThrow();
  });

  it("generates a new key pair for every exchange", async () => {
    const broker = await signingBroker();
    job.broker = broker;
    await job.exchange("deploy", "a.json");
    await job.exchange("deploy", "b.json");
    const keys = broker.requests.map(
      (r) => (JSON.parse(r.body) as { ssh_public_key: string }).ssh_public_key,
    );
    expect(keys).toHaveLength(2);
    expect(keys[0]).not.toBe(keys[1]);
  });

  it("refuses a certificate that is not for its key: nothing printed or written, the lease ended", async () => {
    const broker = await signingBroker(true);
    job.broker = broker;
    expect(await job.exchange("deploy", "s.json")).toBe(3);
    expect(job.stdout).toBe("");
    expect(await job.credentialDirs()).toEqual([]);
    expect(broker.requests.at(-1)?.method).toBe("DELETE");
  });
});
