// The socket Postgres.js gets on workerd (its `socket` option): `cloudflare:sockets` wrapped in the event interface
// the driver expects, as its own polyfill does, except that a read failing after the socket was closed is ignored.
// The polyfill emits that failure as an 'error' event after the driver has removed its listeners, which throws an
// unhandled rejection at every `sql.end()` (docs/grants.md, "postgres": driver choice).

import { Buffer } from "node:buffer";
import { EventEmitter } from "node:events";

type Raw = {
  opened: Promise<unknown>;
  closed: Promise<unknown>;
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  close(): Promise<void>;
  startTls(options: { expectedServerHostname?: string }): Raw;
};

/** What Postgres.js and its TLS upgrade touch on a socket. */
export interface PgSocket extends EventEmitter {
  readyState: string;
  raw: Raw;
  writer: WritableStreamDefaultWriter<Uint8Array>;
  reader: ReadableStreamDefaultReader<Uint8Array>;
  ssl: boolean;
  host: string;
  port: number;
  write(data: Uint8Array, cb?: () => void): boolean;
  end(data?: Uint8Array): unknown;
  destroy(): void;
  read(): Promise<void>;
}

/** Opens a connected socket to host:port; `tls`: STARTTLS-capable (PostgreSQL negotiates TLS in-band). */
export async function openPgSocket(host: string, port: number, tls: boolean): Promise<PgSocket> {
  const { connect } = (await import("cloudflare:sockets")) as unknown as {
    connect(address: string, options: { secureTransport: "off" | "starttls" }): Raw;
  };
  const tcp = new EventEmitter() as PgSocket;
  const safeEmitError = (err: unknown) => {
    if (tcp.readyState === "closed") return;
    if (tcp.listenerCount("error") > 0) tcp.emit("error", err);
    close();
  };
  const close = () => {
    if (tcp.readyState === "closed") return;
    tcp.readyState = "closed";
    tcp.emit("close");
  };
  Object.assign(tcp, {
    readyState: "opening",
    ssl: tls,
    host,
    port,
    write(data: Uint8Array, cb?: () => void) {
      tcp.writer.write(data).then(cb, safeEmitError);
      return true;
    },
    end(data?: Uint8Array) {
      const shut = () => tcp.raw.close().catch(() => undefined);
      if (data) tcp.write(data, () => void shut());
      else void shut();
    },
    destroy() {
      tcp.end();
    },
    async read() {
      try {
        for (;;) {
          const { done, value } = await tcp.reader.read();
          if (done) break;
          tcp.emit("data", Buffer.from(value));
        }
      } catch (err) {
        // A read cut short by our own close is the end of the stream, not an error.
        if (tcp.readyState !== "closed") safeEmitError(err);
      }
    },
  });
  tcp.raw = connect(`${host.includes(":") ? `[${host}]` : host}:${port}`, {
    secureTransport: tls ? "starttls" : "off",
  });
  tcp.raw.closed.then(
    () => {
      // The plain socket closes when STARTTLS replaces it (Postgres.js's TLS upgrade sets 'upgrade').
      if (tcp.readyState === "upgrade") {
        tcp.readyState = "open";
        tcp.emit("secureConnect");
      } else close();
    },
    (e: unknown) => safeEmitError(e),
  );
  tcp.writer = tcp.raw.writable.getWriter();
  tcp.reader = tcp.raw.readable.getReader();
  await tcp.raw.opened;
  tcp.readyState = "open";
  if (tls) {
    // Only the server's one-byte answer to SSLRequest is read here; the TLS upgrade takes the streams over.
    void tcp.reader.read().then(
      ({ value }) => {
        if (value) tcp.emit("data", Buffer.from(value));
      },
      (e: unknown) => safeEmitError(e),
    );
  } else void tcp.read();
  return tcp;
}
