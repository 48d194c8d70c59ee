// Local alert receivers for the alert tests (docs/leaks.md, Alerts), served by the fake GitHub API's server under
// /__alerts/<name>: each checks `x-runpass-signature` against its configured secret, can be switched down (503),
// and lists what it received. The names keep concurrent tests apart.

import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

interface Received {
  body: string;
  signature: string | null;
  /** The signature is `sha256=<hex HMAC-SHA256 of the raw body>` under the receiver's secret. */
  valid: boolean;
}

interface Receiver {
  secret: string;
  down: boolean;
  received: Received[];
  /** Requests answered 503 while down. */
  refused: number;
}

async function raw(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function verify(secret: string, body: string, signature: string | null, timestamp: string | null): boolean {
  if (!signature?.startsWith("sha256=") || !timestamp || !/^\d{1,12}$/.test(timestamp)) return false;
  const expected = Buffer.from(
    `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`,
  );
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Every receiver by name. */
export class AlertReceivers {
  readonly #receivers = new Map<string, Receiver>();

  #get(name: string): Receiver {
    let r = this.#receivers.get(name);
    if (!r) {
      r = { secret: "", down: false, received: [], refused: 0 };
      this.#receivers.set(name, r);
    }
    return r;
  }

  /** `POST /__alerts/<name>` receives; `POST …/config` {secret?, down?}; `GET …/records` lists. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const m = /^\/__alerts\/([\w-]+)(\/config|\/records)?$/.exec(path);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (!m) return send(404, { error: "no such receiver path" });
    const r = this.#get(m[1] as string);
    const body = req.method === "POST" ? await raw(req) : "";
    if (m[2] === "/config") {
      const config = JSON.parse(body || "{}") as { secret?: string; down?: boolean };
      if (config.secret !== undefined) r.secret = config.secret;
      if (config.down !== undefined) r.down = config.down;
      return send(200, {});
    }
    if (m[2] === "/records") return send(200, { received: r.received, refused: r.refused });
    if (req.method !== "POST") return send(405, {});
    if (r.down) {
      r.refused++;
      return send(503, { error: "down" });
    }
    const signature = (req.headers["x-runpass-signature"] as string | undefined) ?? null;
    const timestamp = (req.headers["x-runpass-timestamp"] as string | undefined) ?? null;
    r.received.push({ body, signature, valid: verify(r.secret, body, signature, timestamp) });
    return send(200, {});
  }
}
