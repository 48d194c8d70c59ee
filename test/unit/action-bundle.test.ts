// The action's bundle (scripts/build-action.ts) and the served runner CLI (scripts/bundle-runner.ts) hold what they
// run and little else: load time is most of the action's own overhead in every job (docs/benchmarks.md, The
// action's overhead).

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildAction } from "../../scripts/build-action.ts";
import { bundleRunner } from "../../scripts/bundle-runner.ts";

let outdir = "";

afterAll(async () => {
  if (outdir) await rm(outdir, { recursive: true, force: true });
});

describe("the action bundle", () => {
  it("leaves out undici (only @actions/http-client's unused proxy dispatcher imports it) and any X.509 library", async () => {
    outdir = await mkdtemp(join(tmpdir(), "runpass-action-bundle-"));
    const files = await buildAction(outdir);
    const text = (await Promise.all(files.map((f) => readFile(f, "utf8")))).join("\n");
    expect(text.includes("node_modules/undici/")).toBe(false);
    // The HTTP client the ID-token request does use is still there, with its proxy tunnel.
    expect(text.includes("node_modules/@actions/http-client/lib/index.js")).toBe(true);
    expect(text.includes("node_modules/tunnel/")).toBe(true);
    // The x509 grant's CSR and certificate check are built by hand (src/client/csr.ts): no X.509 library, nor the
    // reflect-metadata it needs, is bundled, and the whole action stays small (docs/benchmarks.md, The action's
    // overhead: 98 KiB when this was written, 77 KiB before the x509 and ssh grants).
    expect(text).not.toMatch(/@peculiar|reflect-metadata|Reflect\.defineMetadata/);
    const sizes = await Promise.all(files.map(async (f) => (await readFile(f)).length));
    expect(sizes.reduce((a, b) => a + b, 0)).toBeLessThan(160 * 1024);
  });
});

describe("the runner CLI the broker serves", () => {
  it("bundles no X.509 library: a few dozen KiB, not the 820 KB it was with @peculiar/x509", async () => {
    const text = await bundleRunner(resolve(import.meta.dirname, "../.."));
    expect(text).not.toMatch(/@peculiar|reflect-metadata|Reflect\.defineMetadata/);
    expect(Buffer.byteLength(text)).toBeLessThan(100 * 1024);
  });
});
