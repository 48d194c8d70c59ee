// Checks on the ssh grant (docs/grants.md, ssh): certificate extensions that open forwarding channels (RP024) and
// principals that are privileged logins (RP025).

import type { Findings, Policy } from "./model.ts";

/** Extensions that let a certificate holder tunnel through the host or hand the host its agent. */
const FORWARDING = new Set(["permit-agent-forwarding", "permit-port-forwarding", "permit-X11-forwarding"]);

/** Logins that own the host: a CI certificate for them is a root shell on every host that trusts the CA. */
export const PRIVILEGED_PRINCIPALS = new Set(["root", "toor", "admin", "administrator"]);

/** RP024 and RP025. */
export function sshGrant(p: Policy, f: Findings): void {
  const ssh = p.raw.grants.ssh;
  if (!ssh) return;
  ssh.extensions?.forEach((e, i) => {
    if (FORWARDING.has(e)) {
      f.add(
        p,
        "RP024",
        ["grants", "ssh", "extensions", i],
        false,
        `ssh grant: ${e} lets the job tunnel through the hosts it deploys to${e === "permit-agent-forwarding" ? " (and the host use the job's agent)" : ""}`,
      );
    }
  });
  ssh.principals.forEach((name, i) => {
    if (PRIVILEGED_PRINCIPALS.has(name.toLowerCase())) {
      f.add(
        p,
        "RP025",
        ["grants", "ssh", "principals", i],
        false,
        `ssh grant: principal "${name}" is a privileged login on every host that trusts the CA`,
      );
    }
  });
}
