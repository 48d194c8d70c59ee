// Local development secrets, generated on first start into .dev/ (git-ignored): signing keys, audit key, admin token, dev issuer key.

import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import type { IssuerConfig } from "../core/oidc/issuers.ts";
import { DEV_ISSUER_NAME } from "../core/oidc/issuers.ts";
import { randomSecret } from "./keygen.ts";

export interface DevKeys {
  signingKeys: JWK[];
  auditKey: string;
  adminToken: string;
  devIssuer: { privateJwk: JWK; publicJwk: JWK };
  /** The ssh grant's CA (RUNPASS_SSH_CA_KEYS): one Ed25519 private JWK. */
  sshCaKeys?: JWK[];
}

/** Where dev state lives, relative to the project root. */
export const DEV_DIR = ".dev";

async function keyPair(alg: "ES256" | "RS256", kid: string): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg, use: "sig" };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { privateJwk, publicJwk };
}

/** The dev RS256 signing key: gcp and azure assertions need one (docs/grants.md, gcp and azure). */
async function rs256SigningKey(): Promise<JWK> {
  return (await keyPair("RS256", `dev-rs-${randomSecret(6)}`)).privateJwk;
}

/** The dev ssh CA: an Ed25519 key (docs/grants.md, ssh). */
async function sshCaKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  return { ...(await exportJWK(privateKey)), kid: `dev-ssh-${randomSecret(6)}` };
}

/**
 * Loads .dev/keys.json, creating it (mode 0600) on first use. The signing keys are an ES256 key (signs runpass's
 * tokens) and an RS256 key (gcp and azure assertions); a file from before the RS256 key or the ssh CA gains them.
 */
export async function ensureDevKeys(root: string): Promise<DevKeys> {
  const dir = join(root, DEV_DIR);
  const file = join(dir, "keys.json");
  if (existsSync(file)) {
    const keys = JSON.parse(await readFile(file, "utf8")) as DevKeys;
    if (keys.signingKeys.some((k) => k.alg === "RS256") && keys.sshCaKeys) return keys;
    if (!keys.signingKeys.some((k) => k.alg === "RS256")) keys.signingKeys.push(await rs256SigningKey());
    keys.sshCaKeys ??= [await sshCaKey()];
    await writeFile(file, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600 });
    return keys;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const signing = await keyPair("ES256", `dev-${randomSecret(6)}`);
  const keys: DevKeys = {
    signingKeys: [signing.privateJwk, await rs256SigningKey()],
    auditKey: randomSecret(32),
    adminToken: `dev-admin-${randomSecret(24)}`,
    devIssuer: await keyPair("RS256", `dev-issuer-${randomSecret(6)}`),
    sshCaKeys: [await sshCaKey()],
  };
  await writeFile(file, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600 });
  return keys;
}

/** The local broker's port when PORT is not set (wrangler dev's default). */
export const DEFAULT_DEV_PORT = 8787;

/** The local broker's port: PORT, or 8787. Not validated here (npm start refuses a bad PORT). */
export function devPort(env: NodeJS.ProcessEnv = process.env): number {
  return Number(env.PORT || DEFAULT_DEV_PORT);
}

/** The broker's local base URL for a port. */
export function devBaseUrl(port: number): string {
  return `http://127.0.0.1:${port}`;
}

/** The dev issuer as compiled into a dev bundle: loopback URL, static public key, github-kind claims. */
export function devIssuerConfig(keys: DevKeys, port: number): IssuerConfig {
  return {
    name: DEV_ISSUER_NAME,
    url: `${devBaseUrl(port)}/dev/oidc`,
    kind: "github",
    maxTokenAge: 10 * 60,
    algorithms: ["RS256"],
    jwks: { keys: [keys.devIssuer.publicJwk] },
  };
}
