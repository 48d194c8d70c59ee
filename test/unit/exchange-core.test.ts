// The exchange and explain pipelines (src/core/exchange.ts) in plain Node over in-memory ports: verification,
// matching, the run ledger's single use, audit records for every decision, and nothing issued on any refusal.

import { importJWK, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { RunpassError } from "../../src/core/errors.ts";
import { type ExchangeInput, exchange, explain } from "../../src/core/exchange.ts";
import { ACME, githubClaims } from "../support/claims.ts";
import {
  MEMORY_BROKER_URL,
  MEMORY_ISSUER_BASE,
  type MemoryCore,
  memoryCore,
} from "../support/memory-core.ts";
import { githubPolicy } from "../support/policies.ts";

const ISSUER = "gh";
const POLICIES = {
  "api-deploy": githubPolicy(ISSUER),
  "api-short": `ttl: 5m\n${githubPolicy(ISSUER)}`,
};

function core(options: { explainFull?: boolean; maxLeaseTtl?: number } = {}): Promise<MemoryCore> {
  return memoryCore(POLICIES, [ISSUER], options);
}

/** A fresh GitHub-shaped token of the in-memory issuer for acme/api (override any claim). */
function token(c: MemoryCore, overrides: Record<string, unknown> = {}): Promise<string> {
  return c.issuer.mint(
    githubClaims(`${MEMORY_ISSUER_BASE}/${ISSUER}`, MEMORY_BROKER_URL, overrides, c.clock.now),
  );
}

function input(
  t: string | undefined,
  policy = "api-deploy",
  extra: Partial<ExchangeInput> = {},
): ExchangeInput {
  return { requestId: `req_${crypto.randomUUID()}`, token: t, policy, ...extra };
}

/** The RunpassError a refused call threw. */
async function refusal(call: Promise<unknown>): Promise<RunpassError> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RunpassError);
  return error as RunpassError;
}

describe("exchange over in-memory ports", () => {
  it("the per-run issuance count (issuance_burst) comes from the run ledger, in fixed windows", async () => {
    const c = await core();
    const seen: Array<number | undefined> = [];
    const deps = {
      ...c.deps,
      observe: {
        runWindowMs: 600_000,
        decided: (_r: unknown, f: { runIssued?: number }) => void seen.push(f.runIssued),
      },
    };
    // Start one minute before a window boundary: two exchanges in that window, two in the next.
    c.clock.now = Math.floor(c.clock.now / 600_000) * 600_000 + 540_000;
    const run = { run_id: "777", run_attempt: "1" };
    for (let i = 0; i < 2; i++) await exchange(input(await token(c, run)), deps);
    c.clock.advance(120_000);
    for (let i = 0; i < 2; i++) await exchange(input(await token(c, run)), deps);
    // Another run counts on its own.
    await exchange(input(await token(c, { run_id: "778", run_attempt: "1" })), deps);
    expect(seen).toEqual([1, 2, 1, 2, 1]);
  });

  it("issues a runpass JWT signed by the broker's key and commits one lease with its allow record", async () => {
    const c = await core();
    const res = await exchange(input(await token(c)), c.deps);
    expect(res.policy).toBe("api-deploy");
    expect(res.policy_version).toMatch(/^sha256:[0-9a-f]{64}$/);
    const jwt = res.credentials.token?.token as string;
    const key = await importJWK(c.signer.jwks().keys[0] as Parameters<typeof importJWK>[0], "ES256");
    const { payload } = await jwtVerify(jwt, key, {
      issuer: MEMORY_BROKER_URL,
      audience: "https://deploy.acme.dev",
      currentDate: new Date(c.clock.now),
    });
    expect(payload.runpass_grant).toBe("token");
    expect(payload.repository_id).toBe(ACME.repoId);

    const leases = c.ledger.leases();
    expect(leases.map((l) => l.id)).toEqual([res.lease.id]);
    expect(leases[0]?.policy).toBe("api-deploy");
    // The revoke token itself is never stored, only its digest.
    expect(JSON.stringify(leases)).not.toContain(res.lease.revoke_token);
    expect(c.ledger.records).toHaveLength(1);
    expect(c.ledger.records[0]).toMatchObject({
      event: "exchange",
      decision: "allow",
      lease_id: res.lease.id,
    });
    expect(c.audit.records).toEqual([]);
    // No token or credential value in any record.
    expect(JSON.stringify(c.ledger.records)).not.toContain(jwt);
  });

  it("caps the lease at the shortest of the policy ttl, the broker maximum and the requested ttl", async () => {
    const c = await core({ maxLeaseTtl: 600 });
    const now = Math.floor(c.clock.now / 1000);
    const expiry = (r: { lease: { expires_at: string } }) => Date.parse(r.lease.expires_at) / 1000 - now;
    expect(expiry(await exchange(input(await token(c)), c.deps))).toBe(600);
    expect(expiry(await exchange(input(await token(c), "api-short"), c.deps))).toBe(300);
    expect(expiry(await exchange(input(await token(c), "api-deploy", { ttl: 120 }), c.deps))).toBe(120);
  });

  it("refuses the same token a second time (token_replayed) and issues one lease only", async () => {
    const c = await core();
    const t = await token(c);
    await exchange(input(t), c.deps);
    const again = await refusal(exchange(input(t), c.deps));
    expect(again.code).toBe("token_replayed");
    expect(c.ledger.leases()).toHaveLength(1);
    expect(c.ledger.records.map((r) => r.decision)).toEqual(["allow", "deny"]);
  });

  it("refuses a token of a run that has ended, before or at commit", async () => {
    const c = await core();
    const first = await exchange(input(await token(c, { run_id: "777000111" })), c.deps);
    c.ledger.endRun(first.lease.run);
    const ended = await refusal(exchange(input(await token(c, { run_id: "777000111" })), c.deps));
    expect(ended.code).toBe("access_denied");
    expect(ended.reasons).toEqual([{ code: "run_ended" }]);
    expect(c.ledger.leases()).toHaveLength(1);
  });

  it("denies a token of another repository with the same words as an unknown policy, and audits both", async () => {
    const c = await core({ explainFull: true });
    const other = await refusal(exchange(input(await token(c, { repository_id: "1" })), c.deps));
    expect(other.code).toBe("access_denied");
    expect(other.reasons).toContainEqual(
      expect.objectContaining({ code: "claim_mismatch", claim: "repository_id" }),
    );
    const unknown = await refusal(exchange(input(await token(c), "no-such-policy"), c.deps));
    expect(unknown.code).toBe("access_denied");
    // No enumeration: the sentence names the requested policy either way.
    expect(unknown.message).toBe(other.message.replace("api-deploy", "no-such-policy"));
    expect(c.ledger.leases()).toEqual([]);
    expect(c.audit.records.map((r) => [r.event, r.decision, r.error, r.policy])).toEqual([
      ["exchange", "deny", "access_denied", "api-deploy"],
      ["exchange", "deny", "access_denied", "no-such-policy"],
    ]);
  });

  it("refuses a missing token, a token of another key and an expired token as invalid_token, with a record each", async () => {
    const c = await core();
    expect((await refusal(exchange(input(undefined), c.deps))).reasons).toEqual([{ code: "token_missing" }]);
    const forged = (await token(c)).replace(/\.[^.]+$/, ".AAAA");
    expect((await refusal(exchange(input(forged), c.deps))).code).toBe("invalid_token");
    const old = await token(c);
    c.clock.advance(3600_000);
    const expired = await refusal(exchange(input(old), c.deps));
    expect(expired.code).toBe("invalid_token");
    expect(expired.reasons[0]?.code).toBe("expired");
    expect(c.audit.records.map((r) => r.error)).toEqual(["invalid_token", "invalid_token", "invalid_token"]);
    expect(c.ledger.leases()).toEqual([]);
  });

  it("refuses an RFC 8693 audience the policy's token grant does not carry (target_invalid)", async () => {
    const c = await core();
    const wrong = await refusal(
      exchange(input(await token(c), "api-deploy", { audience: "https://elsewhere.test" }), c.deps),
    );
    expect(wrong.code).toBe("access_denied");
    expect(wrong.reasons).toEqual([{ code: "target_invalid" }]);
    const right = await exchange(
      input(await token(c), "api-deploy", { audience: "https://deploy.acme.dev" }),
      c.deps,
    );
    expect(right.credentials.token).toBeDefined();
  });

  it("answers 503 temporarily_unavailable when the ledger cannot commit, and audits the failure", async () => {
    const c = await core();
    c.ledger.unavailable = true;
    const down = await refusal(exchange(input(await token(c)), c.deps));
    expect(down.code).toBe("temporarily_unavailable");
    expect(down.retryAfter).toBe(5);
    expect(c.audit.records).toHaveLength(1);
    expect(c.audit.records[0]).toMatchObject({ decision: "deny", error: "temporarily_unavailable" });
  });
});

describe("explain over in-memory ports", () => {
  it("allows without consuming the token; after the exchange the same token explains as replayed", async () => {
    const c = await core({ explainFull: true });
    const t = await token(c);
    expect(await explain(input(t), c.deps)).toMatchObject({
      decision: "allow",
      policy: "api-deploy",
      reasons: [],
    });
    expect(c.ledger.leases()).toEqual([]);
    await exchange(input(t), c.deps);
    expect(await explain(input(t), c.deps)).toMatchObject({
      decision: "deny",
      error: "token_replayed",
      reasons: [{ code: "replayed" }],
    });
    expect(c.audit.records.map((r) => [r.event, r.decision])).toEqual([
      ["explain", "allow"],
      ["explain", "deny"],
    ]);
  });

  it("turns a token decision into a deny document: reasons for the policy's own repository, none for a stranger", async () => {
    const c = await core();
    const own = await explain(input(await token(c, { ref: "refs/heads/dev" })), c.deps);
    expect(own).toMatchObject({ decision: "deny", error: "access_denied", policy: "api-deploy" });
    expect(own.reasons).toContainEqual(expect.objectContaining({ code: "claim_mismatch", claim: "ref" }));
    expect(own.claims).toMatchObject({ ref: "refs/heads/dev" });
    const stranger = { repository_owner_id: "9", repository_id: "99" };
    expect(await explain(input(await token(c, stranger)), c.deps)).toEqual({
      decision: "deny",
      error: "access_denied",
      policy: "api-deploy",
    });
    const shown = await core({ explainFull: true });
    const full = await explain(input(await token(shown, stranger)), shown.deps);
    expect(full.reasons).toContainEqual(
      expect.objectContaining({ code: "claim_mismatch", claim: "repository_id" }),
    );
  });
});
