// The admin CLI keeps the admin token and secret values on TLS (docs/security.md, "Clients"): https only, plain
// http only to a loopback broker (the local default stays allowed), and no redirect is ever followed. Run as
// `runpass admin …` against scripted brokers; secret values are only ever compared, never printed.

import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeBrokerHttp, startFakeBrokerHttp } from "../support/fake-broker-http.ts";
import { ROOT, type Run, runpass } from "../support/run-cli.ts";

const ADMIN_TOKEN = `adm_${randomBytes(16).toString("hex")}`;
const SECRET = `secret-${randomBytes(16).toString("hex")}`;

let scratch = "";
let valueFile = "";

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "runpass-admin-tls-"));
  valueFile = join(scratch, "value");
  await writeFile(valueFile, SECRET);
});

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

function admin(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runpass(args, { env: { RUNPASS_ADMIN_TOKEN: ADMIN_TOKEN, ...env } });
}

function leaksNothing(r: Run): boolean {
  return !(r.stdout + r.stderr).includes(ADMIN_TOKEN) && !(r.stdout + r.stderr).includes(SECRET);
}

/** Every admin command that sends the admin token, some with a secret value, aimed at `url`. */
function commands(url: string): string[][] {
  return [
    ["admin", "leases", "--url", url],
    ["admin", "revoke", "--run", "github:1:2:3", "--url", url],
    ["admin", "secrets", "list", "--url", url],
    ["admin", "secrets", "put", "ci/key", "--file", valueFile, "--url", url],
    ["policy", "check", "--policies", join(ROOT, "policies"), "--admin-url", url],
  ];
}

describe("runpass admin: https only, plain http to loopback only", () => {
  let remote: FakeBrokerHttp;
  beforeAll(async () => {
    // 127.0.0.2 is this machine too, but not one of the loopback names plain http is allowed to: it stands in
    // for any plain-http host, and shows whether anything would have been sent to it.
    remote = await startFakeBrokerHttp(
      () => ({ status: 200, body: { leases: [], version: 1 } }),
      "127.0.0.2",
    );
  });
  afterAll(() => remote?.close());

  it("refuses a plain-http broker URL that is not loopback: exit 2, the URL named, nothing sent", async () => {
    for (const args of commands(remote.url)) {
      const r = await admin(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toContain(remote.url);
      expect(r.stderr).toContain("must be https://");
      expect(leaksNothing(r)).toBe(true);
    }
    const viaEnv = await admin(["admin", "leases"], { RUNPASS_URL: remote.url });
    expect(viaEnv.code).toBe(2);
    expect(viaEnv.stderr).toContain("RUNPASS_URL must be https://");
    expect(remote.requests).toEqual([]);
  }, 60_000);

  it("talks plain http to a loopback broker, the local default included", async () => {
    const local = await startFakeBrokerHttp(() => ({ status: 200, body: { leases: [] } }));
    try {
      const port = new URL(local.url).port;
      for (const url of [local.url, `http://localhost:${port}`]) {
        const r = await admin(["admin", "leases", "--url", url]);
        expect(r.code, r.stderr).toBe(0);
      }
      const byDefault = await admin(["admin", "leases"], { PORT: port });
      expect(byDefault.code, byDefault.stderr).toBe(0);
      expect(local.requests).toHaveLength(3);
      expect(local.requests.every((q) => q.headers.authorization === `Bearer ${ADMIN_TOKEN}`)).toBe(true);
    } finally {
      await local.close();
    }
  }, 30_000);
});

describe("runpass admin: no redirect is followed with the admin token or a secret value", () => {
  it("a redirect to another server: nothing reaches it, the command fails naming the redirect", async () => {
    const elsewhere = await startFakeBrokerHttp(() => ({ status: 200, body: { leases: [], version: 1 } }));
    const redirector = await startFakeBrokerHttp((q) => ({
      status: 307,
      headers: { location: `${elsewhere.url}${q.path}` },
    }));
    // `policy check` calls the broker only for secrets grants, which the shipped policies have none of.
    const calling = commands(redirector.url).filter((args) => args[0] === "admin");
    try {
      for (const args of calling) {
        const r = await admin(args);
        expect(r.code, args.join(" ")).not.toBe(0);
        expect(r.stderr).toContain("redirect");
        expect(leaksNothing(r)).toBe(true);
      }
      expect(elsewhere.requests).toEqual([]);
      expect(redirector.requests).toHaveLength(calling.length);
    } finally {
      await redirector.close();
      await elsewhere.close();
    }
  }, 60_000);

  it("a same-origin 308: the body and the admin token are sent once, not re-sent", async () => {
    const broker = await startFakeBrokerHttp((q) =>
      q.path.startsWith("/moved")
        ? { status: 201, body: { version: 1 } }
        : { status: 308, headers: { location: `/moved${q.path}` } },
    );
    try {
      const r = await admin(["admin", "secrets", "put", "ci/key", "--file", valueFile, "--url", broker.url]);
      expect(r.code).not.toBe(0);
      expect(leaksNothing(r)).toBe(true);
      expect(broker.requests.map((q) => q.path)).toEqual(["/v1/admin/secrets/ci/key"]);
    } finally {
      await broker.close();
    }
  }, 30_000);
});
