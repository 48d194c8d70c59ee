// Key pairs the runner makes for certificate grants (docs/clients.md, "Certificates"): fresh for every exchange,
// whatever the policy (the runner cannot know its grants beforehand), so only public material is ever sent. The
// private keys stay in memory until the response shows a certificate for them. Runtime-neutral: WebCrypto only.

import type { ExchangeInputs } from "../core/grants/module.ts";
import { toPem } from "../core/grants/pkcs.ts";
import { parseCertificate } from "../core/ssh/cert.ts";
import { generateEd25519Key } from "../core/ssh/private-key.ts";
import { fromBase64 } from "../core/ssh/wire.ts";
import { certificateSpkiFromPem, P256, p256CertificationRequest } from "./csr.ts";

/** The x509 key: its PKCS#8 PEM, and a check that a certificate certifies it. */
export interface RunnerX509Key {
  privateKeyPem: string;
  /** Whether `certificatePem` is a certificate for this key's public key. */
  certifies(certificatePem: string): boolean;
}

/** The ssh key: its OpenSSH private key, and a check that a certificate line certifies it. */
export interface RunnerSshKey {
  privateKey: string;
  /** Whether `certificateLine` (`<type>-cert-v01@openssh.com AAAA…`) is a certificate for this key. */
  certifies(certificateLine: string): boolean;
}

/** What the runner sends (`inputs`) and keeps (the private keys) for one exchange. */
export interface RunnerKeys {
  inputs: ExchangeInputs;
  x509: RunnerX509Key;
  ssh: RunnerSshKey;
}

/** A fresh Ed25519 pair; only the public line is sent. */
async function sshKey(): Promise<{ publicLine: string; key: RunnerSshKey }> {
  const generated = await generateEd25519Key("runpass-runner");
  return {
    publicLine: generated.publicLine,
    key: {
      privateKey: generated.privateKey,
      certifies(certificateLine) {
        try {
          const blob = fromBase64(certificateLine.trim().split(/\s+/)[1] ?? "");
          return equalBytes(parseCertificate(blob).keyBlob, generated.publicBlob);
        } catch {
          return false;
        }
      },
    },
  };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** An ECDSA P-256 pair and a PKCS#10 request for it (subject empty: the policy names the certificate). */
async function x509Key(): Promise<{ csr: string; key: RunnerX509Key }> {
  const keys = (await crypto.subtle.generateKey(P256, true, ["sign", "verify"])) as CryptoKeyPair;
  const csr = await p256CertificationRequest(keys);
  const spki = new Uint8Array((await crypto.subtle.exportKey("spki", keys.publicKey)) as ArrayBuffer);
  const pkcs8 = new Uint8Array((await crypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer);
  return {
    csr,
    key: {
      privateKeyPem: toPem(pkcs8, "PRIVATE KEY"),
      certifies(certificatePem) {
        try {
          return equalBytes(certificateSpkiFromPem(certificatePem), spki);
        } catch {
          return false;
        }
      },
    },
  };
}

/** Fresh key material for one exchange. */
export async function generateRunnerKeys(): Promise<RunnerKeys> {
  const [x509, ssh] = await Promise.all([x509Key(), sshKey()]);
  return { inputs: { csr: x509.csr, ssh_public_key: ssh.publicLine }, x509: x509.key, ssh: ssh.key };
}
