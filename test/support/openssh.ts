// Real OpenSSH for the ssh suites (README, Development): runs `ssh-keygen` on files in a fresh temp dir, and logs in
// with `ssh` to a real `sshd` started for that one login on a loopback port — its own config, a host key generated
// at start, TrustedUserCAKeys, AuthorizedPrincipalsFile and RevokedKeys from the request. Served over loopback HTTP
// (test/support/global-setup.ts) so the workerd suites, which cannot spawn processes, check what the Worker issued.

import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { freePort } from "./dev-broker.ts";
import { ensureSystemTools, SSH_CLIENT, SSHD } from "./system-tools.ts";
import { collect, type Files, type ToolResult, withFiles } from "./tool-files.ts";
import {
  bytesFromBase64,
  filesFromJson,
  type JsonFiles,
  type ToolRoutes,
  ToolService,
} from "./tool-service.ts";

export type { Files, ToolResult } from "./tool-files.ts";

/** The account the test logs in as: created when missing, never with a usable password. */
export const SSH_TEST_USER = "runpass-deploy";

let tools: { sshd: string; ssh: string; keygen: string } | undefined;

function openssh(): { sshd: string; ssh: string; keygen: string } {
  if (!tools) {
    const [sshd, ssh] = ensureSystemTools(SSHD, SSH_CLIENT) as [string, string];
    tools = { sshd, ssh, keygen: join(dirname(ssh), "ssh-keygen") };
    // sshd's privilege separation directory, and an account whose password field does not lock it (sshd refuses
    // locked accounts when UsePAM is off) but that no password opens.
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    if (spawnSync("id", [SSH_TEST_USER]).status !== 0) {
      execFileSync("useradd", [
        "--shell",
        "/bin/sh",
        "--home-dir",
        "/tmp",
        "--no-create-home",
        SSH_TEST_USER,
      ]);
    }
    execFileSync("usermod", ["-p", "*", SSH_TEST_USER]);
  }
  return tools;
}

/** Runs `ssh-keygen ...args` in a temp dir holding `files` (args name them relative to it). */
export function runSshKeygen(args: string[], files: Files = {}): Promise<ToolResult> {
  return withFiles("runpass-openssh-", files, (dir) =>
    collect(spawn(openssh().keygen, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] })),
  );
}

/** The sshd host key (made once); its public line goes into the policy's known_hosts. */
let hostKey: Promise<{ privateKey: string; publicLine: string }> | undefined;

/** The test sshd's host key: generated on first use with ssh-keygen. */
export function sshHostKey(): Promise<{ privateKey: string; publicLine: string }> {
  hostKey ??= withFiles("runpass-openssh-", {}, async (dir) => {
    const r = await collect(
      spawn(openssh().keygen, ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", "host"], { cwd: dir }),
    );
    if (r.status !== 0) throw new Error(`ssh-keygen (host key) failed: ${r.stderr}`);
    return {
      privateKey: await readFile(join(dir, "host"), "utf8"),
      publicLine: (await readFile(join(dir, "host.pub"), "utf8")).trim(),
    };
  });
  return hostKey;
}

/** One login attempt against an sshd that trusts `caPub`, maps principals through AuthorizedPrincipalsFile. */
export interface LoginInput {
  /** TrustedUserCAKeys content (the broker's /v1/ssh/ca.pub). */
  caPub: string;
  /** RevokedKeys content (the broker's /v1/ssh/krl); none: an empty file. */
  krl?: Uint8Array;
  /** Principals the test user accepts (its AuthorizedPrincipalsFile). */
  principals: string[];
  /** The client's OpenSSH private key and certificate line. */
  key: string;
  certificate: string;
  /** known_hosts for the client (the grant's); the host is then verified strictly. None: not checked. */
  knownHosts?: string;
}

export interface LoginResult {
  /** `ssh … true` exited 0: the server accepted the certificate. */
  accepted: boolean;
  /** sshd's log (-e, LogLevel VERBOSE): why it refused. */
  server: string;
  client: string;
}

/** Starts `sshd -D -e -f config` as root on a free loopback port for one connection, then runs `ssh … true`. */
export async function sshLogin(input: LoginInput): Promise<LoginResult> {
  const { sshd, ssh } = openssh();
  const host = await sshHostKey();
  const files: Files = {
    host: host.privateKey,
    "ca.pub": input.caPub,
    krl: input.krl ?? new Uint8Array(),
    principals: `${input.principals.join("\n")}\n`,
    key: input.key,
    "key-cert.pub": `${input.certificate.trim()}\n`,
    known_hosts: input.knownHosts ?? "",
  };
  return withFiles("runpass-openssh-", files, async (dir) => {
    // sshd reads AuthorizedPrincipalsFile as the logging-in user.
    await chmod(dir, 0o755);
    await chmod(join(dir, "principals"), 0o644);
    const port = await freePort();
    const config = [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${join(dir, "host")}`,
      "PidFile none",
      "UsePAM no",
      "StrictModes no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "AuthorizedKeysFile none",
      `TrustedUserCAKeys ${join(dir, "ca.pub")}`,
      `AuthorizedPrincipalsFile ${join(dir, "principals")}`,
      `RevokedKeys ${join(dir, "krl")}`,
      "PermitRootLogin no",
      `AllowUsers ${SSH_TEST_USER}`,
      "LogLevel VERBOSE",
    ].join("\n");
    await writeFile(join(dir, "sshd_config"), `${config}\n`, { mode: 0o600 });
    const server = spawn(sshd, ["-D", "-e", "-f", join(dir, "sshd_config")], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let serverLog = "";
    const exited = new Promise<void>((done) => server.on("close", () => done()));
    await new Promise<void>((ready, fail) => {
      server.stderr?.on("data", (d) => {
        serverLog += String(d);
        if (serverLog.includes("Server listening")) ready();
      });
      server.on("close", () => fail(new Error(`sshd exited before listening: ${serverLog}`)));
    });
    try {
      const client = await collect(
        spawn(
          ssh,
          [
            "-F",
            "/dev/null",
            "-i",
            join(dir, "key"),
            "-o",
            `CertificateFile=${join(dir, "key-cert.pub")}`,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "PasswordAuthentication=no",
            "-o",
            `StrictHostKeyChecking=${input.knownHosts !== undefined ? "yes" : "no"}`,
            "-o",
            `UserKnownHostsFile=${input.knownHosts !== undefined ? join(dir, "known_hosts") : "/dev/null"}`,
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-p",
            String(port),
            `${SSH_TEST_USER}@127.0.0.1`,
            "true",
          ],
          { stdio: ["ignore", "pipe", "pipe"] },
        ),
      );
      return { accepted: client.status === 0, server: serverLog, client: client.stderr };
    } finally {
      server.kill("SIGTERM");
      await exited;
    }
  });
}

/**
 * The same operations over loopback HTTP, for suites inside workerd: POST /ssh-keygen `{args, files}`, GET /host-key
 * (`{publicLine}`), POST /login `{caPub, krl? (base64), principals, key, certificate, knownHosts?}`.
 */
export class OpensshService extends ToolService {
  protected readonly routes: ToolRoutes = {
    "/host-key": async () => ({ publicLine: (await sshHostKey()).publicLine }),
    "/ssh-keygen": (input: { args: string[]; files?: JsonFiles }) =>
      runSshKeygen(input.args, filesFromJson(input.files ?? {})),
    "/login": ({ krl, ...input }: Omit<LoginInput, "krl"> & { krl?: string }) =>
      sshLogin({ ...input, ...(krl !== undefined ? { krl: bytesFromBase64(krl) } : {}) }),
  };
}
