// The OpenSSH encoders (src/core/ssh) against the real ssh-keygen: public keys it generates parse, certificates it
// signs are reproduced byte for byte, certificates runpass signs are read (and their signatures verified) by
// `ssh-keygen -L`, the generated private key loads, and KRLs match and are honoured by `ssh-keygen -Q`.

import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { base64 } from "../../src/core/encoding.ts";
import { parseCertificate, signUserCertificate, type UserCertificate } from "../../src/core/ssh/cert.ts";
import {
  type CaJwk,
  caLine,
  fingerprint,
  importCa,
  keyLine,
  parsePublicKeyLine,
  type SshCa,
} from "../../src/core/ssh/keys.ts";
import { encodeKrl } from "../../src/core/ssh/krl.ts";
import { encodeEd25519PrivateKey, generateEd25519Key } from "../../src/core/ssh/private-key.ts";
import { fromBase64, fromBase64url } from "../../src/core/ssh/wire.ts";
import { ensureSystemTools, SSH_CLIENT } from "../support/system-tools.ts";

let dir: string;
let keygen: string;

function run(...args: string[]): string {
  return execFileSync(keygen, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function write(name: string, text: string | Uint8Array, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, text, { mode });
  return path;
}

/** A fresh user key of `args` from ssh-keygen; returns the path of its private key. */
function userKey(name: string, ...args: string[]): string {
  const path = join(dir, name);
  run("-q", "-N", "", "-C", "test", "-f", path, ...args);
  return path;
}

async function newCa(kind: "Ed25519" | "P-256", kid: string): Promise<{ ca: SshCa; jwk: CaJwk }> {
  const algorithm = kind === "Ed25519" ? { name: "Ed25519" } : { name: "ECDSA", namedCurve: "P-256" };
  const pair = (await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as CryptoKeyPair;
  const jwk = { ...(await crypto.subtle.exportKey("jwk", pair.privateKey)), kid } as CaJwk;
  return { ca: await importCa(jwk), jwk };
}

function certLine(blob: Uint8Array): string {
  return keyLine(parseCertificate(blob).certType, blob);
}

beforeAll(() => {
  const [ssh] = ensureSystemTools(SSH_CLIENT) as [string];
  keygen = join(dirname(ssh), "ssh-keygen");
  dir = mkdtempSync(join(tmpdir(), "runpass-ssh-enc-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("public key lines", () => {
  it.each([
    ["ssh-ed25519", ["-t", "ed25519"]],
    ["ecdsa-sha2-nistp256", ["-t", "ecdsa", "-b", "256"]],
    ["ssh-rsa", ["-t", "rsa", "-b", "3072"]],
  ])("%s keys from ssh-keygen parse, with ssh-keygen's fingerprint", async (type, args) => {
    const path = userKey(`pk-${type}`, ...args);
    const line = readFileSync(`${path}.pub`, "utf8");
    const key = await parsePublicKeyLine(line);
    expect(key.type).toBe(type);
    expect(run("-l", "-E", "sha256", "-f", `${path}.pub`)).toContain(await fingerprint(key.blob));
  });

  it("weak, unsupported and malformed keys are refused", async () => {
    const rsa2048 = readFileSync(`${userKey("rsa2048", "-t", "rsa", "-b", "2048")}.pub`, "utf8");
    await expect(parsePublicKeyLine(rsa2048)).rejects.toThrow(/at least 3072 bits/);
    const p384 = readFileSync(`${userKey("p384", "-t", "ecdsa", "-b", "384")}.pub`, "utf8");
    await expect(parsePublicKeyLine(p384)).rejects.toThrow(/key type must be/);
    const ed = readFileSync(`${userKey("ed-x", "-t", "ed25519")}.pub`, "utf8").split(" ");
    // The line's type must be the blob's type.
    await expect(parsePublicKeyLine(`ssh-rsa ${ed[1]}`)).rejects.toThrow(/does not match/);
    await expect(parsePublicKeyLine(`ssh-ed25519 ${(ed[1] as string).slice(0, 40)}`)).rejects.toThrow();
    await expect(parsePublicKeyLine("ssh-ed25519 !!!")).rejects.toThrow(/malformed/);
    await expect(parsePublicKeyLine("ssh-ed25519")).rejects.toThrow(/expected/);
    // A point that is not on the curve.
    const ec = readFileSync(`${userKey("ec-x", "-t", "ecdsa", "-b", "256")}.pub`, "utf8").split(" ");
    const blob = fromBase64(ec[1] as string);
    blob[blob.length - 1] = (blob[blob.length - 1] as number) ^ 1;
    await expect(parsePublicKeyLine(`ecdsa-sha2-nistp256 ${base64(blob)}`)).rejects.toThrow(/not on P-256/);
  });
});

describe("certificates", () => {
  it.each([
    ["ed25519", ["-t", "ed25519"]],
    ["ecdsa", ["-t", "ecdsa", "-b", "256"]],
    ["rsa", ["-t", "rsa", "-b", "3072"]],
  ])(
    "a certificate ssh-keygen signs for an %s key is reproduced byte for byte (Ed25519 CA)",
    async (name, args) => {
      const { jwk } = await newCa("Ed25519", "vec");
      const ca = await importCa(jwk);
      const caKey = write(
        `ca-${name}`,
        encodeEd25519PrivateKey(fromBase64url(jwk.d), fromBase64url(jwk.x), "ca"),
      );
      const user = userKey(`user-${name}`, ...args);
      run(
        "-q",
        "-s",
        caKey,
        "-I",
        "runpass lease=lse_x run=github:1 policy=p",
        "-n",
        "deploy,ops",
        "-V",
        "-1m:+1h",
        "-z",
        "18446744073709551000",
        "-O",
        "clear",
        "-O",
        "permit-pty",
        "-O",
        "permit-user-rc",
        "-O",
        "force-command=/usr/local/bin/deploy --now",
        "-O",
        "source-address=127.0.0.1/32,10.0.0.0/8",
        `${user}.pub`,
      );
      const theirs = fromBase64(readFileSync(`${user}-cert.pub`, "utf8").split(" ")[1] as string);
      const parsed = parseCertificate(theirs);
      expect(parsed.serial).toBe(18446744073709551000n);
      expect(parsed.principals).toEqual(["deploy", "ops"]);
      expect(parsed.extensions).toEqual(["permit-pty", "permit-user-rc"]);
      const key = await parsePublicKeyLine(readFileSync(`${user}.pub`, "utf8"));
      expect(parsed.keyBlob).toEqual(key.blob);
      const cert: UserCertificate = {
        key,
        serial: parsed.serial,
        keyId: parsed.keyId,
        principals: parsed.principals,
        validAfter: parsed.validAfter,
        validBefore: parsed.validBefore,
        criticalOptions: parsed.criticalOptions,
        extensions: ["permit-user-rc", "permit-pty"], // given unsorted: the encoder sorts
        nonce: parsed.nonce,
      };
      expect(base64(await signUserCertificate(cert, ca))).toBe(base64(theirs));
    },
  );

  it.each(["Ed25519", "P-256"] as const)(
    "ssh-keygen -L reads and verifies a certificate runpass signs with a %s CA; a tampered one is refused",
    async (kind) => {
      const { ca } = await newCa(kind, `k-${kind}`);
      const user = userKey(`u-${kind}`, "-t", "ed25519");
      const key = await parsePublicKeyLine(readFileSync(`${user}.pub`, "utf8"));
      const now = Math.floor(Date.now() / 1000);
      const blob = await signUserCertificate(
        {
          key,
          serial: 42n,
          keyId: "runpass lease=lse_abc run=github:x:1:2:1 policy=deploy",
          principals: ["deploy"],
          validAfter: now - 60,
          validBefore: now + 900,
          criticalOptions: { "force-command": "/bin/true" },
          extensions: ["permit-pty"],
        },
        ca,
      );
      const path = write(`c-${kind}-cert.pub`, `${certLine(blob)}\n`);
      const out = run("-L", "-f", path);
      expect(out).toContain("user certificate");
      expect(out).toContain(`Public key: ED25519-CERT ${await fingerprint(key.blob)}`);
      expect(out).toContain(
        `Signing CA: ${kind === "Ed25519" ? "ED25519" : "ECDSA"} ${await fingerprint(ca.publicBlob)}`,
      );
      expect(out).toContain('Key ID: "runpass lease=lse_abc run=github:x:1:2:1 policy=deploy"');
      expect(out).toContain("Serial: 42");
      expect(out).toMatch(/Principals: \n\s+deploy\n/);
      expect(out).toMatch(/force-command \/bin\/true/);
      expect(out).toMatch(/Extensions: \n\s+permit-pty\n/);
      // The CA line names the key ssh-keygen reports.
      const caPub = write(`ca-${kind}.pub`, `${caLine(ca)}\n`);
      expect(run("-l", "-E", "sha256", "-f", caPub)).toContain(await fingerprint(ca.publicBlob));
      expect(caLine(ca)).toMatch(new RegExp(` runpass-ca:k-${kind}$`));

      const tampered = blob.slice();
      tampered[tampered.length - 70] = (tampered[tampered.length - 70] as number) ^ 0xff; // inside the signature
      const bad = write(`c-${kind}-bad-cert.pub`, `${certLine(tampered)}\n`);
      expect(spawnSync(keygen, ["-L", "-f", bad]).status).not.toBe(0);
    },
  );
});

describe("generated private keys", () => {
  it("ssh-keygen loads the openssh-key-v1 key and derives the same public key", async () => {
    const generated = await generateEd25519Key("runpass lease=lse_x");
    const path = write("gen", generated.privateKey);
    expect(generated.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    const derived = run("-y", "-f", path).trim().split(" ").slice(0, 2).join(" ");
    expect(generated.publicLine.split(" ").slice(0, 2).join(" ")).toBe(derived);
    expect(keyLine("ssh-ed25519", generated.publicBlob)).toBe(derived);
  });
});

describe("KRL", () => {
  it("matches ssh-keygen's KRL for the same serials byte for byte, and ssh-keygen -Q honours runpass's", async () => {
    const { ca } = await newCa("Ed25519", "krl");
    const other = await newCa("P-256", "krl-2");
    const caPub = write("krl-ca.pub", `${caLine(ca)}\n`);
    const serials = [9000000000000000000n, 77n, 123456789012345n];
    const spec = write("serials.txt", serials.map((s) => `serial: ${s}\n`).join(""));
    const theirsPath = join(dir, "theirs.krl");
    run("-k", "-f", theirsPath, "-s", caPub, spec);
    const theirs = new Uint8Array(readFileSync(theirsPath));
    const generatedAt = Number(new DataView(theirs.buffer, theirs.byteOffset).getBigUint64(20));
    const ours = encodeKrl({
      version: 0n,
      generatedAt,
      comment: "",
      sections: [{ caBlob: ca.publicBlob, serials }],
    });
    expect(base64(ours)).toBe(base64(theirs));

    // Two CA sections (rotation); ssh-keygen -Q finds listed serials under the right CA only.
    const krl = write(
      "ours.krl",
      encodeKrl({
        version: 7n,
        generatedAt: Math.floor(Date.now() / 1000),
        comment: "runpass",
        sections: [
          { caBlob: ca.publicBlob, serials: [77n, 5n] },
          { caBlob: other.ca.publicBlob, serials: [78n] },
        ],
      }),
    );
    const user = userKey("krl-user", "-t", "ed25519");
    const key = await parsePublicKeyLine(readFileSync(`${user}.pub`, "utf8"));
    const now = Math.floor(Date.now() / 1000);
    const certFor = async (serial: bigint, signer: SshCa, name: string) =>
      write(
        name,
        `${certLine(
          await signUserCertificate(
            {
              key,
              serial,
              keyId: "k",
              principals: ["p"],
              validAfter: now - 60,
              validBefore: now + 600,
              criticalOptions: {},
              extensions: [],
            },
            signer,
          ),
        )}\n`,
      );
    const q = (cert: string) => spawnSync(keygen, ["-Q", "-f", krl, cert], { encoding: "utf8" });
    expect(q(await certFor(77n, ca, "r77-cert.pub")).stdout).toContain("REVOKED");
    expect(q(await certFor(78n, other.ca, "r78-cert.pub")).status).toBe(1);
    expect(q(await certFor(78n, ca, "ok78-cert.pub")).status).toBe(0);
    expect(q(await certFor(6n, ca, "ok6-cert.pub")).stdout).toContain(": ok");
    const listed = run("-Q", "-l", "-f", krl);
    expect(listed).toContain("# KRL version 7");
    expect(listed).toContain("# Comment: runpass");
    expect(listed).toContain(
      `# CA key ssh-ed25519 ${await fingerprint(ca.publicBlob)}\nserial: 5\nserial: 77\n`,
    );
    expect(listed).toContain(
      `# CA key ecdsa-sha2-nistp256 ${await fingerprint(other.ca.publicBlob)}\nserial: 78\n`,
    );
  });
});
