// GitHub's secret-scanning partner keys (docs/leaks.md, GitHub): fetched from
// `{GITHUB_API_URL}/meta/public_keys/secret_scanning`, cached per isolate with the hygiene of the JWKS cache
// (time and size caps, no redirects, an unknown key id refetched at most once per cooldown), and the ECDSA P-256
// SHA-256 signature GitHub puts over the raw body of each report.

import type { Clock } from "../clock.ts";
import {
  GITHUB_SCANNING_KEYS_COOLDOWN_MS,
  GITHUB_SCANNING_KEYS_FRESH_MS,
  JWKS_FETCH_TIMEOUT_MS,
  MAX_GITHUB_SCANNING_KEYS,
  MAX_JWKS_BYTES,
} from "../constants.ts";
import { fetchJsonCapped } from "../oidc/key-source.ts";

interface Cached {
  keys: Map<string, CryptoKey>;
  fetchedAt: number;
}

/** The secret-scanning public keys of one GitHub API, by key identifier. */
export class SecretScanningKeys {
  readonly #url: string;
  readonly #clock: Clock;
  readonly #fetch: typeof fetch;
  #cached: Cached | undefined;
  #lastAttempt: number | undefined;
  #inflight: Promise<void> | undefined;
  /** Fetches made (status and tests). */
  fetches = 0;

  constructor(apiUrl: string, clock: Clock, fetchFn: typeof fetch = (input, init) => fetch(input, init)) {
    this.#url = `${apiUrl.replace(/\/+$/, "")}/meta/public_keys/secret_scanning`;
    this.#clock = clock;
    this.#fetch = fetchFn;
  }

  /**
   * The key named `id`, or undefined. A stale set is refreshed; an id the set lacks causes at most one fetch per
   * cooldown, so a flood of made-up ids cannot turn into a flood of requests to GitHub.
   */
  async key(id: string): Promise<CryptoKey | undefined> {
    const now = this.#clock();
    const cached = this.#cached;
    const fresh = cached !== undefined && now - cached.fetchedAt < GITHUB_SCANNING_KEYS_FRESH_MS;
    if (fresh && cached.keys.has(id)) return cached.keys.get(id);
    const cooled =
      this.#lastAttempt === undefined || now - this.#lastAttempt >= GITHUB_SCANNING_KEYS_COOLDOWN_MS;
    if (cooled) {
      try {
        await this.#refresh(now);
      } catch {
        // Keep what we had: GitHub being unreachable must not forget keys that verified before.
      }
    }
    return this.#cached?.keys.get(id);
  }

  #refresh(now: number): Promise<void> {
    this.#inflight ??= (async () => {
      this.#lastAttempt = now;
      this.fetches++;
      try {
        const doc = (await fetchJsonCapped(this.#fetch, this.#url, {
          maxBytes: MAX_JWKS_BYTES,
          timeoutMs: JWKS_FETCH_TIMEOUT_MS,
          accept: "application/vnd.github+json",
        })) as { public_keys?: unknown };
        const list = Array.isArray(doc?.public_keys)
          ? doc.public_keys.slice(0, MAX_GITHUB_SCANNING_KEYS)
          : [];
        const keys = new Map<string, CryptoKey>();
        for (const entry of list as Array<{ key_identifier?: unknown; key?: unknown }>) {
          if (typeof entry?.key_identifier !== "string" || typeof entry.key !== "string") continue;
          try {
            keys.set(entry.key_identifier, await importSpkiPem(entry.key));
          } catch {
            // A key that does not import is not a key we can trust; the others still are.
          }
        }
        this.#cached = { keys, fetchedAt: now };
      } finally {
        this.#inflight = undefined;
      }
    })();
    return this.#inflight;
  }
}

async function importSpkiPem(pem: string): Promise<CryptoKey> {
  const b64 = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, "");
  const der = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  return crypto.subtle.importKey("spki", der, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
}

/** An ASN.1 DER ECDSA signature (GitHub's form) as the 64-byte r‖s WebCrypto verifies; undefined when malformed. */
export function derToRaw(der: Uint8Array): Uint8Array | undefined {
  // SEQUENCE { INTEGER r, INTEGER s }, each at most 33 bytes (a leading zero) for P-256.
  if (der.length < 8 || der[0] !== 0x30 || der[1] !== der.length - 2) return undefined;
  const out = new Uint8Array(64);
  let at = 2;
  for (const half of [0, 32]) {
    if (der[at] !== 0x02) return undefined;
    const len = der[at + 1] as number;
    let int = der.subarray(at + 2, at + 2 + len);
    if (int.length !== len || len === 0 || len > 33) return undefined;
    while (int.length > 32 && int[0] === 0) int = int.subarray(1);
    if (int.length > 32) return undefined;
    out.set(int, half + 32 - int.length);
    at += 2 + len;
  }
  return at === der.length ? out : undefined;
}

/** Whether `signatureB64` (base64 DER) is `key`'s ECDSA P-256 SHA-256 signature over `body`. */
export async function verifyScanningSignature(
  key: CryptoKey,
  signatureB64: string,
  body: Uint8Array,
): Promise<boolean> {
  let der: Uint8Array;
  try {
    der = Uint8Array.from(atob(signatureB64.trim()), (ch) => ch.charCodeAt(0));
  } catch {
    return false;
  }
  const raw = derToRaw(der);
  if (!raw) return false;
  return crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    key,
    raw as Uint8Array<ArrayBuffer>,
    body as Uint8Array<ArrayBuffer>,
  );
}
