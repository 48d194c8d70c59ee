// The bench's upstreams, in a process of their own so they never share an event loop with the load
// generator: a minimal OIDC issuer (discovery + JWKS for one GitHub-kind issuer named "bench", with hit
// counters) and the fake AWS STS from the tests (static-key AssumeRole, SigV4-verified).
//
// The issuer's public key comes from the parent (BENCH_ISSUER_JWK); the parent holds the private key and
// mints tokens itself, so minting is never measured. Prints one JSON line {issuer, sts} when listening.
// GET /__stats → { discovery, jwks, sts }.

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { FakeSts } from "../test/support/fake-sts.ts";

const jwk = JSON.parse(process.env.BENCH_ISSUER_JWK ?? "null") as Record<string, unknown> | null;
if (!jwk) throw new Error("BENCH_ISSUER_JWK is required");
const NAME = "bench";
const hits = { discovery: 0, jwks: 0 };

const sts = await new FakeSts().start();
const server = createServer((req, res) => {
  const path = (req.url ?? "/").split("?")[0];
  const json = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  if (path === "/__stats") return json(200, { ...hits, sts: sts.total });
  if (path === `/${NAME}/.well-known/openid-configuration`) {
    hits.discovery++;
    return json(200, {
      issuer: `${base}/${NAME}`,
      jwks_uri: `${base}/${NAME}/jwks`,
      id_token_signing_alg_values_supported: ["RS256"],
    });
  }
  if (path === `/${NAME}/jwks`) {
    hits.jwks++;
    return json(200, { keys: [jwk] });
  }
  return json(404, { error: "not found" });
});
server.keepAliveTimeout = 60_000;
await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
process.stdout.write(`${JSON.stringify({ issuer: `${base}/${NAME}`, sts: sts.base })}\n`);

const stop = async () => {
  server.closeAllConnections();
  await Promise.all([new Promise((r) => server.close(r)), sts.stop()]);
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
// The parent closes stdin when it goes away (even if it crashes): follow it.
process.stdin.on("end", stop);
process.stdin.resume();
