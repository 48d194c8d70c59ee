// The runner CLI in process as a CI job runs it (docs/clients.md, "Certificates"): each test gets a new job temp
// dir (RUNNER_TEMP), an ID token in the environment, the CLI's stdout captured, and its scripted broker closed and
// the temp dir removed afterwards; plus the exchange answer such a broker gives for a lease.

import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, vi } from "vitest";
import { runner } from "../../src/cli/runner.ts";
import type { FakeBrokerHttp, Reply } from "./fake-broker-http.ts";

export interface RunnerJob {
  /** This test's job temp dir (RUNNER_TEMP). */
  readonly temp: string;
  /** What the CLI wrote to stdout in this test. */
  readonly stdout: string;
  /** This test's scripted broker: closed after the test. */
  broker: FakeBrokerHttp | undefined;
  /** The value of `export NAME='…'` in stdout; throws when it was not exported. */
  exported(name: string): string;
  /** `runpass exchange --policy POLICY` against this test's broker, its state in `temp/STATE`; the exit code. */
  exchange(policy: string, state: string): ReturnType<typeof runner>;
  /** The credential folders (`runpass-*`) the CLI left in the temp dir. */
  credentialDirs(): Promise<string[]>;
}

/** Registers the per-test setup and teardown (call at a test file's top level); `prefix` names the temp dirs. */
export function runnerJob(prefix: string): RunnerJob {
  let temp = "";
  let stdout = "";
  const job: RunnerJob = {
    get temp() {
      return temp;
    },
    get stdout() {
      return stdout;
    },
    broker: undefined,
    exported(name) {
      const m = new RegExp(`^export ${name}='([^']*)'$`, "m").exec(stdout);
      if (!m) throw new Error(`${name} not exported`);
      return m[1] as string;
    },
    exchange(policy, state) {
      if (!job.broker) throw new Error("no broker started for this test");
      return runner("exchange", ["--url", job.broker.url, "--policy", policy, "--state", join(temp, state)]);
    },
    async credentialDirs() {
      return (await readdir(temp)).filter((f) => f.startsWith("runpass-"));
    },
  };

  beforeEach(async () => {
    temp = await mkdtemp(join(tmpdir(), prefix));
    stdout = "";
    vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      stdout += String(chunk);
      return true;
    });
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    vi.stubEnv("RUNPASS_ID_TOKEN", "header.payload.signature");
    vi.stubEnv("RUNNER_TEMP", temp);
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
    await job.broker?.close();
    job.broker = undefined;
    await rm(temp, { recursive: true, force: true });
  });

  return job;
}

/** The broker's 200 answer to an exchange of `policy`: lease `lse_abc.def` until `expiresAt`, with `credentials`. */
export function leaseAnswer(policy: string, expiresAt: string, credentials: Record<string, unknown>): Reply {
  return {
    status: 200,
    body: {
      policy,
      policy_version: "sha256:x",
      policy_set_version: "sha256:y",
      lease: {
        id: "lse_abc.def",
        run: "github:github:1:2:1",
        expires_at: expiresAt,
        revoke_token: "rvk_secret",
      },
      credentials,
    },
  };
}
