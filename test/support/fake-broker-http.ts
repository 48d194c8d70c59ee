// A scripted plain-HTTP stand-in for a runpass broker, for the clients' tests (runner CLI, admin CLI): it records
// every request that reaches it and answers from a handler, so a test can prove what a client sent — or that it
// sent nothing at all.

import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface FakeBrokerHttp {
  /** `http://HOST:PORT`, no trailing slash. */
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/** Starts a server on `host` (a loopback address) with a random port; `reply` answers each request. */
export async function startFakeBrokerHttp(
  reply: (req: RecordedRequest) => Reply | Promise<Reply>,
  host = "127.0.0.1",
): Promise<FakeBrokerHttp> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const recorded: RecordedRequest = {
        method: req.method ?? "",
        path: req.url ?? "/",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      requests.push(recorded);
      void Promise.resolve(reply(recorded)).then((r) => {
        res.writeHead(r.status, { "content-type": "application/json", ...r.headers });
        res.end(r.body === undefined ? "" : JSON.stringify(r.body));
      });
    });
  });
  await new Promise<void>((done) => server.listen(0, host, done));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    requests,
    close: () => new Promise<void>((done) => server.close(() => done())),
  };
}
