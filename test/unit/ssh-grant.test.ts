// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy templates are written ${claim}.
// The ssh grant's policy checks (docs/grants.md, ssh): what a policy may state is refused at load, before any
// certificate could carry it — principals sshd would split or misread, unknown extensions, bad CIDRs and
// known_hosts lines, a ttl past the lease — and the CA configuration fails closed naming RUNPASS_SSH_CA_KEYS.

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ensureDevKeys } from "../../src/cli/dev-keys.ts";
import { isCidr } from "../../src/core/grants/ssh.ts";
import { loadPolicySet } from "../../src/core/policy/load.ts";
import { parseSshCaKeys } from "../../src/core/ssh/ca-keys.ts";

function load(grant: string, ttl = "1h") {
  const text = `issuer: github
allow:
  repository_owner_id: "1342004"
  repository_id: "519345000"
ttl: ${ttl}
grants:
  ssh:
${grant}
`;
  return loadPolicySet({ policies: [{ path: "policies/p.yaml", text }] }, { dev: false });
}

async function errorsOf(grant: string, ttl?: string): Promise<string[]> {
  return (await load(grant, ttl)).problems.filter((p) => p.severity === "error").map((p) => p.message);
}

describe("ssh grant policies", () => {
  it("loads a full grant, normalised, with OpenSSH's defaults not implied", async () => {
    const result = await load(`    principals: [deploy, ops]
    source_address: [203.0.113.0/24, "2001:db8::/32", 10.0.0.1]
    force_command: /usr/local/bin/deploy --now
    known_hosts: ["@cert-authority *.prod.acme.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA=="]`);
    expect(result.problems.filter((p) => p.severity === "error")).toEqual([]);
    expect(result.bundle?.policies[0]?.grants.ssh).toEqual({
      principals: ["deploy", "ops"],
      ttl: 900,
      extensions: [],
      force_command: "/usr/local/bin/deploy --now",
      source_address: ["203.0.113.0/24", "2001:db8::/32", "10.0.0.1"],
      known_hosts: ["@cert-authority *.prod.acme.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA=="],
    });
    // The default ttl never passes a shorter lease.
    expect((await load("    principals: [deploy]", "5m")).bundle?.policies[0]?.grants.ssh?.ttl).toBe(300);
  });

  it.each([
    ["    principals: []", /at least one login/],
    ['    principals: ["deploy,root"]', /principal "deploy,root"/],
    ['    principals: ["deploy ops"]', /principal "deploy ops"/],
    ['    principals: ["${repository}"]', /no templates/],
    ["    principals: [deploy, deploy]", /duplicates/],
    ["    principals: [deploy]\n    extensions: [permit-everything]", /extension "permit-everything"/],
    ["    principals: [deploy]\n    extensions: [no-touch-required]", /extension "no-touch-required"/],
    ["    principals: [deploy]\n    source_address: [203.0.113.0/33]", /not an address or CIDR/],
    ['    principals: [deploy]\n    source_address: ["*"]', /not an address or CIDR/],
    ["    principals: [deploy]\n    source_address: []", /at least one CIDR/],
    ['    principals: [deploy]\n    force_command: "a\\nb"', /one line/],
    ['    principals: [deploy]\n    known_hosts: ["@trusted host ssh-ed25519 AAAA"]', /unknown marker/],
    ['    principals: [deploy]\n    known_hosts: ["host-only"]', /expected/],
    ["    principals: [deploy]\n    ttl: 2h", /longer than the policy's lease ttl/],
    ["    principals: [deploy]\n    ttl: 30s", /at least 1m/],
    ["    principals: [deploy]\n    user: root", /./],
  ])("refuses %s", async (grant, message) => {
    const errors = await errorsOf(grant);
    expect(errors.length, JSON.stringify(errors)).toBeGreaterThan(0);
    expect(errors.join("\n")).toMatch(message);
  });

  it("isCidr takes IPv4 and IPv6 addresses with prefix lengths sshd accepts", () => {
    for (const ok of ["10.0.0.0/8", "127.0.0.1", "::1", "2001:db8::/32", "0.0.0.0/0"])
      expect(isCidr(ok)).toBe(true);
    for (const bad of [
      "10.0.0.256",
      "10.0.0/8",
      "01.2.3.4",
      "::1/129",
      "host.example",
      "1.2.3.4/",
      "1.2.3.4/8/8",
    ])
      expect(isCidr(bad), bad).toBe(false);
  });
});

describe("RUNPASS_SSH_CA_KEYS", () => {
  it("fails closed naming the variable, never echoing key material", async () => {
    const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign"])) as CryptoKeyPair;
    const jwk = (await crypto.subtle.exportKey("jwk", pair.privateKey)) as JsonWebKey;
    for (const bad of [
      undefined,
      "not json",
      "[]",
      JSON.stringify([{ ...jwk }]), // no kid
      JSON.stringify([
        { ...jwk, kid: "a" },
        { ...jwk, kid: "a" },
      ]),
      JSON.stringify([{ ...jwk, kid: "a", crv: "Ed448" }]),
      JSON.stringify([{ ...jwk, kid: "a", d: undefined }]), // a public key cannot sign
    ]) {
      const e = await parseSshCaKeys(bad).then(
        () => undefined,
        (err: Error) => err,
      );
      expect(e?.message, String(bad)).toContain("RUNPASS_SSH_CA_KEYS");
      expect(e?.message).not.toContain(jwk.d as string);
    }
    const set = await parseSshCaKeys(JSON.stringify([{ ...jwk, kid: "k1" }]));
    expect(set.active.kid).toBe("k1");
  });
});

describe("npm start's dev SSH CA", () => {
  it("is generated into .dev/keys.json, and a file from before it gains one, other keys kept", async () => {
    const root = await mkdtemp(join(tmpdir(), "runpass-ssh-dev-"));
    try {
      const fresh = await ensureDevKeys(root);
      const set = await parseSshCaKeys(JSON.stringify(fresh.sshCaKeys));
      expect(set.active.type).toBe("ssh-ed25519");
      const { sshCaKeys: _dropped, ...older } = fresh;
      await writeFile(join(root, ".dev/keys.json"), JSON.stringify(older));
      const upgraded = await ensureDevKeys(root);
      expect(upgraded.signingKeys).toEqual(fresh.signingKeys);
      expect(upgraded.sshCaKeys).toHaveLength(1);
      expect(JSON.parse(await readFile(join(root, ".dev/keys.json"), "utf8"))).toEqual(upgraded);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
