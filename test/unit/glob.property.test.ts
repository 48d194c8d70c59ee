// Property tests for the policy glob matcher: it agrees with a regex oracle, `*` stays inside a segment, and
// matching is linear (adversarial patterns that would make a backtracking matcher explode finish at once).

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileGlob, matchGlob } from "../../src/core/policy/glob.ts";

const match = (pattern: string, input: string): boolean => matchGlob(compileGlob(pattern), input);

/**
 * Test oracle only: the glob as an anchored regular expression over code points (`u` flag). `**` → any run,
 * `*` → a run without `/`, `?` → one code point other than `/`; read left to right, so `***` is `**` then `*`.
 */
function referenceRegex(pattern: string): RegExp {
  const chars = Array.from(pattern);
  let source = "";
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] as string;
    if (c === "*" && chars[i + 1] === "*") {
      source += "[\\s\\S]*";
      i++;
    } else if (c === "*") {
      source += "[^/]*";
    } else if (c === "?") {
      source += "[^/]";
    } else {
      source += c.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
    }
  }
  return new RegExp(`^(?:${source})$`, "u");
}

const referenceMatch = (pattern: string, input: string): boolean => referenceRegex(pattern).test(input);

// A small alphabet makes matches (and near misses) common; the astral character checks code-point handling.
const patternChar = fc.constantFrom("a", "b", ".", "/", "*", "?", "😀");
const inputChar = fc.constantFrom("a", "b", ".", "/", "*", "?", "😀");
const pattern = fc.array(patternChar, { maxLength: 12 }).map((cs) => cs.join(""));
const input = fc.array(inputChar, { maxLength: 16 }).map((cs) => cs.join(""));

describe("glob matcher vs the regex oracle", () => {
  it("agrees on random patterns and inputs", () => {
    fc.assert(
      fc.property(pattern, input, (p, s) => {
        expect(match(p, s)).toBe(referenceMatch(p, s));
      }),
      { numRuns: 5000 },
    );
  });

  it("agrees on inputs built to match: each token replaced by something it accepts", () => {
    // Random inputs rarely match long patterns; derive a likely match from the pattern itself.
    const filler = fc
      .array(fc.constantFrom("a", "b", ".", "/", "😀"), { maxLength: 4 })
      .map((cs) => cs.join(""));
    fc.assert(
      fc.property(pattern, fc.array(filler, { minLength: 12, maxLength: 12 }), (p, fills) => {
        const s = Array.from(p)
          .map((c, i) => (c === "*" || c === "?" ? (fills[i] as string) : c))
          .join("");
        expect(match(p, s)).toBe(referenceMatch(p, s));
      }),
      { numRuns: 3000 },
    );
  });

  it("a pattern without * or ? matches exactly itself", () => {
    const exact = fc
      .array(fc.constantFrom("a", "b", ".", "/", "😀"), { maxLength: 10 })
      .map((cs) => cs.join(""));
    fc.assert(
      fc.property(exact, input, (p, s) => {
        expect(match(p, p)).toBe(true);
        expect(match(p, s)).toBe(p === s);
      }),
    );
  });
});

describe("segments", () => {
  it("* (and ?) never match a string containing /", () => {
    const segmentPattern = fc
      .array(fc.constantFrom("a", "b", ".", "*", "?", "😀"), { maxLength: 10 })
      .map((cs) => cs.join(""))
      .filter((p) => !p.includes("**"));
    fc.assert(
      fc.property(segmentPattern, input, (p, s) => {
        fc.pre(s.includes("/"));
        expect(match(p, s)).toBe(false);
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(input, (s) => {
        expect(match("*", s)).toBe(!s.includes("/"));
      }),
    );
  });

  it("** matches every string, including ones with /", () => {
    fc.assert(
      fc.property(input, (s) => {
        expect(match("**", s)).toBe(true);
      }),
    );
  });

  it("? is exactly one code point other than /", () => {
    fc.assert(
      fc.property(inputChar, (c) => {
        expect(match("?", c)).toBe(c !== "/");
        expect(match("?", c + c)).toBe(false);
      }),
    );
  });
});

describe("linear time on adversarial patterns", () => {
  // A backtracking matcher takes time exponential in the number of stars on these; the NFA simulation is
  // O(pattern × input). No timing assertion: they simply have to finish within the test timeout.
  const stars = "*a".repeat(100); // length 200
  const longA = "a".repeat(100_000);

  it("*a*a*a… (length 200) against 100k characters", () => {
    expect(stars.length).toBe(200);
    expect(match(stars, longA)).toBe(true);
    expect(match(stars, `${longA}b`)).toBe(false);
    expect(match(`${stars}b`, longA)).toBe(false);
  });

  it("**a**a… and ?-heavy patterns against 100k characters", () => {
    const globstars = "**a".repeat(67);
    expect(match(globstars, longA)).toBe(true);
    expect(match(globstars, `${longA}/b`)).toBe(false);
    expect(match(`${"?*".repeat(100)}b`, longA)).toBe(false);
    // A / near the end cuts every single-segment star: a backtracker would retry each split.
    expect(match(stars, `${longA.slice(1)}/`)).toBe(false);
  });
});
