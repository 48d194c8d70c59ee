// Billing-relevant counts inside the bench Worker (bench/worker.ts), for the cost table (bench/cost.ts). Only the
// bench build imports this. Everything is counted where Cloudflare bills it:
//   - Durable Object requests: every method call on a stub (each RPC call is one billed request) and every alarm;
//   - Durable Object duration: per object, the time at least one call or alarm is in flight (caller's clock,
//     which in workerd moves at I/O — an estimate; idle objects that could hibernate are not billed);
//   - Durable Object rows written: SQLite's own `cursor.rowsWritten` for every statement, plus one per setAlarm;
//   - D1 rows written: D1's `meta.rows_written` of every batch and statement (it counts index rows);
//   - KV reads: every get / getWithMetadata / list on a KV binding.
// Locally the Worker and its Durable Objects share one isolate, so one module-scope counter sees all of them.

/** The counters, as GET /__bench/counters returns them. */
export interface MeterCounts {
  worker_requests: number;
  do_requests: number;
  do_alarms: number;
  do_active_ms: number;
  do_rows_written: number;
  do_alarm_writes: number;
  d1_rows_written: number;
  /** D1 round trips (a batch is one): not billed, but each is a query the database serves. */
  d1_calls: number;
  kv_reads: number;
  /** Per Durable Object class: calls and rows written (where the rows come from). */
  by_class: Record<string, { requests: number; rows_written: number }>;
}

const counts: MeterCounts = {
  worker_requests: 0,
  do_requests: 0,
  do_alarms: 0,
  do_active_ms: 0,
  do_rows_written: 0,
  do_alarm_writes: 0,
  d1_rows_written: 0,
  d1_calls: 0,
  kv_reads: 0,
  by_class: {},
};

/** A copy of the counters so far. */
export function meterSnapshot(): MeterCounts {
  return structuredClone(counts);
}

/** Counts one inbound Worker request. */
export function countWorkerRequest(): void {
  counts.worker_requests++;
}

function classCounts(name: string): { requests: number; rows_written: number } {
  let c = counts.by_class[name];
  if (!c) {
    c = { requests: 0, rows_written: 0 };
    counts.by_class[name] = c;
  }
  return c;
}

/** Objects with work in flight: how many calls, and since when. */
const active = new Map<string, { inflight: number; since: number }>();

function enter(object: string): void {
  const a = active.get(object);
  if (a) a.inflight++;
  else active.set(object, { inflight: 1, since: Date.now() });
}

function leave(object: string): void {
  const a = active.get(object);
  if (!a) return;
  if (--a.inflight === 0) {
    counts.do_active_ms += Date.now() - a.since;
    active.delete(object);
  }
}

/** Wraps a stub so each method call counts as one request and keeps its object active until it settles. */
function meteredStub<T extends object>(stub: T, object: string, className: string): T {
  return new Proxy(stub, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof prop !== "string" || typeof value !== "function" || prop === "then") return value;
      return (...args: unknown[]) => {
        counts.do_requests++;
        classCounts(className).requests++;
        enter(object);
        let result: unknown;
        try {
          // Reflect.apply, not value.apply: on an RPC stub every property, `apply` included, is a remote method.
          result = Reflect.apply(value as (...a: unknown[]) => unknown, target, args);
        } catch (e) {
          leave(object);
          throw e;
        }
        return Promise.resolve(result).finally(() => leave(object));
      };
    },
  });
}

/** A namespace whose stubs are metered (get and getByName). */
function meteredNamespace(ns: DurableObjectNamespace, className: string): DurableObjectNamespace {
  return new Proxy(ns, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      if (prop === "get") {
        return (id: DurableObjectId, ...rest: unknown[]) =>
          meteredStub(
            (value as (...a: unknown[]) => object).apply(target, [id, ...rest]),
            id.toString(),
            className,
          );
      }
      if (prop === "getByName") {
        return (name: string, ...rest: unknown[]) =>
          meteredStub(
            (value as (...a: unknown[]) => object).apply(target, [name, ...rest]),
            target.idFromName(name).toString(),
            className,
          );
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  }) as DurableObjectNamespace;
}

function addD1Rows(result: unknown): void {
  const list = Array.isArray(result) ? result : [result];
  for (const r of list) {
    const written = (r as { meta?: { rows_written?: number } } | null)?.meta?.rows_written;
    if (typeof written === "number") counts.d1_rows_written += written;
  }
}

const patchedStatements = new WeakSet<object>();

/** D1: batch results and statement results carry meta.rows_written. Statements are patched on their prototype. */
function meteredD1(db: D1Database): D1Database {
  const proto = Object.getPrototypeOf(db.prepare("SELECT 1")) as Record<string, unknown>;
  if (!patchedStatements.has(proto)) {
    patchedStatements.add(proto);
    for (const name of ["run", "all", "first", "raw"]) {
      const original = proto[name] as (...a: unknown[]) => Promise<unknown>;
      proto[name] = async function (this: unknown, ...args: unknown[]) {
        counts.d1_calls++;
        const result = await original.apply(this, args);
        addD1Rows(result);
        return result;
      };
    }
  }
  return new Proxy(db, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      if (prop === "batch") {
        return async (...args: unknown[]) => {
          counts.d1_calls++;
          const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          addD1Rows(result);
          return result;
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
}

function meteredKv(kv: KVNamespace): KVNamespace {
  return new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      if (prop === "get" || prop === "getWithMetadata" || prop === "list") {
        return (...args: unknown[]) => {
          // A get of several keys is billed per key.
          counts.kv_reads += Array.isArray(args[0]) ? args[0].length : 1;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
}

/** Which env bindings to meter, by name, and what they are. */
export interface MeterPlan {
  /** Durable Object binding name → class name. */
  durableObjects: Record<string, string>;
  d1: string[];
  kv: string[];
}

const meteredEnvs = new WeakMap<object, object>();

/** The same env with its Durable Object, D1 and KV bindings metered (memoized per env object). */
export function meteredEnv<E extends object>(env: E, plan: MeterPlan): E {
  const cached = meteredEnvs.get(env);
  if (cached) return cached as E;
  const out: Record<string, unknown> = { ...(env as Record<string, unknown>) };
  for (const [binding, className] of Object.entries(plan.durableObjects)) {
    const ns = out[binding];
    if (ns) out[binding] = meteredNamespace(ns as DurableObjectNamespace, className);
  }
  for (const binding of plan.d1) {
    if (out[binding]) out[binding] = meteredD1(out[binding] as D1Database);
  }
  for (const binding of plan.kv) {
    if (out[binding]) out[binding] = meteredKv(out[binding] as KVNamespace);
  }
  meteredEnvs.set(env, out);
  return out as E;
}

/** Which class each object's SQL storage belongs to (for the per-class breakdown). */
const sqlClass = new WeakMap<object, string>();
const patchedStorage = new WeakSet<object>();

/**
 * Meters an object's storage before the production constructor sees it: the runtime refuses a wrapped state
 * (the DurableObject base class checks its type), so the SqlStorage and storage prototypes are patched once,
 * here in the bench build only: every statement adds SQLite's rowsWritten, every setAlarm one row.
 */
export function meterStorage(ctx: DurableObjectState, className: string): void {
  const sql = ctx.storage.sql;
  sqlClass.set(sql, className);
  const sqlProto = Object.getPrototypeOf(sql) as Record<string, unknown>;
  if (!patchedStorage.has(sqlProto)) {
    patchedStorage.add(sqlProto);
    const exec = sqlProto.exec as (
      this: SqlStorage,
      ...a: unknown[]
    ) => SqlStorageCursor<Record<string, SqlStorageValue>>;
    sqlProto.exec = function (this: SqlStorage, ...args: unknown[]) {
      const cursor = exec.apply(this, args);
      const name = sqlClass.get(this) ?? "unknown";
      // The caller consumes the cursor synchronously (toArray, one) or not at all; either way its count is
      // final by the next microtask.
      queueMicrotask(() => {
        counts.do_rows_written += cursor.rowsWritten;
        classCounts(name).rows_written += cursor.rowsWritten;
      });
      return cursor;
    };
  }
  const storageProto = Object.getPrototypeOf(ctx.storage) as Record<string, unknown>;
  if (!patchedStorage.has(storageProto)) {
    patchedStorage.add(storageProto);
    const setAlarm = storageProto.setAlarm as (this: DurableObjectStorage, ...a: unknown[]) => Promise<void>;
    storageProto.setAlarm = function (this: DurableObjectStorage, ...args: unknown[]) {
      counts.do_alarm_writes++;
      return setAlarm.apply(this, args);
    };
  }
}

/** Counts an alarm invocation as a request and keeps its object active while it runs. */
export async function meteredAlarm(
  object: string,
  className: string,
  run: () => Promise<void>,
): Promise<void> {
  counts.do_requests++;
  counts.do_alarms++;
  classCounts(className).requests++;
  enter(object);
  try {
    await run();
  } finally {
    leave(object);
  }
}
