// `runpass admin webhook-secret` (docs/security.md, "Webhooks are scoped"): derived offline from the master in
// the environment; the broker accepts exactly what it prints.

import { describe, expect, it } from "vitest";
import { claimedScope, deriveWebhookSecret, verifyDerivedToken } from "../../src/core/webhook-scope.ts";
import { runpass } from "../support/run-cli.ts";

const MASTER = "test-master-webhook-secret";

describe("runpass admin webhook-secret", () => {
  it("prints the secret the broker derives for the scope, computed from the master in the environment", async () => {
    const run = await runpass(["admin", "webhook-secret", "--gitlab-project-id", "4242"], {
      env: { GITLAB_WEBHOOK_TOKEN: MASTER },
    });
    expect(run.code).toBe(0);
    const printed = run.stdout.trim();
    expect(printed).toBe(await deriveWebhookSecret(MASTER, { kind: "gitlab-project", id: "4242" }));
    expect(claimedScope(printed)).toEqual({ kind: "gitlab-project", id: "4242" });
    expect(await verifyDerivedToken(printed, [MASTER])).toEqual({ kind: "gitlab-project", id: "4242" });
    expect(await verifyDerivedToken(printed, ["another-master"])).toBeUndefined();
    const owner = await runpass(["admin", "webhook-secret", "--github-owner-id", "1342004"], {
      env: { GITHUB_WEBHOOK_SECRET: MASTER },
    });
    expect(owner.stdout.trim()).toBe(
      await deriveWebhookSecret(MASTER, { kind: "github-owner", id: "1342004" }),
    );
  });

  it("refuses without a master, without exactly one scope, or with a non-numeric id, printing nothing on stdout", async () => {
    for (const [args, env] of [
      [["--github-owner-id", "1"], {}],
      [[], { GITHUB_WEBHOOK_SECRET: MASTER }],
      [["--github-owner-id", "1", "--github-repository-id", "2"], { GITHUB_WEBHOOK_SECRET: MASTER }],
      [["--github-owner-id", "acme"], { GITHUB_WEBHOOK_SECRET: MASTER }],
    ] as const) {
      const run = await runpass(["admin", "webhook-secret", ...args], { env: { ...env } });
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stdout).toBe("");
    }
  });

  it("different scopes and different masters give unrelated secrets", async () => {
    const a = await deriveWebhookSecret(MASTER, { kind: "github-owner", id: "1" });
    const b = await deriveWebhookSecret(MASTER, { kind: "github-repository", id: "1" });
    const c = await deriveWebhookSecret(`${MASTER}x`, { kind: "github-owner", id: "1" });
    expect(new Set([a, b, c].map((s) => s.split(".")[3])).size).toBe(3);
  });
});
