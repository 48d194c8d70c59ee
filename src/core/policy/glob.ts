// Anchored globs without regular expressions: `*` within one /-segment, `**` across segments, `?` one non-/ char.
// Matching simulates the pattern as an NFA over its tokens, so time is O(pattern × input) whatever the input.

type Token = { t: "lit"; c: string } | { t: "any1" } | { t: "star" } | { t: "globstar" };

/** A compiled glob: a literal prefix and suffix checked directly, and the wildcard middle run as an NFA. */
export interface Glob {
  readonly source: string;
  /** Literal text before the first wildcard, and after the last one. */
  readonly prefix: string;
  readonly suffix: string;
  /** The tokens between them (starts and ends with a wildcard; empty for a pattern without one). */
  readonly middle: readonly Token[];
}

/** True when a policy value is a glob rather than an exact value. */
export function isGlob(value: string): boolean {
  return value.includes("*") || value.includes("?");
}

/** Returns a problem with a glob pattern, or undefined when it is well-formed. */
export function globProblem(pattern: string): string | undefined {
  if (pattern.includes("***"))
    return `"${pattern}": "***" is not a pattern; use "**" (any path) or "*" (one segment)`;
  return undefined;
}

/** Compiles a glob pattern into tokens. */
export function compileGlob(pattern: string): Glob {
  const tokens: Token[] = [];
  // Code points, not UTF-16 units: `?` is one character even outside the BMP.
  const chars = Array.from(pattern);
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] as string;
    if (c === "*") {
      if (chars[i + 1] === "*") {
        tokens.push({ t: "globstar" });
        i++;
      } else {
        tokens.push({ t: "star" });
      }
    } else if (c === "?") {
      tokens.push({ t: "any1" });
    } else {
      tokens.push({ t: "lit", c });
    }
  }
  let start = 0;
  while (start < tokens.length && (tokens[start] as Token).t === "lit") start++;
  let end = tokens.length;
  while (end > start && (tokens[end - 1] as Token).t === "lit") end--;
  const literal = (ts: Token[]) => ts.map((t) => (t as { c: string }).c).join("");
  return {
    source: pattern,
    prefix: literal(tokens.slice(0, start)),
    suffix: literal(tokens.slice(end)),
    middle: tokens.slice(start, end),
  };
}

/**
 * Tests `input` against the whole glob (anchored at both ends). Literal prefix and suffix are compared
 * directly (most policy globs are `literal*literal`), then the middle runs through the NFA: still linear.
 */
export function matchGlob(glob: Glob, input: string): boolean {
  const { prefix, suffix, middle } = glob;
  if (middle.length === 0) return input === prefix;
  if (input.length < prefix.length + suffix.length) return false;
  if (!input.startsWith(prefix) || !input.endsWith(suffix)) return false;
  const rest = input.slice(prefix.length, input.length - suffix.length);
  if (middle.length === 1) {
    const only = (middle[0] as Token).t;
    if (only === "globstar") return true;
    if (only === "star") return !rest.includes("/");
  }
  return runNfa(middle, rest);
}

function runNfa(tokens: readonly Token[], input: string): boolean {
  const n = tokens.length;
  let current = new Uint8Array(n + 1);
  let next = new Uint8Array(n + 1);
  current[0] = 1;
  closeOverStars(tokens, current);
  for (const ch of input) {
    next.fill(0);
    let alive = false;
    for (let s = 0; s < n; s++) {
      if (!current[s]) continue;
      const tok = tokens[s] as Token;
      switch (tok.t) {
        case "lit":
          if (tok.c === ch) next[s + 1] = 1;
          break;
        case "any1":
          if (ch !== "/") next[s + 1] = 1;
          break;
        case "star":
          if (ch !== "/") next[s] = 1;
          break;
        case "globstar":
          next[s] = 1;
          break;
      }
    }
    closeOverStars(tokens, next);
    for (let s = 0; s <= n; s++) if (next[s]) alive = true;
    if (!alive) return false;
    [current, next] = [next, current];
  }
  return current[n] === 1;
}

/** Stars match the empty string, so a live state before a star also makes the state after it live. */
function closeOverStars(tokens: readonly Token[], states: Uint8Array): void {
  for (let s = 0; s < tokens.length; s++) {
    const t = (tokens[s] as Token).t;
    if (states[s] && (t === "star" || t === "globstar")) states[s + 1] = 1;
  }
}
