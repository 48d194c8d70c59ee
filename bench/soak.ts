// `npm run soak`: a bounded soak of the bench Worker under workerd. 5,000 exchanges over several hundred
// concurrent CI runs (distinct run_ids); a third of the runs end mid-stream through a signed GitHub
// workflow_run webhook (some redelivered); replayed and concurrently duplicated tokens mixed in. Afterwards
// the admin API (GET /v1/admin/audit, GET /v1/admin/leases, paged with limit/cursor) must show:
//   - every 200 has exactly one `exchange` allow audit record and exactly one lease;
//   - every replay got 409, and each concurrent duplicate pair exactly one 200 and one 409;
//   - no lease of an ended run is active, and exchanges after the run ended got 403 run_ended;
//   - no lease id repeats;
//   - `exchange` audit records = decisions (responses), allows = 200s.
// Audit records reach D1 through each run object's outbox (its alarm), so counts are polled until they
// settle (SOAK_SETTLE_MS). Exits 1 on any violation. SOAK_EXCHANGES, SOAK_RUNS, SOAK_CONCURRENCY tune it.

import { createHmac, randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { exchange, type Harness, log, startHarness } from "./harness.ts";

const EXCHANGES = Number(process.env.SOAK_EXCHANGES || 5000);
const RUNS = Number(process.env.SOAK_RUNS || 400);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY || 64);
const SETTLE_MS = Number(process.env.SOAK_SETTLE_MS || 90_000);
const ENDED_FRACTION = 1 / 3;
const REPLAY_P = 0.04;
const DUP_P = 0.03;
const REDELIVER_P = 0.25;
const POLICIES = [
  ["token", 0.75],
  ["secrets", 0.15],
  ["aws", 0.05],
  ["postgres", 0.05],
] as const;

// A seeded PRNG, so a failing soak can be re-run with the same plan (SOAK_SEED).
let seed = Number(process.env.SOAK_SEED || Date.now() % 2 ** 31);
const SEED = seed;
function rand(): number {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
}
const pick = () => {
  let r = rand();
  for (const [name, p] of POLICIES) {
    r -= p;
    if (r < 0) return name;
  }
  return "token";
};

type Op =
  | { kind: "fresh"; token: number; policy: string }
  | { kind: "replay"; of: number; policy: string }
  | { kind: "dup"; token: number; policy: string };

interface RunPlan {
  runId: number;
  ops: Op[];
  /** End the run together with this op (undefined: never ended). */
  endAt: number | undefined;
}

interface Outcome {
  status: number;
  lease?: string;
  reason?: string;
}

const violations: string[] = [];
const violation = (msg: string) => {
  if (violations.length < 50) violations.push(msg);
  else if (violations.length === 50) violations.push("… more violations not shown");
};

/** A limiter on in-flight requests. */
function semaphore(n: number) {
  let active = 0;
  const queue: Array<() => void> = [];
  return async <T>(f: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => queue.push(r));
    active++;
    try {
      return await f();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

function plan(): { runs: RunPlan[]; tokens: number; requests: number } {
  const runs: RunPlan[] = [];
  let tokens = 0;
  let requests = 0;
  const per = EXCHANGES / RUNS;
  for (let r = 0; r < RUNS; r++) {
    // Spread the remaining requests so the total is exactly EXCHANGES.
    const target = Math.round((r + 1) * per) - requests;
    const ops: Op[] = [];
    let n = 0;
    // Ended runs: the webhook races the first exchange at or after request `endReq`; replays and duplicate
    // pairs only come before it (a replay after the end is refused as run_ended, not as a replay).
    const endReq = rand() < ENDED_FRACTION && target >= 4 ? 1 + Math.floor(rand() * (target - 2)) : undefined;
    let endAt: number | undefined;
    while (n < target) {
      const beforeEnd = endReq === undefined || n < endReq;
      if (!beforeEnd && endAt === undefined) endAt = ops.length;
      const fresh = ops.filter((o): o is Extract<Op, { kind: "fresh" }> => o.kind === "fresh");
      const r2 = rand();
      if (beforeEnd && fresh.length > 0 && r2 < REPLAY_P) {
        const of = fresh[Math.floor(rand() * fresh.length)] as Extract<Op, { kind: "fresh" }>;
        ops.push({ kind: "replay", of: of.token, policy: of.policy });
        n++;
      } else if (beforeEnd && target - n >= 2 && n + 2 <= (endReq ?? target) && r2 < REPLAY_P + DUP_P) {
        ops.push({ kind: "dup", token: tokens++, policy: pick() });
        n += 2;
      } else {
        ops.push({ kind: "fresh", token: tokens++, policy: pick() });
        n++;
      }
    }
    requests += n;
    runs.push({ runId: 5_000_000_000 + r, ops, endAt });
  }
  return { runs, tokens, requests };
}

function webhookBody(runId: number, repositoryId: number): string {
  const require = createRequire(import.meta.url);
  const examples = require("@octokit/webhooks-examples") as Array<{ name: string; examples: unknown[] }>;
  const base = (examples.find((e) => e.name === "workflow_run")?.examples ?? []).find(
    (e) =>
      (e as { action?: string }).action === "completed" &&
      (e as { workflow_run?: { status?: string } }).workflow_run?.status === "completed",
  ) as Record<string, Record<string, unknown>> | undefined;
  if (!base) throw new Error("no completed workflow_run example in @octokit/webhooks-examples");
  const copy = structuredClone(base);
  (copy.repository as Record<string, unknown>).id = repositoryId;
  (copy.workflow_run as Record<string, unknown>).id = runId;
  (copy.workflow_run as Record<string, unknown>).run_attempt = 1;
  return JSON.stringify(copy);
}

async function webhook(
  h: Harness,
  body: string,
  delivery: string,
): Promise<{ status: number; result?: string; ended?: number }> {
  const res = await fetch(`${h.base}/v1/webhooks/github/bench`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": "workflow_run",
      "x-github-delivery": delivery,
      "x-hub-signature-256": `sha256=${createHmac("sha256", h.webhookSecret).update(body).digest("hex")}`,
    },
    body,
  });
  const json = (await res.json().catch(() => ({}))) as { result?: string; ended_leases?: number };
  return {
    status: res.status,
    ...(json.result ? { result: json.result } : {}),
    ...(json.ended_leases !== undefined ? { ended: json.ended_leases } : {}),
  };
}

async function pages<T>(h: Harness, path: string, key: string): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  for (;;) {
    const sep = path.includes("?") ? "&" : "?";
    const res = await h.admin(
      `${path}${sep}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
    );
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${(await res.text()).slice(0, 200)}`);
    const body = (await res.json()) as Record<string, unknown> & { next_cursor?: string };
    out.push(...((body[key] as T[]) ?? []));
    if (!body.next_cursor) return out;
    cursor = body.next_cursor;
  }
}

interface AuditRow {
  event: string;
  decision: string;
  lease_id?: string;
  run?: string;
}
interface LeaseRow {
  id: string;
  run: string;
  active: boolean;
  end_reason: string | null;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const { runs, tokens: tokenCount, requests } = plan();
  const h = await startHarness();
  let exitCode = 0;
  try {
    await h.seedSecrets();
    const repoId = 519345000;
    const runOfToken = new Map<number, number>();
    for (const run of runs)
      for (const op of run.ops) if (op.kind !== "replay") runOfToken.set(op.token, run.runId);
    const claims = Array.from({ length: tokenCount }, (_, i) => h.claims(runOfToken.get(i) as number));
    const tMint = performance.now();
    const tokens = await h.mint(claims);
    log(
      `soak: ${RUNS} runs, ${requests} exchange requests (${tokenCount} tokens minted in ${Math.round(performance.now() - tMint)} ms), seed ${SEED}`,
    );

    const limit = semaphore(CONCURRENCY);
    const statuses: Record<string, number> = {};
    const leases: string[] = [];
    const allowedByRun = new Map<number, number>();
    let decisions = 0;
    let replays = 0;
    let dups = 0;
    let webhooks = 0;
    let redeliveries = 0;
    let afterEnd = 0;
    let raced = 0;
    const ended = new Set<string>();

    const send = async (token: number, policy: string): Promise<Outcome> =>
      limit(async () => {
        const res = await exchange(h.base, tokens[token] as string, policy);
        const body = (await res.json().catch(() => ({}))) as {
          lease?: { id: string };
          reasons?: Array<{ code: string }>;
          error?: string;
        };
        decisions++;
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status === 200 && body.lease) leases.push(body.lease.id);
        return {
          status: res.status,
          ...(body.lease ? { lease: body.lease.id } : {}),
          ...(body.reasons?.[0]
            ? { reason: body.reasons[0].code }
            : body.error
              ? { reason: body.error }
              : {}),
        };
      });

    const tLoad = performance.now();
    await Promise.all(
      runs.map(async (run) => {
        // Start runs at staggered times so several hundred overlap rather than queue in order.
        await new Promise((r) => setTimeout(r, rand() * 2000));
        const body = run.endAt !== undefined ? webhookBody(run.runId, repoId) : "";
        const delivery = randomUUID();
        let endedAck = false;
        const count = (o: Outcome) => {
          if (o.status === 200) allowedByRun.set(run.runId, (allowedByRun.get(run.runId) ?? 0) + 1);
        };
        for (const [i, op] of run.ops.entries()) {
          const ending = i === run.endAt;
          const exchangeOp = async (): Promise<void> => {
            if (op.kind === "replay") {
              replays++;
              const o = await send(op.of, op.policy);
              if (o.status !== 409)
                violation(`replay of token ${op.of} (run ${run.runId}) got ${o.status} ${o.reason ?? ""}`);
              return;
            }
            if (op.kind === "dup") {
              dups++;
              const [a, b] = await Promise.all([send(op.token, op.policy), send(op.token, op.policy)]);
              count(a);
              count(b);
              const got = [a.status, b.status].sort().join(",");
              if (got !== "200,409")
                violation(`duplicate pair of token ${op.token} (run ${run.runId}) got ${got}`);
              return;
            }
            const o = await send(op.token, op.policy);
            count(o);
            if (endedAck) {
              afterEnd++;
              if (o.status !== 403 || o.reason !== "run_ended")
                violation(`exchange after run ${run.runId} ended got ${o.status} ${o.reason ?? ""}`);
            } else if (ending) {
              raced++;
              if (o.status !== 200 && !(o.status === 403 && o.reason === "run_ended"))
                violation(`exchange racing the end of run ${run.runId} got ${o.status} ${o.reason ?? ""}`);
            } else if (o.status !== 200) {
              violation(
                `exchange of token ${op.token} (run ${run.runId}, ${op.policy}) got ${o.status} ${o.reason ?? ""}`,
              );
            }
          };
          if (ending) {
            // The webhook races this op's exchange: either may win, nothing may leak.
            const [w] = await Promise.all([
              limit(() => webhook(h, body, delivery)).then((w) => {
                webhooks++;
                return w;
              }),
              exchangeOp(),
            ]);
            if (w.status !== 202 || w.result !== "run_ended")
              violation(`webhook for run ${run.runId} got ${w.status} ${w.result ?? ""}`);
            ended.add(`github:bench:${repoId}:${run.runId}:1`);
            endedAck = true;
            if (rand() < REDELIVER_P) {
              const again = await limit(() => webhook(h, body, delivery));
              webhooks++;
              redeliveries++;
              if (again.status !== 200 || again.result !== "duplicate")
                violation(
                  `redelivered webhook for run ${run.runId} got ${again.status} ${again.result ?? ""}`,
                );
            }
          } else {
            await exchangeOp();
          }
        }
      }),
    );
    const loadMs = performance.now() - tLoad;
    log(
      `soak: ${decisions} exchanges in ${Math.round(loadMs)} ms (${Math.round((decisions / loadMs) * 1000)}/s), statuses ${JSON.stringify(statuses)}`,
    );

    // ---- Settle: the audit outboxes and the lease index catch up through each run's alarm.
    const okCount = statuses["200"] ?? 0;
    const tSettle = performance.now();
    let audit: AuditRow[] = [];
    let index: LeaseRow[] = [];
    // Counts first; then the lease_end records (same outboxes) get a little longer to clear ended runs.
    let countsAt: number | undefined;
    for (;;) {
      audit = await pages<AuditRow>(h, "/v1/admin/audit?event=exchange", "records");
      index = await pages<LeaseRow>(h, "/v1/admin/leases", "leases");
      const activeEnded = index.filter((l) => l.active && ended.has(l.run)).length;
      const counted = audit.length >= decisions && index.length >= okCount;
      if (counted) countsAt ??= performance.now();
      const timedOut =
        performance.now() - tSettle > SETTLE_MS ||
        (countsAt !== undefined && performance.now() - countsAt > 10_000);
      if ((counted && activeEnded === 0) || timedOut) {
        if (!counted)
          violation(
            `not settled after ${SETTLE_MS} ms: ${audit.length}/${decisions} exchange audit records, ${index.length}/${okCount} leases listed`,
          );
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const settleMs = Math.round(performance.now() - tSettle);

    // ---- Assertions.
    const uniqueLeases = new Set(leases);
    if (uniqueLeases.size !== leases.length)
      violation(`${leases.length - uniqueLeases.size} lease ids repeated across 200 responses`);
    if (leases.length !== okCount)
      violation(`${okCount} responses were 200 but ${leases.length} carried a lease`);
    const allowByLease = new Map<string, number>();
    let allows = 0;
    for (const r of audit) {
      if (r.event !== "exchange") continue;
      if (r.decision === "allow") {
        allows++;
        if (r.lease_id) allowByLease.set(r.lease_id, (allowByLease.get(r.lease_id) ?? 0) + 1);
      }
    }
    for (const id of uniqueLeases) {
      const n = allowByLease.get(id) ?? 0;
      if (n !== 1) violation(`lease ${id.slice(0, 24)}… has ${n} allow audit records`);
    }
    if (audit.length !== decisions)
      violation(`${audit.length} exchange audit records for ${decisions} decisions`);
    if (allows !== okCount) violation(`${allows} allow records for ${okCount} responses with 200`);
    const indexCount = new Map<string, number>();
    for (const l of index) indexCount.set(l.id, (indexCount.get(l.id) ?? 0) + 1);
    for (const [id, n] of indexCount) if (n !== 1) violation(`lease ${id.slice(0, 24)}… listed ${n} times`);
    for (const id of uniqueLeases)
      if (!indexCount.has(id)) violation(`lease ${id.slice(0, 24)}… not in /v1/admin/leases`);
    if (index.length !== uniqueLeases.size)
      violation(`/v1/admin/leases lists ${index.length} leases for ${uniqueLeases.size} issued`);
    let endedLeases = 0;
    for (const l of index) {
      if (!ended.has(l.run)) continue;
      endedLeases++;
      if (l.active) violation(`lease ${l.id.slice(0, 24)}… of ended run ${l.run} is still active`);
      else if (l.end_reason !== "run_completed")
        violation(`lease of ended run ${l.run} ended as ${l.end_reason}`);
    }
    const activeNow = await pages<LeaseRow>(h, "/v1/admin/leases?active=1", "leases");
    const leaked = activeNow.filter((l) => ended.has(l.run));
    if (leaked.length) violation(`${leaked.length} leases of ended runs listed by ?active=1`);
    const webhookRecords = await pages<AuditRow>(h, "/v1/admin/audit?event=webhook", "records");
    if (webhookRecords.length !== webhooks)
      violation(`${webhookRecords.length} webhook audit records for ${webhooks} deliveries`);

    const summary = {
      seed: SEED,
      runs: RUNS,
      ended_runs: ended.size,
      exchanges: decisions,
      statuses,
      leases: uniqueLeases.size,
      leases_of_ended_runs: endedLeases,
      replays,
      duplicate_pairs: dups,
      exchanges_racing_webhook: raced,
      exchanges_after_end: afterEnd,
      webhooks,
      webhook_redeliveries: redeliveries,
      audit_exchange_records: audit.length,
      audit_allow_records: allows,
      load_ms: Math.round(loadMs),
      exchanges_per_s: Math.round((decisions / loadMs) * 1000),
      settle_ms: settleMs,
      total_ms: Math.round(performance.now() - t0),
      violations: violations.length,
    };
    console.log(JSON.stringify(summary, null, 2));
    if (violations.length) {
      console.error(`soak: ${violations.length} violation(s):\n  ${violations.join("\n  ")}`);
      exitCode = 1;
    } else {
      log("soak: all invariants hold");
    }
  } finally {
    await h.stop();
  }
  process.exit(exitCode);
}

await main();
