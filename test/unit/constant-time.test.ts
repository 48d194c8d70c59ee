// One constant-time comparison for text of public length (src/core/crypto.ts equalText), used for lease MACs,
// revoke-token hashes and webhook signatures: it answers exactly what === answers.

import { describe, expect, it } from "vitest";
import { equalText } from "../../src/core/crypto.ts";

describe("equalText", () => {
  it("is true only for the same string", () => {
    expect(equalText("a1b2c3", "a1b2c3")).toBe(true);
    expect(equalText("", "")).toBe(true);
    expect(equalText("a1b2c3", "a1b2c4")).toBe(false);
    expect(equalText("a1b2c3", "a1b2c")).toBe(false);
    expect(equalText("a1b2c", "a1b2c3")).toBe(false);
  });

  it("tells apart strings that encode to the same UTF-8 bytes (lone surrogates)", () => {
    expect(equalText("\ud800", "\udc00")).toBe(false);
  });
});
