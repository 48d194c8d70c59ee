// The overview: what is live now, issuances and denials over 24 h and 30 d, top denial reasons, recent alerts.

import type { Bucket, ReasonCount } from "../../adapters/audit-stats.ts";
import type { LeaseIndexRow } from "../../adapters/audit-store.ts";
import type { Viewer } from "../auth.ts";
import { DecisionChart, dayLabel, hourLabel } from "../charts.tsx";
import { Page, runHref, Time } from "../layout.tsx";
import { AlertsTable, type ConsoleAlert } from "./alerts.tsx";

export interface OverviewData {
  live: { leases: LeaseIndexRow[]; total: number; runs: number };
  day: Bucket[];
  month: Bucket[];
  denials: ReasonCount[];
  alerts: ConsoleAlert[] | undefined;
}

/** The overview page. */
export function Overview(props: { viewer: Viewer; data: OverviewData }) {
  const { data } = props;
  const sum = (b: Bucket[], k: "allow" | "deny") => b.reduce((n, x) => n + x[k], 0);
  const cards: Array<[string, number, string]> = [
    ["active-runs", data.live.runs, "runs holding leases"],
    ["active-leases", data.live.total, "active leases"],
    ["issued-24h", sum(data.day, "allow"), "issued in 24 h"],
    ["denied-24h", sum(data.day, "deny"), "denied in 24 h"],
  ];
  const charts: Array<[string, string, string, Bucket[], (start: number) => string]> = [
    ["chart-24h", "Last 24 hours (per hour, UTC)", "Exchanges in the last 24 hours", data.day, hourLabel],
    ["chart-30d", "Last 30 days (per day, UTC)", "Exchanges in the last 30 days", data.month, dayLabel],
  ];
  return (
    <Page title="Overview" path="/console" viewer={props.viewer}>
      <section aria-labelledby="now">
        <h2 id="now">Live now</h2>
        <div class="cards">
          {cards.map(([id, n, label]) => (
            <div class="card">
              <span class="n" id={id}>
                {n}
              </span>
              {label}
            </div>
          ))}
        </div>
      </section>
      <div class="grid2">
        {charts.map(([id, heading, title, buckets, label]) => (
          <section aria-labelledby={`${id}-h`}>
            <h2 id={`${id}-h`}>{heading}</h2>
            <DecisionChart id={id} title={title} buckets={buckets} label={label} />
          </section>
        ))}
      </div>
      <div class="grid2">
        <section aria-labelledby="reasons">
          <h2 id="reasons">Top denial reasons (30 days)</h2>
          {data.denials.length === 0 ? (
            <p class="muted">No denials.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">Reason</th>
                  <th scope="col">Denials</th>
                </tr>
              </thead>
              <tbody>
                {data.denials.map((d) => (
                  <tr>
                    <td class="code">{d.reason}</td>
                    <td>{d.count}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
        <section aria-labelledby="live">
          <h2 id="live">Active leases</h2>
          {data.live.leases.length === 0 ? (
            <p class="muted">No active leases.</p>
          ) : (
            <div class="scroll">
              <table class="stack">
                <thead>
                  <tr>
                    <th scope="col">Run</th>
                    <th scope="col">Policy</th>
                    <th scope="col">Expires</th>
                  </tr>
                </thead>
                <tbody>
                  {data.live.leases.map((l) => (
                    <tr>
                      <td class="code" data-label="Run">
                        <a href={runHref(l.run)}>{l.run}</a>
                      </td>
                      <td data-label="Policy">{l.policy}</td>
                      <td data-label="Expires">
                        <Time ms={l.expires_at} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      </div>
      <section aria-labelledby="alerts">
        <h2 id="alerts">Recent leaks and alerts</h2>
        <AlertsTable alerts={data.alerts?.slice(0, 5)} />
      </section>
    </Page>
  );
}
