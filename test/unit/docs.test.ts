// The repository explains itself: README.md stays a newcomer's page that links every document in docs/,
// every relative link in README.md and docs/*.md reaches an existing file and heading, and no source, test,
// script or document cites a design document that is not in the repository.

import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brokenLinks, headingAnchors } from "../support/markdown-links.ts";
import { ROOT } from "../support/run-cli.ts";

const docs = async () => (await readdir(join(ROOT, "docs"))).filter((f) => f.endsWith(".md")).sort();

/** Every file under `dir` (relative to ROOT) with one of the extensions. */
async function filesUnder(dir: string, extensions: string[]): Promise<string[]> {
  const entries = await readdir(join(ROOT, dir), { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && extensions.some((x) => e.name.endsWith(x)))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

describe("README.md", () => {
  it("is a newcomer's page: under 400 lines, with install, start, test and the walk-through", async () => {
    const readme = await readFile(join(ROOT, "README.md"), "utf8");
    expect(readme.split("\n").length).toBeLessThan(400);
    for (const command of ["npm install", "npm start", "npm test", "npx runpass dev token"]) {
      expect(readme, command).toContain(command);
    }
    expect(headingAnchors(readme)).toContain("walk-through-mint-a-dev-token-exchange-it-verify-the-result");
  });

  it("links every document in docs/", async () => {
    const readme = await readFile(join(ROOT, "README.md"), "utf8");
    for (const doc of await docs()) expect(readme, doc).toContain(`](docs/${doc}`);
  });
});

describe("links between documents", () => {
  it("every relative link in README.md and docs/*.md reaches an existing file and heading", async () => {
    const files = ["README.md", "CHANGELOG.md", ...(await docs()).map((d) => `docs/${d}`)];
    expect(brokenLinks(ROOT, files)).toEqual([]);
  });

  describe("the checker", () => {
    let dir = "";
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "runpass-links-"));
      await writeFile(
        join(dir, "a.md"),
        [
          "# Title",
          "## `token` — a runpass-signed JWT",
          "## Repeat",
          "## Repeat",
          "[ok](#title) [ok](#token--a-runpass-signed-jwt) [ok](#repeat-1) [ok](b.md#other) [web](https://x.test/#y)",
          "[gone](#nowhere) [gone](c.md) [gone](b.md#title)",
          "```",
          "[in code](#ignored)",
          "```",
        ].join("\n"),
      );
      await writeFile(join(dir, "b.md"), "# Other\n");
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it("reports a missing heading, a missing file and a heading of another file; ignores code and URLs", () => {
      expect(brokenLinks(dir, ["a.md"])).toEqual([
        { file: "a.md", line: 6, target: "#nowhere", problem: "missing anchor" },
        { file: "a.md", line: 6, target: "c.md", problem: "missing file" },
        { file: "a.md", line: 6, target: "b.md#title", problem: "missing anchor" },
      ]);
    });
  });
});

describe("no outside design document", () => {
  it("no source, test, script, bench or document cites a design document outside the repository", async () => {
    // Built from parts so this file does not match itself.
    const outside = new RegExp(["DESIGN(\\.md| §)", "\\.\\./shared"].join("|"));
    const files = [
      ...(await filesUnder("src", [".ts", ".js"])),
      ...(await filesUnder("test", [".ts"])),
      ...(await filesUnder("bench", [".ts"])),
      ...(await filesUnder("scripts", [".ts"])),
      ...(await filesUnder("docs", [".md"])),
      "README.md",
      "CHANGELOG.md",
      "wrangler.toml",
    ];
    const hits: string[] = [];
    for (const file of files) {
      (await readFile(join(ROOT, file), "utf8")).split("\n").forEach((line, i) => {
        if (outside.test(line)) hits.push(`${file}:${i + 1}`);
      });
    }
    expect(hits).toEqual([]);
  });
});
