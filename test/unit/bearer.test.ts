// Authorization header parsing (docs/security.md, "Cheap rejections stay cheap"): one pass, length first.

import { describe, expect, it } from "vitest";
import { parseBearer } from "../../src/http/request.ts";

describe("parseBearer", () => {
  it("reads the token of well-formed headers, whatever the scheme's case and the spacing around the token", () => {
    expect(parseBearer("Bearer a.b.c", 100)).toEqual({ ok: true, value: "a.b.c" });
    expect(parseBearer("bearer   a.b.c  ", 100)).toEqual({ ok: true, value: "a.b.c" });
    expect(parseBearer("BEARER a.b.c\t", 100)).toEqual({ ok: true, value: "a.b.c" });
  });

  it("refuses other schemes, a missing token and a token followed by anything", () => {
    for (const header of [
      "Basic dXNlcjpwYXNz",
      "Bearer",
      "Bearer ",
      "Bearer    ",
      "Bearer a b",
      "Bearer\ta",
      "Bearera",
    ]) {
      expect(parseBearer(header, 100), JSON.stringify(header)).toEqual({ ok: false, error: "malformed" });
    }
  });

  it("refuses by length before parsing: a megabyte of spaces is too large, not a regex's worst case", () => {
    expect(parseBearer(`Bearer${" ".repeat(1 << 20)}x y`, 16_384)).toEqual({
      ok: false,
      error: "too_large",
    });
    expect(parseBearer(`Bearer ${"a".repeat(101)}`, 100)).toEqual({ ok: false, error: "too_large" });
    // Just under the header cap but spaces all the way: malformed, found in one pass.
    expect(parseBearer(`Bearer${" ".repeat(150)}x y`, 100)).toEqual({ ok: false, error: "malformed" });
  });
});
