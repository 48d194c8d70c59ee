// The postgres grant's SQL building blocks against the real test server (test/support/postgres-server.ts): quoting
// round-trips nasty strings through PostgreSQL's own parser, the SCRAM verifier lets a real client log in with the
// plain password, statements accept only {{name}} and {{expires_at}}, role names have the documented shape.

import fc from "fast-check";
import postgres from "postgres";
import { afterAll, describe, expect, inject, it } from "vitest";
import {
  createRoleSql,
  dropRoleSql,
  fillStatement,
  quoteIdent,
  quoteLiteral,
  randomPassword,
  roleNameFor,
  SqlQuoteError,
  scramVerifier,
  statementProblem,
} from "../../src/core/grants/postgres-sql.ts";
import { PG_READONLY } from "../support/postgres-server.ts";

const pg = inject("postgres");
const admin = postgres(pg.adminUrl, { max: 1, onnotice: () => undefined });
afterAll(() => admin.end());

// Text PostgreSQL can hold (no NUL), biased towards quotes, backslashes, dollar quoting and comment markers.
const nasty = fc.string({
  unit: fc.oneof(
    fc.constantFrom("'", '"', "\\", "$", "$$", ";", "--", "/*", "*/", "E'", "\n", "\u2028", "é", "😀"),
    fc.string({ minLength: 1, maxLength: 1 }).filter((ch) => ch !== "\u0000"),
  ),
  maxLength: 40,
});

describe("quoting", () => {
  it("a quoted literal reads back as exactly the text, whatever it holds", async () => {
    await fc.assert(
      fc.asyncProperty(nasty, async (text) => {
        const rows = await admin.unsafe(`SELECT ${quoteLiteral(text)}::text AS v`);
        expect(rows[0]?.v).toBe(text);
      }),
      { numRuns: 150 },
    );
  });

  it("a quoted identifier is one name, exactly the text, whatever it holds", async () => {
    await fc.assert(
      fc.asyncProperty(
        nasty.filter((t) => t.length > 0 && new TextEncoder().encode(t).length < 63),
        async (name) => {
          const rows = await admin.unsafe(`SELECT 1 AS ${quoteIdent(name)}`);
          expect(Object.keys(rows[0] ?? {})).toEqual([name]);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("a literal's meaning does not depend on standard_conforming_strings", async () => {
    const text = String.raw`a\'; DROP ROLE x; --`;
    for (const setting of ["on", "off"]) {
      const rows = await admin.begin(async (tx) => {
        await tx.unsafe(`SET LOCAL standard_conforming_strings = ${setting}`);
        return tx.unsafe(`SELECT ${quoteLiteral(text)}::text AS v`);
      });
      expect(rows[0]?.v).toBe(text);
    }
  });

  it("NUL and empty identifiers are refused, never truncated", () => {
    expect(() => quoteLiteral("a\u0000b")).toThrow(SqlQuoteError);
    expect(() => quoteIdent("a\u0000b")).toThrow(SqlQuoteError);
    expect(() => quoteIdent("")).toThrow(SqlQuoteError);
  });
});

describe("SCRAM-SHA-256 verifier", () => {
  it("has PostgreSQL's stored form and lets a real client log in with the plain password only", async () => {
    const role = await roleNameFor(`lse_test.${randomPassword()}`);
    const password = randomPassword();
    const verifier = await scramVerifier(password);
    expect(verifier).toMatch(
      /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$/,
    );
    expect(verifier.includes(password)).toBe(false);
    const until = new Date(Date.now() + 600_000).toISOString();
    await admin.begin((tx) =>
      createRoleSql({
        role,
        verifier,
        validUntil: until,
        connectionLimit: 2,
        roles: [PG_READONLY],
        comment: "runpass lease lse_test",
        statements: [],
      }).map((s) => tx.unsafe(s)),
    );
    try {
      const url = (user: string, pw: string) =>
        `postgres://${user}:${pw}@${pg.host}:${pg.port}/${pg.database}`;
      const good = postgres(url(role, password), { max: 1 });
      const rows = await good`SELECT current_user AS u, (SELECT count(*) FROM widgets)::int AS n`;
      expect(rows[0]).toEqual({ u: role, n: 1 });
      await good.end();
      const bad = postgres(url(role, randomPassword()), { max: 1 });
      await expect(bad`SELECT 1`).rejects.toThrow(/password authentication failed/);
      await bad.end();
      // The server stores exactly what was sent: the verifier, never a password.
      const log = await import("node:fs").then((fs) => fs.readFileSync(pg.logFile, "utf8"));
      expect(log).toContain(verifier.split("$")[1] as string);
      expect(log.includes(password)).toBe(false);
    } finally {
      const drop = dropRoleSql(role, PG_READONLY, 1000, 1000);
      await admin.begin((tx) => [...drop.lockOut, drop.terminate, ...drop.drop].map((s) => tx.unsafe(s)));
    }
  });
});

describe("role names and statements", () => {
  it("role names are rp_ + 20 lowercase base32 characters, stable per lease, distinct across leases", async () => {
    const a = await roleNameFor("lse_a.x");
    expect(a).toMatch(/^rp_[a-z2-7]{20}$/);
    expect(await roleNameFor("lse_a.x")).toBe(a);
    expect(await roleNameFor("lse_a.y")).not.toBe(a);
  });

  it("statements accept only {{name}} and {{expires_at}}, one statement each, no claim templates", () => {
    expect(statementProblem("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{name}}")).toBeUndefined();
    expect(statementProblem("ALTER ROLE {{ name }} SET statement_timeout = '5s';")).toBeUndefined();
    expect(statementProblem("GRANT x TO {{repository}}")).toMatch(/not a placeholder/);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the claim template syntax this must refuse
    expect(statementProblem("GRANT x TO ${repository}")).toMatch(/claims never reach SQL/);
    expect(statementProblem("GRANT x TO {{name}}; DROP TABLE widgets")).toMatch(/one statement/);
    expect(statementProblem("GRANT x TO {name}}")).toMatch(/not a placeholder/);
    expect(statementProblem("  ")).toMatch(/empty/);
  });

  it("placeholders are filled quoted: the role as an identifier, the expiry as a literal", () => {
    expect(fillStatement("GRANT r TO {{name}};", 'rp_a"b', "2026-01-01T00:00:00.000Z")).toBe(
      'GRANT r TO "rp_a""b"',
    );
    expect(fillStatement("COMMENT ON ROLE {{name}} IS {{expires_at}}", "rp_x", "it's")).toBe(
      `COMMENT ON ROLE "rp_x" IS E'it''s'`,
    );
  });
});
