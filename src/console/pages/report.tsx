// The compliance report as a printable page (the print stylesheet drops navigation and forms).

import type { Viewer } from "../auth.ts";
import { formatDuration, Page, runHref } from "../layout.tsx";
import type { AdminActionRow, ComplianceReport } from "../report.ts";

function ActionTable(props: { rows: AdminActionRow[]; id: string }) {
  if (props.rows.length === 0) return <p class="muted">None.</p>;
  return (
    <div class="scroll">
      <table class="stack" id={props.id}>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Event</th>
            <th scope="col">Actor</th>
            <th scope="col">Detail</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((r) => (
            <tr>
              <td data-label="When">{r.at}</td>
              <td data-label="Event">{`${r.event}${r.decision === "deny" ? " (refused)" : ""}`}</td>
              <td data-label="Actor">{r.actor ?? "admin API"}</td>
              <td class="code" data-label="Detail">
                {[r.run, r.policy, r.detail].filter(Boolean).join(" · ")}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The report page with its period form and download links. */
export function Report(props: {
  viewer: Viewer;
  report: ComplianceReport;
  query: string;
  from: string;
  to: string;
}) {
  const r = props.report;
  return (
    <Page title="Compliance report" path="/console/reports/compliance" viewer={props.viewer}>
      <form class="filters" method="get" action="/console/reports/compliance" aria-label="Report period">
        <label>
          From (UTC date)
          <input name="from" type="date" value={props.from} required />
        </label>
        <label>
          To (UTC date, inclusive)
          <input name="to" type="date" value={props.to} required />
        </label>
        <button type="submit">Show</button>
        <a class="button secondary" href={`/console/reports/compliance.csv?${props.query}`} download>
          Download CSV
        </a>
        <a class="button secondary" href={`/console/reports/compliance.json?${props.query}`} download>
          Download JSON
        </a>
      </form>
      <dl class="kv">
        <dt>Period</dt>
        <dd>{`${r.period.from} – ${r.period.to} (end exclusive)`}</dd>
        <dt>Generated</dt>
        <dd>{`${r.generated_at} by ${r.generated_by}`}</dd>
        <dt>Policy set</dt>
        <dd class="mono">{r.policy_set_version}</dd>
      </dl>
      <h2>Issuances ({r.issuances.length})</h2>
      <p class="muted">
        Who held credentials, from which policy, when, for how long, and how each lease ended.
      </p>
      {r.issuances.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <div class="scroll">
          <table class="stack" id="issuances">
            <thead>
              <tr>
                <th scope="col">Issued</th>
                <th scope="col">Repository / workflow / started by</th>
                <th scope="col">Policy and grants</th>
                <th scope="col">Held</th>
                <th scope="col">Ended</th>
              </tr>
            </thead>
            <tbody>
              {r.issuances.map((i) => (
                <tr data-lease={i.lease_id ?? ""}>
                  <td data-label="Issued">{i.issued_at}</td>
                  <td class="code" data-label="Who">
                    {i.run ? (
                      <a href={runHref(i.run)}>{i.repository ?? i.repository_id ?? i.project_id ?? i.run}</a>
                    ) : (
                      "—"
                    )}
                    {i.workflow ? ` · ${i.workflow}` : ""}
                    {i.triggered_by ? ` · ${i.triggered_by}` : ""}
                  </td>
                  <td data-label="What">{`${i.policy ?? "—"}: ${i.grants}`}</td>
                  <td data-label="Held">{formatDuration(i.held_seconds)}</td>
                  <td data-label="Ended">
                    {i.ended_at ? `${i.end_reason ?? "ended"} at ${i.ended_at}` : "still live"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h2>Revocations by admins ({r.revocations.length})</h2>
      <ActionTable rows={r.revocations} id="revocations" />
      <p>
        {`Upstream revocation of ended credentials: ${r.upstream_revocations.revoked} revoked, ${r.upstream_revocations.not_revocable} not revocable (expire on their own), ${r.upstream_revocations.failed} failed.`}
      </p>
      <h2>Denials ({r.denials.total})</h2>
      {r.denials.by_reason.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ul>
          {r.denials.by_reason.map((d) => (
            <li>
              <code>{d.reason}</code>
              {`: ${d.count}`}
            </li>
          ))}
        </ul>
      )}
      <h2>Leaks and response times</h2>
      {r.leaks === null ? (
        <p class="muted">This broker records no leak alerts.</p>
      ) : r.leaks.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ul>
          {r.leaks.map((l) => (
            <li>{`${new Date(l.at).toISOString()} ${l.severity} ${l.kind}: ${l.summary} — ${l.notified_seconds === null ? `not delivered (${l.delivery})` : `receiver notified in ${formatDuration(l.notified_seconds)}`}`}</li>
          ))}
        </ul>
      )}
      <h2>Policies without an immutable pin</h2>
      {r.policies_missing_pins.length === 0 ? (
        <p class="allow">None (as it should be).</p>
      ) : (
        <p class="deny">{r.policies_missing_pins.join(", ")}</p>
      )}
      <h2>Lint warnings ({r.lint_warnings.length})</h2>
      {r.lint_warnings.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ul>
          {r.lint_warnings.map((f) => (
            <li>{`${f.rule} ${f.severity} ${f.file}:${f.line} ${f.message}`}</li>
          ))}
        </ul>
      )}
      <h2>Secrets past their rotation age ({r.secrets_past_rotation.length})</h2>
      {r.secrets_past_rotation.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ul>
          {r.secrets_past_rotation.map((s) => (
            <li>{`${s.path} v${s.version}: ${s.age_days} days old, max ${s.max_age_days}`}</li>
          ))}
        </ul>
      )}
      <h2>Admin actions ({r.admin_actions.length})</h2>
      <ActionTable rows={r.admin_actions} id="admin-actions" />
    </Page>
  );
}
