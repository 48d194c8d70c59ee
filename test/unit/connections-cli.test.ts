// `runpass admin connections`: the connection URL (it holds the admin password) comes from an environment variable
// or a file and reaches the broker only in the request body; a URL on argv is refused before anything is sent.

import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { adminConnections, checkConnectionGrants } from "../../src/cli/connections.ts";
import { UsageError } from "../../src/cli/usage-error.ts";
import { buildBundle, githubPolicy } from "../support/policies.ts";

const seen: Array<{ method: string; url: string; body: string }> = [];
const server = createServer(async (req: IncomingMessage, res) => {
  let body = "";
  for await (const chunk of req) body += chunk;
  seen.push({ method: req.method ?? "", url: req.url ?? "", body });
  res.writeHead(req.method === "DELETE" ? 204 : 200, { "content-type": "application/json" });
  const list = req.method === "GET" && req.url === "/v1/admin/connections";
  res.end(
    req.method === "DELETE"
      ? ""
      : JSON.stringify(list ? { connections: [{ name: "billing" }] } : { name: "billing", kind: "postgres" }),
  );
});
let base = "";
const SECRET_URL = "postgres://admin:s3cr%3Dt@db.example.com:5432/app";

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  vi.stubEnv("RUNPASS_ADMIN_TOKEN", "test-admin-token-0123456789");
  vi.stubEnv("BILLING_DB_URL", SECRET_URL);
  vi.spyOn(console, "log").mockImplementation(() => undefined);
});
afterAll(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  server.close();
});

describe("runpass admin connections", () => {
  it("put reads the URL from --url-env or --url-file and sends it only in the body", async () => {
    const args = ["billing", "--kind", "postgres", "--url-env", "BILLING_DB_URL", "--runner-port", "6432"];
    expect(await adminConnections("/nonexistent", ["put", ...args, "--url", base])).toBe(0);
    const put = seen.at(-1);
    expect(put).toMatchObject({ method: "PUT", url: "/v1/admin/connections/billing" });
    expect(JSON.parse(put?.body ?? "{}")).toEqual({ kind: "postgres", url: SECRET_URL, runner_port: 6432 });

    const file = join(mkdtempSync(join(tmpdir(), "rp-conn-")), "url");
    writeFileSync(file, `${SECRET_URL}\n`);
    await adminConnections("/nonexistent", [
      "put",
      "billing",
      "--kind",
      "postgres",
      "--url-file",
      file,
      "--url",
      base,
    ]);
    expect(JSON.parse(seen.at(-1)?.body ?? "{}").url).toBe(SECRET_URL);
    // Nothing printed carries the URL.
    const printed = (console.log as unknown as { mock: { calls: unknown[][] } }).mock.calls.flat().join("\n");
    expect(printed.includes("s3cr")).toBe(false);
  });

  it("a connection URL on the command line is refused before any request", async () => {
    const before = seen.length;
    for (const args of [
      ["put", "billing", "--kind", "postgres", SECRET_URL, "--url", base],
      ["put", "billing", "--kind", "postgres", `--url=${SECRET_URL}`],
      ["put", "billing", "--kind", "postgres", "--url", base],
    ]) {
      await expect(adminConnections("/nonexistent", args)).rejects.toThrow(UsageError);
    }
    expect(seen.length).toBe(before);
  });

  it("verify, rotate-root and sweep POST to the connection's action; delete DELETEs it", async () => {
    for (const action of ["verify", "rotate-root", "sweep"]) {
      await adminConnections("/nonexistent", [action, "billing", "--url", base]);
      expect(seen.at(-1)).toMatchObject({ method: "POST", url: `/v1/admin/connections/billing/${action}` });
    }
    await adminConnections("/nonexistent", ["delete", "billing", "--url", base]);
    expect(seen.at(-1)).toMatchObject({ method: "DELETE", url: "/v1/admin/connections/billing" });
  });

  it("policy check --admin-url: a postgres grant naming a connection the broker does not hold is an error at it", async () => {
    const grant = (c: string) => `postgres: { connection: ${c}, roles: [app_readonly], ttl: 10m }`;
    const bundle = await buildBundle(
      {
        stored: githubPolicy("github", "", grant("billing")),
        missing: githubPolicy("github", "", grant("orders")),
      },
      "",
      false,
    );
    const dir = mkdtempSync(join(tmpdir(), "rp-pol-"));
    writeFileSync(join(dir, "missing.yaml"), githubPolicy("github", "", grant("orders")));
    const out = await checkConnectionGrants({ url: base, token: "test-admin-token-0123456789" }, dir, bundle);
    expect(out.checked).toBe(2);
    expect(out.problems).toEqual([
      expect.objectContaining({ file: join(dir, "missing.yaml"), line: 9, severity: "error" }),
    ]);
    expect(out.problems[0]?.message).toContain('no connection "orders"');
  });
});
