// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy templates are written ${claim}.
// Pure grant helpers: PKCS#1 → PKCS#8 for GitHub App keys, templates and AWS sanitisers, sealed handles,
// bounded retries.

import { generateKeyPairSync } from "node:crypto";
import { importPKCS8, jwtVerify, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { toPkcs8Pem } from "../../src/core/grants/pkcs.ts";
import { Sealer } from "../../src/core/grants/seal.ts";
import {
  fillTemplate,
  sanitiseSessionName,
  sanitiseTagKey,
  sanitiseTagValue,
  templateProblem,
} from "../../src/core/grants/template.ts";
import { UpstreamError, withRetry } from "../../src/core/grants/upstream.ts";

describe("GitHub App keys", () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pkcs1 = privateKey.export({ type: "pkcs1", format: "pem" }) as string;
  const pkcs8 = privateKey.export({ type: "pkcs8", format: "pem" }) as string;

  it("a PKCS#1 PEM (as GitHub hands it out) becomes the same PKCS#8 key node:crypto produces", () => {
    expect(toPkcs8Pem(pkcs1)?.replace(/\s+/g, "")).toBe(pkcs8.replace(/\s+/g, ""));
  });

  it("PKCS#8 passes through, escaped newlines are accepted, anything else is refused", () => {
    expect(toPkcs8Pem(pkcs8)).toBe(pkcs8.trim());
    expect(toPkcs8Pem(pkcs1.replace(/\n/g, "\\n"))?.replace(/\s+/g, "")).toBe(pkcs8.replace(/\s+/g, ""));
    expect(toPkcs8Pem("not a key")).toBeUndefined();
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
      type: "sec1",
      format: "pem",
    });
    expect(toPkcs8Pem(ec as string)).toBeUndefined();
  });

  it("the converted key signs an App JWT that verifies with the public key", async () => {
    const key = await importPKCS8(toPkcs8Pem(pkcs1) as string, "RS256");
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: "RS256" }).setIssuer("1").sign(key);
    const { payload } = await jwtVerify(jwt, publicKey);
    expect(payload.iss).toBe("1");
  });
});

describe("templates", () => {
  it("fills from claims, and refuses a template whose claim is absent or not a scalar", () => {
    expect(fillTemplate("api-${run_id}-${ok}", { run_id: "42", ok: true })).toEqual({
      ok: true,
      value: "api-42-true",
    });
    expect(fillTemplate("${missing}", {})).toEqual({ ok: false, error: { claim: "missing" } });
    expect(fillTemplate("${obj}", { obj: { a: 1 } })).toEqual({ ok: false, error: { claim: "obj" } });
    expect(fillTemplate("${toString}", {})).toEqual({ ok: false, error: { claim: "toString" } });
  });

  it("flags a ${ that is not a placeholder", () => {
    expect(templateProblem("${repository}")).toBeUndefined();
    expect(templateProblem("${repo sitory}")).toMatch(/placeholder/);
    expect(templateProblem("cost: $5")).toBeUndefined();
  });
});

describe("AWS sanitisers", () => {
  it("session names keep STS's charset and 2–64 length", () => {
    expect(sanitiseSessionName("acme/api run#1")).toBe("acme-api-run-1");
    expect(sanitiseSessionName("x")).toBe("x-");
    expect(sanitiseSessionName("a".repeat(100))).toHaveLength(64);
  });

  it("tag keys and values keep AWS's charset and length limits, counted in characters", () => {
    expect(sanitiseTagValue("deploy (prod) ✓")).toBe("deploy _prod_ _");
    expect(sanitiseTagValue("ü".repeat(300))).toHaveLength(256);
    expect(sanitiseTagKey("k".repeat(200))).toHaveLength(128);
    expect(sanitiseTagKey("")).toBe("_");
    expect(sanitiseTagValue("acme/api:main@v1+2=3")).toBe("acme/api:main@v1+2=3");
  });
});

describe("sealed revocation handles", () => {
  it("open only for the lease they were sealed for, and not after tampering or with another key", async () => {
    const sealer = new Sealer("k".repeat(40));
    const handle = await sealer.seal("ghs_secret", "lse_a.b");
    expect(handle).not.toContain("ghs_secret");
    expect(await sealer.open(handle, "lse_a.b")).toBe("ghs_secret");
    expect(await sealer.open(handle, "lse_other.b")).toBeUndefined();
    expect(await new Sealer("j".repeat(40)).open(handle, "lse_a.b")).toBeUndefined();
    const tampered = `${handle.slice(0, -2)}${handle.endsWith("A") ? "B" : "A"}A`;
    expect(await sealer.open(tampered, "lse_a.b")).toBeUndefined();
  });
});

describe("bounded retries", () => {
  it("retries retryable failures up to the budget, never non-retryable ones or rate limits with Retry-After", async () => {
    const sleep = async () => {};
    let calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw new UpstreamError("5xx", { retryable: true });
        },
        { attempts: 3, baseDelayMs: 1, sleep },
      ),
    ).rejects.toThrow("5xx");
    expect(calls).toBe(3);
    calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw new UpstreamError("denied", { retryable: false });
        },
        { attempts: 3, baseDelayMs: 1, sleep },
      ),
    ).rejects.toThrow();
    expect(calls).toBe(1);
    calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw new UpstreamError("rate limited", { retryable: true, retryAfter: 60 });
        },
        { attempts: 3, baseDelayMs: 1, sleep },
      ),
    ).rejects.toThrow();
    expect(calls).toBe(1);
  });
});
