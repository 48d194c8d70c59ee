// The rate-limit core in plain Node: RUNPASS_RATE_LIMITS parsing, client address buckets, and the in-isolate
// front (local admission well under the limit, the store's exact count near it, refusals that add up).

import { describe, expect, it } from "vitest";
import {
  clientBucket,
  type LimitReport,
  type LimitStore,
  type LimitTarget,
  type LimitVerdict,
  LocalLimiter,
  parseRateLimits,
  type RateRule,
  windowStart,
} from "../../src/core/rate-limit.ts";

describe("RUNPASS_RATE_LIMITS", () => {
  it("defaults, overrides, bare numbers and off", () => {
    expect(parseRateLimits(undefined)).toEqual({
      failures: { name: "failures", limit: 60, windowMs: 60_000 },
      repository: { name: "repository", limit: 300, windowMs: 60_000 },
      webhook: { name: "webhook", limit: 600, windowMs: 60_000 },
      introspect: { name: "introspect", limit: 600, windowMs: 60_000 },
      leak: { name: "leak", limit: 30, windowMs: 60_000 },
    });
    const l = parseRateLimits('{"failures":"10/30s","repository":1000,"webhook":"off"}');
    expect(l.failures).toEqual({ name: "failures", limit: 10, windowMs: 30_000 });
    expect(l.repository).toEqual({ name: "repository", limit: 1000, windowMs: 60_000 });
    expect(l.webhook).toBeUndefined();
    expect(l.introspect?.limit).toBe(600);
  });

  it("anything else fails closed naming the variable", () => {
    for (const raw of [
      "[]",
      "{",
      '{"x":"1/1m"}',
      '{"failures":"0/1m"}',
      '{"failures":"5/forever"}',
      '{"failures":1.5}',
    ]) {
      expect(() => parseRateLimits(raw)).toThrow(/RUNPASS_RATE_LIMITS/);
    }
  });
});

describe("client buckets", () => {
  it("IPv4 as is, IPv6 by /64, IPv4-mapped as IPv4, none as the local constant", () => {
    expect(clientBucket("203.0.113.7")).toBe("203.0.113.7");
    expect(clientBucket("2001:db8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(clientBucket("2001:0DB8:0001:0002:ffff:0:0:9")).toBe("2001:db8:1:2::/64");
    expect(clientBucket("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(clientBucket("::ffff:198.51.100.1")).toBe("198.51.100.1");
    expect(clientBucket("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(clientBucket(undefined)).toBe("local");
    expect(clientBucket("")).toBe("local");
    expect(clientBucket("not:an:address::at::all")).toBe("not:an:address::at::all");
  });
});

/** The limiter object's semantics in memory (the Durable Object keeps the same per-window counts in SQLite). */
class MemoryStore implements LimitStore {
  readonly reports: LimitReport[] = [];
  readonly windows = new Map<number, { admitted: number; refused: number }>();
  down = false;

  async hit(_name: string, r: LimitReport): Promise<LimitVerdict> {
    await new Promise((resolve) => setTimeout(resolve, 1));
    this.reports.push(r);
    if (this.down) throw new Error("limiter unreachable");
    const current = windowStart(r.now, r.windowMs);
    const row = (w: number) => {
      const v = this.windows.get(w) ?? { admitted: 0, refused: 0 };
      this.windows.set(w, v);
      return v;
    };
    for (const [w, n] of r.refused) row(w).refused += n;
    const cur = row(current);
    cur.admitted += r.admitted;
    let allowed = true;
    if (r.take) {
      allowed = cur.admitted < r.limit;
      if (allowed) cur.admitted += 1;
      else cur.refused += 1;
    }
    return {
      allowed,
      count: cur.admitted,
      window: current,
      blocked: cur.admitted >= r.limit,
      retryAfterMs: current + r.windowMs - r.now,
    };
  }

  refused(): number {
    return [...this.windows.values()].reduce((n, w) => n + w.refused, 0);
  }
}

function harness(rule: RateRule) {
  let now = 1_000_000_000_000;
  const errors: unknown[] = [];
  const limiter = new LocalLimiter(
    () => now,
    (e) => errors.push(e),
  );
  const store = new MemoryStore();
  const pending: Array<Promise<unknown>> = [];
  const defer = (p: Promise<unknown>) => void pending.push(p);
  const target: LimitTarget = {
    rule,
    key: "k",
    resolve: async () => ({ name: "k", fields: { label: "test" } }),
  };
  return {
    limiter,
    store,
    target,
    errors,
    defer,
    settle: () => Promise.all(pending.splice(0)),
    advance: (ms: number) => (now += ms),
  };
}

describe("LocalLimiter", () => {
  it("admits without waiting for the store below half the limit, asks it near the limit, and refuses exactly past it", async () => {
    const h = harness({ name: "repository", limit: 10, windowMs: 60_000 });
    const decisions = [];
    for (let i = 0; i < 14; i++) {
      decisions.push(await h.limiter.take(h.target, h.store, h.defer));
      await h.settle();
    }
    expect(decisions.map((d) => d.ok)).toEqual([...Array(10).fill(true), ...Array(4).fill(false)]);
    // The first five were decided locally (reported in the background, never with `take`).
    expect(h.store.reports.slice(0, 5).every((r) => !r.take)).toBe(true);
    expect(h.store.reports.filter((r) => r.take)).toHaveLength(5);
    expect(h.store.refused()).toBe(4);
    const refused = decisions[13] as { ok: false; retryAfter: number };
    expect(refused.retryAfter).toBeGreaterThan(0);
    expect(refused.retryAfter).toBeLessThanOrEqual(60);
    // The next window starts over.
    h.advance(60_000);
    expect((await h.limiter.take(h.target, h.store, h.defer)).ok).toBe(true);
  });

  it("failures: charged after the fact, then checked with no I/O; every refusal reaches the store", async () => {
    const h = harness({ name: "failures", limit: 3, windowMs: 60_000 });
    expect(h.limiter.check(h.target, h.store, h.defer).ok).toBe(true);
    for (let i = 0; i < 3; i++) await h.limiter.charge(h.target, h.store);
    const before = h.store.reports.length;
    const checks = Array.from({ length: 25 }, () => h.limiter.check(h.target, h.store, h.defer));
    expect(checks.every((d) => !d.ok)).toBe(true);
    await h.settle();
    // 25 refusals, reported in at most a couple of coalesced reports.
    expect(h.store.reports.length - before).toBeLessThanOrEqual(2);
    expect(h.store.refused()).toBe(25);
  });

  it("concurrent takes never lose a refusal, and an unreachable store fails open up to the limit", async () => {
    const h = harness({ name: "repository", limit: 8, windowMs: 60_000 });
    const results = await Promise.all(
      Array.from({ length: 40 }, () => h.limiter.take(h.target, h.store, h.defer)),
    );
    await h.settle();
    const refused = results.filter((d) => !d.ok).length;
    // In-flight reports count toward local estimates, so concurrency cannot overshoot the limit.
    expect(results.length - refused).toBe(8);
    expect(h.store.refused()).toBe(refused);

    const down = harness({ name: "repository", limit: 4, windowMs: 60_000 });
    down.store.down = true;
    const outcomes = [];
    for (let i = 0; i < 6; i++) {
      outcomes.push((await down.limiter.take(down.target, down.store, down.defer)).ok);
      await down.settle();
    }
    expect(outcomes).toEqual([true, true, true, true, false, false]);
    expect(down.errors.length).toBeGreaterThan(0);
    // Back up: the refusals kept locally are delivered with the next report (still refused: same window).
    down.store.down = false;
    expect((await down.limiter.take(down.target, down.store, down.defer)).ok).toBe(false);
    await down.settle();
    expect(down.store.refused()).toBe(3);
  });

  it("alert counts: events batch into background reports, and `reached` runs exactly once, when the count reaches the threshold", async () => {
    const h = harness({ name: "alert", limit: 5, windowMs: 60_000 });
    const reached: number[] = [];
    // Twelve events at once, from two isolates sharing the object: each isolate's events coalesce.
    const other = new LocalLimiter(
      () => 1_000_000_000_000,
      (e) => h.errors.push(e),
    );
    for (let i = 0; i < 12; i++) {
      const limiter = i % 2 === 0 ? h.limiter : other;
      limiter.count(h.target, h.store, h.defer, async () => void reached.push(i));
    }
    await h.settle();
    expect(reached).toHaveLength(1);
    expect(h.store.windows.get(1_000_000_000_000 - (1_000_000_000_000 % 60_000))?.admitted).toBe(12);
    expect(h.store.reports.length).toBeLessThan(12);
    expect(h.store.reports.every((r) => !r.take)).toBe(true);
    // Past the threshold nothing fires again in the window; the next window counts afresh.
    for (let i = 0; i < 3; i++)
      h.limiter.count(h.target, h.store, h.defer, async () => void reached.push(100));
    await h.settle();
    expect(reached).toHaveLength(1);
    h.advance(60_000);
    for (let i = 0; i < 5; i++) {
      h.limiter.count(h.target, h.store, h.defer, async () => void reached.push(200 + i));
      await h.settle();
    }
    expect(reached).toEqual([reached[0], 204]);
  });

  it("alert counts: a failed report is retried in the background, so a burst that stops right there still alerts", async () => {
    const h = harness({ name: "alert", limit: 3, windowMs: 60_000 });
    const reached: number[] = [];
    h.store.down = true;
    // The burst reaches the threshold and stops; its report fails once, the object is back for the retry.
    for (let i = 0; i < 3; i++) h.limiter.count(h.target, h.store, h.defer, async () => void reached.push(i));
    setTimeout(() => {
      h.store.down = false;
    }, 50);
    await h.settle();
    expect(h.errors.length).toBeGreaterThan(0);
    expect(reached).toEqual([2]);
    expect([...h.store.windows.values()][0]?.admitted).toBe(3);
  });

  it("alert counts: a failing alert action is reported, not retried as a second count", async () => {
    const h = harness({ name: "alert", limit: 1, windowMs: 60_000 });
    h.limiter.count(h.target, h.store, h.defer, async () => {
      throw new Error("hub down");
    });
    await h.settle();
    expect(h.errors.map(String)).toEqual(["Error: hub down"]);
    expect([...h.store.windows.values()][0]?.admitted).toBe(1);
  });
});
