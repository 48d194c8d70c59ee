// The bench's cost table (bench/cost.ts): measured counts priced with the public price list, per million exchanges.

import { describe, expect, it } from "vitest";
import { costPerMillion, PRICES, type UsageCounts } from "../../bench/cost.ts";

const counts: UsageCounts = {
  exchanges: 1000,
  worker_requests: 1000,
  worker_cpu_ms: 2500,
  do_requests: 3000,
  do_alarms: 1000,
  do_active_ms: 4000,
  do_rows_written: 9000,
  do_alarm_writes: 1000,
  d1_rows_written: 15_000,
  d1_calls: 400,
  kv_reads: 0,
};

describe("cost per million exchanges", () => {
  it("prices every measured count per exchange with the price list's unit price", () => {
    const table = costPerMillion(counts);
    const usd = Object.fromEntries(table.lines.map((l) => [l.item, l.usd_per_million]));
    // 1 Worker request per exchange at $0.30 per million requests.
    expect(usd.worker_requests).toBeCloseTo(PRICES.worker_requests.usd, 6);
    // 2.5 ms of CPU per exchange: 2.5 million ms per million exchanges at $0.02 per million ms.
    expect(usd.worker_cpu_ms).toBeCloseTo(2.5 * PRICES.worker_cpu_ms.usd, 6);
    expect(usd.do_requests).toBeCloseTo(3 * PRICES.do_requests.usd, 6);
    // 4 ms active per exchange × 128 MB = 0.512 GB-s per thousand exchanges, 512 GB-s per million.
    expect(usd.do_duration).toBeCloseTo(((4 / 1000) * 0.128 * PRICES.do_duration_gb_s.usd) / 1, 6);
    // SQL rows and alarm writes are both billed as rows written.
    expect(usd.do_rows_written).toBeCloseTo(10 * PRICES.do_rows_written.usd, 6);
    expect(usd.d1_rows_written).toBeCloseTo(15 * PRICES.d1_rows_written.usd, 6);
    expect(usd.kv_reads).toBe(0);
    expect(table.total_usd).toBeCloseTo(
      table.lines.reduce((a, l) => a + l.usd_per_million, 0),
      9,
    );
  });

  it("names the largest line item", () => {
    const table = costPerMillion(counts);
    // 15 D1 rows ($15) outweigh 10 DO rows ($10) and everything else.
    expect(table.largest).toBe("d1_rows_written");
  });

  it("refuses to price a run without exchanges", () => {
    expect(() => costPerMillion({ ...counts, exchanges: 0 })).toThrow(/no exchanges/);
  });

  it("cites a dated public source for every price", () => {
    for (const price of Object.values(PRICES)) {
      expect(price.source).toMatch(/^https:\/\/developers\.cloudflare\.com\//);
      expect(price.read_on).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });
});
