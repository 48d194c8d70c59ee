// Checks on certificate grants: x509 SAN URIs that identify the run by a name someone else can re-register, or by
// no ID at all (RP023).

import { templateClaims } from "../../grants/template.ts";
import { NAME_IDS } from "./claims.ts";
import type { Findings, Policy } from "./model.ts";

/** RP023: an x509 URI is an identity servers authorise by; it must carry an immutable ID claim, never a name. */
export function x509Identity(p: Policy, f: Findings): void {
  const uris = p.raw.grants.x509?.uris;
  if (!uris || p.kind === "generic") return;
  const names = NAME_IDS[p.kind];
  const ids = new Set(Object.values(names).flat());
  uris.forEach((uri, i) => {
    const claims = templateClaims(uri);
    const named = claims.filter((c) => Object.hasOwn(names, c));
    for (const claim of named) {
      const id = names[claim]?.[0] as string;
      f.add(
        p,
        "RP023",
        ["grants", "x509", "uris", i],
        false,
        `x509 uri names \${${claim}}, which can be re-registered`,
        {
          fix: `Use \${${id}} instead of \${${claim}} (e.g. spiffe://<trust domain>/ci/${p.kind}/\${${id}}).`,
        },
      );
    }
    if (named.length === 0 && !claims.some((c) => ids.has(c))) {
      f.add(
        p,
        "RP023",
        ["grants", "x509", "uris", i],
        false,
        "x509 uri carries no ID claim: every run this policy matches gets the same identity",
        {
          fix: `Put the repository's or project's ID in the URI, e.g. \${${p.kind === "github" ? "repository_id" : "project_id"}}.`,
        },
      );
    }
  });
}
