// The shared exchange client against a scripted fake fetch (the network boundary) and a fake clock:
// retries, backoff, the time budget, Retry-After, the one token refresh on 409, no retry on 4xx, messages, revoke.

import { describe, expect, it } from "vitest";
import {
  backoffDelay,
  type ExchangeOptions,
  exchange,
  formatExchangeError,
  formatReasons,
  parseRetryAfter,
  revoke,
} from "../../src/client/exchange-client.ts";

const OIDC_1 = "oidc-token-one-0123456789";
const OIDC_2 = "oidc-token-two-0123456789";
const REVOKE = "rvk_secret_revoke_token_0123";

const OK_BODY = {
  policy: "api-deploy",
  policy_version: "sha256:aa",
  policy_set_version: "sha256:bb",
  lease: {
    id: "lse_1",
    run: "github:github:1:2:1",
    expires_at: "2030-01-01T00:00:00Z",
    revoke_token: REVOKE,
  },
  credentials: { token: { token: "eyJ.x.y", expires_at: "2030-01-01T00:00:00Z" } },
};

type Step = Response | Error | (() => Response);

interface Call {
  url: string;
  method: string | undefined;
  headers: Record<string, string>;
  body: string | undefined;
  redirect: RequestInit["redirect"];
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "x-request-id": "req_hdr", ...headers },
  });
}

function errorBody(
  status: number,
  error: string,
  extra: Record<string, unknown> = {},
  headers = {},
): Response {
  return json(
    status,
    { error, error_description: `${error} happened`, request_id: "req_1", ...extra },
    headers,
  );
}

function netError(code = "ECONNREFUSED"): Error {
  return new TypeError("fetch failed", { cause: Object.assign(new Error("connect failed"), { code }) });
}

/** A scripted fetch; the last step repeats. A fake clock advanced only by sleep. */
function harness(steps: Step[], tokens: string[] = [OIDC_1, OIDC_2]) {
  const calls: Call[] = [];
  const sleeps: number[] = [];
  let clock = 1_000_000;
  let tokenCalls = 0;
  let i = 0;
  const options: ExchangeOptions = {
    url: "https://runpass.example/",
    policy: "api-deploy",
    getToken: async () => tokens[Math.min(tokenCalls++, tokens.length - 1)]!,
    fetch: async (url, init) => {
      calls.push({
        url,
        method: init.method,
        headers: { ...(init.headers as Record<string, string>) },
        body: init.body as string | undefined,
        redirect: init.redirect,
      });
      const step = steps[Math.min(i++, steps.length - 1)]!;
      if (step instanceof Error) throw step;
      return typeof step === "function" ? step() : step.clone();
    },
    sleep: async (ms) => {
      sleeps.push(ms);
      clock += ms;
    },
    now: () => clock,
    random: () => 0.5,
  };
  return { options, calls, sleeps, tokenCalls: () => tokenCalls };
}

function noSecretsIn(text: string): boolean {
  return ![OIDC_1, OIDC_2, REVOKE].some((s) => text.includes(s));
}

describe("exchange: requests and success", () => {
  it("POSTs {policy, grants, ttl} to {url}/v1/exchange with the OIDC token as bearer", async () => {
    const h = harness([json(200, OK_BODY)]);
    const r = await exchange({ ...h.options, grants: ["token", "aws"], ttl: "15m" });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.response.lease.id).toBe("lse_1");
    expect(r.requestId).toBe("req_hdr");
    expect(r.attempts).toBe(1);
    expect(h.calls).toHaveLength(1);
    const call = h.calls[0]!;
    expect(call.url).toBe("https://runpass.example/v1/exchange");
    expect(call.method).toBe("POST");
    expect(call.headers.authorization === `Bearer ${OIDC_1}`).toBe(true);
    expect(call.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(call.body!)).toEqual({ policy: "api-deploy", grants: ["token", "aws"], ttl: "15m" });
  });

  it("omits grants and ttl when not given", async () => {
    const h = harness([json(200, OK_BODY)]);
    await exchange(h.options);
    expect(JSON.parse(h.calls[0]!.body!)).toEqual({ policy: "api-deploy" });
  });

  it("a 200 that is not an exchange response is not retried (credentials may exist): invalid_response", async () => {
    const h = harness([new Response("<html>hi</html>", { status: 200 }), json(200, OK_BODY)]);
    const r = await exchange(h.options);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatchObject({
      kind: "unavailable",
      code: "invalid_response",
      status: 200,
      attempts: 1,
    });
    expect(h.calls).toHaveLength(1);
  });
});

describe("exchange: retries within the budget", () => {
  it("retries a 503 and a network error with jittered backoff, then succeeds", async () => {
    const h = harness([errorBody(503, "temporarily_unavailable"), netError(), json(200, OK_BODY)]);
    const r = await exchange(h.options);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.attempts).toBe(3);
    // random() = 0.5: 3/4 of each ceiling (1 s, then 2 s).
    expect(h.sleeps).toEqual([750, 1500]);
    // The same OIDC token is reused across transient retries (its jti is consumed only on success).
    expect(h.tokenCalls()).toBe(1);
  });

  it("backoff doubles up to a cap, with jitter between half and all of the ceiling", () => {
    expect(backoffDelay(1, () => 0)).toBe(500);
    expect(backoffDelay(1, () => 0.999999)).toBe(1000);
    expect(backoffDelay(2, () => 0)).toBe(1000);
    expect(backoffDelay(3, () => 0)).toBe(2000);
    expect(backoffDelay(10, () => 0.999999)).toBe(15_000);
    expect(backoffDelay(10, () => 0)).toBe(7_500);
  });

  it("gives up when the next wait would pass the budget, reporting the last failure and attempts", async () => {
    const h = harness([errorBody(502, "upstream_error", { retryable: true })]);
    const r = await exchange({ ...h.options, budgetMs: 10_000 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    // 750 + 1500 + 3000 = 5250; the next (6000) would end past 10 s.
    expect(h.sleeps).toEqual([750, 1500, 3000]);
    expect(h.sleeps.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(10_000);
    expect(r.error).toMatchObject({
      kind: "unavailable",
      status: 502,
      code: "upstream_error",
      attempts: 4,
      requestId: "req_1",
    });
    expect(formatExchangeError(r.error)).toBe(
      "unavailable: upstream_error (upstream_error happened) after 4 attempts — request_id req_1",
    );
  });

  it("the default budget is about a minute", async () => {
    const h = harness([errorBody(500, "server_error")]);
    const r = await exchange(h.options);
    expect(r.ok).toBe(false);
    const total = h.sleeps.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(30_000);
    expect(total).toBeLessThanOrEqual(60_000);
  });

  it("honours Retry-After on 429", async () => {
    const h = harness([errorBody(429, "rate_limited", {}, { "retry-after": "7" }), json(200, OK_BODY)]);
    const r = await exchange(h.options);
    expect(r.ok).toBe(true);
    expect(h.sleeps).toEqual([7000]);
  });

  it("gives up at once when Retry-After is past the budget", async () => {
    const h = harness([errorBody(503, "temporarily_unavailable", {}, { "retry-after": "120" })]);
    const r = await exchange(h.options);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(h.sleeps).toEqual([]);
    expect(h.calls).toHaveLength(1);
    expect(r.error).toMatchObject({ kind: "unavailable", status: 503, retryAfter: 120, attempts: 1 });
  });

  it("does not retry a 502 the broker marks retryable: false", async () => {
    const h = harness([errorBody(502, "upstream_error", { retryable: false }), json(200, OK_BODY)]);
    const r = await exchange(h.options);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatchObject({ kind: "unavailable", retryable: false, attempts: 1 });
    expect(h.calls).toHaveLength(1);
  });

  it("network errors exhaust the budget as unavailable, named by cause, without the token", async () => {
    const h = harness([netError("ECONNREFUSED")]);
    const r = await exchange({ ...h.options, budgetMs: 5_000 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.kind).toBe("unavailable");
    expect(r.error.code).toBe("network_error");
    expect(r.error.status).toBeUndefined();
    expect(r.error.description).toBe("could not reach the broker at https://runpass.example (ECONNREFUSED)");
    expect(noSecretsIn(`${r.error.message} ${formatExchangeError(r.error)}`)).toBe(true);
  });

  it("a non-runpass error body (a proxy's HTML 502) keeps the status and the x-request-id header", async () => {
    const html = new Response("<html>Bad gateway</html>", {
      status: 502,
      headers: { "x-request-id": "req_px" },
    });
    const h = harness([html]);
    const r = await exchange({ ...h.options, budgetMs: 0 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatchObject({
      code: "http_502",
      status: 502,
      requestId: "req_px",
      kind: "unavailable",
    });
    expect(r.error.description).not.toContain("Bad gateway");
  });
});

describe("exchange: 409 token_replayed", () => {
  it("fetches a fresh OIDC token once and retries with it", async () => {
    const h = harness([errorBody(409, "token_replayed"), json(200, OK_BODY)]);
    const r = await exchange(h.options);
    expect(r.ok).toBe(true);
    expect(h.tokenCalls()).toBe(2);
    expect(h.calls[0]!.headers.authorization === `Bearer ${OIDC_1}`).toBe(true);
    expect(h.calls[1]!.headers.authorization === `Bearer ${OIDC_2}`).toBe(true);
    expect(h.sleeps).toEqual([]);
  });

  it("a second 409 is a denial (no third token)", async () => {
    const h = harness([errorBody(409, "token_replayed")]);
    const r = await exchange(h.options);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(h.tokenCalls()).toBe(2);
    expect(h.calls).toHaveLength(2);
    expect(r.error).toMatchObject({ kind: "denied", status: 409, code: "token_replayed" });
  });

  it("after a lost answer (5xx) the retry's 409 is healed by the refresh", async () => {
    const h = harness([
      errorBody(503, "temporarily_unavailable"),
      errorBody(409, "token_replayed"),
      json(200, OK_BODY),
    ]);
    const r = await exchange(h.options);
    expect(r.ok).toBe(true);
    expect(h.tokenCalls()).toBe(2);
  });

  it("a token that cannot be obtained is token_unavailable, and nothing is sent", async () => {
    const h = harness([json(200, OK_BODY)]);
    const r = await exchange({
      ...h.options,
      getToken: async () => {
        throw new Error("Unable to get ACTIONS_ID_TOKEN_REQUEST_URL env variable");
      },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatchObject({ kind: "unavailable", code: "token_unavailable", attempts: 0 });
    expect(r.error.description).toContain("ACTIONS_ID_TOKEN_REQUEST_URL");
    expect(h.calls).toHaveLength(0);
  });
});

describe("exchange: no retry on client errors", () => {
  const cases: Array<[number, string, string]> = [
    [400, "invalid_request", "usage"],
    [401, "invalid_token", "denied"],
    [403, "access_denied", "denied"],
    [404, "not_found", "usage"],
    [413, "request_too_large", "usage"],
    [415, "unsupported_media_type", "usage"],
  ];
  for (const [status, code, kind] of cases) {
    it(`${status} ${code} → ${kind}, one attempt`, async () => {
      const h = harness([errorBody(status, code), json(200, OK_BODY)]);
      const r = await exchange(h.options);
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(h.calls).toHaveLength(1);
      expect(h.sleeps).toEqual([]);
      expect(h.tokenCalls()).toBe(1);
      expect(r.error).toMatchObject({ status, code, kind, attempts: 1, requestId: "req_1" });
      expect(noSecretsIn(`${r.error.message} ${formatExchangeError(r.error)}`)).toBe(true);
    });
  }

  it("a 403 with reasons prints them with the request id", async () => {
    const h = harness([
      errorBody(403, "access_denied", {
        request_id: "req_abc",
        reasons: [{ code: "claim_mismatch", claim: "ref", expected: ["refs/heads/main"] }],
      }),
    ]);
    const r = await exchange(h.options);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.reasons).toEqual([
      { code: "claim_mismatch", claim: "ref", expected: ["refs/heads/main"] },
    ]);
    expect(formatExchangeError(r.error)).toBe(
      "denied: claim_mismatch ref (expected refs/heads/main) — request_id req_abc",
    );
  });

  it("a 403 without reasons prints the code and description", async () => {
    const h = harness([errorBody(403, "access_denied")]);
    const r = await exchange(h.options);
    if (r.ok) throw new Error("expected a denial");
    expect(formatExchangeError(r.error)).toBe(
      "denied: access_denied (access_denied happened) — request_id req_1",
    );
  });
});

describe("formatReasons", () => {
  it("renders each reason kind for humans", () => {
    expect(
      formatReasons([
        { code: "claim_mismatch", claim: "event_name", expected: ["push", "workflow_dispatch"] },
        { code: "claim_absent", claim: "environment" },
        { code: "denied_by", rule: 0, claims: ["runner_environment"] },
        { code: "grant_not_allowed", grant: "aws" },
        { code: "run_ended" },
      ]),
    ).toBe(
      "claim_mismatch event_name (expected one of push, workflow_dispatch); claim_absent environment; " +
        "denied_by deny[0] (runner_environment); grant_not_allowed aws; run_ended",
    );
    expect(formatReasons([])).toBe("");
  });

  it("parses Retry-After as seconds or an HTTP date", () => {
    const now = Date.parse("2030-01-01T00:00:00Z");
    expect(parseRetryAfter("5", now)).toBe(5);
    expect(parseRetryAfter("Tue, 01 Jan 2030 00:00:30 GMT", now)).toBe(30);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe("revoke", () => {
  function revokeHarness(steps: Step[]) {
    const h = harness(steps);
    return { ...h, opts: { url: "https://runpass.example/", leaseId: "lse_a:b", revokeToken: REVOKE } };
  }

  it("DELETEs /v1/leases/{id} with the revoke token; 204 is ok", async () => {
    const h = revokeHarness([new Response(null, { status: 204 })]);
    const r = await revoke({ ...h.opts, fetch: h.options.fetch!, sleep: h.options.sleep! });
    expect(r).toEqual({ ok: true, status: 204 });
    expect(h.calls[0]!.method).toBe("DELETE");
    expect(h.calls[0]!.url).toBe("https://runpass.example/v1/leases/lse_a%3Ab");
    expect(h.calls[0]!.headers.authorization === `Bearer ${REVOKE}`).toBe(true);
  });

  it("a 404 fails without retry and without the token in the result", async () => {
    const h = revokeHarness([errorBody(404, "not_found")]);
    const r = await revoke({ ...h.opts, fetch: h.options.fetch!, sleep: h.options.sleep! });
    expect(r).toMatchObject({ ok: false, status: 404, code: "not_found", requestId: "req_1" });
    expect(h.calls).toHaveLength(1);
    expect(noSecretsIn(JSON.stringify(r))).toBe(true);
  });

  it("tries once more after a network error or 5xx", async () => {
    const h = revokeHarness([netError(), new Response(null, { status: 204 })]);
    expect(await revoke({ ...h.opts, fetch: h.options.fetch!, sleep: h.options.sleep! })).toMatchObject({
      ok: true,
    });
    const down = revokeHarness([netError("ECONNREFUSED")]);
    const r = await revoke({ ...down.opts, fetch: down.options.fetch!, sleep: down.options.sleep! });
    expect(r).toMatchObject({ ok: false, code: "network_error" });
    expect(down.calls).toHaveLength(2);
  });

  it("never throws, whatever fetch does", async () => {
    const r = await revoke({
      url: "https://runpass.example",
      leaseId: "lse_1",
      revokeToken: REVOKE,
      fetch: () => {
        throw new Error("boom");
      },
      sleep: async () => {},
    });
    expect(r.ok).toBe(false);
  });
});

describe("exchange and revoke keep credentials on TLS", () => {
  const REFUSED = [
    ["http://runpass.example", "insecure_url"],
    ["http://127.0.0.2:8787", "insecure_url"],
    ["http://10.0.0.1", "insecure_url"],
    ["ftp://runpass.example", "insecure_url"],
    ["https://user:hunter2@runpass.example", "invalid_url"],
    ["https://runpass.example/?x=1", "invalid_url"],
    ["not a url", "invalid_url"],
  ] as const;

  it("refuses a broker URL that is not https (or http to loopback) before the token is fetched or anything sent", async () => {
    for (const [url, code] of REFUSED) {
      const h = harness([json(200, OK_BODY)]);
      const r = await exchange({ ...h.options, url });
      expect(r.ok, url).toBe(false);
      if (r.ok) return;
      expect(r.error).toMatchObject({ kind: "usage", code, attempts: 0 });
      expect(h.calls).toEqual([]);
      expect(h.tokenCalls()).toBe(0);
      expect(formatExchangeError(r.error)).not.toContain("hunter2");
    }
  });

  it("talks plain http to 127.0.0.1, localhost and [::1] only", async () => {
    for (const host of ["127.0.0.1", "localhost", "[::1]"]) {
      const h = harness([json(200, OK_BODY)]);
      const r = await exchange({ ...h.options, url: `http://${host}:8787/` });
      expect(r.ok, host).toBe(true);
      expect(h.calls[0]!.url).toBe(`http://${host}:8787/v1/exchange`);
    }
  });

  it("never follows a redirect with the OIDC token or the revoke token", async () => {
    const h = harness([json(200, OK_BODY)]);
    await exchange(h.options);
    const d = harness([new Response(null, { status: 204 })]);
    await revoke({
      url: "https://runpass.example",
      leaseId: "lse_1",
      revokeToken: REVOKE,
      fetch: d.options.fetch!,
    });
    expect([...h.calls, ...d.calls].map((c) => c.redirect)).toEqual(["error", "error"]);
  });

  it("revoke refuses the same URLs without sending the revoke token", async () => {
    for (const [url, code] of REFUSED) {
      const h = harness([new Response(null, { status: 204 })]);
      const r = await revoke({
        url,
        leaseId: "lse_1",
        revokeToken: REVOKE,
        fetch: h.options.fetch!,
        sleep: h.options.sleep!,
      });
      expect(r, url).toMatchObject({ ok: false, code });
      expect(h.calls).toEqual([]);
      expect(noSecretsIn(JSON.stringify(r))).toBe(true);
    }
  });
});
