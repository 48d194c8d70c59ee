// RUNPASS_SSH_CA_KEYS: the ssh grant's certificate authority keys, a JSON array of private JWKs (Ed25519 `OKP` or
// P-256 `EC`, each with a `kid`). The first signs; all are published at /v1/ssh/ca.pub so hosts trust the next key
// before it signs (docs/grants.md, ssh: CA rotation).

import * as z from "zod/mini";
import { ConfigError } from "../errors.ts";
import { type CaJwk, importCa, type SshCa } from "./keys.ts";

/** The configured CA keys: `active` signs, `all` (active first) are trusted. */
export interface SshCaSet {
  active: SshCa;
  all: SshCa[];
}

const B64URL = /^[A-Za-z0-9_-]+$/;
const Jwk = z.union([
  z.object({
    kty: z.literal("OKP"),
    crv: z.literal("Ed25519"),
    kid: z.string().check(z.regex(/^[A-Za-z0-9._-]{1,64}$/)),
    x: z.string().check(z.regex(B64URL)),
    d: z.string().check(z.regex(B64URL)),
  }),
  z.object({
    kty: z.literal("EC"),
    crv: z.literal("P-256"),
    kid: z.string().check(z.regex(/^[A-Za-z0-9._-]{1,64}$/)),
    x: z.string().check(z.regex(B64URL)),
    y: z.string().check(z.regex(B64URL)),
    d: z.string().check(z.regex(B64URL)),
  }),
]);
const Keys = z.array(Jwk).check(z.minLength(1));

const HOW =
  'RUNPASS_SSH_CA_KEYS must be a JSON array of private JWKs, Ed25519 ({"kty":"OKP","crv":"Ed25519",…}) or P-256 ({"kty":"EC","crv":"P-256",…}), each with a "kid" of [A-Za-z0-9._-]; the first signs (docs/grants.md, ssh)';

/** Parses and imports RUNPASS_SSH_CA_KEYS. Throws ConfigError naming the fix (never echoing key material). */
export async function parseSshCaKeys(text: string | undefined): Promise<SshCaSet> {
  if (!text) throw new ConfigError(`RUNPASS_SSH_CA_KEYS is not set: the ssh grant needs a CA key. ${HOW}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ConfigError(`RUNPASS_SSH_CA_KEYS is not JSON. ${HOW}`);
  }
  const parsed = Keys.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`RUNPASS_SSH_CA_KEYS is malformed. ${HOW}`);
  const kids = parsed.data.map((k) => k.kid);
  if (new Set(kids).size !== kids.length)
    throw new ConfigError("RUNPASS_SSH_CA_KEYS: every kid must be unique");
  const all: SshCa[] = [];
  for (const jwk of parsed.data) {
    try {
      all.push(await importCa(jwk as CaJwk));
    } catch {
      throw new ConfigError(
        `RUNPASS_SSH_CA_KEYS: the key "${jwk.kid}" does not import (a private key whose x/y match d?)`,
      );
    }
  }
  return { active: all[0] as SshCa, all };
}
