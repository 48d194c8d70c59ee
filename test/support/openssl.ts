// Real OpenSSL for the x509 suites (README, Development): runs the `openssl` binary on files in a fresh temp dir,
// and drives an `openssl s_server` that requires a client certificate checked against a CRL, with `openssl
// s_client` presenting one. Served over loopback HTTP too (test/support/global-setup.ts), so the workerd suites,
// which cannot spawn processes, check what the Worker issued with the same binary.

import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort } from "./dev-broker.ts";
import { ensureSystemTools, OPENSSL } from "./system-tools.ts";
import { collect, type Files, type ToolResult, withFiles } from "./tool-files.ts";
import {
  bytesFromBase64,
  filesFromJson,
  type JsonFiles,
  type ToolRoutes,
  ToolService,
} from "./tool-service.ts";

export type { Files } from "./tool-files.ts";
/** What a run of `openssl` gave. */
export type OpensslResult = ToolResult;

let binary: string | undefined;

function openssl(): string {
  binary ??= ensureSystemTools(OPENSSL)[0] as string;
  return binary;
}

/** Runs `openssl ...args` in a temp dir holding `files` (args name them relative to it). */
export function runOpenssl(args: string[], files: Files = {}, stdin = ""): Promise<OpensslResult> {
  return withFiles("runpass-openssl-", files, async (dir) => {
    const child = spawn(openssl(), args, { cwd: dir, stdio: ["pipe", "pipe", "pipe"] });
    const result = collect(child);
    child.stdin?.end(stdin);
    return result;
  });
}

/** The TLS server's own certificate (self-signed, made once with openssl): clients do not check it here. */
let serverIdentity: Promise<{ cert: string; key: string }> | undefined;

function serverCertificate(): Promise<{ cert: string; key: string }> {
  serverIdentity ??= withFiles("runpass-openssl-", {}, async (dir) => {
    const r = await collect(
      spawn(
        openssl(),
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-nodes",
          "-keyout",
          "s.key",
        ].concat(["-out", "s.pem", "-subj", "/CN=localhost", "-days", "1"]),
        { cwd: dir },
      ),
    );
    if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
    return {
      cert: await readFile(join(dir, "s.pem"), "utf8"),
      key: await readFile(join(dir, "s.key"), "utf8"),
    };
  });
  return serverIdentity;
}

/** A client certificate handshake against a server that trusts `caFile` and checks `crl`. */
export interface HandshakeInput {
  /** PEM: the CA certificates the server trusts (the broker's /v1/x509/ca.pem). */
  trust: string;
  /** DER: the CRL the server checks (the broker's /v1/x509/crl), for the issuing CA. */
  crl: Uint8Array;
  /** PEM client certificate and key. */
  cert: string;
  key: string;
}

export interface HandshakeResult {
  /** The server answered the client's HTTP request after the handshake: the certificate was accepted. */
  accepted: boolean;
  server: string;
  client: string;
}

/**
 * `openssl s_server -Verify 1 -verify_return_error -crl_check` on a loopback port, one connection, `-www`; then
 * `openssl s_client -cert -key` sends a GET. Accepted exactly when the server's status page comes back.
 */
export async function mtlsHandshake(input: HandshakeInput): Promise<HandshakeResult> {
  const server = await serverCertificate();
  const files: Files = {
    "trust.pem": input.trust,
    "crl.der": input.crl,
    "client.pem": input.cert,
    "client.key": input.key,
    "server.pem": server.cert,
    "server.key": server.key,
  };
  return withFiles("runpass-openssl-", files, async (dir) => {
    const port = await freePort();
    const serverArgs = ["s_server", "-accept", `127.0.0.1:${port}`, "-naccept", "1", "-www"]
      .concat(["-Verify", "1", "-verify_return_error", "-CAfile", "trust.pem"])
      .concat([
        "-CRL",
        "crl.der",
        "-CRLform",
        "DER",
        "-crl_check",
        "-cert",
        "server.pem",
        "-key",
        "server.key",
      ]);
    const s = spawn(openssl(), serverArgs, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    const serverDone = collect(s);
    let serverOut = "";
    await new Promise<void>((ready, fail) => {
      s.stdout?.on("data", (d) => {
        serverOut += String(d);
        if (serverOut.includes("ACCEPT")) ready();
      });
      s.on("close", () => fail(new Error(`s_server exited before accepting: ${serverOut}`)));
    });
    const c = spawn(
      openssl(),
      [
        "s_client",
        "-connect",
        `127.0.0.1:${port}`,
        "-cert",
        "client.pem",
        "-key",
        "client.key",
        "-ign_eof",
        "-quiet",
      ],
      { cwd: dir, stdio: ["pipe", "pipe", "pipe"] },
    );
    const client = collect(c);
    c.stdin?.end("GET / HTTP/1.0\r\n\r\n");
    const clientResult = await client;
    // -naccept 1: the server exits after this one connection, accepted or refused.
    const serverResult = await serverDone;
    return {
      accepted: clientResult.stdout.includes("HTTP/1.0 200 ok"),
      server: serverOut + serverResult.stdout + serverResult.stderr,
      client: clientResult.stderr,
    };
  });
}

/**
 * The same two operations over loopback HTTP, for suites inside workerd: POST /openssl `{args, files, stdin?}` and
 * POST /mtls `{trust, crl (base64), cert, key}`. Files are `{text}` or `{base64}`.
 */
export class OpensslService extends ToolService {
  protected readonly routes: ToolRoutes = {
    "/openssl": (input: { args: string[]; files?: JsonFiles; stdin?: string }) =>
      runOpenssl(input.args, filesFromJson(input.files ?? {}), input.stdin ?? ""),
    "/mtls": ({ crl, ...input }: Omit<HandshakeInput, "crl"> & { crl: string }) =>
      mtlsHandshake({ ...input, crl: bytesFromBase64(crl) }),
  };
}
