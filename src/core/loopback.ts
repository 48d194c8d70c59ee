// The one loopback rule (docs/security.md, "Loopback"): plain http is allowed only to a host that never leaves the
// machine. It is a fixed list, exactly 127.0.0.1, localhost and [::1] as the WHATWG URL parser spells a host name
// (so 127.1, 2130706433 and LOCALHOST normalise into it). The rest of 127.0.0.0/8 is not on it: the local broker
// and the dev issuer listen on 127.0.0.1, and a short list everyone can read beats a range nobody needs.
// Runtime-neutral: the broker, the CLIs and the GitHub Action all use it.

/** The host names plain http may go to. */
export const LOOPBACK_HOSTS: readonly string[] = ["127.0.0.1", "localhost", "[::1]"];

/** Whether `hostname` (as `URL` spells it) is a loopback host plain http may go to. */
export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.includes(hostname.toLowerCase());
}
