// The GitHub Action's own overhead: action/dist/main.js run the way the runner runs it (INPUT_*, GITHUB_ENV,
// GITHUB_OUTPUT, GITHUB_STATE files, the ID-token endpoint), against the bench Worker as the broker, through a
// local timing proxy. The action's own time is spawn → exit minus the time the broker (the proxy's forwarded
// requests) and the runner's ID-token endpoint spent answering: what remains is Node starting, loading the
// bundle, reading inputs, masking and writing outputs. The action's stdout carries `::add-mask::` lines with
// credential values: it is read for the exit status only, never printed.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { type Harness, ROOT, TOKEN_AUDIENCE } from "./harness.ts";

/** Bundle sizes of widely used cloud-credential actions, for comparison (stored public copies, see the docs). */
export const OTHER_ACTIONS = [
  {
    action: "aws-actions/configure-aws-credentials",
    file: "dist/index.js (main entry only; its chunk files come on top)",
    bytes: 724_173,
    commit: "0181111f1de69fc39b5e958e833c0f64d255c138",
  },
  {
    action: "google-github-actions/auth",
    file: "dist/main/index.js",
    bytes: 620_936,
    commit: "04900d1e97179ac3dda8ec390c5914b9115878e4",
  },
  {
    action: "Azure/login",
    file: "lib/main/index.js (drives the az / Az PowerShell CLIs, which the runner image carries)",
    bytes: 186_098,
    commit: "0df14e308fab3333655ce9c908c229cc64fb93f8",
  },
] as const;

export interface ActionOverhead {
  runs: number;
  /** Spawn → exit of `node action/dist/main.js`, ms. */
  total_ms: Stats;
  /** Broker + ID-token endpoint time inside each run, ms. */
  upstream_ms: Stats;
  /** total − upstream per run: the action's own time, ms. */
  own_ms: Stats;
  /** `node -e 0` spawn → exit on this machine, ms: the part no bundle change can remove. */
  node_startup_ms: Stats;
  /** Spawn → exit of a node that only imports the action's modules (main.js's chunk), ms: startup + bundle load. */
  bundle_load_ms: Stats;
  target_ms: number;
  bundle: { files: Array<{ name: string; bytes: number; gzip: number }>; bytes: number; gzip: number };
  others: typeof OTHER_ACTIONS;
}

interface Stats {
  p50: number;
  min: number;
  max: number;
}

function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    p50: r(s[Math.floor(s.length / 2)] ?? Number.NaN),
    min: r(s[0] ?? Number.NaN),
    max: r(s.at(-1) ?? Number.NaN),
  };
}

/** Every file of action/dist (main.js, post.js, the shared chunk), raw and gzip. */
function bundleSizes(): ActionOverhead["bundle"] {
  const dist = join(ROOT, "action/dist");
  const files: Array<{ name: string; bytes: number; gzip: number }> = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".js")) {
        const body = readFileSync(path);
        files.push({ name: relative(dist, path), bytes: body.length, gzip: gzipSync(body).length });
      }
    }
  };
  walk(dist);
  return {
    files,
    bytes: files.reduce((a, f) => a + f.bytes, 0),
    gzip: files.reduce((a, f) => a + f.gzip, 0),
  };
}

function timedSpawn(
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<{ ms: number; code: number }> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    // stdout is drained and dropped: it holds the mask registrations, i.e. credential values.
    const child = spawn(process.execPath, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.resume();
    child.stderr.resume();
    child.once("error", fail);
    child.once("exit", (code) => done({ ms: performance.now() - t0, code: code ?? 1 }));
  });
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Runs the action `runs` times (token policy, a fresh OIDC token each) and measures its own time. */
export async function actionOverhead(h: Harness, runs: number): Promise<ActionOverhead> {
  const tokens = await h.mint(Array.from({ length: runs }, (_, i) => h.claims(7_000_000_000 + i)));
  const requestToken = randomBytes(16).toString("hex");
  let upstream = 0;
  let next = 0;
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const t0 = performance.now();
    try {
      if (req.url?.startsWith("/id-token")) {
        // The runner's ID-token endpoint: hands out the next pre-minted token.
        if (req.headers.authorization !== `Bearer ${requestToken}`) {
          res.writeHead(401).end();
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ value: tokens[next++] }));
        return;
      }
      // The broker: forwarded to the bench Worker as is.
      const payload = await body(req);
      const headers: Record<string, string> = {};
      for (const name of ["authorization", "content-type", "user-agent", "accept"]) {
        const v = req.headers[name];
        if (typeof v === "string") headers[name] = v;
      }
      const answer = await fetch(`${h.base}${req.url ?? "/"}`, {
        method: req.method ?? "GET",
        headers,
        ...(payload.length ? { body: payload } : {}),
      });
      const out = Buffer.from(await answer.arrayBuffer());
      res.writeHead(answer.status, {
        "content-type": answer.headers.get("content-type") ?? "application/json",
      });
      res.end(out);
    } finally {
      upstream += performance.now() - t0;
    }
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", () => done()));
  const { port } = server.address() as { port: number };
  const base = `http://127.0.0.1:${port}`;
  const total: number[] = [];
  const up: number[] = [];
  const own: number[] = [];
  const startup: number[] = [];
  const load: number[] = [];
  const chunks = bundleSizes().files.filter((f) => f.name.startsWith("chunks/"));
  const importOnly = chunks
    .map((f) => `await import(${JSON.stringify(pathToFileURL(join(ROOT, "action/dist", f.name)).href)});`)
    .join("");
  try {
    for (let i = 0; i < runs; i++) {
      const dir = await mkdtemp(join(tmpdir(), "runpass-bench-action-"));
      const files = { env: join(dir, "env"), output: join(dir, "output"), state: join(dir, "state") };
      for (const f of Object.values(files)) await writeFile(f, "");
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        GITHUB_ENV: files.env,
        GITHUB_OUTPUT: files.output,
        GITHUB_STATE: files.state,
        RUNNER_TEMP: dir,
        INPUT_URL: `${base}/`,
        INPUT_POLICY: "token",
        INPUT_AUDIENCE: TOKEN_AUDIENCE,
        "INPUT_EXPORT-ENV": "true",
        "INPUT_OUTPUT-FORMAT": "outputs",
        "INPUT_GITHUB-TOKEN-ENV": "RUNPASS_GITHUB_TOKEN",
        ACTIONS_ID_TOKEN_REQUEST_URL: `${base}/id-token?api-version=2.0`,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: requestToken,
      };
      upstream = 0;
      const run = await timedSpawn([join(ROOT, "action/dist/main.js")], env, dir);
      const outputs = await readFile(files.output, "utf8");
      await rm(dir, { recursive: true, force: true });
      // Success is an exit 0 with a lease id among the outputs; nothing of the output is shown.
      if (run.code !== 0 || !outputs.includes("lease-id<<")) {
        throw new Error(`the action failed in run ${i + 1} (exit ${run.code})`);
      }
      total.push(run.ms);
      up.push(upstream);
      own.push(run.ms - upstream);
      startup.push((await timedSpawn(["-e", "0"], { PATH: process.env.PATH }, tmpdir())).ms);
      load.push(
        (await timedSpawn(["--input-type=module", "-e", importOnly], { PATH: process.env.PATH }, tmpdir()))
          .ms,
      );
    }
  } finally {
    await new Promise<void>((done) => server.close(() => done()));
  }
  return {
    runs,
    total_ms: stats(total),
    upstream_ms: stats(up),
    own_ms: stats(own),
    node_startup_ms: stats(startup),
    bundle_load_ms: stats(load),
    target_ms: 300,
    bundle: bundleSizes(),
    others: OTHER_ACTIONS,
  };
}
