// Audit search: by run, repository/project id, policy, decision, event and time range, newest first, paged; each
// record in full (records hold digests, never values).

import type { AuditRecord } from "../../core/audit/record.ts";
import type { Viewer } from "../auth.ts";
import { AnyOf, ScopeFields } from "../filters.tsx";
import { Decision, Page, runHref, Time } from "../layout.tsx";

export interface AuditFilters {
  run?: string;
  repository_id?: string;
  project_id?: string;
  policy?: string;
  decision?: "allow" | "deny";
  event?: string;
  from?: string;
  to?: string;
}

/** Audit records as a table, each with its full JSON behind a disclosure. */
export function AuditTable(props: { records: AuditRecord[] }) {
  if (props.records.length === 0) return <p class="muted">No records.</p>;
  return (
    <div class="scroll">
      <table class="stack audit">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Event</th>
            <th scope="col">Decision</th>
            <th scope="col">Policy</th>
            <th scope="col">Subject</th>
            <th scope="col">Record</th>
          </tr>
        </thead>
        <tbody>
          {props.records.map((r) => (
            <tr data-record={r.id}>
              <td data-label="Time">
                <Time ms={Date.parse(r.ts)} />
              </td>
              <td data-label="Event">{r.event}</td>
              <td data-label="Decision">
                <Decision value={r.decision} />
                {r.error ? <span class="muted">{` ${r.error}`}</span> : null}
              </td>
              <td data-label="Policy">{r.policy ?? "—"}</td>
              <td class="code" data-label="Subject">
                {r.run ? <a href={runHref(r.run)}>{r.repository ?? r.run}</a> : (r.actor ?? r.subject ?? "—")}
                {r.end_reason ? ` · ${r.end_reason}` : ""}
                {r.detail ? ` · ${r.detail}` : ""}
              </td>
              <td data-label="Record">
                <details class="record">
                  <summary>{r.id}</summary>
                  <pre>{JSON.stringify(r, null, 2)}</pre>
                </details>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const EVENTS = [
  "exchange",
  "explain",
  "lease_end",
  "revocation",
  "webhook",
  "lease_delete",
  "renew",
  "admin_revoke",
  "admin",
  "secret_admin",
  "introspect",
  "rate_limit",
];

/** The audit search page. */
export function Audit(props: {
  viewer: Viewer;
  filters: AuditFilters;
  records: AuditRecord[];
  next: string | undefined;
}) {
  const f = props.filters;
  return (
    <Page title="Audit" path="/console/audit" viewer={props.viewer}>
      <form class="filters" method="get" action="/console/audit" aria-label="Search the audit log">
        <label>
          Run
          <input name="run" value={f.run ?? ""} />
        </label>
        <ScopeFields {...f} />
        <AnyOf label="Decision" name="decision" choices={["allow", "deny"]} value={f.decision} />
        <AnyOf label="Event" name="event" choices={EVENTS} value={f.event} />
        <label>
          From (UTC)
          <input name="from" type="datetime-local" value={f.from ?? ""} />
        </label>
        <label>
          To (UTC)
          <input name="to" type="datetime-local" value={f.to ?? ""} />
        </label>
        <button type="submit">Search</button>
      </form>
      <AuditTable records={props.records} />
      {props.next ? (
        <nav class="pager" aria-label="Pages">
          <a href={props.next}>Older records</a>
        </nav>
      ) : null}
    </Page>
  );
}
