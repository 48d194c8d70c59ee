// The ssh grant's public endpoints (docs/api.md, "SSH"): the CA keys hosts trust (TrustedUserCAKeys) and the KRL
// (RevokedKeys) listing the certificates whose lease ended before they expired.

import type { Context, Hono } from "hono";
import { revocationRegistry } from "../adapters/revocation-registry.ts";
import { SSH_KRL_MAX_AGE_SECONDS } from "../core/constants.ts";
import { base64, hex } from "../core/encoding.ts";
import { RunpassError } from "../core/errors.ts";
import type { SshCaSet } from "../core/ssh/ca-keys.ts";
import { caLine } from "../core/ssh/keys.ts";
import { encodeKrl } from "../core/ssh/krl.ts";
import type { AppEnv } from "./types.ts";

async function cas(c: Context<AppEnv>): Promise<SshCaSet> {
  if (!c.env.RUNPASS_SSH_CA_KEYS)
    throw new RunpassError("not_found", "this runpass has no ssh CA configured (RUNPASS_SSH_CA_KEYS)");
  return c.get("runtime").context(c.env).grants.ssh();
}

/** Registers /v1/ssh/ca.pub and /v1/ssh/krl. */
export function sshRoutes(app: Hono<AppEnv>): void {
  app.get("/v1/ssh/ca.pub", async (c) => {
    const set = await cas(c);
    return c.body(`${set.all.map(caLine).join("\n")}\n`, 200, {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "public, max-age=300",
    });
  });

  // Every configured CA's section; a CA key removed from RUNPASS_SSH_CA_KEYS is no longer listed (docs/grants.md,
  // "CA rotation": keep a retired key configured until its certificates have expired).
  app.get("/v1/ssh/krl", async (c) => {
    const set = await cas(c);
    const now = Math.floor(c.get("runtime").clock() / 1000);
    const registry = revocationRegistry(c.env);
    const sections = await Promise.all(
      set.all.map(async (ca) => ({
        caBlob: ca.publicBlob,
        ended: await registry.endedCertificates("ssh", base64(ca.publicBlob), now),
      })),
    );
    // The newest listing dates the KRL: the same list gives the same bytes (and ETag) on every fetch.
    const newest = Math.max(0, ...sections.flatMap((s) => s.ended.map((e) => e.endedAt)));
    const krl = encodeKrl({
      version: BigInt(newest),
      generatedAt: newest,
      comment: "runpass",
      sections: sections.map((s) => ({ caBlob: s.caBlob, serials: s.ended.map((e) => BigInt(e.serial)) })),
    });
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", krl));
    const etag = `"${hex(digest.slice(0, 16))}"`;
    const headers = { etag, "cache-control": `public, max-age=${SSH_KRL_MAX_AGE_SECONDS}` };
    if (c.req.header("if-none-match") === etag) return c.body(null, 304, headers);
    return c.body(krl, 200, { ...headers, "content-type": "application/octet-stream" });
  });
}
