// GET /v1/cli/runpass.mjs: the runner CLI as one dependency-free file, so `curl … && node runpass.mjs exchange`
// works on runners with Node but no npm access. Its SHA-256 is served alongside for pinning.

import type { Hono } from "hono";
import type { AppEnv } from "./types.ts";

export interface RunnerCli {
  text: string;
  sha256: string;
}

/** Registers the CLI download routes (absent when the app was built without the bundle). */
export function cliRoutes(app: Hono<AppEnv>, cli: RunnerCli | undefined): void {
  if (!cli) return;
  const headers = { "cache-control": "public, max-age=300", "x-content-sha256": cli.sha256 };
  app.get("/v1/cli/runpass.mjs", (c) =>
    c.body(cli.text, 200, { ...headers, "content-type": "text/javascript; charset=utf-8" }),
  );
  app.get("/v1/cli/runpass.mjs.sha256", (c) =>
    c.body(`${cli.sha256}  runpass.mjs\n`, 200, { ...headers, "content-type": "text/plain; charset=utf-8" }),
  );
}
