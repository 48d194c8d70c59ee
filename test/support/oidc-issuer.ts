// A local OIDC issuer for tests: real discovery and JWKS over HTTP for several issuers, token minting,
// fault modes (down, slow, HTML, redirect, empty/huge key sets), key rotation and per-route fetch counters.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";

export type FaultMode =
  | "ok"
  | "down"
  | "slow"
  | "html"
  | "redirect"
  | "empty"
  | "junk"
  | "huge"
  | "wrong-issuer";

interface IssuerState {
  keys: Array<{ kid: string; privateKey: CryptoKey; publicJwk: JWK }>;
  mode: FaultMode;
}

export interface MintRequest {
  claims: JWTPayload;
  header?: Record<string, unknown>;
  /** Sign with this kid (default: the newest key). */
  kid?: string;
}

/** Issuer names served by default: GitHub-shaped and GitLab-shaped. */
export const DEFAULT_ISSUERS = ["gh", "gl", "other"];

async function newKey(kid: string): Promise<{ kid: string; privateKey: CryptoKey; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" } };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export class TestIssuer {
  readonly #issuers = new Map<string, IssuerState>();
  readonly #hits = new Map<string, number>();
  #server: Server | undefined;
  base = "";

  /** Starts on a random loopback port. */
  async start(names = DEFAULT_ISSUERS): Promise<this> {
    for (const name of names) this.#issuers.set(name, { keys: [await newKey(`${name}-k1`)], mode: "ok" });
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((e) => {
        res.statusCode = 500;
        res.end(String(e));
      });
    });
    await new Promise<void>((r) => this.#server?.listen(0, "127.0.0.1", () => r()));
    this.base = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.#server?.close(() => r()));
  }

  /** The exact `iss` of issuer `name`. */
  url(name: string): string {
    return `${this.base}/${name}`;
  }

  hits(path: string): number {
    return this.#hits.get(path) ?? 0;
  }

  /** Issuers are created on first mint/control, so each test can use names of its own. */
  async #ensure(name: string): Promise<IssuerState> {
    let state = this.#issuers.get(name);
    if (!state) {
      const created: IssuerState = { keys: [await newKey(`${name}-k1`)], mode: "ok" };
      // Another request may have created it while the key was being generated.
      state = this.#issuers.get(name) ?? created;
      this.#issuers.set(name, state);
    }
    return state;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.base);
    this.#hits.set(url.pathname, (this.#hits.get(url.pathname) ?? 0) + 1);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };

    // Control plane (tests only).
    if (url.pathname === "/__stats") return json(200, Object.fromEntries(this.#hits));
    if (url.pathname === "/__reset") {
      this.#hits.clear();
      for (const s of this.#issuers.values()) s.mode = "ok";
      return json(200, {});
    }
    const control = /^\/__control\/([a-z0-9-]+)$/.exec(url.pathname);
    if (control && req.method === "POST") {
      const state = await this.#ensure(control[1] as string);
      const body = JSON.parse((await readBody(req)) || "{}") as {
        mode?: FaultMode;
        rotate?: boolean;
        dropOld?: boolean;
      };
      if (body.mode) state.mode = body.mode;
      if (body.rotate) state.keys.push(await newKey(`${control[1]}-k${state.keys.length + 1}`));
      if (body.dropOld) state.keys = state.keys.slice(-1);
      return json(200, { kids: state.keys.map((k) => k.kid) });
    }
    const mint = /^\/([a-z0-9-]+)\/__mint$/.exec(url.pathname);
    if (mint && req.method === "POST") {
      const state = await this.#ensure(mint[1] as string);
      const body = JSON.parse(await readBody(req)) as MintRequest;
      const key = body.kid ? state.keys.find((k) => k.kid === body.kid) : state.keys[state.keys.length - 1];
      if (!key) return json(404, {});
      const token = await new SignJWT(body.claims)
        .setProtectedHeader({ alg: "RS256", kid: key.kid, typ: "JWT", ...(body.header ?? {}) })
        .sign(key.privateKey);
      return json(200, { token, publicJwk: key.publicJwk });
    }

    // Cloudflare Access stand-in: the team's certs at the origin's root (docs/console.md); its tokens are minted
    // with POST /cf-access/__mint and `iss` = this server's base URL.
    if (url.pathname === "/cdn-cgi/access/certs") {
      return json(200, { keys: (await this.#ensure("cf-access")).keys.map((k) => k.publicJwk) });
    }

    // Attacker host stand-in: a jku/x5u target that must never be contacted.
    if (url.pathname.startsWith("/attacker/")) return json(200, { keys: [] });

    const m = /^\/([a-z0-9-]+)\/(\.well-known\/openid-configuration|jwks)$/.exec(url.pathname);
    const state = m ? this.#issuers.get(m[1] as string) : undefined;
    if (!m || !state) return json(404, { error: "not found" });
    const issuer = this.url(m[1] as string);
    switch (state.mode) {
      case "down":
        res.destroy();
        return;
      case "slow":
        await new Promise((r) => setTimeout(r, 5_000));
        break;
      case "html":
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<html><body>Service Unavailable</body></html>");
        return;
      case "redirect":
        res.writeHead(302, { location: `${this.base}/attacker/jwks` });
        res.end();
        return;
      default:
        break;
    }
    if (m[2] !== "jwks") {
      return json(200, {
        issuer: state.mode === "wrong-issuer" ? `${issuer}-evil` : issuer,
        jwks_uri: `${issuer}/jwks`,
        id_token_signing_alg_values_supported: ["RS256"],
      });
    }
    if (state.mode === "empty") return json(200, { keys: [] });
    if (state.mode === "junk") return json(200, { keys: [{ nope: true }, 42] });
    if (state.mode === "huge") {
      res.writeHead(200, { "content-type": "application/json" });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      res.write('{"keys":[');
      for (let i = 0; i < 20 && !res.destroyed; i++) res.write(chunk);
      res.end("]}");
      return;
    }
    return json(200, { keys: state.keys.map((k) => k.publicJwk) });
  }
}
