// Real parts the test suites run (README, Development): PostgreSQL, OpenSSH, OpenSSL, Chromium. On a fresh machine
// a test's setup installs what is missing through apt-get when it runs as root; otherwise it fails with the exact
// command to run. Never a skip: a suite that cannot get its real part fails.

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/** One OS-provided tool: where its binary may be, and the Debian packages that provide it. */
export interface SystemTool {
  /** Human name, for messages. */
  name: string;
  /** Candidate absolute paths or PATH names, first found wins (globs are not expanded). */
  binaries: string[];
  /** Debian packages that provide it. */
  packages: string[];
}

export const POSTGRESQL: SystemTool = {
  name: "PostgreSQL server",
  binaries: [
    "/usr/lib/postgresql/17/bin/postgres",
    "/usr/lib/postgresql/16/bin/postgres",
    "/usr/lib/postgresql/15/bin/postgres",
  ],
  packages: ["postgresql", "postgresql-client"],
};
export const SSHD: SystemTool = {
  name: "OpenSSH server",
  binaries: ["/usr/sbin/sshd"],
  packages: ["openssh-server"],
};
export const SSH_CLIENT: SystemTool = {
  name: "OpenSSH client",
  binaries: ["/usr/bin/ssh", "/usr/bin/ssh-keygen"],
  packages: ["openssh-client"],
};
export const OPENSSL: SystemTool = { name: "OpenSSL", binaries: ["/usr/bin/openssl"], packages: ["openssl"] };
export const CHROMIUM: SystemTool = {
  name: "Chromium",
  binaries: ["/usr/bin/chromium"],
  packages: ["chromium"],
};

function found(tool: SystemTool): string | undefined {
  for (const b of tool.binaries) {
    if (b.startsWith("/")) {
      if (existsSync(b)) return b;
      continue;
    }
    const r = spawnSync("sh", ["-c", `command -v ${b}`], { encoding: "utf8" });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return undefined;
}

function installCommand(tools: SystemTool[]): string {
  const pkgs = [...new Set(tools.flatMap((t) => t.packages))].join(" ");
  return `apt-get update && apt-get install -y --no-install-recommends ${pkgs}`;
}

/**
 * Returns the path of each tool's first binary, installing the missing ones with apt-get when running as root.
 * Throws an error naming the command to run otherwise. Parallel callers wait on dpkg's lock.
 */
export function ensureSystemTools(...tools: SystemTool[]): string[] {
  const missing = tools.filter((t) => !found(t));
  if (missing.length > 0) {
    const command = installCommand(missing);
    const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
    const hasApt = existsSync("/usr/bin/apt-get");
    if (!isRoot || !hasApt) {
      throw new Error(
        `${missing.map((t) => t.name).join(", ")} not found and cannot be installed here (needs root and apt-get). Run: ${command}`,
      );
    }
    const pkgs = [...new Set(missing.flatMap((t) => t.packages))];
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    // Suites in parallel workers may install at once: one at a time behind a file lock (apt's own locks fail fast).
    const script = `apt-get update -qq && apt-get install -y -qq --no-install-recommends ${pkgs.join(" ")}`;
    try {
      execFileSync("flock", ["/tmp/runpass-test-apt.lock", "sh", "-c", script], {
        env,
        stdio: "ignore",
        timeout: 900_000,
      });
    } catch (e) {
      throw new Error(`installing ${pkgs.join(" ")} failed (${(e as Error).message}). Run: ${command}`);
    }
  }
  return tools.map((t) => {
    const path = found(t);
    if (!path) throw new Error(`${t.name} still not found after install. Run: ${installCommand([t])}`);
    return path;
  });
}
