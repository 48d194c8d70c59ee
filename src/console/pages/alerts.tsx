// Alerts and reported leaks (docs/console.md, "Alerts"): shown from the alert store when this build has one.

import type { Viewer } from "../auth.ts";
import { Page, Time } from "../layout.tsx";

/** One alert as the console shows it (the alert hub's records, docs/leaks.md, mapped to this shape). */
export interface ConsoleAlert {
  id: string;
  at: number;
  kind: string;
  severity: string;
  summary: string;
  /** Webhook delivery: pending, delivered, failed, not_configured. */
  delivery: string;
  /** When the alert reached the receiver, if it has. */
  deliveredAt?: number;
}

/** A table of alerts; `undefined` means this deployment has no alert store. */
export function AlertsTable(props: { alerts: ConsoleAlert[] | undefined }) {
  if (props.alerts === undefined) {
    return (
      <p class="muted">
        This broker records no alerts yet: leak reports and alerts appear here once leak response is enabled.
      </p>
    );
  }
  if (props.alerts.length === 0) return <p class="muted">No alerts.</p>;
  return (
    <div class="scroll">
      <table class="stack">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Kind</th>
            <th scope="col">Severity</th>
            <th scope="col">Summary</th>
            <th scope="col">Delivered</th>
          </tr>
        </thead>
        <tbody>
          {props.alerts.map((a) => (
            <tr>
              <td data-label="When">
                <Time ms={a.at} />
              </td>
              <td data-label="Kind">{a.kind}</td>
              <td
                data-label="Severity"
                class={a.severity === "critical" || a.severity === "high" ? "deny" : "warn"}
              >
                {a.severity}
              </td>
              <td data-label="Summary">{a.summary}</td>
              <td data-label="Delivered">
                {a.delivery === "delivered" ? <Time ms={a.deliveredAt} /> : a.delivery}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The alerts page. */
export function Alerts(props: { viewer: Viewer; alerts: ConsoleAlert[] | undefined }) {
  return (
    <Page title="Alerts" path="/console/alerts" viewer={props.viewer}>
      <AlertsTable alerts={props.alerts} />
    </Page>
  );
}
