// The bench Worker: the production entry (src/index.ts, unchanged) plus bench-only routes and metering.
// Only `npm run bench` / `npm run soak` build this file (through a generated wrangler config whose `main`
// points here); src/index.ts never has these routes, so no deployed Worker does.
//
// GET /__bench/floor: one jose `jwtVerify` of the bearer token against the bench issuer's keys, fetched
// once and cached in module scope (createRemoteJWKSet), then a tiny JSON answer. It is the least a request
// that verifies a CI token can cost in this runtime (the verify floor).
//
// GET /__bench/secure-floor: the same verify, then one single-use insert of the token's jti into a
// SQLite-backed Durable Object per CI run (SecureFloorLedger, a bench-only class): the least a request that
// also makes the token single-use, durably, before answering can cost (the secure floor). 409 on a replay.
//
// GET /__bench/counters: what bench/metering.ts counted so far (Durable Object requests and rows, D1 rows,
// KV reads) — the Durable Object classes below are the production ones with their storage and bindings
// metered, nothing else changed.

import { DurableObject } from "cloudflare:workers";
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from "jose";
import type { Env } from "../src/adapters/env.ts";
import * as production from "../src/index.ts";
import {
  countWorkerRequest,
  type MeterPlan,
  meteredAlarm,
  meteredEnv,
  meterSnapshot,
  meterStorage,
} from "./metering.ts";

const runpass = production.default;

interface BenchEnv {
  /** The bench issuer's exact `iss` (http://127.0.0.1:<port>/bench). */
  BENCH_FLOOR_ISSUER?: string;
  /** The audience the bench tokens carry. */
  BENCH_FLOOR_AUDIENCE?: string;
  /** The secure floor's per-run objects. */
  BENCH_FLOOR_LEDGER?: DurableObjectNamespace<SecureFloorLedger>;
}

/** Every binding the cost table prices, by kind. */
const PLAN: MeterPlan = {
  durableObjects: {
    RUN_LEDGER: "RunLedger",
    SECRET_STORE: "SecretStore",
    RATE_LIMITER: "RateLimiter",
    REVOCATIONS: "RevocationRegistry",
    ALERTS: "AlertHub",
    BENCH_FLOOR_LEDGER: "SecureFloorLedger",
  },
  d1: ["AUDIT_DB"],
  kv: ["POLICY_KV"],
};

// The production classes under their own names (the bindings name them), metered.
export class RunLedger extends production.RunLedger {
  constructor(ctx: DurableObjectState, env: Env) {
    meterStorage(ctx, "RunLedger");
    super(ctx, meteredEnv(env, PLAN));
  }
  override alarm(): Promise<void> {
    return meteredAlarm(this.ctx.id.toString(), "RunLedger", () => super.alarm());
  }
}

export class RateLimiter extends production.RateLimiter {
  constructor(ctx: DurableObjectState, env: Env) {
    meterStorage(ctx, "RateLimiter");
    super(ctx, meteredEnv(env, PLAN));
  }
  override alarm(): Promise<void> {
    return meteredAlarm(this.ctx.id.toString(), "RateLimiter", () => super.alarm());
  }
}

export class SecretStore extends production.SecretStore {
  constructor(ctx: DurableObjectState, env: Env) {
    meterStorage(ctx, "SecretStore");
    super(ctx, meteredEnv(env, PLAN));
  }
}

export class RevocationRegistry extends production.RevocationRegistry {
  constructor(ctx: DurableObjectState, env: Env) {
    meterStorage(ctx, "RevocationRegistry");
    super(ctx, meteredEnv(env, PLAN));
  }
}

export class AlertHub extends production.AlertHub {
  constructor(ctx: DurableObjectState, env: Env) {
    meterStorage(ctx, "AlertHub");
    super(ctx, meteredEnv(env, PLAN));
  }
}

/** The secure floor's per-run object: one table of used token ids, one insert per request. */
export class SecureFloorLedger extends DurableObject<BenchEnv> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: BenchEnv) {
    meterStorage(ctx, "SecureFloorLedger");
    super(ctx, env);
    this.#sql = this.ctx.storage.sql;
    this.#sql.exec("CREATE TABLE IF NOT EXISTS used (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)");
  }

  /** Marks a token id used; false if it already was (durable before the caller sees the answer). */
  async claim(id: string, expiresAt: number): Promise<boolean> {
    return (
      this.#sql
        .exec(
          "INSERT INTO used (id, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING 1",
          id,
          expiresAt,
        )
        .toArray().length === 1
    );
  }
}

let keys: ReturnType<typeof createRemoteJWKSet> | undefined;

async function verify(request: Request, env: BenchEnv): Promise<JWTPayload | Response> {
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
    return payload;
  } catch {
    return Response.json({ ok: false }, { status: 401 });
  }
}

async function floor(request: Request, env: BenchEnv): Promise<Response> {
  const payload = await verify(request, env);
  if (payload instanceof Response) return payload;
  return Response.json({ ok: true, sub: payload.sub });
}

async function secureFloor(request: Request, env: BenchEnv): Promise<Response> {
  const payload = await verify(request, env);
  if (payload instanceof Response) return payload;
  const ns = env.BENCH_FLOOR_LEDGER;
  if (!ns) return new Response("BENCH_FLOOR_LEDGER is not bound", { status: 503 });
  // One object per CI run, like the run ledger; the same grouping of tokens into runs as the exchange phases.
  const run = `${String(payload.repository_id)}:${String(payload.run_id)}:${String(payload.run_attempt)}`;
  const fresh = await ns.get(ns.idFromName(run)).claim(String(payload.jti), (payload.exp ?? 0) * 1000);
  return fresh
    ? Response.json({ ok: true, sub: payload.sub })
    : Response.json({ ok: false }, { status: 409 });
}

export default {
  fetch(request, env, ctx) {
    // Suffix tests, not a URL parse: the exchange routes should pay nothing for the bench routes' presence.
    const url = request.url;
    if (request.method === "GET" && url.endsWith("/__bench/counters")) return Response.json(meterSnapshot());
    countWorkerRequest();
    const metered = meteredEnv(env, PLAN);
    if (request.method === "GET" && url.endsWith("/__bench/floor")) return floor(request, metered);
    if (request.method === "GET" && url.endsWith("/__bench/secure-floor"))
      return secureFloor(request, metered);
    return runpass.fetch(request, metered, ctx);
  },
} satisfies ExportedHandler<Env & BenchEnv>;
