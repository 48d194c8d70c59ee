// "Did you mean" hints for misspelt keys and claim names, shared by the loader and the linter.

/** Levenshtein distance between two strings. */
export function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) (dp[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = dp[i] as number[];
      const prev = dp[i - 1] as number[];
      row[j] = Math.min(
        (prev[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
  }
  return (dp[a.length] as number[])[b.length] as number;
}

/** The candidate closest to `word` (the first of equals), when it is at most `maxDistance` edits away. */
export function nearest(word: string, candidates: Iterable<string>, maxDistance: number): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= maxDistance ? best : undefined;
}

/** The top-level keys of a policy file, for hints on unknown ones. */
const POLICY_KEYS = ["description", "issuer", "audience", "allow", "deny", "ttl", "grants", "token"];

/** ` (did you mean "…"?)` for an unknown policy-file key at `path`, or "" (only top-level keys get a hint). */
export function policyKeyHint(key: string, path: ReadonlyArray<string | number>): string {
  if (path.length > 1) return "";
  const close = nearest(key, POLICY_KEYS, 2);
  return close ? ` (did you mean "${close}"?)` : "";
}
