// Workerd-only helpers around the run ledger and the broker's read endpoints, shared by the workerd suites: the
// ledger stub of a run, shipping its outbox (its alarm), introspection, the admin audit query, a movable clock.

import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { TestBroker } from "./broker.ts";

/** The run ledger Durable Object of run key `run`. */
export function ledgerFor(run: string) {
  return env.RUN_LEDGER.get(env.RUN_LEDGER.idFromName(run));
}

/** Runs the run ledger's alarm: ships its audit outbox to D1 and ends leases that are due. */
export async function ship(run: string): Promise<void> {
  await runDurableObjectAlarm(ledgerFor(run));
}

/** POST /v1/introspect for `token`; expects 200 and returns the body. */
export async function introspect(broker: TestBroker, token: string): Promise<Record<string, unknown>> {
  const res = await broker.fetch("/v1/introspect", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token }).toString(),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

/** The admin audit query (up to 1,000 records) for `query`. */
export async function auditRecords(
  broker: TestBroker,
  query: Record<string, string>,
): Promise<Array<Record<string, unknown>>> {
  const res = await broker.admin(`/v1/admin/audit?${new URLSearchParams({ limit: "1000", ...query })}`);
  return ((await res.json()) as { records: Array<Record<string, unknown>> }).records;
}

/** The real clock moved forward by what the test says (for what the Worker judges on its own clock). */
export function movableClock(): { clock: () => number; advance: (ms: number) => number } {
  let offset = 0;
  return { clock: () => Date.now() + offset, advance: (ms: number) => (offset += ms) };
}
