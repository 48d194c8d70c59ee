// Captures everything a test's code writes to the console (workerd and Node), for asserting that no secret is
// ever logged. Restore with vi.restoreAllMocks().

import { vi } from "vitest";

/** Starts capturing console output; the returned array fills with one string per call. */
export function captureConsole(): string[] {
  const lines: string[] = [];
  const capture = (...args: unknown[]) => {
    lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
  };
  for (const m of ["log", "error", "warn", "info", "debug"] as const)
    vi.spyOn(console, m).mockImplementation(capture);
  return lines;
}
