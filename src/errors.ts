// Moved to src/core/errors.ts; this re-export keeps files written against the old path compiling until they
// are updated. New code imports src/core/errors.ts.
export * from "./core/errors.ts";
