// What a million exchanges cost on Cloudflare's public price list, from counts the bench measured in its own run
// (bench/metering.ts counts them inside the bench Worker). Marginal prices: the Workers Paid plan's monthly
// allowances (10 M requests, 30 M CPU ms, 50 M rows written, ...) are left out, since they are shared with
// everything else an account runs. Documented with its method in docs/benchmarks.md (Cost per million exchanges).

/** The Workers Paid plan's unit prices, each with the page it was read from and when. */
export const PRICES = {
  worker_requests: {
    usd: 0.3,
    unit: "per million requests",
    source: "https://developers.cloudflare.com/workers/platform/pricing/",
    read_on: "2026-12-02",
  },
  worker_cpu_ms: {
    usd: 0.02,
    unit: "per million CPU ms",
    source: "https://developers.cloudflare.com/workers/platform/pricing/",
    read_on: "2026-12-02",
  },
  do_requests: {
    usd: 0.15,
    unit: "per million requests (every RPC call and every alarm invocation)",
    source: "https://developers.cloudflare.com/durable-objects/platform/pricing/",
    read_on: "2026-12-02",
  },
  do_duration_gb_s: {
    usd: 12.5,
    unit: "per million GB-s (128 MB per active object)",
    source: "https://developers.cloudflare.com/durable-objects/platform/pricing/",
    read_on: "2026-12-02",
  },
  do_rows_written: {
    usd: 1.0,
    unit: "per million rows written (SQLite storage; setAlarm counts as one)",
    source: "https://developers.cloudflare.com/durable-objects/platform/pricing/",
    read_on: "2026-12-02",
  },
  d1_rows_written: {
    usd: 1.0,
    unit: "per million rows written (index rows included)",
    source: "https://developers.cloudflare.com/d1/platform/pricing/",
    read_on: "2026-12-02",
  },
  kv_reads: {
    usd: 0.5,
    unit: "per million reads",
    source: "https://developers.cloudflare.com/kv/platform/pricing/",
    read_on: "2026-12-02",
  },
} as const;

/** Counts over a set of measured exchanges. */
export interface UsageCounts {
  /** Exchanges the counts cover (the denominator). */
  exchanges: number;
  worker_requests: number;
  /** CPU the Worker spent; the bench's figure is workerd's whole process (an upper bound, see the docs). */
  worker_cpu_ms: number;
  /** RPC calls on Durable Object stubs plus alarm invocations. */
  do_requests: number;
  do_alarms: number;
  /** Per object, the time at least one call or alarm was in flight (the duration estimate). */
  do_active_ms: number;
  /** Rows SQLite reports written by the objects' statements (cursor.rowsWritten). */
  do_rows_written: number;
  /** setAlarm calls, billed as rows written. */
  do_alarm_writes: number;
  /** D1's meta.rows_written, which counts index rows. */
  d1_rows_written: number;
  /** D1 round trips (not billed; shown for where the database's work comes from). */
  d1_calls: number;
  kv_reads: number;
}

export type CostItem =
  | "worker_requests"
  | "worker_cpu_ms"
  | "do_requests"
  | "do_duration"
  | "do_rows_written"
  | "d1_rows_written"
  | "kv_reads";

export interface CostLine {
  item: CostItem;
  /** Billed units per exchange (requests, CPU ms, GB-s, rows, reads). */
  per_exchange: number;
  usd_per_million: number;
}

export interface CostTable {
  lines: CostLine[];
  total_usd: number;
  largest: CostItem;
}

/** DO duration is billed for 128 MB per object regardless of use. */
const DO_GB = 0.128;

/** Prices the counts per million exchanges. */
export function costPerMillion(c: UsageCounts): CostTable {
  if (c.exchanges <= 0) throw new Error("no exchanges were measured: nothing to price");
  const per = (n: number) => n / c.exchanges;
  const units: Array<[CostItem, number, number]> = [
    ["worker_requests", per(c.worker_requests), PRICES.worker_requests.usd],
    ["worker_cpu_ms", per(c.worker_cpu_ms), PRICES.worker_cpu_ms.usd],
    ["do_requests", per(c.do_requests), PRICES.do_requests.usd],
    ["do_duration", per((c.do_active_ms / 1000) * DO_GB), PRICES.do_duration_gb_s.usd],
    ["do_rows_written", per(c.do_rows_written + c.do_alarm_writes), PRICES.do_rows_written.usd],
    ["d1_rows_written", per(c.d1_rows_written), PRICES.d1_rows_written.usd],
    ["kv_reads", per(c.kv_reads), PRICES.kv_reads.usd],
  ];
  // usd per million units × units per exchange = usd per million exchanges.
  const lines = units.map(([item, perExchange, usd]) => ({
    item,
    per_exchange: perExchange,
    usd_per_million: perExchange * usd,
  }));
  const largest = lines.reduce((a, b) => (b.usd_per_million > a.usd_per_million ? b : a));
  return {
    lines,
    total_usd: lines.reduce((a, l) => a + l.usd_per_million, 0),
    largest: largest.item,
  };
}
