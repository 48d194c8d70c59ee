// The bench Worker: the production entry (src/index.ts, unchanged) plus one bench-only route, the floor.
// Only `npm run bench` / `npm run soak` build this file (through a generated wrangler config whose `main`
// points here); src/index.ts never has the route, so no deployed Worker does.
//
// GET /__bench/floor: one jose `jwtVerify` of the bearer token against the bench issuer's keys, fetched
// once and cached in module scope (createRemoteJWKSet), then a tiny JSON answer. It is the least a request
// that verifies a CI token can cost in this runtime; /v1/exchange is measured against it.

import { createRemoteJWKSet, jwtVerify } from "jose";
import runpass from "../src/index.ts";

// Every Durable Object class the production entry exports (`export *` never re-exports `default`).
export * from "../src/index.ts";

interface BenchEnv {
  /** The bench issuer's exact `iss` (http://127.0.0.1:<port>/bench). */
  BENCH_FLOOR_ISSUER?: string;
  /** The audience the bench tokens carry. */
  BENCH_FLOOR_AUDIENCE?: string;
}

let keys: ReturnType<typeof createRemoteJWKSet> | undefined;

async function floor(request: Request, env: BenchEnv): Promise<Response> {
  const issuer = env.BENCH_FLOOR_ISSUER;
  if (!issuer) return new Response("BENCH_FLOOR_ISSUER is not set", { status: 503 });
  keys ??= createRemoteJWKSet(new URL(`${issuer}/jwks`));
  const auth = request.headers.get("authorization") ?? "";
  const token = auth.startsWith("Bearer ") ? auth.slice(7) : "";
  try {
    const { payload } = await jwtVerify(token, keys, {
      issuer,
      algorithms: ["RS256"],
      ...(env.BENCH_FLOOR_AUDIENCE ? { audience: env.BENCH_FLOOR_AUDIENCE } : {}),
    });
    return Response.json({ ok: true, sub: payload.sub });
  } catch {
    return Response.json({ ok: false }, { status: 401 });
  }
}

export default {
  fetch(request, env, ctx) {
    // A suffix test, not a URL parse: the exchange routes should pay nothing for the floor's presence.
    if (request.method === "GET" && request.url.endsWith("/__bench/floor")) return floor(request, env);
    return runpass.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Parameters<typeof runpass.fetch>[1] & BenchEnv>;
