// Stored connections' address rules (docs/grants.md, "Connections"): loopback and private hosts in any notation are
// refused for a deployed Worker, plaintext keeps runners on loopback too, and the URL runners get is well formed.

import { describe, expect, it } from "vitest";
import { canonicalHost, checkConnection, runnerEndpoint } from "../../src/core/connections.ts";
import { postgresUrl } from "../../src/core/grants/postgres.ts";

const at = (host: string) => `postgres://admin:pw@${host}:5432/app`;

describe("connection hosts", () => {
  it("refuses loopback, unspecified and private addresses however they are spelt (deployed Worker)", () => {
    for (const host of [
      "127.0.0.1",
      "2130706433",
      "0x7f.1",
      "127.1",
      "0.0.0.0",
      "0",
      "localhost.",
      "LOCALHOST",
      "db.localhost.",
      "[::1]",
      "[::]",
      "[::ffff:7f00:1]",
      "[::ffff:127.0.0.1]",
      "[::ffff:a00:1]",
      "[fd12::1]",
      "[fe80::1]",
      "10.1.2.3",
      "167772161",
      "192.168.0.1",
    ]) {
      const out = checkConnection({ kind: "postgres", url: at(host) }, false);
      expect(typeof out === "string" && out.includes("private or loopback"), host).toBe(true);
    }
  });

  it("accepts public names and addresses, including names that merely start like an IPv6 prefix", () => {
    for (const host of [
      "db.example.com",
      "fcbank.example.com",
      "fd.example.net",
      "8.8.8.8",
      "[2001:db8::1]",
    ]) {
      expect(typeof checkConnection({ kind: "postgres", url: at(host) }, false), host).toBe("object");
    }
  });

  it("canonical hosts: IPv4 notations become a dotted quad, the trailing dot goes", () => {
    expect(canonicalHost("2130706433")).toBe("127.0.0.1");
    expect(canonicalHost("localhost.")).toBe("localhost");
    expect(canonicalHost("[::FFFF:127.0.0.1]")).toBe("[::ffff:7f00:1]");
  });

  it('tls "disable" needs a loopback runner_host too', () => {
    const base = { kind: "postgres" as const, url: at("127.0.0.1"), tls: "disable" as const };
    expect(checkConnection({ ...base, runner_host: "db.example.com" }, true)).toMatch(/runner_host/);
    expect(typeof checkConnection({ ...base, runner_host: "localhost" }, true)).toBe("object");
    expect(typeof checkConnection(base, true)).toBe("object");
  });

  it("an IPv6 runner_host is bracketed once in the runner's URL and bare in PGHOST", () => {
    const stored = checkConnection(
      { kind: "postgres", url: at("db.example.com"), runner_host: "[2001:db8::5]" },
      false,
    );
    if (typeof stored === "string") throw new Error(stored);
    const endpoint = runnerEndpoint(stored);
    expect(endpoint.host).toBe("2001:db8::5");
    const url = postgresUrl("rp_x", "pw", endpoint);
    expect(url).toContain("@[2001:db8::5]:5432/");
    expect(url.includes("[[")).toBe(false);
  });
});
