// The shape of a compact JWS (header.payload.signature, base64url), checked before any decoding: the broker's
// verifier and the CLI's unverified decoding refuse the same strings.

/** Three base64url segments; the signature may be empty (an unsecured JWT, which verification then refuses). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Whether `token` has the compact JWS shape (it says nothing about the signature). */
export function isCompactJws(token: string): boolean {
  return COMPACT_JWS.test(token);
}
