// Moved to src/core/constants.ts; this re-export keeps files written against the old path compiling until they
// are updated. New code imports src/core/constants.ts.
export * from "./core/constants.ts";
