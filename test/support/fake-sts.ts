// A local AWS STS for tests, speaking the real wire protocol: AWS Query requests (form-encoded POST),
// SigV4-verified AssumeRole, JWT-verified AssumeRoleWithWebIdentity, and STS's XML responses and errors.
// SigV4 is verified independently of the SDK's signer (node:crypto), so a signing bug is caught rather
// than mirrored. Tests steer it per role ARN (faults) and per issuer (web identity JWKS) and read back
// every call it saw.

import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createLocalJWKSet, decodeJwt, type JSONWebKeySet, errors as joseErrors, jwtVerify } from "jose";

/** The only long-term credentials the fake accepts for SigV4 (test-only, not secret). */
export const STS_ACCESS_KEY_ID = "AKIATESTBROKER000001";
export const STS_SECRET_ACCESS_KEY = "testBrokerSecretKey0000000000000000000000";

const XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/";
/** AWS rejects signatures whose x-amz-date is further than this from its clock. */
const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;
const DEFAULT_WEB_IDENTITY_AUDIENCE = "sts.amazonaws.com";

export type RoleMode = "ok" | "throttle" | "fail" | "unavailable" | "reject" | "malformed";

export interface StsRecord {
  at: string;
  action: string;
  roleArn?: string;
  roleSessionName?: string;
  durationSeconds?: number;
  policy?: string;
  policyArns: string[];
  tags: Record<string, string>;
  transitiveTagKeys: string[];
  sourceIdentity?: string;
  /** AssumeRole: the access key id from the SigV4 credential scope. */
  accessKeyId?: string;
  /** AssumeRole: the region from the SigV4 credential scope. */
  region?: string;
  signedHeaders?: string[];
  userAgent?: string;
  /** AssumeRoleWithWebIdentity: the token's claims (decoded without verification, for inspection). */
  webIdentityClaims?: Record<string, unknown>;
  /** HTTP status and, on failure, the STS error code returned. */
  status: number;
  errorCode?: string;
  /** On success: the AccessKeyId handed out. */
  returnedAccessKeyId?: string;
}

interface RoleState {
  mode: RoleMode;
  /** Calls left in this mode before it reverts to "ok"; undefined = forever. */
  remaining: number | undefined;
}

interface WebIdentityProvider {
  jwks: ReturnType<typeof createLocalJWKSet>;
  audiences: string[];
}

class StsError extends Error {
  readonly status: number;
  readonly code: string;
  readonly type: "Sender" | "Receiver";
  constructor(status: number, code: string, message: string, type?: "Sender" | "Receiver") {
    super(message);
    this.status = status;
    this.code = code;
    this.type = type ?? (status >= 500 ? "Receiver" : "Sender");
  }
}

function xmlEscape(s: string): string {
  return s.replace(
    /[<>&'"]/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;" })[c]!,
  );
}

function el(name: string, value: string | number | undefined): string {
  return value === undefined ? "" : `<${name}>${xmlEscape(String(value))}</${name}>`;
}

/** RFC 3986 encoding as SigV4 wants it (unreserved: A-Z a-z 0-9 - _ . ~). */
function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function sha256Hex(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

function randomChars(n: number, alphabet: string): string {
  const bytes = randomBytes(n);
  let out = "";
  for (let i = 0; i < n; i++) out += alphabet[bytes[i]! % alphabet.length];
  return out;
}

const UPPER_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** 20241123T165050Z → epoch ms. */
function parseAmzDate(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}

function amzDate(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}Z$/, "Z");
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Header values as sent (from rawHeaders), multiple values joined by "," as SigV4 prescribes. */
function rawHeaderMap(req: IncomingMessage): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    const list = map.get(name) ?? [];
    list.push(req.rawHeaders[i + 1]!);
    map.set(name, list);
  }
  return map;
}

/** Canonical URI for non-S3 services: the path as sent, normalised, each segment encoded once more. */
function canonicalUri(rawPath: string): string {
  const segments: string[] = [];
  for (const seg of rawPath.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") segments.pop();
    else segments.push(seg);
  }
  const trailing = segments.length > 0 && rawPath.endsWith("/") ? "/" : "";
  return `/${segments.map(rfc3986).join("/")}${trailing}`;
}

function canonicalQuery(search: string): string {
  const pairs: Array<[string, string]> = [];
  for (const part of search.replace(/^\?/, "").split("&")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    const k = decodeURIComponent((eq < 0 ? part : part.slice(0, eq)).replace(/\+/g, " "));
    const v = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, " "));
    if (k === "X-Amz-Signature") continue;
    pairs.push([rfc3986(k), rfc3986(v)]);
  }
  pairs.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

const SIGNATURE_MISMATCH =
  "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/**
 * Verifies an `Authorization: AWS4-HMAC-SHA256 …` header against the body actually received.
 * Returns the access key id and region from the credential scope; throws StsError like AWS would.
 */
function verifySigV4(
  req: IncomingMessage,
  body: Buffer,
  now: number,
): { accessKeyId: string; region: string; signedHeaders: string[] } {
  const headers = rawHeaderMap(req);
  const auth = headers.get("authorization")?.[0];
  if (!auth) throw new StsError(403, "MissingAuthenticationToken", "Request is missing Authentication Token");
  const m =
    /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})\s*$/.exec(
      auth,
    );
  if (!m) {
    throw new StsError(
      400,
      "IncompleteSignature",
      `Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters. Authorization=${auth.split(" ")[0]}`,
    );
  }
  const [, credential, signedHeadersRaw, signature] = m as unknown as [string, string, string, string];
  const scope = credential.split("/");
  if (scope.length !== 5) {
    throw new StsError(400, "IncompleteSignature", "Credential should have exactly 5 slash-separated parts.");
  }
  const [accessKeyId, scopeDate, region, service, terminator] = scope as [
    string,
    string,
    string,
    string,
    string,
  ];
  if (accessKeyId !== STS_ACCESS_KEY_ID) {
    throw new StsError(403, "InvalidClientTokenId", "The security token included in the request is invalid.");
  }
  if (service !== "sts") {
    throw new StsError(
      403,
      "SignatureDoesNotMatch",
      `Credential should be scoped to correct service: 'sts'.`,
    );
  }
  if (terminator !== "aws4_request") {
    throw new StsError(
      403,
      "SignatureDoesNotMatch",
      "Credential should be scoped with a valid terminator: 'aws4_request'.",
    );
  }
  const xAmzDate = headers.get("x-amz-date")?.[0];
  const signedAt = xAmzDate ? parseAmzDate(xAmzDate) : undefined;
  if (!xAmzDate || signedAt === undefined) {
    throw new StsError(
      400,
      "IncompleteSignature",
      "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    );
  }
  if (scopeDate !== xAmzDate.slice(0, 8)) {
    throw new StsError(
      403,
      "SignatureDoesNotMatch",
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${xAmzDate.slice(0, 8)}', from '${xAmzDate}'.`,
    );
  }
  if (Math.abs(now - signedAt) > MAX_CLOCK_SKEW_MS) {
    const edge = signedAt < now ? now - MAX_CLOCK_SKEW_MS : now + MAX_CLOCK_SKEW_MS;
    throw new StsError(
      403,
      "SignatureDoesNotMatch",
      `Signature expired: ${xAmzDate} is now ${signedAt < now ? "earlier" : "later"} than ${amzDate(edge)} (${amzDate(now)} ${signedAt < now ? "-" : "+"} 15 min.)`,
    );
  }
  const signedHeaders = signedHeadersRaw.split(";");
  if (!signedHeaders.includes("host")) {
    throw new StsError(
      403,
      "SignatureDoesNotMatch",
      "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
    );
  }
  const payloadHash = sha256Hex(body);
  const declaredHash = headers.get("x-amz-content-sha256")?.[0];
  if (declaredHash !== undefined && declaredHash !== payloadHash && declaredHash !== "UNSIGNED-PAYLOAD") {
    throw new StsError(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH);
  }
  const url = new URL(req.url ?? "/", "http://sts.invalid");
  const rawPath = (req.url ?? "/").split("?")[0] || "/";
  const canonicalHeaders = signedHeaders
    .map((name) => {
      const values = headers.get(name) ?? [];
      return `${name}:${values.map((v) => v.trim().replace(/\s+/g, " ")).join(",")}\n`;
    })
    .join("");
  const canonicalRequest = [
    req.method ?? "POST",
    canonicalUri(rawPath),
    canonicalQuery(url.search),
    canonicalHeaders,
    signedHeadersRaw,
    // AWS hashes the body it received; a declared x-amz-content-sha256 has been checked against it above.
    declaredHash === "UNSIGNED-PAYLOAD" ? declaredHash : payloadHash,
  ].join("\n");
  const credentialScope = `${scopeDate}/${region}/${service}/${terminator}`;
  const stringToSign = ["AWS4-HMAC-SHA256", xAmzDate, credentialScope, sha256Hex(canonicalRequest)].join(
    "\n",
  );
  const kDate = hmac(`AWS4${STS_SECRET_ACCESS_KEY}`, scopeDate);
  const kSigning = hmac(hmac(hmac(kDate, region), service), "aws4_request");
  const expected = createHmac("sha256", kSigning).update(stringToSign).digest();
  const given = Buffer.from(signature, "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new StsError(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH);
  }
  return { accessKeyId, region, signedHeaders };
}

/** The parameters of one AWS Query request, lists flattened as `X.member.N[.field]`. */
interface QueryParams {
  action: string;
  roleArn?: string;
  roleSessionName?: string;
  durationSecondsRaw?: string;
  policy?: string;
  policyArns: string[];
  tags: Array<{ key: string; value: string }>;
  transitiveTagKeys: string[];
  sourceIdentity?: string;
  webIdentityToken?: string;
}

function parseQuery(form: URLSearchParams): QueryParams {
  const members = (prefix: string, field?: string): string[] => {
    const out: Array<[number, string]> = [];
    for (const [k, v] of form) {
      const m = new RegExp(`^${prefix}\\.member\\.(\\d+)${field ? `\\.${field}` : ""}$`).exec(k);
      if (m) out.push([Number(m[1]), v]);
    }
    return out.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
  };
  const tagKeys = new Map<number, string>();
  const tagValues = new Map<number, string>();
  for (const [k, v] of form) {
    const m = /^Tags\.member\.(\d+)\.(Key|Value)$/.exec(k);
    if (m) (m[2] === "Key" ? tagKeys : tagValues).set(Number(m[1]), v);
  }
  const tags = [...tagKeys.keys()]
    .sort((a, b) => a - b)
    .map((i) => ({ key: tagKeys.get(i)!, value: tagValues.get(i) ?? "" }));
  const opt = (name: string) => form.get(name) ?? undefined;
  return {
    action: form.get("Action") ?? "",
    roleArn: opt("RoleArn"),
    roleSessionName: opt("RoleSessionName"),
    durationSecondsRaw: opt("DurationSeconds"),
    policy: opt("Policy"),
    policyArns: members("PolicyArns", "arn"),
    tags,
    transitiveTagKeys: members("TransitiveTagKeys"),
    sourceIdentity: opt("SourceIdentity"),
    webIdentityToken: opt("WebIdentityToken"),
  };
}

function validationError(value: string, member: string, constraint: string): StsError {
  return new StsError(
    400,
    "ValidationError",
    `1 validation error detected: Value ${value} at '${member}' failed to satisfy constraint: ${constraint}`,
  );
}

const NAME_PATTERN = /^[\w+=,.@-]*$/;

/** STS's own parameter validation, in the order it reports problems. Returns DurationSeconds. */
function validate(p: QueryParams): number {
  if (p.roleArn === undefined) throw validationError("null", "roleArn", "Member must not be null");
  if (p.roleArn.length < 20 || p.roleArn.length > 2048) {
    throw validationError(`'${p.roleArn}'`, "roleArn", "Member must have length between 20 and 2048");
  }
  if (p.roleSessionName === undefined)
    throw validationError("null", "roleSessionName", "Member must not be null");
  if (p.roleSessionName.length < 2) {
    throw validationError(
      `'${p.roleSessionName}'`,
      "roleSessionName",
      "Member must have length greater than or equal to 2",
    );
  }
  if (p.roleSessionName.length > 64) {
    throw validationError(
      `'${p.roleSessionName}'`,
      "roleSessionName",
      "Member must have length less than or equal to 64",
    );
  }
  if (!NAME_PATTERN.test(p.roleSessionName)) {
    throw validationError(
      `'${p.roleSessionName}'`,
      "roleSessionName",
      "Member must satisfy regular expression pattern: [\\w+=,.@-]*",
    );
  }
  let duration = 3600;
  if (p.durationSecondsRaw !== undefined) {
    duration = Number(p.durationSecondsRaw);
    if (!Number.isInteger(duration)) {
      throw validationError(`'${p.durationSecondsRaw}'`, "durationSeconds", "Member must be an integer");
    }
    if (duration < 900) {
      throw validationError(
        `'${duration}'`,
        "durationSeconds",
        "Member must have value greater than or equal to 900",
      );
    }
    if (duration > 43200) {
      throw validationError(
        `'${duration}'`,
        "durationSeconds",
        "Member must have value less than or equal to 43200",
      );
    }
  }
  if (p.sourceIdentity !== undefined) {
    if (p.sourceIdentity.length < 2 || p.sourceIdentity.length > 64 || !NAME_PATTERN.test(p.sourceIdentity)) {
      throw validationError(
        `'${p.sourceIdentity}'`,
        "sourceIdentity",
        "Member must have length between 2 and 64 and satisfy regular expression pattern: [\\w+=,.@-]*",
      );
    }
    if (p.sourceIdentity.toLowerCase().startsWith("aws:")) {
      throw new StsError(400, "ValidationError", "SourceIdentity cannot start with the prefix 'aws:'.");
    }
  }
  if (p.tags.length > 50) {
    throw validationError("'[…]'", "tags", "Member must have length less than or equal to 50");
  }
  const seen = new Set<string>();
  for (const [i, t] of p.tags.entries()) {
    if (t.key.length < 1 || t.key.length > 128) {
      throw validationError(
        `'${t.key}'`,
        `tags.${i + 1}.member.key`,
        "Member must have length between 1 and 128",
      );
    }
    if (t.value.length > 256) {
      throw validationError(
        `'${t.value}'`,
        `tags.${i + 1}.member.value`,
        "Member must have length less than or equal to 256",
      );
    }
    if (seen.has(t.key.toLowerCase())) {
      throw new StsError(
        400,
        "InvalidParameterValue",
        "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
      );
    }
    seen.add(t.key.toLowerCase());
  }
  if (p.transitiveTagKeys.length > 50) {
    throw validationError("'[…]'", "transitiveTagKeys", "Member must have length less than or equal to 50");
  }
  if (p.policyArns.length > 10) {
    throw validationError("'[…]'", "policyArns", "Member must have length less than or equal to 10");
  }
  if (p.policy !== undefined && p.policy.length > 2048) {
    throw new StsError(
      400,
      "PackedPolicyTooLarge",
      "Packed policy consumes 104% of allotted space, please use smaller policy.",
    );
  }
  return duration;
}

/** The share (percent) of the packed-policy allowance used — only reported when something was packed. */
function packedPolicySize(p: QueryParams): number | undefined {
  if (p.policy === undefined && p.policyArns.length === 0 && p.tags.length === 0) return undefined;
  const bytes =
    (p.policy?.replace(/\s+/g, "").length ?? 0) +
    p.policyArns.reduce((n, a) => n + a.length, 0) +
    p.tags.reduce((n, t) => n + t.key.length + t.value.length, 0);
  return Math.max(1, Math.min(100, Math.ceil((bytes * 100) / 2048)));
}

function assumedRoleUser(roleArn: string, session: string): { arn: string; id: string } {
  // arn:aws:iam::111111111111:role/path/Name → arn:aws:sts::111111111111:assumed-role/Name/session
  const m = /^arn:([\w-]+):iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/.exec(roleArn);
  const partition = m?.[1] ?? "aws";
  const account = m?.[2] ?? "111111111111";
  const name = m?.[3] ?? "role";
  const digest = createHash("sha256").update(roleArn).digest();
  let unique = "AROA";
  for (let i = 0; unique.length < 21; i++) unique += UPPER_ALNUM[digest[i]! % UPPER_ALNUM.length];
  return {
    arn: `arn:${partition}:sts::${account}:assumed-role/${name}/${session}`,
    id: `${unique}:${session}`,
  };
}

function issueCredentials(durationSeconds: number, now: number) {
  return {
    accessKeyId: `ASIA${randomChars(16, UPPER_ALNUM)}`,
    secretAccessKey: randomChars(40, SECRET_ALPHABET),
    sessionToken: `IQoJb3JpZ2luX2Vj${randomBytes(360).toString("base64")}`,
    expiration: isoSeconds(now + durationSeconds * 1000),
  };
}

export class FakeSts {
  readonly #roles = new Map<string, RoleState>();
  readonly #providers = new Map<string, WebIdentityProvider>();
  readonly #records: StsRecord[] = [];
  #server: Server | undefined;
  base = "";

  /** Starts on a random loopback port. */
  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((e) => {
        if (!res.headersSent) this.#error(res, new StsError(500, "InternalFailure", String(e)));
        else res.end();
      });
    });
    await new Promise<void>((r) => this.#server?.listen(0, "127.0.0.1", () => r()));
    this.base = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((r) => this.#server?.close(() => r()));
  }

  get total(): number {
    return this.#records.length;
  }

  #error(res: ServerResponse, e: StsError): void {
    const requestId = randomUUID();
    res.writeHead(e.status, { "content-type": "text/xml", "x-amzn-requestid": requestId });
    res.end(
      `<ErrorResponse xmlns="${XMLNS}"><Error><Type>${e.type}</Type><Code>${xmlEscape(e.code)}</Code><Message>${xmlEscape(e.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>\n`,
    );
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.base);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };

    // Control plane (tests only).
    if (url.pathname === "/__requests" && req.method === "GET") {
      const roleArn = url.searchParams.get("roleArn");
      return json(200, roleArn === null ? this.#records : this.#records.filter((r) => r.roleArn === roleArn));
    }
    if (url.pathname === "/__stats" && req.method === "GET")
      return json(200, { total: this.#records.length });
    if (url.pathname === "/__control/role" && req.method === "POST") {
      const body = JSON.parse((await readBody(req)).toString("utf8") || "{}") as {
        roleArn?: string;
        mode?: RoleMode;
        times?: number;
      };
      if (!body.roleArn || !body.mode) return json(400, { error: "roleArn and mode required" });
      this.#roles.set(body.roleArn, { mode: body.mode, remaining: body.times });
      return json(200, {});
    }
    if (url.pathname === "/__control/web-identity" && req.method === "POST") {
      const body = JSON.parse((await readBody(req)).toString("utf8") || "{}") as {
        issuer?: string;
        jwks?: JSONWebKeySet;
        audiences?: string[];
      };
      if (!body.issuer || !body.jwks) return json(400, { error: "issuer and jwks required" });
      this.#providers.set(body.issuer, {
        jwks: createLocalJWKSet(body.jwks),
        audiences: body.audiences ?? [DEFAULT_WEB_IDENTITY_AUDIENCE],
      });
      return json(200, {});
    }
    if (url.pathname.startsWith("/__")) return json(404, { error: "not found" });

    // The STS Query API.
    const now = Date.now();
    const body = await readBody(req);
    const form = new URLSearchParams(req.method === "GET" ? url.search : body.toString("utf8"));
    const p = parseQuery(form);
    const record: StsRecord = {
      at: new Date(now).toISOString(),
      action: p.action,
      roleArn: p.roleArn,
      roleSessionName: p.roleSessionName,
      durationSeconds: p.durationSecondsRaw === undefined ? undefined : Number(p.durationSecondsRaw),
      policy: p.policy,
      policyArns: p.policyArns,
      tags: Object.fromEntries(p.tags.map((t) => [t.key, t.value])),
      transitiveTagKeys: p.transitiveTagKeys,
      sourceIdentity: p.sourceIdentity,
      userAgent: req.headers["user-agent"],
      status: 200,
    };
    this.#records.push(record);
    try {
      const xml = await this.#dispatch(req, body, p, record, now);
      const requestId = randomUUID();
      res.writeHead(200, { "content-type": "text/xml", "x-amzn-requestid": requestId });
      res.end(xml.replace("{{RequestId}}", requestId));
    } catch (e) {
      const err =
        e instanceof StsError ? e : new StsError(500, "InternalFailure", "An internal error occurred.");
      record.status = err.status;
      record.errorCode = err.code;
      this.#error(res, err);
    }
  }

  async #dispatch(
    req: IncomingMessage,
    body: Buffer,
    p: QueryParams,
    record: StsRecord,
    now: number,
  ): Promise<string> {
    if (req.method !== "POST" && req.method !== "GET") {
      throw new StsError(405, "InvalidAction", `Unsupported method ${req.method}`);
    }
    if (p.action !== "AssumeRole" && p.action !== "AssumeRoleWithWebIdentity") {
      throw new StsError(
        400,
        "InvalidAction",
        p.action ? `Could not find operation ${p.action} for version 2011-06-15` : "Action is required",
      );
    }

    let claims: Record<string, unknown> | undefined;
    if (p.action === "AssumeRole") {
      const sig = verifySigV4(req, body, now);
      record.accessKeyId = sig.accessKeyId;
      record.region = sig.region;
      record.signedHeaders = sig.signedHeaders;
    } else {
      if (p.webIdentityToken !== undefined) {
        try {
          record.webIdentityClaims = decodeJwt(p.webIdentityToken) as Record<string, unknown>;
        } catch {
          // Recorded as undecodable; verification below reports it.
        }
      }
    }

    // Per-role faults: throttling/outages are decided before the request is looked at further.
    const role = p.roleArn ? this.#roles.get(p.roleArn) : undefined;
    const mode = role?.mode ?? "ok";
    if (role && mode !== "ok") {
      if (role.remaining !== undefined) {
        role.remaining -= 1;
        if (role.remaining <= 0) this.#roles.set(p.roleArn!, { mode: "ok", remaining: undefined });
      }
    }
    if (mode === "throttle") throw new StsError(400, "Throttling", "Rate exceeded");
    if (mode === "fail") throw new StsError(500, "InternalFailure", "An internal error occurred.");
    if (mode === "unavailable") {
      throw new StsError(503, "ServiceUnavailable", "Service is unable to handle request.");
    }

    const durationSeconds = validate(p);

    if (p.action === "AssumeRoleWithWebIdentity") {
      if (p.webIdentityToken === undefined)
        throw validationError("null", "webIdentityToken", "Member must not be null");
      claims = await this.#verifyWebIdentity(p.webIdentityToken);
    }

    if (mode === "reject") {
      throw new StsError(
        403,
        "AccessDenied",
        p.action === "AssumeRole"
          ? `User: arn:aws:iam::111111111111:user/runpass-broker is not authorized to perform: sts:AssumeRole on resource: ${p.roleArn}`
          : "Not authorized to perform sts:AssumeRoleWithWebIdentity",
      );
    }
    if (mode === "malformed") {
      throw new StsError(400, "MalformedPolicyDocument", "The policy is not in the valid JSON format.");
    }

    const user = assumedRoleUser(p.roleArn!, p.roleSessionName!);
    const creds = issueCredentials(durationSeconds, now);
    record.returnedAccessKeyId = creds.accessKeyId;
    const packed = packedPolicySize(p);
    const userXml = `<AssumedRoleUser>${el("Arn", user.arn)}${el("AssumedRoleId", user.id)}</AssumedRoleUser>`;
    const credsXml = `<Credentials>${el("AccessKeyId", creds.accessKeyId)}${el("SecretAccessKey", creds.secretAccessKey)}${el("SessionToken", creds.sessionToken)}${el("Expiration", creds.expiration)}</Credentials>`;
    const meta = "<ResponseMetadata><RequestId>{{RequestId}}</RequestId></ResponseMetadata>";

    if (p.action === "AssumeRole") {
      return `<AssumeRoleResponse xmlns="${XMLNS}"><AssumeRoleResult>${el("SourceIdentity", p.sourceIdentity)}${userXml}${credsXml}${el("PackedPolicySize", packed)}</AssumeRoleResult>${meta}</AssumeRoleResponse>\n`;
    }
    const aud = claims?.aud;
    return `<AssumeRoleWithWebIdentityResponse xmlns="${XMLNS}"><AssumeRoleWithWebIdentityResult>${el("SubjectFromWebIdentityToken", String(claims?.sub ?? ""))}${el("Audience", Array.isArray(aud) ? aud.join(",") : String(aud ?? ""))}${userXml}${credsXml}${el("SourceIdentity", p.sourceIdentity)}${el("Provider", String(claims?.iss ?? ""))}${el("PackedPolicySize", packed)}</AssumeRoleWithWebIdentityResult>${meta}</AssumeRoleWithWebIdentityResponse>\n`;
  }

  async #verifyWebIdentity(token: string): Promise<Record<string, unknown>> {
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      throw new StsError(
        400,
        "InvalidIdentityToken",
        "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)",
      );
    }
    const provider = typeof iss === "string" ? this.#providers.get(iss) : undefined;
    if (!provider) {
      throw new StsError(
        400,
        "InvalidIdentityToken",
        `No OpenIDConnect provider found in your account for ${String(iss)}`,
      );
    }
    try {
      const { payload } = await jwtVerify(token, provider.jwks, {
        issuer: iss as string,
        requiredClaims: ["exp", "aud"],
        clockTolerance: 0,
      });
      const auds = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      if (!auds.some((a) => typeof a === "string" && provider.audiences.includes(a))) {
        throw new StsError(400, "InvalidIdentityToken", "Incorrect token audience");
      }
      return payload as Record<string, unknown>;
    } catch (e) {
      if (e instanceof StsError) throw e;
      if (e instanceof joseErrors.JWTExpired) {
        const exp = Number(e.payload.exp);
        throw new StsError(
          400,
          "ExpiredTokenException",
          `Token expired: current date/time ${Math.floor(Date.now() / 1000)} must be before the expiration date/time${exp}`,
        );
      }
      throw new StsError(400, "InvalidIdentityToken", "Couldn't verify the token signature");
    }
  }
}
