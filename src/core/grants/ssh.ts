// The `ssh` grant (docs/grants.md, ssh): an OpenSSH user certificate for the run, signed by runpass's CA
// (RUNPASS_SSH_CA_KEYS) over the runner's public key — or over a pair runpass generates when the runner sent none —
// naming the policy's principals, valid from a minute ago until min(ttl, lease end). A certificate cannot be
// recalled from the hosts that accept it: when its lease ends early, its serial is listed in the KRL
// (GET /v1/ssh/krl) until it expires (src/adapters/revokers.ts).

import * as z from "zod/mini";
import {
  DEFAULT_SSH_CERT_TTL_SECONDS,
  SSH_MAX_PRINCIPALS,
  SSH_VALID_AFTER_BACKDATE_SECONDS,
} from "../constants.ts";
import { base64 } from "../encoding.ts";
import { RunpassError } from "../errors.ts";
import type { SshCaSet } from "../ssh/ca-keys.ts";
import { CERT_TYPES, signUserCertificate } from "../ssh/cert.ts";
import {
  keyLine,
  parsePublicKeyLine,
  readPublicKeyLine,
  SshKeyError,
  type SshPublicKey,
} from "../ssh/keys.ts";
import { generateEd25519Key } from "../ssh/private-key.ts";
import { type GrantModule, iso, type LoadContext } from "./module.ts";

/** The CA keys the ssh grant signs with (the adapters build them from RUNPASS_SSH_CA_KEYS). */
export interface SshPorts {
  /** Rejects with a ConfigError naming RUNPASS_SSH_CA_KEYS when it is missing or bad. */
  ssh: () => Promise<SshCaSet>;
}

/** Certificate extensions a policy may grant; OpenSSH's defaults are not implied (none unless listed). */
export const SSH_EXTENSIONS = [
  "permit-pty",
  "permit-port-forwarding",
  "permit-agent-forwarding",
  "permit-X11-forwarding",
  "permit-user-rc",
] as const;
export type SshExtension = (typeof SSH_EXTENSIONS)[number];

/** The ssh grant as the policy states it, normalised. */
export interface SshGrant {
  principals: string[];
  /** Seconds; capped to the lease when minted. */
  ttl: number;
  extensions: SshExtension[];
  force_command?: string;
  /** CIDRs the certificate may be used from (critical option `source-address`). */
  source_address?: string[];
  /** known_hosts lines handed to the runner so it verifies the hosts it deploys to. */
  known_hosts?: string[];
}

/** What minting needs: the grant and the runner's key line, if it sent one. */
export interface SshPlan extends SshGrant {
  publicKey?: string;
}

/** The ssh grant's credential in the exchange response (docs/api.md). */
export interface SshCredential {
  /** The certificate line (`ssh-ed25519-cert-v01@openssh.com AAAA… runpass`), for `CertificateFile`. */
  certificate: string;
  /** OpenSSH private key, only when the runner sent no public key. */
  private_key?: string;
  /** known_hosts file content, when the policy names host keys. */
  known_hosts?: string;
  principals: string[];
  /** uint64 as a decimal string. */
  serial: string;
  key_id: string;
  valid_after: string;
  valid_before: string;
  expires_at: string;
}

/** What the lease keeps to list the certificate in the KRL when it ends early: its serial and signing CA. */
export interface SshRevocationHandle {
  serial: string;
  /** base64 of the CA's public key blob (the KRL section it goes into, even after the CA rotates). */
  ca: string;
}

const SshGrantSchema = z.strictObject({
  principals: z.array(z.string()),
  ttl: z.optional(z.string()),
  extensions: z.optional(z.array(z.string())),
  force_command: z.optional(z.string()),
  source_address: z.optional(z.array(z.string())),
  known_hosts: z.optional(z.array(z.string())),
});

// Login names and AuthorizedPrincipalsFile entries: no spaces, commas or quotes (sshd splits on them).
const PRINCIPAL = /^[A-Za-z0-9._@-]{1,64}$/;
const KNOWN_HOSTS_MARKERS = new Set(["@cert-authority", "@revoked"]);

/** Whether `text` is an IPv4 or IPv6 address with an optional prefix length (what sshd's source-address takes). */
export function isCidr(text: string): boolean {
  const [addr, prefix, ...rest] = text.split("/");
  if (rest.length > 0 || addr === undefined) return false;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  let max: number;
  if (v4) {
    if (v4.slice(1).some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith("0")))) return false;
    max = 32;
  } else {
    if (!/^[0-9A-Fa-f:.]+$/.test(addr) || !addr.includes(":")) return false;
    try {
      new URL(`http://[${addr}]/`);
    } catch {
      return false;
    }
    max = 128;
  }
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= max;
}

function checkKnownHost(line: string): string | undefined {
  if (/[\r\n\0]/.test(line)) return "one line per entry";
  const fields = line.trim().split(/\s+/);
  if (fields[0] !== undefined && KNOWN_HOSTS_MARKERS.has(fields[0])) fields.shift();
  else if (fields[0]?.startsWith("@")) return `unknown marker ${fields[0]} (@cert-authority or @revoked)`;
  const [hosts, type, key] = fields;
  if (!hosts || !type || !key) return "expected [@cert-authority|@revoked] <hosts> <key type> <base64 key>";
  if (!/^[a-z0-9@.-]+$/.test(type)) return `"${type}" is not a key type`;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key)) return "the key is not base64";
  return undefined;
}

function loadSshGrant(raw: z.infer<typeof SshGrantSchema>, ctx: LoadContext): SshGrant {
  const at = (...p: Array<string | number>) => ["grants", "ssh", ...p];
  if (raw.principals.length === 0) ctx.report(at("principals"), "principals: at least one login name");
  if (raw.principals.length > SSH_MAX_PRINCIPALS)
    ctx.report(at("principals"), `principals: at most ${SSH_MAX_PRINCIPALS}`);
  raw.principals.forEach((p, i) => {
    if (!PRINCIPAL.test(p))
      ctx.report(
        at("principals", i),
        `principal "${p}": 1–64 characters of A-Z a-z 0-9 . _ @ - (no templates)`,
      );
  });
  if (new Set(raw.principals).size !== raw.principals.length)
    ctx.report(at("principals"), "principals: duplicates");
  const extensions = raw.extensions ?? [];
  extensions.forEach((e, i) => {
    if (!(SSH_EXTENSIONS as readonly string[]).includes(e))
      ctx.report(at("extensions", i), `extension "${e}": one of ${SSH_EXTENSIONS.join(", ")}`);
  });
  if (new Set(extensions).size !== extensions.length) ctx.report(at("extensions"), "extensions: duplicates");
  const ttl = ctx.duration(at("ttl"), raw.ttl, Math.min(DEFAULT_SSH_CERT_TTL_SECONDS, ctx.leaseTtl));
  if (ttl < 60) ctx.report(at("ttl"), "ttl: at least 1m");
  if (ttl > ctx.leaseTtl)
    ctx.report(at("ttl"), "ttl: longer than the policy's lease ttl; the certificate could outlive the lease");
  if (
    raw.force_command !== undefined &&
    (raw.force_command.trim() === "" || /[\r\n\0]/.test(raw.force_command))
  )
    ctx.report(at("force_command"), "force_command: a non-empty command on one line");
  if (raw.source_address !== undefined) {
    if (raw.source_address.length === 0)
      ctx.report(at("source_address"), "source_address: at least one CIDR");
    raw.source_address.forEach((a, i) => {
      if (!isCidr(a))
        ctx.report(
          at("source_address", i),
          `"${a}" is not an address or CIDR (203.0.113.0/24, 2001:db8::/32)`,
        );
    });
  }
  raw.known_hosts?.forEach((line, i) => {
    const problem = checkKnownHost(line);
    if (problem) ctx.report(at("known_hosts", i), `known_hosts: ${problem}`);
  });
  return {
    principals: raw.principals,
    ttl,
    extensions: extensions as SshExtension[],
    ...(raw.force_command !== undefined ? { force_command: raw.force_command } : {}),
    ...(raw.source_address !== undefined ? { source_address: raw.source_address } : {}),
    ...(raw.known_hosts !== undefined ? { known_hosts: raw.known_hosts.map((l) => l.trim()) } : {}),
  };
}

function badKey(e: unknown): RunpassError {
  const message = e instanceof SshKeyError ? e.message : "unreadable key";
  return new RunpassError("invalid_request", `ssh_public_key: ${message}`);
}

/** A random non-zero uint64 (a KRL cannot list serial 0). */
function randomSerial(): bigint {
  for (;;) {
    const b = crypto.getRandomValues(new Uint8Array(8));
    const serial = new DataView(b.buffer).getBigUint64(0);
    if (serial !== 0n) return serial;
  }
}

/** The `ssh` grant module. */
export const sshGrant: GrantModule<
  "ssh",
  z.infer<typeof SshGrantSchema>,
  SshGrant,
  SshPlan,
  SshCredential
> = {
  name: "ssh",
  schema: SshGrantSchema,
  costly: false,
  renewable: true,
  load: loadSshGrant,
  plan(def, ctx) {
    const line = ctx.inputs.ssh_public_key;
    if (line === undefined) return def;
    // Structure and size now, before anything is minted; the ECDSA curve check is asynchronous (mint).
    try {
      readPublicKeyLine(line);
    } catch (e) {
      throw badKey(e);
    }
    return { ...def, publicKey: line };
  },
  async mint(plan, ctx) {
    const keyId = `runpass lease=${ctx.lease.id} run=${ctx.lease.run} policy=${ctx.policy.name}`;
    let key: SshPublicKey;
    let privateKey: string | undefined;
    if (plan.publicKey !== undefined) {
      try {
        key = await parsePublicKeyLine(plan.publicKey);
      } catch (e) {
        throw badKey(e);
      }
    } else {
      const generated = await generateEd25519Key(`runpass lease=${ctx.lease.id}`);
      key = { type: "ssh-ed25519", blob: generated.publicBlob };
      privateKey = generated.privateKey;
    }
    const ca = (await ctx.deps.ssh()).active;
    const serial = randomSerial();
    const validAfter = ctx.now - SSH_VALID_AFTER_BACKDATE_SECONDS;
    const validBefore = Math.min(ctx.now + plan.ttl, ctx.lease.expiresAt);
    const criticalOptions: Record<string, string> = {};
    if (plan.force_command !== undefined) criticalOptions["force-command"] = plan.force_command;
    if (plan.source_address !== undefined) criticalOptions["source-address"] = plan.source_address.join(",");
    const blob = await signUserCertificate(
      {
        key,
        serial,
        keyId,
        principals: plan.principals,
        validAfter,
        validBefore,
        criticalOptions,
        extensions: plan.extensions,
      },
      ca,
    );
    const handle: SshRevocationHandle = { serial: serial.toString(), ca: base64(ca.publicBlob) };
    return {
      credential: {
        certificate: keyLine(CERT_TYPES[key.type], blob, "runpass"),
        ...(privateKey !== undefined ? { private_key: privateKey } : {}),
        ...(plan.known_hosts?.length ? { known_hosts: `${plan.known_hosts.join("\n")}\n` } : {}),
        principals: plan.principals,
        serial: serial.toString(),
        key_id: keyId,
        valid_after: iso(validAfter),
        valid_before: iso(validBefore),
        expires_at: iso(validBefore),
      },
      grants: [
        {
          type: "ssh",
          id: await ctx.deps.hasher.digest(`ssh:${serial}`),
          expires_at: iso(validBefore),
          revocation: JSON.stringify(handle),
          // Renewal re-signs this key (the runner keeps its private key for the whole lease).
          inputs: { ssh_public_key: keyLine(key.type, key.blob) },
        },
      ],
    };
  },
  secretValues: (c) => (c.private_key !== undefined ? [c.private_key] : []),
};
