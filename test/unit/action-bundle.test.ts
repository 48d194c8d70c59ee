// The action's bundle (scripts/build-action.ts) holds what the action runs and little else: its load time is
// most of the action's own overhead in every job (docs/benchmarks.md, The action's overhead).

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildAction } from "../../scripts/build-action.ts";

let outdir = "";

afterAll(async () => {
  if (outdir) await rm(outdir, { recursive: true, force: true });
});

describe("the action bundle", () => {
  it("leaves out undici, which only @actions/http-client's proxy dispatcher (never called by the action) imports", async () => {
    outdir = await mkdtemp(join(tmpdir(), "runpass-action-bundle-"));
    const files = await buildAction(outdir);
    const text = (await Promise.all(files.map((f) => readFile(f, "utf8")))).join("\n");
    expect(text.includes("node_modules/undici/")).toBe(false);
    // The HTTP client the ID-token request does use is still there, with its proxy tunnel.
    expect(text.includes("node_modules/@actions/http-client/lib/index.js")).toBe(true);
    expect(text.includes("node_modules/tunnel/")).toBe(true);
    // The X.509 library (the CSR for the x509 grant) is its own chunk, loaded while GitHub mints the OIDC token
    // (docs/benchmarks.md, The action's overhead); everything else stays small.
    const isX509 = (f: string) => /chunks\/lib-[A-Z0-9]+\.js$/.test(f);
    const x509Chunks = files.filter(isX509);
    expect(x509Chunks).toHaveLength(1);
    const size = async (fs: string[]) =>
      (await Promise.all(fs.map((f) => readFile(f)))).reduce((a, b) => a + b.length, 0);
    expect(await size(files.filter((f) => !isX509(f)))).toBeLessThan(300 * 1024);
    expect(await size(x509Chunks)).toBeLessThan(800 * 1024);
    expect(
      (await readFile(x509Chunks[0] as string, "utf8")).includes("Pkcs10CertificateRequestGenerator"),
    ).toBe(true);
  });
});
