// `npm start` (scripts/dev.ts) in a scratch copy of the project, for tests that drive the broker as users do.

import { type ChildProcess, spawn } from "node:child_process";
import { cp, mkdtemp, rm, symlink } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((done) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/** Copies `items` of the project into a fresh temporary folder, with node_modules symlinked. */
export async function scratchProject(prefix: string, items: string[]): Promise<string> {
  const scratch = await mkdtemp(join(tmpdir(), prefix));
  for (const item of items) await cp(join(ROOT, item), join(scratch, item), { recursive: true });
  await symlink(join(ROOT, "node_modules"), join(scratch, "node_modules"));
  return scratch;
}

export interface DevBroker {
  port: number;
  base: string;
  /** Everything the launcher printed so far (for failure messages). */
  log(): string;
  /** Stops the launcher's whole process group, then removes the scratch folder. */
  stop(): Promise<void>;
}

/** Starts scripts/dev.ts in `scratch` on a free port and waits (up to `timeoutMs`, 90 s) until /healthz answers. */
export async function startDevBroker(
  scratch: string,
  env: Record<string, string>,
  timeoutMs = 90_000,
): Promise<DevBroker> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let log = "";
  const child: ChildProcess = spawn(process.execPath, [join(scratch, "scripts/dev.ts")], {
    cwd: scratch,
    env: {
      ...process.env,
      PORT: String(port),
      WRANGLER_SEND_METRICS: "false",
      PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}`,
      ...env,
    },
    detached: true,
  });
  child.stdout?.on("data", (d) => {
    log += String(d);
  });
  child.stderr?.on("data", (d) => {
    log += String(d);
  });
  const broker: DevBroker = {
    port,
    base,
    log: () => log,
    stop: async () => {
      if (child.pid) {
        try {
          process.kill(-child.pid, "SIGTERM");
        } catch {
          // already gone
        }
      }
      await new Promise((r) => setTimeout(r, 500));
      await rm(scratch, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${base}/healthz`);
      if (res.ok) return broker;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await broker.stop();
      throw new Error(`npm start did not come up:\n${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
