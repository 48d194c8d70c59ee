// The pure parts of leak response and alerts (docs/leaks.md): report parsing, fingerprints, thresholds,
// business hours, the alert body and signature, GitHub's DER signatures, and the CLI's request bodies.

import { createHmac, generateKeyPairSync, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { crc32 as zlibCrc32 } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { leakBody, parseTrufflehog } from "../../src/cli/leak.ts";
import {
  alertPayload,
  alertSignature,
  alertWebhookProblem,
  parseAlertThresholds,
  parseBusinessHours,
  withinBusinessHours,
} from "../../src/core/alerts/alert.ts";
import {
  checksummedCredential,
  crc32,
  credentialChecksumValid,
  POSTGRES_PASSWORD_PREFIX,
  REVOKE_TOKEN_PREFIX,
} from "../../src/core/credential-format.ts";
import { credentialFingerprints, Fingerprinter } from "../../src/core/leaks/fingerprint.ts";
import { derToRaw } from "../../src/core/leaks/github-keys.ts";
import { leakCandidates } from "../../src/core/leaks/reports.ts";
import { diffPolicy } from "../../src/core/policy/diff.ts";
import type { PolicyDefinition } from "../../src/core/policy/types.ts";

const KEY = "unit-audit-key-0123456789abcdef0123456789";

describe("fingerprints", () => {
  it("are keyed (another key gives another digest), ignore surrounding whitespace, and never contain the value", async () => {
    const a = new Fingerprinter(KEY);
    const b = new Fingerprinter(`${KEY}-other`);
    const value = "ghs_0123456789abcdefABCDEF0123456789abcd";
    const fp = await a.digest(value);
    expect(fp).toMatch(/^lfp:[A-Za-z0-9_-]{43}$/);
    expect(await a.digest(`  ${value}\n`)).toBe(fp);
    expect(await b.digest(value)).not.toBe(fp);
    expect(fp).not.toContain(value);
  });

  it("cover every grant's secretValues and the revoke token, secrets bundles excepted", async () => {
    const f = new Fingerprinter(KEY);
    const fps = await credentialFingerprints(
      f,
      {
        token: { token: "eyJ.token.sig", expires_at: "" },
        aws: {
          access_key_id: "ASIAEXAMPLE",
          secret_access_key: "secret",
          session_token: "session",
          expires_at: "",
          region: "eu-west-1",
        },
        secrets: { STRIPE: "sk_live_x" },
      },
      "rvk_abc",
      async (ref) => `sealed(${ref})`,
    );
    expect(fps.map((x) => x.kind)).toEqual(["token", "aws", "aws", "aws", "revoke_token"]);
    // The access key id travels only sealed (clients mask it like any credential value).
    expect(fps.filter((x) => x.kind === "aws").every((x) => x.ref === "sealed(ASIAEXAMPLE)")).toBe(true);
    expect(fps.filter((x) => x.kind !== "aws").every((x) => x.ref === undefined)).toBe(true);
    expect(fps.map((x) => x.fp)).not.toContain(await f.digest("sk_live_x"));
  });
});

describe("reports", () => {
  it("read gitleaks' Secret (Match when empty) and trufflehog's Raw and RawV2, with where each was found", () => {
    const g = leakCandidates({
      gitleaks: [
        { Secret: "s1", Match: "x=s1", File: "a.log", StartLine: 3, RuleID: "runpass-token" },
        { Secret: "", Match: "s2", File: "b.log", RuleID: "generic" },
      ],
    });
    expect(g).toEqual([
      { value: "s1", source: "gitleaks runpass-token a.log:3" },
      { value: "s2", source: "gitleaks generic b.log" },
    ]);
    const t = leakCandidates({
      trufflehog: [
        {
          DetectorName: "AWS",
          Raw: "AKIA1",
          RawV2: "AKIA1secret",
          SourceMetadata: { Data: { Git: { file: "ci.yml", line: 7, commit: "abc" } } },
        },
      ],
    });
    expect(t).toEqual([
      { value: "AKIA1", source: "trufflehog AWS ci.yml:7" },
      { value: "AKIA1secret", source: "trufflehog AWS ci.yml:7" },
    ]);
  });

  it("refuse an empty report and keep control characters out of sources", () => {
    expect(() => leakCandidates({ values: ["  "] })).toThrow(/names no value/);
    expect(leakCandidates({ values: ["v"], source: "a\nb\u0000c" })[0]?.source).toBe("a b c");
  });

  it("strip URL credentials from sources (trufflehog prints repository URLs with user:token@)", () => {
    const [found] = leakCandidates({
      trufflehog: [
        {
          Raw: "AKIA2",
          DetectorName: "AWS",
          SourceMetadata: {
            Data: { Git: { repository: "https://ci-bot:ghp_s3cret@github.com/acme/api.git" } },
          },
        },
      ],
    });
    expect(found?.source).toBe("trufflehog AWS https://github.com/acme/api.git");
    expect(
      leakCandidates({ values: ["v"], source: "see ssh://git:pw@host/x and http://u@h/y" })[0]?.source,
    ).toBe("see ssh://host/x and http://h/y");
  });
});

describe("alert settings", () => {
  it("thresholds default as documented and can be overridden; typos fail closed", () => {
    const d = parseAlertThresholds(undefined);
    expect(d.failed_auth_burst).toEqual({ count: 50, windowMs: 300_000 });
    expect(d.denial_burst).toEqual({ count: 20, windowMs: 300_000 });
    expect(d.issuance_burst_run).toEqual({ count: 50, windowMs: 600_000 });
    expect(d.issuance_burst_repository).toEqual({ count: 500, windowMs: 600_000 });
    const o = parseAlertThresholds('{"denial_burst":"3/1m","dedupe":"1h"}');
    expect(o.denial_burst).toEqual({ count: 3, windowMs: 60_000 });
    expect(o.dedupe_ms).toBe(3_600_000);
    expect(() => parseAlertThresholds('{"denial_brust":"3/1m"}')).toThrow(/RUNPASS_ALERTS/);
    expect(() => parseAlertThresholds('{"denial_burst":"lots"}')).toThrow(/RUNPASS_ALERTS/);
  });

  it("business hours follow the named time zone, including daylight saving", () => {
    const h = parseBusinessHours("Mon-Fri 07:00-19:00 Europe/Berlin");
    if (!h) throw new Error("parsed nothing");
    // Wednesday 2026-12-02 06:30 UTC = 07:30 in Berlin (CET): inside.
    expect(withinBusinessHours(h, Date.parse("2026-12-02T06:30:00Z"))).toBe(true);
    // 05:30 UTC = 06:30 Berlin: outside.
    expect(withinBusinessHours(h, Date.parse("2026-12-02T05:30:00Z"))).toBe(false);
    // Summer (CEST, UTC+2): 17:30 UTC = 19:30 Berlin: outside; 16:30 UTC = 18:30: inside.
    expect(withinBusinessHours(h, Date.parse("2026-07-01T17:30:00Z"))).toBe(false);
    expect(withinBusinessHours(h, Date.parse("2026-07-01T16:30:00Z"))).toBe(true);
    // Saturday noon: outside.
    expect(withinBusinessHours(h, Date.parse("2026-12-05T11:00:00Z"))).toBe(false);
    expect(parseBusinessHours(undefined)).toBeUndefined();
    expect(() => parseBusinessHours("Mon-Fri 07:00-19:00 Mars/Olympus")).toThrow(/time zone/);
    expect(() => parseBusinessHours("Mon-Fri 19:00-07:00 UTC")).toThrow(/end time/);
    expect(() => parseBusinessHours("Weekdays")).toThrow(/RUNPASS_BUSINESS_HOURS/);
  });

  it("the webhook is https, or http to a loopback host in dev mode only", () => {
    expect(alertWebhookProblem("https://hooks.slack.com/services/x", false)).toBeUndefined();
    expect(alertWebhookProblem("http://127.0.0.1:9000/alerts", true)).toBeUndefined();
    expect(alertWebhookProblem("http://127.0.0.1:9000/alerts", false)).toMatch(/https/);
    expect(alertWebhookProblem("http://alerts.example.com/", true)).toMatch(/https/);
    expect(alertWebhookProblem("https://user:pw@example.com/", false)).toMatch(/credentials/);
  });

  it("the body is Slack-compatible and signed with sha256=<hex HMAC> of the raw body", async () => {
    const payload = alertPayload(
      {
        alert: "admin_revoke",
        key: "k",
        summary: "revoke",
        details: { run: "github:x:1:2:1", ended_leases: 2 },
        request_ids: ["req_1"],
      },
      Date.parse("2026-12-02T10:00:00Z"),
    );
    expect(payload).toMatchObject({
      alert: "admin_revoke",
      severity: "high",
      at: "2026-12-02T10:00:00.000Z",
    });
    expect(payload.text).toContain("admin_revoke");
    const body = JSON.stringify(payload);
    // Signed over "<timestamp>.<body>": the same body at another time has another signature (no replay).
    const expected = `sha256=${createHmac("sha256", "s3cret").update(`1764669600.${body}`).digest("hex")}`;
    expect(await alertSignature("s3cret", body, 1764669600)).toBe(expected);
    expect(await alertSignature("s3cret", body, 1764669601)).not.toBe(expected);
  });
});

describe("GitHub partner signatures", () => {
  it("DER ECDSA signatures convert to the r‖s form WebCrypto verifies", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const body = Buffer.from('[{"token":"x"}]');
    for (let i = 0; i < 20; i++) {
      const der = sign("sha256", body, privateKey);
      const raw = derToRaw(new Uint8Array(der));
      expect(raw).toBeDefined();
      const key = await crypto.subtle.importKey(
        "spki",
        publicKey.export({ type: "spki", format: "der" }),
        { name: "ECDSA", namedCurve: "P-256" },
        false,
        ["verify"],
      );
      expect(
        await crypto.subtle.verify(
          { name: "ECDSA", hash: "SHA-256" },
          key,
          raw as Uint8Array<ArrayBuffer>,
          body,
        ),
      ).toBe(true);
    }
    expect(derToRaw(new Uint8Array([0x30, 0x02, 0x02, 0x00]))).toBeUndefined();
  });
});

describe("runpass admin leak", () => {
  afterEach(() => {
    delete process.env.LEAKED_VALUE;
  });

  it("reads a value from the environment, never argv, and trufflehog's one-object-per-line output", () => {
    process.env.LEAKED_VALUE = "rvk_leaked";
    expect(leakBody({ "value-env": "LEAKED_VALUE", source: "slack" })).toEqual({
      values: ["rvk_leaked"],
      source: "slack",
    });
    expect(() => leakBody({ "value-env": "NOT_SET_ANYWHERE" })).toThrow(/not set/);
    expect(() => leakBody({})).toThrow(/exactly one/);
    expect(parseTrufflehog('{"Raw":"a"}\n{"Raw":"b"}\n')).toEqual([{ Raw: "a" }, { Raw: "b" }]);
    expect(parseTrufflehog('[{"Raw":"a"}]')).toEqual([{ Raw: "a" }]);
  });
});

/** A rule of docs/scanners/gitleaks.toml as a RegExp (gitleaks' Go RE2 syntax here is also valid JavaScript). */
function gitleaksRule(id: string): RegExp {
  const toml = readFileSync(new URL("../../docs/scanners/gitleaks.toml", import.meta.url), "utf8");
  const source = new RegExp(`id = "${id}"[\\s\\S]*?regex = '''(.+?)'''`).exec(toml)?.[1];
  if (!source) throw new Error(`no ${id} rule`);
  return new RegExp(source);
}

describe("scanner rules for runpass's credentials", () => {
  it("the gitleaks rule in docs/scanners matches an issued revoke token, and the checksum rejects look-alikes", () => {
    const rule = gitleaksRule("runpass-revoke-token");
    for (let i = 0; i < 50; i++) {
      const token = checksummedCredential(REVOKE_TOKEN_PREFIX);
      expect(rule.exec(`export RUNPASS_REVOKE="${token}"`)?.[1]).toBe(token);
      expect(credentialChecksumValid(token)).toBe(true);
      const flipped = token.slice(0, 10) + (token[10] === "a" ? "b" : "a") + token.slice(11);
      expect(credentialChecksumValid(flipped)).toBe(false);
    }
    expect(rule.test("rvk_short")).toBe(false);
  });

  it("the gitleaks rule matches a postgres grant password, alone and inside its postgresql:// URL", () => {
    const rule = gitleaksRule("runpass-postgres-password");
    for (let i = 0; i < 20; i++) {
      const password = checksummedCredential(POSTGRES_PASSWORD_PREFIX);
      expect(credentialChecksumValid(password)).toBe(true);
      expect(rule.exec(`PGPASSWORD=${password}`)?.[1]).toBe(password);
      expect(rule.exec(`postgresql://rp_abc:${password}@db.internal:5432/app?sslmode=require`)?.[1]).toBe(
        password,
      );
    }
  });

  it("crc32 is zlib's", () => {
    for (const text of ["", "runpass", "0123456789ABCDEFGHIJabcdefghij0123456789"]) {
      expect(crc32(text)).toBe(zlibCrc32(text));
    }
  });
});

describe("sensitive policies in policy diff", () => {
  it("marking or unmarking a policy sensitive is reported", () => {
    const base: PolicyDefinition = {
      name: "deploy",
      version: "sha256:0",
      issuer: "github",
      allow: { repository_id: ["42"] },
      deny: [],
      ttl: 900,
      grants: { token: { audience: "https://api.example", ttl: 300 } },
    };
    const marked = { ...base, sensitive: true };
    expect(diffPolicy(base, marked).map((c) => c.text)).toEqual([
      "now sensitive: use outside business hours raises an alert",
    ]);
    expect(diffPolicy(marked, base).map((c) => c.text)).toEqual([
      "no longer sensitive: use outside business hours no longer raises an alert",
    ]);
  });
});
