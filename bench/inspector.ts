// V8's sampling profiler in workerd's isolates over the DevTools protocol (Miniflare's inspector port), for
// bench/profile.ts. Sampled time shows where CPU goes inside an isolate; it is not a CPU meter (samples of an
// isolate waiting for the one workerd thread are counted too), so the bench's CPU figures come from /proc.

/** One DevTools session on one isolate. */
export interface InspectorSession {
  send(method: string, params?: Record<string, unknown>): Promise<unknown>;
  close(): void;
}

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The isolates the bench profiles, by inspector target suffix: the Worker with its Durable Objects, and D1's simulator. */
export const ISOLATES = {
  worker: "/core:user:runpass-bench",
  d1: "/d1:db",
} as const;

export type IsolateName = keyof typeof ISOLATES;

/** Opens a DevTools session. */
export async function inspectorSession(url: string): Promise<InspectorSession> {
  const ws = new WebSocket(url);
  await new Promise((r, f) => {
    ws.addEventListener("open", r);
    ws.addEventListener("error", f);
  });
  let id = 0;
  const pending = new Map<number, (v: unknown) => void>();
  ws.addEventListener("message", (ev) => {
    const m = JSON.parse(String(ev.data)) as { id?: number; result?: unknown };
    if (m.id !== undefined) pending.get(m.id)?.(m.result);
  });
  return {
    send: (method, params = {}) =>
      new Promise<unknown>((r) => {
        pending.set(++id, r);
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

/** The inspector's WebSocket URL of each bench isolate. */
export async function isolateTargets(port: number): Promise<Partial<Record<IsolateName, string>>> {
  const list = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as Array<{
    webSocketDebuggerUrl: string;
  }>;
  const out: Partial<Record<IsolateName, string>> = {};
  for (const [name, suffix] of Object.entries(ISOLATES) as Array<[IsolateName, string]>) {
    const url = list.map((t) => t.webSocketDebuggerUrl).find((u) => u.endsWith(suffix));
    if (url) out[name] = url;
  }
  return out;
}

/** Profiles the bench's isolates while `work` runs; returns each isolate's profile. */
export async function profileIsolates(
  port: number,
  work: () => Promise<void>,
  intervalUs = 200,
): Promise<Partial<Record<IsolateName, CpuProfile>>> {
  const targets = Object.entries(await isolateTargets(port)) as Array<[IsolateName, string]>;
  const sessions = await Promise.all(
    targets.map(async ([name, url]) => [name, await inspectorSession(url)] as const),
  );
  try {
    for (const [, s] of sessions) {
      await s.send("Profiler.enable");
      await s.send("Profiler.setSamplingInterval", { interval: intervalUs });
      await s.send("Profiler.start");
    }
    await work();
    const out: Partial<Record<IsolateName, CpuProfile>> = {};
    for (const [name, s] of sessions) {
      out[name] = ((await s.send("Profiler.stop")) as { profile: CpuProfile }).profile;
    }
    return out;
  } finally {
    for (const [, s] of sessions) s.close();
  }
}
