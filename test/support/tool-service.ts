// A real OS tool's operations (openssl, OpenSSH) served over loopback HTTP for the workerd suites, which cannot
// spawn processes (test/support/openssl.ts, test/support/openssh.ts): each path runs one operation on the JSON
// body and answers its result as JSON; an unknown path is 404, a failure a 500 with its message as text.

import type { IncomingMessage, ServerResponse } from "node:http";
import { LocalServer, readBody, sendJson } from "./local-server.ts";
import type { Files } from "./tool-files.ts";

/** A file as the workerd suites send it: text, or bytes as base64. */
export type JsonFiles = Record<string, { text?: string; base64?: string }>;

/** The files a workerd suite sent, as the tool runners take them. */
export function filesFromJson(raw: JsonFiles): Files {
  const files: Files = {};
  for (const [name, f] of Object.entries(raw)) {
    files[name] = f.base64 !== undefined ? new Uint8Array(Buffer.from(f.base64, "base64")) : (f.text ?? "");
  }
  return files;
}

/** Bytes a workerd suite sent as base64. */
export function bytesFromBase64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "base64"));
}

/** Path → the operation it runs on the request's JSON body (`{}` when there is none). */
// The body comes from this repository's own suites, so each operation states the shape it expects.
export type ToolRoutes = Record<string, (input: never) => Promise<unknown>>;

/** A tool's operations on a random loopback port; `base` is its URL once started. */
export abstract class ToolService extends LocalServer {
  protected abstract readonly routes: ToolRoutes;

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const route = this.routes[req.url ?? ""];
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    try {
      sendJson(res, 200, await route((body === "" ? {} : JSON.parse(body)) as never));
    } catch (e) {
      res.writeHead(500, { "content-type": "text/plain" }).end(e instanceof Error ? e.message : String(e));
    }
  }

  protected internalError(res: ServerResponse): void {
    res.writeHead(500).end();
  }
}
