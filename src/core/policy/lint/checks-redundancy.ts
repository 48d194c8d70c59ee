// Checks for configuration that does nothing: a deny entry that swallows the whole allow block (RP016), and two
// policies that admit the same callers (RP017).

import { isGlob } from "../glob.ts";
import type { Scalar } from "../types.ts";
import { type Cond, type Findings, type Policy, valueMatches } from "./model.ts";

/** True when every value `a` of allow (for one claim) is also matched by one of the deny values. */
function covered(allowValues: Scalar[], denyValues: Scalar[]): boolean {
  return allowValues.every((a) =>
    denyValues.some((d) => {
      if (typeof a !== "string" || !isGlob(a)) {
        if (d === a) return true;
        return typeof a === "string" && typeof d === "string" && isGlob(d) && valueMatches(d, a);
      }
      // A glob in allow: only the same glob or `**` (any string) surely covers it.
      return d === a || d === "**";
    }),
  );
}

export function deadPolicy(p: Policy, f: Findings): void {
  for (const [i, d] of p.deny.entries()) {
    if (d.size === 0) continue;
    const all = [...d.values()].every((cond) => {
      const a = p.allow.get(cond.claim);
      return a !== undefined && covered(a.values, cond.values);
    });
    if (all) {
      f.add(
        p,
        "RP016",
        ["deny", i],
        false,
        `deny entry ${i + 1} (${[...d.keys()].join(", ")}) matches every token allow accepts: this policy can never grant anything`,
      );
    }
  }
}

/** Order-insensitive canonical text of a condition map. */
function canonical(map: Map<string, Cond>): string {
  return JSON.stringify(
    [...map.values()]
      .map((c) => [c.claim, [...new Set(c.values.map((v) => JSON.stringify(v)))].sort()] as const)
      .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)),
  );
}

export function duplicates(policies: Policy[], f: Findings): void {
  const seen = new Map<string, Policy>();
  for (const p of policies) {
    const key = JSON.stringify([
      p.issuerName,
      p.raw.audience ?? null,
      canonical(p.allow),
      [...new Set(p.deny.map(canonical))].sort(),
    ]);
    const first = seen.get(key);
    if (!first) {
      seen.set(key, p);
      continue;
    }
    const sameGrants = JSON.stringify(p.raw.grants) === JSON.stringify(first.raw.grants);
    f.add(
      p,
      "RP017",
      ["allow"],
      true,
      `same issuer, audience, allow and deny as policy "${first.name}" (${first.file})${
        sameGrants ? ", and the same grants: it is redundant" : ": the same callers can use either"
      }`,
    );
  }
}
