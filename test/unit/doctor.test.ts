// `runpass doctor` against local brokers (`npm start`) started with the secrets `runpass init` wrote: one
// configured right (every check passes, and its keys sign tokens that verify), one without the webhook secret;
// and the failures a user makes: another URL than the issuer, another policy set than the deployed one, an admin
// token that is missing or wrong, an admin API that cannot be reached (docs/deploy.md, "Check the deployment").

import { cp, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { createLocalJWKSet, type JWK, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevBroker, ROOT, scratchProject, startDevBroker } from "../support/dev-broker.ts";
import { runpass } from "../support/run-cli.ts";

const ITEMS = ["src", "scripts", "policies", "bin", "wrangler.toml", "package.json", "tsconfig.json"];

interface Setup {
  scratch: string;
  broker: DevBroker;
  secrets: Record<string, string>;
  policies: string;
}

let good: Setup;
let noWebhook: Setup;
let proxy: Server | undefined;

/** A scratch project whose broker runs on the secrets `runpass init` wrote there, minus `drop`. */
async function brokerFromInit(prefix: string, drop: string[] = []): Promise<Setup> {
  const scratch = await scratchProject(prefix, ITEMS);
  const init = await runpass(["init"], { cwd: scratch, script: join(scratch, "bin/runpass.mjs") });
  expect(init.code, init.stderr).toBe(0);
  const secrets = JSON.parse(await readFile(join(scratch, ".runpass/secrets.json"), "utf8")) as Record<
    string,
    string
  >;
  const policies = join(scratch, "doctor-policies");
  await mkdir(policies);
  await cp(join(ROOT, "policies/dev-demo.yaml"), join(policies, "walk.yaml"));
  const env: Record<string, string> = { ...secrets, RUNPASS_POLICIES_DIR: policies };
  for (const name of drop) env[name] = "";
  const broker = await startDevBroker(scratch, env);
  return { scratch, broker, secrets, policies };
}

/** Runs doctor with the broker's admin token, another one, or (null) none. */
function doctor(
  s: Setup,
  args: string[],
  adminToken: string | null = s.secrets.RUNPASS_ADMIN_TOKEN as string,
) {
  return runpass(["doctor", ...args], {
    cwd: s.scratch,
    script: join(s.scratch, "bin/runpass.mjs"),
    env: adminToken === null ? {} : { RUNPASS_ADMIN_TOKEN: adminToken },
  });
}

/** The report's line for a check. */
function line(stdout: string, check: string): string {
  return (
    stdout.split("\n").find((l) => l.slice(6).startsWith(`${check}:`)) ?? `(no ${check} line)\n${stdout}`
  );
}

beforeAll(async () => {
  [good, noWebhook] = await Promise.all([
    brokerFromInit("runpass-doctor-"),
    brokerFromInit("runpass-doctor-nohook-", ["GITHUB_WEBHOOK_SECRET"]),
  ]);
}, 240_000);

afterAll(async () => {
  proxy?.close();
  await Promise.all([good?.broker.stop(), noWebhook?.broker.stop()]);
});

describe("runpass doctor", { timeout: 120_000 }, () => {
  it("passes every check against a broker configured from runpass init, whose keys sign verifiable tokens", async () => {
    const run = await doctor(good, ["--url", good.broker.base, "--policies", good.policies]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    for (const check of [
      "https",
      "clock",
      "discovery",
      "jwks",
      "admin",
      "policy set",
      "webhooks",
      "settings",
    ])
      expect(line(run.stdout, check)).toMatch(/^ok {4}/);
    expect(run.stdout).toContain("all checks passed");
    expect(run.stdout + run.stderr).not.toContain(good.secrets.RUNPASS_ADMIN_TOKEN);

    // The init file's signing key signs what the broker issues.
    const dev = await runpass(["dev", "token"], {
      cwd: good.scratch,
      script: join(good.scratch, "bin/runpass.mjs"),
      env: { PORT: String(good.broker.port) },
    });
    expect(dev.code, dev.stderr).toBe(0);
    const res = await fetch(`${good.broker.base}/v1/exchange`, {
      method: "POST",
      headers: { authorization: `Bearer ${dev.stdout.trim()}`, "content-type": "application/json" },
      body: JSON.stringify({ policy: "walk" }),
    });
    expect(res.status).toBe(200);
    const out = (await res.json()) as { credentials: { token: { token: string } } };
    const jwks = (await (await fetch(`${good.broker.base}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
    const { protectedHeader } = await jwtVerify(out.credentials.token.token, createLocalJWKSet(jwks));
    expect(protectedHeader.kid).toBe(
      (JSON.parse(good.secrets.RUNPASS_SIGNING_KEYS as string) as JWK[])[0]?.kid,
    );
  });

  it("names a wrong issuer URL: the URL clients use is not the one RUNPASS_ISSUER_URL says", async () => {
    const url = good.broker.base.replace("127.0.0.1", "localhost");
    const run = await doctor(good, ["--url", url, "--policies", good.policies]);
    expect(run.code).toBe(1);
    expect(line(run.stdout, "discovery")).toMatch(
      /^FAIL {2}discovery: issuer is "http:\/\/127\.0\.0\.1:\d+", not "http:\/\/localhost:\d+"/,
    );
    expect(run.stdout).toContain(`fix: set RUNPASS_ISSUER_URL = "${url}"`);
  });

  it("names a policy set that differs from the local build", async () => {
    const other = join(good.scratch, "other-policies");
    await mkdir(other);
    const walk = await readFile(join(good.policies, "walk.yaml"), "utf8");
    await writeFile(join(other, "walk.yaml"), walk.replace("ttl: 30m", "ttl: 20m"));
    const run = await doctor(good, ["--url", good.broker.base, "--policies", other]);
    expect(run.code).toBe(1);
    expect(line(run.stdout, "policy set")).toMatch(
      /^FAIL {2}policy set: deployed sha256:[0-9a-f]+, local build sha256:[0-9a-f]+/,
    );
    expect(run.stdout).toContain("fix: npm run deploy");
    expect(line(run.stdout, "discovery")).toMatch(/^ok/);
  });

  it("names a missing webhook secret for the issuers in use", async () => {
    const run = await doctor(noWebhook, ["--url", noWebhook.broker.base, "--policies", noWebhook.policies]);
    expect(run.code).toBe(1);
    expect(line(run.stdout, "webhooks")).toContain(
      "FAIL  webhooks: GITHUB_WEBHOOK_SECRET is not set but github issuers are in use",
    );
    expect(run.stdout).toContain("fix: wrangler secret put GITHUB_WEBHOOK_SECRET");
    expect(line(run.stdout, "settings")).toMatch(/^ok/);
  });

  it("names an admin API it cannot use: no token, a wrong token, or nothing answering", async () => {
    const none = await doctor(good, ["--url", good.broker.base, "--policies", good.policies], null);
    expect(none.code).toBe(1);
    expect(line(none.stdout, "admin")).toContain("FAIL  admin: RUNPASS_ADMIN_TOKEN is not set");
    const wrong = await doctor(
      good,
      ["--url", good.broker.base, "--policies", good.policies],
      "rpa_not-the-deployed-token",
    );
    expect(wrong.code).toBe(1);
    expect(line(wrong.stdout, "admin")).toContain(
      "FAIL  admin: the admin API refused RUNPASS_ADMIN_TOKEN (401)",
    );

    // A front (a proxy, an Access gateway) that passes everything but drops /v1/admin.
    proxy = createServer(async (req, res) => {
      if (req.url?.startsWith("/v1/admin")) {
        req.socket.destroy();
        return;
      }
      const upstream = await fetch(`${good.broker.base}${req.url}`);
      const headers = Object.fromEntries(
        [...upstream.headers].filter(
          ([k]) => !["content-encoding", "content-length", "transfer-encoding"].includes(k),
        ),
      );
      res.writeHead(upstream.status, headers);
      res.end(Buffer.from(await upstream.arrayBuffer()));
    });
    await new Promise<void>((r) => proxy?.listen(0, "127.0.0.1", () => r()));
    const port = (proxy.address() as { port: number }).port;
    const cut = await doctor(good, ["--url", `http://127.0.0.1:${port}`, "--policies", good.policies]);
    expect(cut.code).toBe(1);
    expect(line(cut.stdout, "admin")).toContain("FAIL  admin: the admin API is unreachable");
  });

  it("admin secrets export writes a 0600 file without values; import restores nothing over existing paths", async () => {
    const admin = {
      authorization: `Bearer ${good.secrets.RUNPASS_ADMIN_TOKEN}`,
      "content-type": "application/json",
    };
    const put = await fetch(`${good.broker.base}/v1/admin/secrets/backup/api/key`, {
      method: "PUT",
      headers: admin,
      body: JSON.stringify({ value: "sk_cli_backup_value" }),
    });
    expect(put.status).toBe(201);
    const cli = (args: string[]) =>
      runpass(["admin", "secrets", ...args, "--url", good.broker.base], {
        cwd: good.scratch,
        script: join(good.scratch, "bin/runpass.mjs"),
        env: { RUNPASS_ADMIN_TOKEN: good.secrets.RUNPASS_ADMIN_TOKEN as string },
      });
    const file = join(good.scratch, "secrets-backup.json");
    const exported = await cli(["export", "--out", file]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(JSON.parse(exported.stdout)).toMatchObject({ paths: 1, versions: 1 });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const text = await readFile(file, "utf8");
    expect(text).not.toContain("sk_cli_backup_value");
    expect(JSON.parse(text)).toMatchObject({ format: "runpass-secret-store/1" });
    expect((await cli(["export", "--out", file])).code).toBe(1);
    const imported = await cli(["import", file]);
    expect(imported.code, imported.stderr).toBe(0);
    // Nothing restored over an existing path, so nothing new to fingerprint for the leak index either.
    expect(JSON.parse(imported.stdout)).toEqual({
      paths: 0,
      versions: 0,
      skipped: ["backup/api/key"],
      indexed: 0,
      unindexed: 0,
    });
  });

  it("exits 2 without --url", async () => {
    expect((await doctor(good, [])).code).toBe(2);
  });
});
