// Secrets metadata (never a value): paths, versions, age, last delivery, the policies that deliver each path,
// compromised versions and "rotation due" against the path's max_age.

import type { SecretMeta } from "../../adapters/secret-store.ts";
import { formatDuration as policyDuration } from "../../core/duration.ts";
import type { Viewer } from "../auth.ts";
import { formatDuration, Page, Time } from "../layout.tsx";

/** One secret path as the console and the compliance report see it. */
export interface SecretView {
  path: string;
  currentVersion: number;
  versions: number;
  deleted: boolean;
  /** Creation time of the current version (ms). */
  currentSince: number | null;
  maxAge: number | null;
  rotationDue: boolean;
  compromised: number[];
  lastDelivered: number | null;
  policies: string[];
}

/** Folds store metadata, deliveries and the policy set into views. */
export function secretViews(
  metas: SecretMeta[],
  delivered: Map<string, number>,
  deliveredBy: Map<string, string[]>,
  now: number,
): SecretView[] {
  return metas.map((m) => {
    const current = m.versions.find((v) => v.version === m.current_version);
    const since = current ? Date.parse(current.created_at) : null;
    const maxAge = m.max_age ?? null;
    return {
      path: m.path,
      currentVersion: m.current_version,
      versions: m.versions.length,
      deleted: m.deleted,
      currentSince: since,
      maxAge,
      rotationDue: maxAge !== null && since !== null && now - since > maxAge * 1000,
      // Leak response marks versions compromised (docs/leaks.md).
      compromised: m.versions
        .filter((v) => "compromised_at" in v && typeof v.compromised_at === "string")
        .map((v) => v.version),
      lastDelivered: delivered.get(m.path) ?? null,
      policies: deliveredBy.get(m.path) ?? [],
    };
  });
}

/** The secrets page. */
export function Secrets(props: { viewer: Viewer; views: SecretView[]; now: number; error?: string }) {
  return (
    <Page title="Secrets" path="/console/secrets" viewer={props.viewer}>
      <p class="muted">
        Metadata only: no page of the console can show a secret value. Set a rotation age with{" "}
        <code>{'PUT /v1/admin/secrets/<path> { "value": …, "max_age": "90d" }'}</code>. Deliveries are looked
        up over the last 90 days.
      </p>
      {props.error ? <p class="flash error">{props.error}</p> : null}
      {props.views.length === 0 ? (
        <p class="muted">No secrets.</p>
      ) : (
        <div class="scroll">
          <table class="stack" id="secrets">
            <thead>
              <tr>
                <th scope="col">Path</th>
                <th scope="col">Version</th>
                <th scope="col">Age</th>
                <th scope="col">Rotation</th>
                <th scope="col">Last delivered</th>
                <th scope="col">Delivered by</th>
                <th scope="col">Compromised</th>
              </tr>
            </thead>
            <tbody>
              {props.views.map((s) => (
                <tr>
                  <td class="code" data-label="Path">
                    {s.path}
                    {s.deleted ? <span class="muted"> (deleted)</span> : null}
                  </td>
                  <td data-label="Version">{`v${s.currentVersion} of ${s.versions}`}</td>
                  <td data-label="Age">
                    {s.currentSince === null ? "—" : formatDuration((props.now - s.currentSince) / 1000)}
                  </td>
                  <td data-label="Rotation">
                    {s.maxAge === null ? (
                      <span class="muted">no max_age</span>
                    ) : s.rotationDue ? (
                      <span class="deny">{`rotation due (max ${policyDuration(s.maxAge)})`}</span>
                    ) : (
                      `within ${policyDuration(s.maxAge)}`
                    )}
                  </td>
                  <td data-label="Last delivered">
                    <Time ms={s.lastDelivered} />
                  </td>
                  <td data-label="Delivered by">{s.policies.join(", ") || "—"}</td>
                  <td data-label="Compromised">
                    {s.compromised.length ? (
                      <span class="deny">{s.compromised.map((v) => `v${v}`).join(" ")}</span>
                    ) : (
                      "no"
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Page>
  );
}
