// What every local upstream stand-in shares: an HTTP server on a random loopback port, started and stopped by
// the global setup, and reading a request body whole.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A request body as UTF-8 text. */
export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Answers with a JSON body (the stand-ins' control planes). */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/** A stand-in served on 127.0.0.1; `base` is its URL once started. */
export abstract class LocalServer {
  #server: Server | undefined;
  base = "";

  /** Answers one request; anything it throws becomes `internalError`. */
  protected abstract handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** The upstream's own shape of a 500. */
  protected abstract internalError(res: ServerResponse): void;

  /** Starts on a random loopback port. */
  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) this.internalError(res);
        else res.end();
      });
    });
    await new Promise<void>((r) => this.#server?.listen(0, "127.0.0.1", () => r()));
    this.base = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    // A server that never started has nothing to close (a failed start must not hang teardown).
    if (!this.#server?.listening) return;
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server?.close(() => r()));
  }
}
