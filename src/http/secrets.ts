// /v1/admin/secrets…: write, list, show, roll back, delete, destroy and re-wrap secrets. Admins can never read
// a value back; every call is audited (paths and versions, never values). A path keeps at most
// MAX_SECRET_VERSIONS versions with content; destroying one destroys its rollback copies too.

import type { Context, Hono } from "hono";
import * as z from "zod/mini";
import { D1AuditStore } from "../adapters/audit-store.ts";
import type { SecretMeta } from "../adapters/secret-store.ts";
import { recordShard, shardStub, shardsFor, storeFor } from "../adapters/secrets-client.ts";
import { MAX_SECRET_BODY_BYTES, MAX_SECRET_BYTES } from "../core/constants.ts";
import { formatDuration, parseDuration } from "../core/duration.ts";
import { ConfigError, RunpassError } from "../core/errors.ts";
import { pathProblem } from "../core/secrets/paths.ts";
import { auditSink, requestRecord } from "./audit.ts";
import { parseJson, readBodyBytes, requireMediaType } from "./request.ts";
import { NO_STORE } from "./respond.ts";
import type { AppEnv } from "./types.ts";

const PutBody = z.strictObject({
  value: z.optional(z.string()),
  value_base64: z.optional(z.string()),
  /** Rotation age ("90d"), kept across versions until set again; null clears it (docs/console.md, "Secrets"). */
  max_age: z.optional(z.nullable(z.string().check(z.maxLength(16)))),
});
const RollbackBody = z.strictObject({ version: z.number().check(z.int(), z.positive()) });
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function checkedPath(c: Context<AppEnv>): string {
  // Hono has already percent-decoded the parameter once; decoding again would turn %2541 into "A".
  const path = c.req.param("path") ?? "";
  const problem = pathProblem(path);
  if (problem) throw new RunpassError("invalid_request", problem);
  return path;
}

/** Who made the change: the Access-verified person, else what the CLI or caller says (X-Runpass-Actor). */
function actor(c: Context<AppEnv>): string {
  const person = c.get("adminActor");
  if (person) return `admin:${person.slice(0, 128)}`;
  const raw = c.req.header("x-runpass-actor") ?? "";
  const clean = raw
    .replace(/[^\w.@+:/ -]/g, "")
    .slice(0, 64)
    .trim();
  return clean ? `admin:${clean}` : "admin";
}

async function audit(
  c: Context<AppEnv>,
  action: string,
  fields: { path?: string; version?: number; detail?: string },
) {
  auditSink(c).write(
    await requestRecord(
      c,
      "secret_admin",
      { decision: "allow", reasons: [] },
      {
        detail: [
          action,
          fields.path,
          fields.version !== undefined ? `v${fields.version}` : undefined,
          fields.detail,
        ]
          .filter(Boolean)
          .join(" "),
      },
    ),
  );
}

/** Registers the secret admin routes (behind requireAdmin, mounted by adminRoutes). */
export function secretRoutes(app: Hono<AppEnv>): void {
  app.put("/v1/admin/secrets/:path{.+}", async (c) => {
    const path = checkedPath(c);
    requireMediaType(c, "application/json");
    const body = parseJson(await readBodyBytes(c, MAX_SECRET_BODY_BYTES), PutBody);
    if ((body.value === undefined) === (body.value_base64 === undefined)) {
      throw new RunpassError("invalid_request", 'give exactly one of "value" or "value_base64"');
    }
    let value: string;
    let encoding: "utf8" | "base64";
    let size: number;
    if (body.value !== undefined) {
      if (LONE_SURROGATE.test(body.value)) {
        throw new RunpassError(
          "invalid_request",
          '"value" is not well-formed Unicode (use value_base64 for bytes)',
        );
      }
      value = body.value;
      encoding = "utf8";
      size = new TextEncoder().encode(value).length;
    } else {
      value = (body.value_base64 as string).replace(/\s+/g, "");
      if (!BASE64.test(value)) throw new RunpassError("invalid_request", '"value_base64" is not base64');
      encoding = "base64";
      size = Math.floor((value.length * 3) / 4) - (value.endsWith("==") ? 2 : value.endsWith("=") ? 1 : 0);
    }
    if (size === 0) throw new RunpassError("invalid_request", "a secret value must not be empty");
    if (size > MAX_SECRET_BYTES) {
      throw new RunpassError("request_too_large", `a secret value is at most ${MAX_SECRET_BYTES} bytes`);
    }
    let maxAge: number | null | undefined;
    if (typeof body.max_age === "string") {
      maxAge = parseDuration(body.max_age);
      if (maxAge === undefined)
        throw new RunpassError("invalid_request", '"max_age" must be a duration such as 90d');
    } else if (body.max_age === null) {
      maxAge = null;
    }
    // The leak fingerprint is taken of the value as an exchange delivers it (docs/leaks.md), before it is stored.
    const rt = c.get("runtime");
    const fp = await rt.context(c.env).fingerprinter().digest(value);
    const result = await storeFor(c.env, path).put(
      c.env.RUNPASS_MASTER_KEYS,
      path,
      value,
      encoding,
      actor(c),
    );
    if (!result.ok) {
      if (result.code === "conflict") throw new RunpassError("conflict", result.detail);
      throw new ConfigError(result.detail.replace(/^runpass is misconfigured: /, ""));
    }
    await recordShard(c.env, path);
    await new D1AuditStore(c.env.AUDIT_DB).indexSecret(fp, path, result.version, rt.clock());
    if (maxAge !== undefined) await storeFor(c.env, path).setMaxAge(path, maxAge);
    await audit(c, "put", {
      path,
      version: result.version,
      ...(maxAge !== undefined
        ? { detail: `max_age ${maxAge === null ? "cleared" : formatDuration(maxAge)}` }
        : {}),
    });
    return c.json({ path, version: result.version }, 201, NO_STORE);
  });

  app.get("/v1/admin/secrets", async (c) => {
    const prefix = c.req.query("prefix") ?? "";
    if (prefix.length > 512 || /[^A-Za-z0-9._/-]/.test(prefix)) {
      throw new RunpassError("invalid_request", '"prefix" uses only A-Z a-z 0-9 . _ - /');
    }
    const shards = await shardsFor(c.env, prefix);
    const lists = await Promise.all(shards.map((s) => shardStub(c.env, s).list(prefix)));
    const secrets = (lists.flat() as SecretMeta[]).sort((a, b) => a.path.localeCompare(b.path));
    return c.json({ secrets }, 200, NO_STORE);
  });

  app.post("/v1/admin/secrets-rewrap", async (c) => {
    const shards = await shardsFor(c.env, "");
    const results = await Promise.all(
      shards.map((s) => shardStub(c.env, s).rewrap(c.env.RUNPASS_MASTER_KEYS)),
    );
    const out = {
      rewrapped: results.reduce((n, r) => n + r.rewrapped, 0),
      already_current: results.reduce((n, r) => n + r.current, 0),
      failed: results.flatMap((r) => r.failed.map(({ path, version, kid }) => ({ path, version, kid }))),
    };
    await audit(c, "rewrap", { detail: `rewrapped ${out.rewrapped}, failed ${out.failed.length}` });
    return c.json(out, out.failed.length ? 207 : 200, NO_STORE);
  });

  app.post("/v1/admin/secrets/:path{.+}/rollback", async (c) => {
    const path = checkedPath(c);
    requireMediaType(c, "application/json");
    const body = parseJson(await readBodyBytes(c), RollbackBody);
    const result = await storeFor(c.env, path).rollback(
      c.env.RUNPASS_MASTER_KEYS,
      path,
      body.version,
      actor(c),
    );
    if (!result.ok) {
      if (result.code === "config") throw new ConfigError(result.detail);
      if (result.code === "conflict") throw new RunpassError("conflict", result.detail);
      throw new RunpassError(result.code === "undecryptable" ? "upstream_error" : "not_found", result.detail);
    }
    await new D1AuditStore(c.env.AUDIT_DB).copySecretFingerprint(
      path,
      body.version,
      result.version,
      c.get("runtime").clock(),
    );
    await audit(c, "rollback", { path, version: result.version, detail: `from v${body.version}` });
    return c.json({ path, version: result.version }, 201, NO_STORE);
  });

  app.get("/v1/admin/secrets/:path{.+}", async (c) => {
    const path = checkedPath(c);
    const meta = await storeFor(c.env, path).meta(path);
    if (!meta) throw new RunpassError("not_found", `no secret at ${path}`);
    return c.json(meta, 200, NO_STORE);
  });

  app.delete("/v1/admin/secrets/:path{.+}", async (c) => {
    const path = checkedPath(c);
    const store = storeFor(c.env, path);
    const versionText = c.req.query("version");
    if (versionText !== undefined || c.req.query("destroy") !== undefined) {
      const version = Number(versionText);
      if (c.req.query("destroy") !== "1" || !Number.isInteger(version) || version < 1) {
        throw new RunpassError("invalid_request", "destroying needs ?version=N&destroy=1");
      }
      const destroyed = await store.destroy(path, version);
      if (!destroyed) throw new RunpassError("not_found", `${path} has no version ${version}`);
      // Rollback copies hold the same content, so they go too; the record names every version destroyed.
      await audit(c, "destroy", {
        path,
        version,
        detail: `destroyed ${destroyed.map((v) => `v${v}`).join(" ")}`,
      });
      return c.body(null, 204, { ...NO_STORE });
    }
    if (!(await store.softDelete(path))) throw new RunpassError("not_found", `no secret at ${path}`);
    await audit(c, "delete", { path });
    return c.body(null, 204, { ...NO_STORE });
  });
}
