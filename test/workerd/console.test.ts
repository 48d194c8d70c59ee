// The web console inside workerd (docs/console.md): sign-in with the admin token and its session cookie, sign-out
// ending the session server-side, CSRF on every POST, the security headers, ending a run with the actor audited,
// and Cloudflare Access mode against the test issuer's Access stand-in (its certs at /cdn-cgi/access/certs).

import { describe, expect, it } from "vitest";
import {
  ADMIN_TOKEN,
  BROKER_URL,
  githubPolicy,
  ISSUER_BASE,
  issuersYaml,
  makeBroker,
  type TestBroker,
  uniqueIssuer,
} from "../support/broker.ts";
import { githubClaims, mint } from "../support/claims.ts";
import { auditRecords, movableClock, ship } from "../support/run-ledger.ts";

interface Rec {
  detail?: string;
  actor?: string;
  reasons: Array<{ code: string }>;
}

async function records(broker: TestBroker, query: Record<string, string>): Promise<Rec[]> {
  return (await auditRecords(broker, query)) as unknown as Rec[];
}

async function setup(env: Record<string, string> = {}) {
  const gh = uniqueIssuer();
  const broker = await makeBroker({
    policies: { "api-deploy": githubPolicy(gh) },
    issuers: issuersYaml(gh),
    env,
  });
  const iss = `${ISSUER_BASE}/${gh}`;
  return { broker, token: () => mint(ISSUER_BASE, gh, githubClaims(iss, BROKER_URL)) };
}

/** Cookie jar of one: the name=value of the last Set-Cookie with `name`. */
function cookieOf(res: Response, name: string): string | undefined {
  for (const line of res.headers.getSetCookie()) {
    const [pair] = line.split(";");
    if (pair?.startsWith(`${name}=`)) return pair;
  }
  return undefined;
}

function hidden(html: string, name: string): string {
  const m = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (!m) throw new Error(`no ${name} field`);
  return m[1] as string;
}

/** Signs in with `token` through the real form; returns the response and the session cookie. */
async function signIn(broker: TestBroker, token: string, name = "") {
  const page = await broker.fetch("/console/sign-in");
  expect(page.status).toBe(200);
  const pre = cookieOf(page, "__Host-runpass_console_pre") as string;
  const csrf = hidden(await page.text(), "csrf");
  const res = await broker.fetch("/console/sign-in", {
    method: "POST",
    headers: { cookie: pre, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ csrf, next: "/console", token, name }),
    redirect: "manual",
  });
  return { res, session: cookieOf(res, "__Host-runpass_console") };
}

describe("console sign-in (admin token)", () => {
  it("refuses a wrong token (401, audited, no session), accepts the right one with a strict cookie, and sign-out ends the session server-side", async () => {
    const { broker } = await setup();
    const first = await broker.fetch("/console", { redirect: "manual" });
    expect(first.status).toBe(303);
    expect(first.headers.get("location")).toMatch(/^\/console\/sign-in/);

    const wrong = await signIn(broker, "not-the-admin-token-at-all");
    expect(wrong.res.status).toBe(401);
    expect(wrong.session).toBeUndefined();
    expect(await wrong.res.text()).toContain("That is not the admin token.");

    const right = await signIn(broker, ADMIN_TOKEN, "Ada");
    expect(right.res.status).toBe(303);
    expect(right.res.headers.get("location")).toBe("/console");
    const line = right.res.headers
      .getSetCookie()
      .find((l) => l.startsWith("__Host-runpass_console=")) as string;
    expect(line).toMatch(/HttpOnly/i);
    expect(line).toMatch(/SameSite=Strict/i);
    expect(line).toMatch(/; Secure/i);
    expect(line).toMatch(/Path=\//);
    const maxAge = Number(/Max-Age=(\d+)/i.exec(line)?.[1]);
    expect(maxAge).toBeGreaterThan(0);
    expect(maxAge).toBeLessThanOrEqual(8 * 3600);

    const overview = await broker.fetch("/console", { headers: { cookie: right.session as string } });
    expect(overview.status).toBe(200);
    const html = await overview.text();
    expect(html).toContain("admin-token:Ada");
    expect(html).not.toContain(ADMIN_TOKEN);

    const denied = (await records(broker, { event: "admin", decision: "deny" })).filter(
      (r) => r.detail === "console sign-in",
    );
    expect(denied.some((r) => r.reasons.some((x) => x.code === "admin_token_invalid"))).toBe(true);
    const allowed = await records(broker, { event: "admin", decision: "allow" });
    expect(allowed.some((r) => r.detail === "console sign-in" && r.actor === "admin-token:Ada")).toBe(true);

    const out = await broker.fetch("/console/sign-out", {
      method: "POST",
      headers: { cookie: right.session as string, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrf: hidden(html, "csrf") }),
      redirect: "manual",
    });
    expect(out.status).toBe(303);
    // The old cookie, replayed after sign-out, no longer opens anything: the session ended on the server.
    const replay = await broker.fetch("/console", {
      headers: { cookie: right.session as string },
      redirect: "manual",
    });
    expect(replay.status).toBe(303);
    expect(replay.headers.get("location")).toMatch(/^\/console\/sign-in/);
  });

  it("sends the strict security headers on every console response and serves pages without inline script or style", async () => {
    const { broker } = await setup();
    const { session } = await signIn(broker, ADMIN_TOKEN);
    for (const path of ["/console/sign-in", "/console", "/console/assets/console.css", "/console/nope"]) {
      const res = await broker.fetch(path, { headers: { cookie: session as string } });
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp, path).toContain("default-src 'self'");
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).not.toContain("unsafe-inline");
      expect(res.headers.get("x-content-type-options"), path).toBe("nosniff");
      expect(res.headers.get("referrer-policy"), path).toBe("no-referrer");
      if (path !== "/console/assets/console.css") {
        const html = await res.text();
        expect(html, path).not.toMatch(/<script|style="|<style/i);
        expect(html, path).not.toMatch(/(src|href)="(https?:)?\/\//i);
      }
    }
  });
});

/** A body that arrives chunked (no Content-Length), `bytes` long. */
function chunked(bytes: number): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (let sent = 0; sent < bytes; sent += 8192) controller.enqueue(new Uint8Array(8192).fill(0x61));
      controller.close();
    },
  });
}

/** Console errors are pages: the documented code's status and its message. */
const MESSAGES: Record<string, string> = {
  request_too_large: "the request body is larger than",
  unsupported_media_type: "must be application/x-www-form-urlencoded",
  invalid_request: "a console form must be UTF-8",
};

async function expectCode(res: Response, status: number, code: string): Promise<void> {
  expect(res.status).toBe(status);
  expect(await res.text()).toContain(MESSAGES[code]);
}

describe("console form bodies", () => {
  it("sign-in and every signed-in POST read at most 64 KiB of urlencoded form: oversized, chunked or other types are refused", async () => {
    const { broker } = await setup();
    const page = await broker.fetch("/console/sign-in");
    const pre = cookieOf(page, "__Host-runpass_console_pre") as string;
    const form = { cookie: pre, "content-type": "application/x-www-form-urlencoded" };
    const big = `csrf=x&token=${"a".repeat(70 * 1024)}`;
    await expectCode(
      await broker.fetch("/console/sign-in", { method: "POST", headers: form, body: big }),
      413,
      "request_too_large",
    );
    await expectCode(
      await broker.fetch("/console/sign-in", {
        method: "POST",
        headers: form,
        body: chunked(70 * 1024),
        duplex: "half",
      } as RequestInit),
      413,
      "request_too_large",
    );
    const multipart = new FormData();
    multipart.set("token", ADMIN_TOKEN);
    await expectCode(
      await broker.fetch("/console/sign-in", { method: "POST", headers: { cookie: pre }, body: multipart }),
      415,
      "unsupported_media_type",
    );
    await expectCode(
      await broker.fetch("/console/sign-in", {
        method: "POST",
        headers: form,
        body: new Uint8Array([0x74, 0x3d, 0xff, 0xfe]),
      }),
      400,
      "invalid_request",
    );

    const { session } = await signIn(broker, ADMIN_TOKEN);
    const cookie = session as string;
    await expectCode(
      await broker.fetch("/console/sign-out", {
        method: "POST",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        body: chunked(70 * 1024),
        duplex: "half",
      } as RequestInit),
      413,
      "request_too_large",
    );
    // The session survived the refused posts: the form reader refused before any handler ran.
    expect((await broker.fetch("/console", { headers: { cookie }, redirect: "manual" })).status).toBe(200);
  });
});

describe("console actions", () => {
  it("refuses a POST without or with a wrong CSRF token (403, audited with the actor) and changes nothing; with it, ends the run", async () => {
    const { broker, token } = await setup();
    const exchanged = await broker.exchange(await token(), { policy: "api-deploy" });
    expect(exchanged.status).toBe(200);
    const { lease } = (await exchanged.json()) as { lease: { id: string; run: string } };
    await ship(lease.run);
    const { session } = await signIn(broker, ADMIN_TOKEN, "Grace");
    const cookie = session as string;
    const runPath = `/console/runs/${encodeURIComponent(lease.run)}`;
    const confirm = await broker.fetch(`${runPath}/end`, { headers: { cookie } });
    expect(confirm.status).toBe(200);
    const csrf = hidden(await confirm.text(), "csrf");

    for (const body of [new URLSearchParams({}), new URLSearchParams({ csrf: `${csrf.slice(0, -2)}AA` })]) {
      const refused = await broker.fetch(`${runPath}/end`, {
        method: "POST",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        body,
        redirect: "manual",
      });
      expect(refused.status).toBe(403);
    }
    // A form posted from another origin is refused even with the right token.
    const foreign = await broker.fetch(`${runPath}/end`, {
      method: "POST",
      headers: {
        cookie,
        origin: "https://evil.example",
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ csrf }),
      redirect: "manual",
    });
    expect(foreign.status).toBe(403);
    const crossSite = await broker.fetch(`${runPath}/end`, {
      method: "POST",
      headers: {
        cookie,
        "sec-fetch-site": "cross-site",
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ csrf }),
      redirect: "manual",
    });
    expect(crossSite.status).toBe(403);
    const stillActive = await broker.admin(`/v1/admin/leases?active=1&run=${encodeURIComponent(lease.run)}`);
    expect(((await stillActive.json()) as { leases: unknown[] }).leases).toHaveLength(1);
    const refusals = (await records(broker, { event: "admin", decision: "deny" })).filter((r) =>
      r.reasons.some((x) => x.code === "csrf_token_invalid"),
    );
    expect(refusals.filter((r) => r.actor === "admin-token:Grace").length).toBeGreaterThanOrEqual(4);

    const ended = await broker.fetch(`${runPath}/end`, {
      method: "POST",
      headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrf }),
      redirect: "manual",
    });
    expect(ended.status).toBe(303);
    await ship(lease.run);
    const after = await broker.admin(`/v1/admin/leases?run=${encodeURIComponent(lease.run)}`);
    const listed = ((await after.json()) as { leases: Array<{ active: boolean; end_reason: string }> })
      .leases;
    expect(listed).toMatchObject([{ active: false, end_reason: "admin_revoke" }]);
    const revokes = await records(broker, { event: "admin_revoke", run: lease.run });
    expect(revokes.map((r) => r.actor)).toEqual(["admin-token:Grace"]);
    // The revoke raised an alert (docs/leaks.md, Alerts): the alerts page lists it.
    const alerts = await (await broker.fetch("/console/alerts", { headers: { cookie } })).text();
    expect(alerts).toContain("admin_revoke");
  });
});

describe("secret rotation age", () => {
  it("keeps max_age across versions, clears it with null, refuses a bad one, and shows rotation due without the value", async () => {
    const time = movableClock();
    const gh = uniqueIssuer();
    const broker = await makeBroker({
      policies: { "api-deploy": githubPolicy(gh) },
      issuers: issuersYaml(gh),
      clock: time.clock,
    });
    const path = `rot${crypto.randomUUID().slice(0, 8)}/db`;
    const value = `v-${crypto.randomUUID()}`;
    const put = (body: Record<string, unknown>) =>
      broker.admin(`/v1/admin/secrets/${path}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const meta = async () =>
      (await (await broker.admin(`/v1/admin/secrets/${path}`)).json()) as {
        max_age?: number;
        current_version: number;
      };
    expect((await put({ value, max_age: "1d" })).status).toBe(201);
    expect((await put({ value: `${value}-2` })).status).toBe(201);
    expect(await meta()).toMatchObject({ current_version: 2, max_age: 86_400 });
    expect((await put({ value: `${value}-3`, max_age: "soon" })).status).toBe(400);
    expect((await meta()).current_version).toBe(2);

    const row = async () => {
      // A fresh session each time: two days later the first one has expired (8 h at most).
      const { session } = await signIn(broker, ADMIN_TOKEN);
      const html = await (
        await broker.fetch("/console/secrets", { headers: { cookie: session as string } })
      ).text();
      expect(html).not.toContain(value);
      return /<tr>(?:(?!<\/tr>).)*?<\/tr>/gs.exec(html.slice(html.indexOf(path) - 200))?.[0] ?? "";
    };
    expect(await row()).toContain("within 1d");
    time.advance(2 * 86_400_000);
    expect(await row()).toContain("rotation due");

    expect((await put({ value: `${value}-4`, max_age: null })).status).toBe(201);
    expect((await meta()).max_age).toBeUndefined();
  });
});

describe("console behind Cloudflare Access", () => {
  const AUD = "aud-tag-0123456789abcdef";
  const accessEnv = { RUNPASS_ACCESS_TEAM_DOMAIN: ISSUER_BASE, RUNPASS_ACCESS_AUD: AUD };
  const accessToken = (claims: Record<string, unknown>) =>
    mint(ISSUER_BASE, "cf-access", {
      iss: ISSUER_BASE,
      aud: [AUD],
      sub: "user-1",
      email: "ada@acme.dev",
      iat: Math.floor(Date.now() / 1000),
      exp: Math.floor(Date.now() / 1000) + 300,
      ...claims,
    });

  it("requires a valid Access token (401 without, with another audience, issuer or signer) and records its email as the actor", async () => {
    const { broker, token } = await setup(accessEnv);
    expect((await broker.fetch("/console")).status).toBe(401);
    const badAud = await accessToken({ aud: ["someone-else"] });
    expect((await broker.fetch("/console", { headers: { "cf-access-jwt-assertion": badAud } })).status).toBe(
      401,
    );
    const badIss = await accessToken({ iss: `${ISSUER_BASE}/other` });
    expect((await broker.fetch("/console", { headers: { "cf-access-jwt-assertion": badIss } })).status).toBe(
      401,
    );
    // Signed by a key the team's certs do not hold (another issuer's), claims otherwise right.
    const foreign = await mint(ISSUER_BASE, "other", {
      iss: ISSUER_BASE,
      aud: [AUD],
      sub: "user-1",
      email: "ada@acme.dev",
      exp: Math.floor(Date.now() / 1000) + 300,
    });
    expect((await broker.fetch("/console", { headers: { "cf-access-jwt-assertion": foreign } })).status).toBe(
      401,
    );
    // No admin-token sign-in in Access mode.
    expect((await broker.fetch("/console/sign-in", { redirect: "manual" })).status).toBe(303);

    const good = await accessToken({});
    const page = await broker.fetch("/console", { headers: { "cf-access-jwt-assertion": good } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("ada@acme.dev");

    const exchanged = await broker.exchange(await token(), { policy: "api-deploy" });
    const { lease } = (await exchanged.json()) as { lease: { run: string } };
    const endPath = `/console/runs/${encodeURIComponent(lease.run)}/end`;
    const confirm = await broker.fetch(endPath, { headers: { "cf-access-jwt-assertion": good } });
    const res = await broker.fetch(endPath, {
      method: "POST",
      headers: { "cf-access-jwt-assertion": good, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrf: hidden(await confirm.text(), "csrf") }),
      redirect: "manual",
    });
    expect(res.status).toBe(303);
    const revokes = await records(broker, { event: "admin_revoke", run: lease.run });
    expect(revokes.map((r) => r.actor)).toEqual(["ada@acme.dev"]);
  });

  it("fails closed when only one of the two Access variables is set", async () => {
    const { broker } = await setup({ RUNPASS_ACCESS_AUD: AUD });
    const res = await broker.fetch("/console", { redirect: "manual" });
    expect(res.status).toBe(503);
    expect(await res.text()).toContain("RUNPASS_ACCESS_TEAM_DOMAIN");
  });
});
