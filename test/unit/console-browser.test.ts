// The console in a real headless Chromium (the OS package, driven by playwright-core) against `npm start`
// (docs/console.md): sign in wrong then right, the overview shows the seeded activity, end a run from its page and
// see its lease revoked through the API, filter the audit, explain a pasted token without consuming it, no secret
// value on any page, CSV/JSON reports that match the audit, a POST without CSRF token refused, no request to
// another host, no serious or critical axe-core violation, no horizontal scroll at 375 px. Screenshots go to
// .ci/artifacts/console/ (CI keeps them).

import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintDevToken, readDevState } from "../../src/cli/dev-token.ts";
import { type DevBroker, ROOT, scratchProject, startDevBroker } from "../support/dev-broker.ts";
import { CHROMIUM, ensureSystemTools } from "../support/system-tools.ts";

const ARTIFACTS = join(ROOT, ".ci/artifacts/console");
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let scratch = "";
let profile = "";
let broker: DevBroker | undefined;
let context: BrowserContext | undefined;
let page: Page;
let base = "";
let adminToken = "";
/** Every value that must never appear on a page: the secret, the admin token, every CI token and credential. */
const secrets: string[] = [];
/** Requests the browser tried to send anywhere but the broker. */
const foreign: string[] = [];
const cspViolations: string[] = [];
let walkRun = "";
let walkLease = "";

type Mint = (o: { runId: string; ref?: string }) => Promise<string>;
let mintToken: Mint;

async function admin(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${base}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${adminToken}`, ...(init.headers ?? {}) },
  });
}

async function exchange(token: string, policy: string): Promise<Response> {
  return fetch(`${base}/v1/exchange`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ policy }),
  });
}

/** Polls the admin API until `ready` holds (the outbox ships to D1 from the run's alarm, within seconds). */
async function until<T>(read: () => Promise<T>, ready: (v: T) => boolean, what: string): Promise<T> {
  for (let i = 0; i < 120; i++) {
    const v = await read();
    if (ready(v)) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function auditLeaseIds(): Promise<string[]> {
  const res = await admin("/v1/admin/audit?event=exchange&decision=allow&limit=1000");
  const body = (await res.json()) as { records: Array<{ lease_id?: string }> };
  return body.records.flatMap((r) => (r.lease_id ? [r.lease_id] : [])).sort();
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function noSecretOnPage(): Promise<void> {
  const html = await page.content();
  for (const s of secrets) expect(html.includes(s), `a secret value is on ${page.url()}`).toBe(false);
}

beforeAll(async () => {
  const [executablePath] = ensureSystemTools(CHROMIUM);
  await mkdir(ARTIFACTS, { recursive: true });
  scratch = await scratchProject("runpass-console-", [
    "src",
    "scripts",
    "policies",
    "bin",
    "wrangler.toml",
    "package.json",
    "tsconfig.json",
  ]);
  const demo = await readFile(join(ROOT, "policies/dev-demo.yaml"), "utf8");
  await mkdir(join(scratch, "console-policies"));
  await writeFile(join(scratch, "console-policies/walk.yaml"), demo);
  await writeFile(
    join(scratch, "console-policies/vault.yaml"),
    demo.replace(/^grants:[\s\S]*$/m, "grants:\n  secrets: { DB_PASSWORD: ci/db }\n"),
  );
  broker = await startDevBroker(scratch, {
    RUNPASS_POLICIES_DIR: join(scratch, "console-policies"),
    RUNPASS_MASTER_KEYS: JSON.stringify({ active: "m1", keys: { m1: randomBytes(32).toString("base64") } }),
  });
  base = broker.base;
  // npm start tells where the console is, without printing the admin token.
  expect(broker.log()).toContain(`web console: ${base}/console/sign-in`);
  const { keys, state } = await readDevState(scratch);
  adminToken = keys.adminToken;
  expect(broker.log()).not.toContain(adminToken);
  secrets.push(adminToken);
  mintToken = ({ runId, ref = "refs/heads/main" }) =>
    mintDevToken(keys, state, {
      repo: "acme/api",
      ownerId: "1000001",
      repoId: "2000001",
      ref,
      event: "push",
      runId,
      runAttempt: "1",
      ttlSeconds: 600,
      runnerEnvironment: "github-hosted",
      extra: {},
    });

  // Seed: a secret with a rotation age, three runs with leases (one receives the secret), two denials.
  const secretValue = `s3cr3t-${randomBytes(12).toString("hex")}`;
  secrets.push(secretValue);
  const put = await admin("/v1/admin/secrets/ci/db", {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ value: secretValue, max_age: "90d" }),
  });
  expect(put.status).toBe(201);
  for (const [runId, policy] of [
    ["7001", "walk"],
    ["7002", "walk"],
    ["7003", "vault"],
  ] as const) {
    const token = await mintToken({ runId });
    secrets.push(token);
    const res = await exchange(token, policy);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const body = JSON.parse(text) as {
      lease: { id: string; run: string; revoke_token?: string };
      credentials: unknown;
    };
    // The credentials: the runpass-signed JWT of the token grant (the secret's value is already listed).
    for (const v of JSON.stringify(body.credentials).match(/"eyJ[\w-]+\.[\w-]+\.[\w-]+"/g) ?? []) {
      secrets.push(v.slice(1, -1));
    }
    if (body.lease.revoke_token) secrets.push(body.lease.revoke_token);
    if (runId === "7001") {
      walkRun = body.lease.run;
      walkLease = body.lease.id;
    }
  }
  for (const runId of ["7004", "7005"]) {
    const res = await exchange(await mintToken({ runId, ref: "refs/heads/feature" }), "walk");
    expect(res.status).toBe(403);
  }
  await until(auditLeaseIds, (ids) => ids.length === 3, "three issuances in the audit log");
  await until(
    async () =>
      (await (await admin("/v1/admin/audit?decision=deny&event=exchange")).json()) as { records: unknown[] },
    (b) => b.records.length === 2,
    "two denials in the audit log",
  );

  profile = await mkdtemp(join(tmpdir(), "runpass-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  const origin = new URL(base).origin;
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
}, 180_000);

afterAll(async () => {
  await context?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
  if (broker) await broker.stop();
  else if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("the console in Chromium", () => {
  it("refuses a wrong admin token, then signs in with the right one", async () => {
    await page.goto(`${base}/console`);
    expect(new URL(page.url()).pathname).toBe("/console/sign-in");
    await page.getByLabel("Admin token").fill("definitely-not-the-admin-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.locator("#sign-in-error").textContent()).resolves.toContain("not the admin token");
    await shot("sign-in-refused");
    await page.getByLabel("Admin token").fill(adminToken);
    await page.getByLabel(/Your name/).fill("browser-test");
    await page.getByRole("button", { name: "Sign in" }).click();
    expect(new URL(page.url()).pathname).toBe("/console");
    await expect(page.getByText("Signed in as").textContent()).resolves.toContain("admin-token:browser-test");
    const cookies = await context?.cookies(base);
    const session = cookies?.find((c) => c.name === "runpass_console");
    expect(session).toMatchObject({ httpOnly: true, sameSite: "Strict" });
    await noSecretOnPage();
  });

  it("shows the seeded activity on the overview", async () => {
    await page.goto(`${base}/console`);
    expect(await page.locator("#active-leases").textContent()).toBe("3");
    expect(await page.locator("#active-runs").textContent()).toBe("3");
    expect(await page.locator("#issued-24h").textContent()).toBe("3");
    expect(await page.locator("#denied-24h").textContent()).toBe("2");
    expect(await page.locator("svg.chart").count()).toBe(2);
    // Both charts count the same seeded exchanges (today is in both windows).
    for (const chart of await page.locator("figure").all()) {
      await expect(chart.textContent()).resolves.toContain("3 issued, 2 denied");
    }
    await expect(page.locator("main").textContent()).resolves.toContain("claim_mismatch:ref");
    await shot("overview");
    await noSecretOnPage();
  });

  it("ends a run from its page after the confirm step, and the API shows its lease revoked", async () => {
    await page.goto(`${base}/console/runs`);
    await page.getByRole("link", { name: walkRun }).first().click();
    expect(await page.locator("#run-active").textContent()).toBe("1");
    await shot("run");
    await page.getByRole("link", { name: "End this run" }).click();
    await shot("end-run-confirm");
    await page.getByRole("button", { name: "End this run now" }).click();
    await expect(page.locator(".flash").textContent()).resolves.toContain("1 lease ended");
    const leases = await until(
      async () =>
        (await (await admin(`/v1/admin/leases?run=${encodeURIComponent(walkRun)}`)).json()) as {
          leases: Array<{ id: string; active: boolean; end_reason: string | null }>;
        },
      (b) => b.leases.some((l) => l.id === walkLease && !l.active),
      "the lease index to show the ended lease",
    );
    expect(leases.leases.find((l) => l.id === walkLease)).toMatchObject({
      active: false,
      end_reason: "admin_revoke",
    });
    const revokes = (await (
      await admin(`/v1/admin/audit?event=admin_revoke&run=${encodeURIComponent(walkRun)}`)
    ).json()) as {
      records: Array<{ actor?: string }>;
    };
    expect(revokes.records.map((r) => r.actor)).toEqual(["admin-token:browser-test"]);
    // The run is over: a new token for it is refused.
    expect((await exchange(await mintToken({ runId: "7001" }), "walk")).status).toBe(403);
  });

  it("filters the audit log", async () => {
    await page.goto(`${base}/console/audit`);
    await page.getByLabel("Decision").selectOption("deny");
    await page.getByLabel("Event").selectOption("exchange");
    await page.getByRole("button", { name: "Search" }).click();
    const url = new URL(page.url());
    expect(url.searchParams.get("decision")).toBe("deny");
    const rows = page.locator("table.audit tbody tr");
    // The two seeded denials and the refused token of the ended run.
    expect(await rows.count()).toBe(3);
    for (const text of await rows.allTextContents()) expect(text).toContain("deny");
    await shot("audit");
    await noSecretOnPage();
  });

  it("explains a pasted token without consuming it", async () => {
    const token = await mintToken({ runId: "7010" });
    secrets.push(token);
    await page.goto(`${base}/console/policies`);
    await page.locator('select[name="policy"]').selectOption("walk");
    await page.locator('textarea[name="token"]').fill(token);
    await page.getByRole("button", { name: "Explain" }).click();
    const answer = await page.locator("#explain-answer").textContent();
    const api = (await (
      await fetch(`${base}/v1/explain`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ policy: "walk" }),
      })
    ).json()) as { decision: string; policy: string };
    expect(api.decision).toBe("allow");
    expect(answer).toContain(`"decision": "allow"`);
    expect(answer).toContain(`"policy": "walk"`);
    await shot("policies-explain");
    await noSecretOnPage();
    // Still usable: explaining consumed nothing.
    expect((await exchange(token, "walk")).status).toBe(200);
  });

  it("shows secrets metadata and no secret value on any page", async () => {
    await page.goto(`${base}/console/secrets`);
    const row = page.locator("#secrets tbody tr", { hasText: "ci/db" });
    await expect(row.textContent()).resolves.toContain("vault");
    await expect(row.textContent()).resolves.toContain("within 90d");
    await shot("secrets");
    for (const path of [
      "/console",
      "/console/runs",
      `/console/runs/${encodeURIComponent(walkRun)}`,
      "/console/audit",
      "/console/policies",
      "/console/policies/vault",
      "/console/secrets",
      "/console/alerts",
      "/console/reports/compliance",
    ]) {
      await page.goto(`${base}${path}`);
      await noSecretOnPage();
    }
  });

  it("downloads CSV and JSON reports that match the audit log", async () => {
    await page.goto(`${base}/console/reports/compliance`);
    await shot("report");
    const [csvDownload] = await Promise.all([
      page.waitForEvent("download"),
      page.getByText("Download CSV").click(),
    ]);
    const csv = await readFile((await csvDownload.path()) as string, "utf8");
    const [jsonDownload] = await Promise.all([
      page.waitForEvent("download"),
      page.getByText("Download JSON").click(),
    ]);
    const json = JSON.parse(await readFile((await jsonDownload.path()) as string, "utf8")) as {
      issuances: Array<{ lease_id: string; end_reason: string | null; workflow: string | null }>;
      revocations: Array<{ actor: string; run: string }>;
    };
    for (const s of secrets) {
      expect(csv.includes(s)).toBe(false);
      expect(JSON.stringify(json).includes(s)).toBe(false);
    }
    const audit = await auditLeaseIds();
    const lines = csv.trim().split("\r\n");
    const header = (lines[0] as string).split(",");
    const leaseCol = header.indexOf("lease_id");
    expect(
      lines
        .slice(1)
        .map((l) => l.split(",")[leaseCol])
        .sort(),
    ).toEqual(audit);
    expect(json.issuances.map((i) => i.lease_id).sort()).toEqual(audit);
    expect(json.issuances.find((i) => i.lease_id === walkLease)?.end_reason).toBe("admin_revoke");
    expect(json.issuances.every((i) => i.workflow?.includes(".github/workflows/dev.yml"))).toBe(true);
    expect(json.revocations).toMatchObject([{ actor: "admin-token:browser-test", run: walkRun }]);
  });

  it("refuses a POST without its CSRF token", async () => {
    const res = await context?.request.post(`${base}/console/runs/${encodeURIComponent(walkRun)}/end`, {
      form: { nothing: "here" },
      maxRedirects: 0,
    });
    expect(res?.status()).toBe(403);
  });

  it("passes axe-core (no serious or critical violation) and has no horizontal scroll at 375 px", async () => {
    const axe = await readFile(join(ROOT, "node_modules/axe-core/axe.min.js"), "utf8");
    const pages: Array<[string, string]> = [
      ["overview", "/console"],
      ["runs", "/console/runs"],
      ["run", `/console/runs/${encodeURIComponent(walkRun)}`],
      ["audit", "/console/audit"],
      ["policies", "/console/policies"],
      ["secrets", "/console/secrets"],
      ["alerts", "/console/alerts"],
      ["report", "/console/reports/compliance"],
    ];
    for (const [name, path] of pages) {
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.goto(`${base}${path}`);
      // Evaluated through the DevTools protocol, which the page's CSP does not govern (the page itself runs no script).
      await page.evaluate(axe);
      const violations = (await page.evaluate(async () => {
        const run = (globalThis as unknown as { axe: { run: (o: unknown) => Promise<unknown> } }).axe.run;
        const result = (await run({ resultTypes: ["violations"] })) as {
          violations: Array<{ id: string; impact: string; nodes: Array<{ target: string[] }> }>;
        };
        return result.violations.map((v) => ({
          id: v.id,
          impact: v.impact,
          targets: v.nodes.map((n) => n.target.join(" ")),
        }));
      })) as Array<{ id: string; impact: string; targets: string[] }>;
      const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
      expect(bad, `${path}: ${JSON.stringify(bad)}`).toEqual([]);
      await page.setViewportSize({ width: 375, height: 800 });
      await page.goto(`${base}${path}`);
      const overflow = await page.evaluate(() => {
        // Runs in the page (no DOM types in this project's Node tsconfig).
        const g = globalThis as unknown as {
          document: { documentElement: { scrollWidth: number } };
          innerWidth: number;
        };
        return g.document.documentElement.scrollWidth - g.innerWidth;
      });
      expect(overflow, `${path} scrolls sideways at 375 px`).toBeLessThanOrEqual(0);
      await shot(`phone-${name}`);
    }
  }, 60_000);

  it("sent no request to another host and broke no CSP rule", () => {
    expect(foreign).toEqual([]);
    expect(cspViolations).toEqual([]);
  });
});
