// `runpass keys rotate signing|master|ssh-ca|x509-ca`: the next key set in the secrets file, in the order that
// rotates without downtime, and what to deploy when (docs/operations.md, "Key rotation"). Never prints a value.

import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { JWK } from "jose";
import { keyId, newMasterKey, newSigningKey, newSshCaKey, newX509Ca } from "./keygen.ts";
import { readSecretsFile, secretsPath, writeSecretsFile } from "./secrets-file.ts";
import { UsageError } from "./usage-error.ts";

export const KEYS_USAGE = `  keys rotate    signing|master|ssh-ca|x509-ca [--activate] [--secrets FILE]
      Writes the next key set into the secrets file (default .runpass/secrets.json), keeping the old keys, and
      prints what to deploy and when to drop the old key. signing: a new ES256 (and RS256, if the set has one)
      key first — it signs from the next deploy. master, ssh-ca, x509-ca take two runs: without --activate the
      new key is added last, beside the active one (deploy it; hand a new CA to whoever trusts it); --activate
      then makes the key that run added the active one (remembered in FILE.pending; a second --activate is
      refused). The audit key has no command: docs/operations.md says why.`;

const KINDS = ["signing", "master", "ssh-ca", "x509-ca"] as const;
type Kind = (typeof KINDS)[number];

/**
 * The CA keys added but not yet activated, by kind: the SSH key's kid, or the sha256 of the new CA certificate.
 * The key order alone cannot tell "[active, new]" from "[new, old]" after an activation, so a second --activate
 * would promote the old CA again; the add step writes this note and activation consumes it (docs/operations.md).
 */
export type PendingKeys = Partial<Record<"ssh-ca" | "x509-ca", string>>;

/** What a rotation did, for the printed plan. */
export interface RotationPlan {
  setting: string;
  /** Key ids (or CA indexes) in their new order; the first signs/wraps/issues. */
  order: string[];
  phase: "added" | "activated";
  next: string[];
}

function jwks(text: string | undefined, setting: string): JWK[] {
  if (!text)
    throw new Error(`the secrets file has no ${setting}; run \`runpass init\` (or init --with) first`);
  const list = JSON.parse(text) as unknown;
  if (!Array.isArray(list) || list.length === 0)
    throw new Error(`${setting} in the secrets file is not a JSON array of JWKs`);
  return list as JWK[];
}

/** A new signing key first: relying parties fetch the JWKS again for a kid they do not know. */
async function rotateSigning(secrets: Record<string, string>, now: Date): Promise<RotationPlan> {
  const keys = jwks(secrets.RUNPASS_SIGNING_KEYS, "RUNPASS_SIGNING_KEYS");
  const fresh = [await newSigningKey("ES256", now)];
  if (keys.some((k) => k.alg === "RS256")) fresh.push(await newSigningKey("RS256", now));
  const next = [...fresh, ...keys];
  secrets.RUNPASS_SIGNING_KEYS = JSON.stringify(next);
  return {
    setting: "RUNPASS_SIGNING_KEYS",
    order: next.map((k) => String(k.kid)),
    phase: "activated",
    next: [
      "deploy: the new key signs from then on; every key stays published at /.well-known/jwks.json",
      `drop ${keys.map((k) => k.kid).join(", ")} once every token they signed has expired: after the largest token ttl in your policies (at most RUNPASS_MAX_LEASE_TTL)`,
    ],
  };
}

/**
 * Two runs: the first adds a key beside the active one (deployed everywhere before anything depends on it);
 * `--activate` makes the last key in the file the active one.
 */
async function rotateMaster(
  secrets: Record<string, string>,
  now: Date,
  activate: boolean,
): Promise<RotationPlan> {
  const text = secrets.RUNPASS_MASTER_KEYS;
  if (!text) throw new Error("the secrets file has no RUNPASS_MASTER_KEYS; run `runpass init` first");
  const parsed = JSON.parse(text) as { active?: string; keys?: Record<string, string> };
  const keys = parsed.keys ?? {};
  const kids = Object.keys(keys);
  const last = kids[kids.length - 1];
  if (!parsed.active || !last) throw new Error("RUNPASS_MASTER_KEYS in the secrets file has no active key");
  if (activate) {
    if (last === parsed.active)
      throw new Error(`${last} is already the active master key; add a new one first (without --activate)`);
    secrets.RUNPASS_MASTER_KEYS = JSON.stringify({ active: last, keys });
    const old = kids.filter((k) => k !== last);
    return {
      setting: "RUNPASS_MASTER_KEYS",
      order: [last, ...old],
      phase: "activated",
      next: [
        `deploy: new secret versions are wrapped by ${last}; older ones still open with ${old.join(", ")}`,
        "npx runpass admin secrets rewrap   # re-wraps every data key under the active key (exit 0: none left)",
        `then drop ${old.join(", ")} from RUNPASS_MASTER_KEYS and deploy`,
      ],
    };
  }
  const kid = keyId("m", now);
  secrets.RUNPASS_MASTER_KEYS = JSON.stringify({
    active: parsed.active,
    keys: { ...keys, [kid]: newMasterKey() },
  });
  return {
    setting: "RUNPASS_MASTER_KEYS",
    order: [parsed.active, ...kids.filter((k) => k !== parsed.active), kid],
    phase: "added",
    next: [
      `deploy: ${kid} is known everywhere but wraps nothing yet`,
      "then `runpass keys rotate master --activate` makes it the active key",
    ],
  };
}

/** Two runs, like the master key: hosts must trust a new SSH CA before it signs; `--activate` puts the last first. */
async function rotateSshCa(
  secrets: Record<string, string>,
  now: Date,
  activate: boolean,
  pending: PendingKeys,
): Promise<RotationPlan> {
  const keys = jwks(secrets.RUNPASS_SSH_CA_KEYS, "RUNPASS_SSH_CA_KEYS");
  if (activate) {
    const signer = keys[keys.length - 1] as JWK;
    if (keys.length < 2 || pending["ssh-ca"] === undefined || pending["ssh-ca"] !== signer.kid)
      throw new Error(
        `RUNPASS_SSH_CA_KEYS has no newly added key to activate (${keys[0]?.kid} is active); add one first with \`runpass keys rotate ssh-ca\` (without --activate)`,
      );
    delete pending["ssh-ca"];
    const old = keys.slice(0, -1);
    const next = [signer, ...old];
    secrets.RUNPASS_SSH_CA_KEYS = JSON.stringify(next);
    return {
      setting: "RUNPASS_SSH_CA_KEYS",
      order: next.map((k) => String(k.kid)),
      phase: "activated",
      next: [
        `deploy: ${signer.kid} signs new certificates`,
        `drop ${old.map((k) => k.kid).join(", ")} after the longest ssh ttl in your policies, then remove it from the hosts' TrustedUserCAKeys`,
      ],
    };
  }
  const added = await newSshCaKey(now);
  secrets.RUNPASS_SSH_CA_KEYS = JSON.stringify([...keys, added]);
  pending["ssh-ca"] = String(added.kid);
  return {
    setting: "RUNPASS_SSH_CA_KEYS",
    order: [...keys.map((k) => String(k.kid)), String(added.kid)],
    phase: "added",
    next: [
      `deploy: GET /v1/ssh/ca.pub now lists ${added.kid} too (it signs nothing yet)`,
      "put the new ca.pub on every host (TrustedUserCAKeys), then `runpass keys rotate ssh-ca --activate`",
    ],
  };
}

/** Two runs: relying parties must trust the new CA certificate before it issues; `--activate` puts the last first. */
async function rotateX509Ca(
  secrets: Record<string, string>,
  now: Date,
  activate: boolean,
  pending: PendingKeys,
): Promise<RotationPlan> {
  const text = secrets.RUNPASS_X509_CA;
  if (!text) throw new Error("the secrets file has no RUNPASS_X509_CA; run `runpass init --with x509` first");
  const parsed = JSON.parse(text) as unknown;
  type Ca = { certificate: string; key: string };
  const cas = (Array.isArray(parsed) ? parsed : [parsed]) as Ca[];
  if (activate) {
    const newest = cas[cas.length - 1] as Ca;
    if (cas.length < 2 || pending["x509-ca"] === undefined || pending["x509-ca"] !== caDigest(newest))
      throw new Error(
        "RUNPASS_X509_CA has no newly added CA to activate (the first one issues); add one first with `runpass keys rotate x509-ca` (without --activate)",
      );
    delete pending["x509-ca"];
    secrets.RUNPASS_X509_CA = JSON.stringify([cas[cas.length - 1], ...cas.slice(0, -1)]);
    return {
      setting: "RUNPASS_X509_CA",
      order: [`CA #${cas.length} (new)`, ...cas.slice(0, -1).map((_c, i) => `CA #${i + 1}`)],
      phase: "activated",
      next: [
        "deploy: the new CA issues; the old ones still sign their CRLs",
        "drop the old CA after the longest x509 ttl in your policies, then remove it from relying parties' trust bundles",
      ],
    };
  }
  const created = await newX509Ca(now);
  secrets.RUNPASS_X509_CA = JSON.stringify([...cas, created]);
  pending["x509-ca"] = caDigest(created);
  return {
    setting: "RUNPASS_X509_CA",
    order: [...cas.map((_c, i) => `CA #${i + 1}`), `CA #${cas.length + 1} (new)`],
    phase: "added",
    next: [
      "deploy: GET /v1/x509/ca.pem now serves the new CA certificate too (it issues nothing yet)",
      "add it to every relying party's trust bundle, then `runpass keys rotate x509-ca --activate`",
    ],
  };
}

/** A CA entry's identity for the pending note: the digest of its certificate (public). */
function caDigest(ca: { certificate: string }): string {
  return `sha256:${createHash("sha256").update(ca.certificate).digest("hex")}`;
}

/** Applies one rotation to `secrets` (and the pending note) in place. */
export async function rotate(
  kind: Kind,
  secrets: Record<string, string>,
  options: { activate?: boolean; now?: Date; pending?: PendingKeys } = {},
): Promise<RotationPlan> {
  const now = options.now ?? new Date();
  const activate = options.activate ?? false;
  const pending = options.pending ?? {};
  if (kind === "signing" && activate) throw new UsageError("signing keys rotate in one step (no --activate)");
  switch (kind) {
    case "signing":
      return rotateSigning(secrets, now);
    case "master":
      return rotateMaster(secrets, now, activate);
    case "ssh-ca":
      return rotateSshCa(secrets, now, activate, pending);
    case "x509-ca":
      return rotateX509Ca(secrets, now, activate, pending);
  }
}

/** The pending note beside the secrets file (ids and certificate digests only: nothing secret). */
function pendingPath(secrets: string): string {
  return `${secrets}.pending`;
}

function readPending(secrets: string): PendingKeys {
  let text: string;
  try {
    text = readFileSync(pendingPath(secrets), "utf8");
  } catch {
    return {};
  }
  const parsed = JSON.parse(text) as unknown;
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return {};
  const note: PendingKeys = {};
  for (const kind of ["ssh-ca", "x509-ca"] as const) {
    const value = (parsed as Record<string, unknown>)[kind];
    if (typeof value === "string") note[kind] = value;
  }
  return note;
}

function writePending(secrets: string, pending: PendingKeys): void {
  if (Object.keys(pending).length === 0) rmSync(pendingPath(secrets), { force: true });
  else writeFileSync(pendingPath(secrets), `${JSON.stringify(pending, null, 2)}\n`, { mode: 0o600 });
}

/** `runpass keys rotate`. Exit 0 written, 1 when the secrets file cannot be rotated. */
export async function keysCommand(args: string[], cwd = process.cwd()): Promise<number> {
  const [sub, kind, ...rest] = args;
  if (sub !== "rotate") throw new UsageError(`unknown command "keys ${sub ?? ""}"`);
  if (!(KINDS as readonly string[]).includes(kind ?? ""))
    throw new UsageError(`keys rotate takes ${KINDS.join("|")}, not "${kind ?? ""}"`);
  const { values } = parseArgs({
    args: rest,
    options: { secrets: { type: "string" }, activate: { type: "boolean", default: false } },
    strict: true,
  });
  const path = secretsPath(values.secrets, cwd);
  let plan: RotationPlan;
  try {
    const secrets = readSecretsFile(path);
    const pending = readPending(path);
    plan = await rotate(kind as Kind, secrets, { activate: values.activate, pending });
    writeSecretsFile(path, secrets, true);
    writePending(path, pending);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    console.error(
      `runpass: ${e instanceof SyntaxError ? `${path} holds a setting that is not valid JSON` : e instanceof Error ? e.message : String(e)}`,
    );
    return 1;
  }
  console.log(
    `${plan.setting}: ${plan.phase === "added" ? "new key added (not active yet)" : "new key active"}; order now ${plan.order.join(", ")}`,
  );
  console.log(`deploy it: npx wrangler secret bulk ${path}`);
  for (const step of plan.next) console.log(`  ${step}`);
  return 0;
}
