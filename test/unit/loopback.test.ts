// One loopback rule (src/core/loopback.ts, docs/security.md "Loopback"): the broker URL the clients accept, the
// admin CLI's local token and dev-build issuer URLs all treat exactly 127.0.0.1, localhost and [::1] as loopback,
// however the URL spells them; the rest of 127.0.0.0/8 is a remote host like any other.

import { describe, expect, it } from "vitest";
import { checkBrokerUrl } from "../../src/client/broker-url.ts";
import { isLoopbackHost } from "../../src/core/loopback.ts";
import { checkIssuerUrl } from "../../src/core/oidc/issuers.ts";

const LOOPBACK = [
  "http://127.0.0.1:8787",
  "http://localhost:8787",
  "http://[::1]:8787",
  "http://LOCALHOST",
  "http://127.1",
];
const NOT_LOOPBACK = [
  "http://127.0.0.2:8787",
  "http://127.1.2.3",
  "http://[::ffff:127.0.0.1]",
  "http://localhost.evil.test",
  "http://127.0.0.1.nip.io",
  "http://10.0.0.1",
];

const brokerAccepts = (url: string) => {
  try {
    checkBrokerUrl(url);
    return true;
  } catch {
    return false;
  }
};

describe("the loopback rule", () => {
  it("accepts exactly 127.0.0.1, localhost and [::1] everywhere plain http is allowed", () => {
    for (const url of LOOPBACK) {
      expect(isLoopbackHost(new URL(url).hostname), url).toBe(true);
      expect(brokerAccepts(url), url).toBe(true);
      expect(checkIssuerUrl(url, true), url).toBeUndefined();
    }
  });

  it("treats every other host, other 127.x addresses included, as remote", () => {
    for (const url of NOT_LOOPBACK) {
      expect(isLoopbackHost(new URL(url).hostname), url).toBe(false);
      expect(brokerAccepts(url), url).toBe(false);
      expect(checkIssuerUrl(url, true), url).toContain("non-loopback");
    }
  });
});
