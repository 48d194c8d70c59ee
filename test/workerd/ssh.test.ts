// The ssh grant end to end inside workerd, checked with real OpenSSH (test/support/openssh.ts): `ssh-keygen -L`
// reads every certificate; a real sshd (TrustedUserCAKeys from /v1/ssh/ca.pub, AuthorizedPrincipalsFile,
// RevokedKeys from /v1/ssh/krl) accepts a login for the certificate's principal, refuses another principal,
// refuses an expired certificate, and refuses once the serial is in the KRL fetched after the lease ended.

import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { base64 } from "../../src/core/encoding.ts";
import { keyLine } from "../../src/core/ssh/keys.ts";
import { generateEd25519Key } from "../../src/core/ssh/private-key.ts";
import { fromBase64url, SshWriter } from "../../src/core/ssh/wire.ts";
import { BROKER_URL, ISSUER_BASE, issuersYaml, makeBroker, uniqueIssuer } from "../support/broker.ts";
import { ACME, githubClaims, mint } from "../support/claims.ts";
import { movableClock } from "../support/run-ledger.ts";

const OPENSSH = env.TEST_OPENSSH_BASE;

interface SshOut {
  certificate: string;
  private_key?: string;
  known_hosts?: string;
  principals: string[];
  serial: string;
  key_id: string;
  valid_after: string;
  valid_before: string;
  expires_at: string;
}

interface Exchanged {
  lease: { id: string; run: string; expires_at: string; revoke_token: string };
  credentials: { ssh?: SshOut; token?: { token: string } };
  error?: string;
  error_description?: string;
}

async function service<T>(path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${OPENSSH}${path}`, { method: "POST", body: JSON.stringify(body ?? {}) });
  if (!res.ok) throw new Error(`openssh service: ${await res.text()}`);
  return (await res.json()) as T;
}

function keygen(args: string[], files: Record<string, string | Uint8Array>) {
  const encoded = Object.fromEntries(
    Object.entries(files).map(([n, c]) => [n, typeof c === "string" ? { text: c } : { base64: base64(c) }]),
  );
  return service<{ status: number; stdout: string; stderr: string }>("/ssh-keygen", { args, files: encoded });
}

interface Login {
  caPub: string;
  krl?: Uint8Array;
  principals?: string[];
  key: string;
  certificate: string;
  knownHosts?: string;
}

function login(input: Login) {
  return service<{ accepted: boolean; server: string; client: string }>("/login", {
    ...input,
    principals: input.principals ?? ["deploy"],
    ...(input.krl ? { krl: base64(input.krl) } : {}),
  });
}

async function caKey(kind: "Ed25519" | "P-256", kid: string): Promise<JsonWebKey & { kid: string }> {
  const algorithm = kind === "Ed25519" ? { name: "Ed25519" } : { name: "ECDSA", namedCurve: "P-256" };
  const pair = (await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as CryptoKeyPair;
  return { ...((await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey), kid };
}

let sharedCa: Promise<Array<JsonWebKey & { kid: string }>> | undefined;
function testCa() {
  sharedCa ??= caKey("Ed25519", "ssh-test").then((k) => [k]);
  return sharedCa;
}

async function setup(
  options: { grant?: string; clock?: () => number; caKeys?: Array<JsonWebKey & { kid: string }> | null } = {},
) {
  const gh = uniqueIssuer();
  const hostKey = (await service<{ publicLine: string }>("/host-key")).publicLine;
  const grant =
    options.grant ??
    `ssh:
    principals: [deploy]
    ttl: 15m
    extensions: [permit-pty]
    force_command: /bin/true
    source_address: [127.0.0.1/32, "::1"]
    known_hosts: ["[127.0.0.1]:* ${hostKey}"]`;
  const policy = `issuer: ${gh}
allow:
  repository_owner_id: "${ACME.ownerId}"
  repository_id: "${ACME.repoId}"
ttl: 1h
grants:
  ${grant}
`;
  const caKeys = options.caKeys === undefined ? await testCa() : options.caKeys;
  const broker = await makeBroker({
    policies: {
      deploy: policy,
      plain: policy.replace(/grants:[\s\S]*$/, 'grants:\n  token: { audience: "https://x" }\n'),
    },
    issuers: issuersYaml(gh),
    env: caKeys ? { RUNPASS_SSH_CA_KEYS: JSON.stringify(caKeys) } : {},
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const now = () => (options.clock ?? Date.now)();
  const token = () => mint(ISSUER_BASE, gh, githubClaims(`${ISSUER_BASE}/${gh}`, BROKER_URL, {}, now()));
  const exchange = async (t: string, body: Record<string, unknown> = {}) => {
    const res = await broker.exchange(t, { policy: "deploy", ...body });
    return { status: res.status, body: (await res.json()) as Exchanged };
  };
  const caPub = async () => (await broker.fetch("/v1/ssh/ca.pub")).text();
  const krl = async () => {
    const res = await broker.fetch("/v1/ssh/krl");
    return { res, bytes: new Uint8Array(await res.arrayBuffer()) };
  };
  return { broker, token, exchange, caPub, krl, hostKey };
}

/** A WebCrypto key pair as OpenSSH takes it: a PKCS#8 PEM private key (ssh reads it) and a public key line. */
async function webCryptoKey(kind: "ecdsa" | "rsa"): Promise<{ privateKey: string; publicLine: string }> {
  const pair = (await crypto.subtle.generateKey(
    kind === "ecdsa"
      ? { name: "ECDSA", namedCurve: "P-256" }
      : {
          name: "RSASSA-PKCS1-v1_5",
          modulusLength: 3072,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: "SHA-256",
        },
    true,
    ["sign", "verify"],
  )) as CryptoKeyPair;
  const pkcs8 = new Uint8Array((await crypto.subtle.exportKey("pkcs8", pair.privateKey)) as ArrayBuffer);
  const privateKey = `-----BEGIN PRIVATE KEY-----\n${base64(pkcs8).replace(/(.{64})/g, "$1\n")}\n-----END PRIVATE KEY-----\n`;
  let blob: Uint8Array;
  if (kind === "ecdsa") {
    const point = new Uint8Array((await crypto.subtle.exportKey("raw", pair.publicKey)) as ArrayBuffer);
    blob = new SshWriter().string("ecdsa-sha2-nistp256").string("nistp256").string(point).bytes();
  } else {
    const jwk = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as JsonWebKey;
    blob = new SshWriter()
      .string("ssh-rsa")
      .mpint(fromBase64url(jwk.e as string))
      .mpint(fromBase64url(jwk.n as string))
      .bytes();
  }
  return {
    privateKey,
    publicLine: keyLine(kind === "ecdsa" ? "ecdsa-sha2-nistp256" : "ssh-rsa", blob, "runner"),
  };
}

async function endLease(broker: Awaited<ReturnType<typeof setup>>["broker"], lease: Exchanged["lease"]) {
  const del = await broker.fetch(`/v1/leases/${lease.id}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${lease.revoke_token}` },
  });
  expect(del.status).toBe(204);
  await runDurableObjectAlarm(env.RUN_LEDGER.get(env.RUN_LEDGER.idFromName(lease.run)));
}

describe("ssh grant", () => {
  it("signs the runner's public key for the policy's principals and options; ssh-keygen -L reads it", async () => {
    const s = await setup();
    const runner = await generateEd25519Key("runner");
    const before = Math.floor(Date.now() / 1000);
    const res = await s.exchange(await s.token(), { ssh_public_key: runner.publicLine });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const out = res.body.credentials.ssh as SshOut;
    expect(out.private_key).toBeUndefined();
    expect(out.principals).toEqual(["deploy"]);
    expect(out.serial).toMatch(/^[1-9][0-9]{0,19}$/);
    expect(BigInt(out.serial)).toBeLessThan(2n ** 64n);
    const { lease } = res.body;
    expect(out.key_id).toBe(`runpass lease=${lease.id} run=${lease.run} policy=deploy`);
    expect(Math.abs(Date.parse(out.valid_after) / 1000 - (before - 60))).toBeLessThanOrEqual(2);
    expect(Date.parse(out.valid_before) - Date.parse(out.valid_after)).toBe(16 * 60_000);
    expect(out.expires_at).toBe(out.valid_before);
    expect(out.known_hosts).toBe(`[127.0.0.1]:* ${s.hostKey}\n`);
    expect(out.certificate).toMatch(/^ssh-ed25519-cert-v01@openssh\.com AAAA\S+ runpass$/);

    const read = await keygen(["-L", "-f", "c-cert.pub"], { "c-cert.pub": `${out.certificate}\n` });
    expect(read.status, read.stderr).toBe(0);
    expect(read.stdout).toContain("Type: ssh-ed25519-cert-v01@openssh.com user certificate");
    expect(read.stdout).toContain(`Key ID: "${out.key_id}"`);
    expect(read.stdout).toContain(`Serial: ${out.serial}`);
    expect(read.stdout).toMatch(/Principals: \n\s+deploy\n/);
    expect(read.stdout).toMatch(/force-command \/bin\/true/);
    expect(read.stdout).toMatch(/source-address 127\.0\.0\.1\/32,::1/);
    expect(read.stdout).toMatch(/Extensions: \n\s+permit-pty\n/);
    const caPub = await s.caPub();
    expect(caPub).toMatch(/^ssh-ed25519 AAAA\S+ runpass-ca:ssh-test\n$/);
    const fp = await keygen(["-l", "-E", "sha256", "-f", "ca.pub"], { "ca.pub": caPub });
    expect(read.stdout).toContain(`Signing CA: ED25519 ${fp.stdout.split(" ")[1]}`);
  });

  it("a real sshd accepts the certificate for its principal (host verified with the grant's known_hosts) and refuses another principal", async () => {
    const s = await setup();
    const runner = await generateEd25519Key("runner");
    const out = (await s.exchange(await s.token(), { ssh_public_key: runner.publicLine })).body.credentials
      .ssh as SshOut;
    const caPub = await s.caPub();
    const ok = await login({
      caPub,
      key: runner.privateKey,
      certificate: out.certificate,
      knownHosts: out.known_hosts as string,
    });
    expect(ok.accepted, ok.server + ok.client).toBe(true);
    expect(ok.server).toContain(`ID ${out.key_id} (serial ${out.serial})`);

    const other = await login({
      caPub,
      key: runner.privateKey,
      certificate: out.certificate,
      principals: ["ops"],
    });
    expect(other.accepted).toBe(false);
  });

  it("sshd refuses the certificate after valid_before", async () => {
    // The broker's clock 30 minutes behind: the certificate (15m) ended a quarter of an hour ago in real time.
    const s = await setup({ clock: () => Date.now() - 30 * 60_000 });
    const runner = await generateEd25519Key("runner");
    const res = await s.exchange(await s.token(), { ssh_public_key: runner.publicLine });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const out = res.body.credentials.ssh as SshOut;
    expect(Date.parse(out.valid_before)).toBeLessThan(Date.now());
    const r = await login({ caPub: await s.caPub(), key: runner.privateKey, certificate: out.certificate });
    expect(r.accepted).toBe(false);
    expect(r.server).toMatch(/expired|not yet valid|invalid/i);
  });

  it("once the lease ends early, the KRL lists the serial: ssh-keygen -Q agrees and sshd refuses; a KRL fetched before still lets it in", async () => {
    const s = await setup();
    const runner = await generateEd25519Key("runner");
    const res = await s.exchange(await s.token(), { ssh_public_key: runner.publicLine });
    const out = res.body.credentials.ssh as SshOut;
    const caPub = await s.caPub();
    const cert = { key: runner.privateKey, certificate: out.certificate };

    const before = await s.krl();
    expect(before.res.headers.get("content-type")).toBe("application/octet-stream");
    expect(before.res.headers.get("cache-control")).toBe("public, max-age=30");
    const q1 = await keygen(["-Q", "-f", "krl", "c-cert.pub"], {
      krl: before.bytes,
      "c-cert.pub": out.certificate,
    });
    expect(q1.status, q1.stderr).toBe(0);
    expect((await login({ caPub, krl: before.bytes, ...cert })).accepted).toBe(true);

    await endLease(s.broker, res.body.lease);
    const after = await s.krl();
    const q2 = await keygen(["-Q", "-f", "krl", "c-cert.pub"], {
      krl: after.bytes,
      "c-cert.pub": out.certificate,
    });
    expect(q2.status).toBe(1);
    expect(q2.stdout).toContain("REVOKED");
    const listed = await keygen(["-Q", "-l", "-f", "krl"], { krl: after.bytes });
    expect(listed.stdout).toContain(`serial: ${out.serial}\n`);
    const refused = await login({ caPub, krl: after.bytes, ...cert });
    expect(refused.accepted).toBe(false);
    expect(refused.server).toMatch(/revoked/i);
    // A host that has not refetched still accepts it: a KRL is only as fresh as the host's last fetch.
    expect((await login({ caPub, krl: before.bytes, ...cert })).accepted).toBe(true);

    // Audited: the exchange and the revocation name the grant by digest; no record carries the key material.
    await runDurableObjectAlarm(env.RUN_LEDGER.get(env.RUN_LEDGER.idFromName(res.body.lease.run)));
    const audit = await (
      await s.broker.admin(`/v1/admin/audit?run=${encodeURIComponent(res.body.lease.run)}`)
    ).text();
    const records = (
      JSON.parse(audit) as { records: Array<{ event: string; detail?: string; grants?: unknown[] }> }
    ).records;
    expect(records.find((r) => r.event === "exchange")?.grants).toEqual([
      { type: "ssh", id: expect.stringMatching(/^hmac-sha256:/), expires_at: out.valid_before },
    ]);
    expect(records.find((r) => r.event === "revocation")?.detail).toMatch(/^revoked: on the KRL until /);
    expect(audit).not.toContain(runner.publicLine.split(" ")[1] as string);
    expect(audit).not.toContain(out.certificate.split(" ")[1] as string);

    // The same list gives the same bytes and ETag; a conditional fetch is 304.
    const etag = after.res.headers.get("etag") as string;
    expect(etag).toMatch(/^"[0-9a-f]{32}"$/);
    expect(base64((await s.krl()).bytes)).toBe(base64(after.bytes));
    expect((await s.broker.fetch("/v1/ssh/krl", { headers: { "if-none-match": etag } })).status).toBe(304);
  });

  it("the KRL forgets a serial once its certificate has expired", async () => {
    const time = movableClock();
    const s = await setup({ clock: time.clock });
    const runner = await generateEd25519Key("runner");
    const res = await s.exchange(await s.token(), { ssh_public_key: runner.publicLine });
    const out = res.body.credentials.ssh as SshOut;
    await endLease(s.broker, res.body.lease);
    const listed = await keygen(["-Q", "-l", "-f", "krl"], { krl: (await s.krl()).bytes });
    expect(listed.stdout).toContain(`serial: ${out.serial}\n`);
    time.advance(16 * 60_000);
    const later = await keygen(["-Q", "-l", "-f", "krl"], { krl: (await s.krl()).bytes });
    expect(later.stdout).not.toContain(`serial: ${out.serial}\n`);
  });

  it("without a public key generates an Ed25519 pair and returns its private key; sshd accepts the pair", async () => {
    const s = await setup();
    const res = await s.exchange(await s.token());
    const out = res.body.credentials.ssh as SshOut;
    expect(out.private_key).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    const r = await login({
      caPub: await s.caPub(),
      key: out.private_key as string,
      certificate: out.certificate,
    });
    expect(r.accepted, r.server + r.client).toBe(true);
  });

  it("accepts ECDSA P-256 and RSA ≥ 3072 keys (sshd logs in with them); refuses malformed or unsupported keys with 400, nothing issued, the token still usable", async () => {
    const s = await setup();
    const caPub = await s.caPub();
    for (const kind of ["ecdsa", "rsa"] as const) {
      const runner = await webCryptoKey(kind);
      const res = await s.exchange(await s.token(), { ssh_public_key: runner.publicLine });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const out = res.body.credentials.ssh as SshOut;
      expect(out.certificate.split(" ")[0]).toBe(
        kind === "rsa" ? "ssh-rsa-cert-v01@openssh.com" : "ecdsa-sha2-nistp256-cert-v01@openssh.com",
      );
      const r = await login({ caPub, key: runner.privateKey, certificate: out.certificate });
      expect(r.accepted, r.server + r.client).toBe(true);
    }
    const token = await s.token();
    for (const line of [
      // (RSA under 3072 bits: test/unit/ssh-encoding.test.ts, with a key from ssh-keygen)
      "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 x", // truncated
      "ssh-dss AAAAB3NzaC1kc3MAAACBAP x",
      "not a key",
    ]) {
      const r = await s.exchange(token, { ssh_public_key: line });
      expect(r.status).toBe(400);
      expect(r.body.error).toBe("invalid_request");
      expect(r.body.error_description).toMatch(/^ssh_public_key: /);
      expect(r.body.credentials).toBeUndefined();
    }
    const runner = await generateEd25519Key("runner");
    expect((await s.exchange(token, { ssh_public_key: runner.publicLine })).status).toBe(200);
  });

  it("caps valid_before to the lease: a 5-minute lease gets a 5-minute certificate", async () => {
    const s = await setup();
    const runner = await generateEd25519Key("runner");
    const res = await s.exchange(await s.token(), { ssh_public_key: runner.publicLine, ttl: "5m" });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.credentials.ssh?.valid_before).toBe(res.body.lease.expires_at);
  });

  it("ignores ssh_public_key for a policy without an ssh grant (a request never reveals a policy's grants)", async () => {
    const s = await setup();
    const res = await s.broker.exchange(await s.token(), { policy: "plain", ssh_public_key: "garbage" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as Exchanged).credentials.ssh).toBeUndefined();
  });

  it("renewal re-signs the public key kept with the lease, with a new serial; sshd accepts the renewed certificate", async () => {
    // Issued 8 minutes ago (renewal waits half the certificate's life), renewed now: sshd checks real time.
    const time = movableClock();
    time.advance(-8 * 60_000);
    const s = await setup({ clock: time.clock });
    const runner = await generateEd25519Key("runner");
    const first = await s.exchange(await s.token(), { ssh_public_key: runner.publicLine });
    time.advance(8 * 60_000);
    const res = await s.broker.fetch(`/v1/leases/${first.body.lease.id}/renew`, {
      method: "POST",
      headers: { authorization: `Bearer ${first.body.lease.revoke_token}` },
    });
    expect(res.status).toBe(200);
    const renewed = ((await res.json()) as Exchanged).credentials.ssh as SshOut;
    expect(renewed.serial).not.toBe(first.body.credentials.ssh?.serial);
    expect(renewed.private_key).toBeUndefined();
    expect(Date.parse(renewed.valid_before)).toBeLessThanOrEqual(Date.parse(first.body.lease.expires_at));
    const r = await login({
      caPub: await s.caPub(),
      key: runner.privateKey,
      certificate: renewed.certificate,
    });
    expect(r.accepted, r.server).toBe(true);
  });

  it("CA rotation: every key is published, the first signs; KRL sections follow the signing key", async () => {
    const older = await caKey("P-256", "older");
    const newer = await caKey("Ed25519", "newer");
    const s = await setup({ caKeys: [older, newer] });
    const caPub = await s.caPub();
    const lines = caPub.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^ecdsa-sha2-nistp256 AAAA\S+ runpass-ca:older$/);
    expect(lines[1]).toMatch(/^ssh-ed25519 AAAA\S+ runpass-ca:newer$/);
    const runner = await generateEd25519Key("runner");
    const res = await s.exchange(await s.token(), { ssh_public_key: runner.publicLine });
    const out = res.body.credentials.ssh as SshOut;
    const read = await keygen(["-L", "-f", "c-cert.pub"], { "c-cert.pub": out.certificate });
    expect(read.stdout).toContain("Signing CA: ECDSA");
    // A host that trusts only the newer key refuses it; one with the published file accepts it.
    const cert = { key: runner.privateKey, certificate: out.certificate };
    expect((await login({ caPub: `${lines[1]}\n`, ...cert })).accepted).toBe(false);
    expect((await login({ caPub, ...cert })).accepted).toBe(true);
    await endLease(s.broker, res.body.lease);
    const listed = await keygen(["-Q", "-l", "-f", "krl"], { krl: (await s.krl()).bytes });
    expect(listed.stdout).toMatch(
      new RegExp(`# CA key ecdsa-sha2-nistp256 [^\\n]+\\nserial: ${out.serial}\\n`),
    );
  });

  it("without RUNPASS_SSH_CA_KEYS: the endpoints are 404 and an exchange for an ssh grant fails closed naming the variable", async () => {
    const s = await setup({ caKeys: null });
    expect((await s.broker.fetch("/v1/ssh/ca.pub")).status).toBe(404);
    expect((await s.broker.fetch("/v1/ssh/krl")).status).toBe(404);
    const res = await s.exchange(await s.token());
    expect(res.status).toBe(503);
    expect(res.body.error_description).toContain("RUNPASS_SSH_CA_KEYS");
    expect(res.body.credentials).toBeUndefined();
  });
});
