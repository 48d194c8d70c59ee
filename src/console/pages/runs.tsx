// Runs: the list (by repository/project, policy, state) and one run's page (its leases, each credential's upstream
// revocation state, its audit trail, and "End this run" behind a confirm step).

import type { LeaseIndexRow } from "../../adapters/audit-store.ts";
import type { AuditRecord } from "../../core/audit/record.ts";
import type { Viewer } from "../auth.ts";
import { AnyOf, ScopeFields } from "../filters.tsx";
import { Csrf, Decision, Flash, formatDuration, Page, runHref, Time } from "../layout.tsx";
import { AuditTable } from "./audit.tsx";

/** One run in the list: its leases folded together. */
export interface RunSummary {
  run: string;
  policies: string[];
  repository: string | null;
  firstLease: number;
  lastLease: number;
  leases: number;
  active: number;
}

export interface RunFilters {
  repository_id?: string;
  project_id?: string;
  policy?: string;
  state?: "active" | "ended";
}

/** Folds leases (newest first) into runs, newest run first. */
export function summarizeRuns(leases: LeaseIndexRow[], now: number): RunSummary[] {
  const runs = new Map<string, RunSummary>();
  for (const l of leases) {
    let r = runs.get(l.run);
    if (!r) {
      r = {
        run: l.run,
        policies: [],
        repository: l.repository_id ?? l.project_id,
        firstLease: l.created_at,
        lastLease: l.created_at,
        leases: 0,
        active: 0,
      };
      runs.set(l.run, r);
    }
    if (!r.policies.includes(l.policy)) r.policies.push(l.policy);
    r.firstLease = Math.min(r.firstLease, l.created_at);
    r.lastLease = Math.max(r.lastLease, l.created_at);
    r.leases++;
    if (l.ended_at === null && l.expires_at > now) r.active++;
  }
  return [...runs.values()];
}

/** The runs list. */
export function Runs(props: {
  viewer: Viewer;
  runs: RunSummary[];
  filters: RunFilters;
  next: string | undefined;
}) {
  const f = props.filters;
  return (
    <Page title="Runs" path="/console/runs" viewer={props.viewer}>
      <form class="filters" method="get" action="/console/runs" aria-label="Filter runs">
        <ScopeFields {...f} />
        <AnyOf label="State" name="state" choices={["active", "ended"]} value={f.state} />
        <button type="submit">Filter</button>
      </form>
      {props.runs.length === 0 ? (
        <p class="muted">No runs match.</p>
      ) : (
        <div class="scroll">
          <table class="stack" id="runs">
            <thead>
              <tr>
                <th scope="col">Run</th>
                <th scope="col">Repository / project</th>
                <th scope="col">Policies</th>
                <th scope="col">Leases</th>
                <th scope="col">State</th>
                <th scope="col">Last lease</th>
              </tr>
            </thead>
            <tbody>
              {props.runs.map((r) => (
                <tr>
                  <td class="code" data-label="Run">
                    <a href={runHref(r.run)}>{r.run}</a>
                  </td>
                  <td data-label="Repository">{r.repository ?? "—"}</td>
                  <td data-label="Policies">{r.policies.join(", ")}</td>
                  <td data-label="Leases">{r.leases}</td>
                  <td data-label="State">
                    {r.active > 0 ? <span class="allow">{`${r.active} active`}</span> : "ended"}
                  </td>
                  <td data-label="Last lease">
                    <Time ms={r.lastLease} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {props.next ? (
        <nav class="pager" aria-label="Pages">
          <a href={props.next}>Older runs</a>
        </nav>
      ) : null}
    </Page>
  );
}

/** What became of each credential upstream, by lease and grant digest, from `revocation` records. */
function revocationState(trail: AuditRecord[]): Map<string, AuditRecord> {
  const out = new Map<string, AuditRecord>();
  for (const r of trail) {
    if (r.event !== "revocation" || !r.lease_id) continue;
    for (const g of r.grants ?? []) {
      const key = `${r.lease_id} ${g.id}`;
      if (!out.has(key)) out.set(key, r);
    }
  }
  return out;
}

/** One run's page. */
export function RunPage(props: {
  viewer: Viewer;
  run: string;
  leases: LeaseIndexRow[];
  trail: AuditRecord[];
  now: number;
  flash?: string;
}) {
  const active = props.leases.filter((l) => l.ended_at === null && l.expires_at > props.now);
  const issued = new Map(
    props.trail
      .filter((r) => r.event === "exchange" && r.decision === "allow" && r.lease_id)
      .map((r) => [r.lease_id, r]),
  );
  const revocations = revocationState(props.trail);
  const ended = props.trail.find((r) => r.event === "admin_revoke" || r.event === "webhook");
  const who = props.trail.find((r) => r.repository || r.workflow);
  return (
    <Page title={`Run ${props.run}`} path="/console/runs" viewer={props.viewer}>
      <Flash text={props.flash} />
      <dl class="kv">
        <dt>Repository</dt>
        <dd>{who?.repository ?? props.leases[0]?.repository_id ?? props.leases[0]?.project_id ?? "—"}</dd>
        <dt>Workflow</dt>
        <dd class="mono">{who?.workflow ?? "—"}</dd>
        <dt>Started by</dt>
        <dd>{who?.triggered_by ?? "—"}</dd>
        <dt>Active leases</dt>
        <dd id="run-active">{active.length}</dd>
        {ended ? (
          <>
            <dt>Last end event</dt>
            <dd>
              {`${ended.event}${ended.actor ? ` by ${ended.actor}` : ""} at `}
              <Time ms={Date.parse(ended.ts)} />
            </dd>
          </>
        ) : null}
      </dl>
      <p class="noprint">
        <a class="button danger" href={`${runHref(props.run)}/end`}>
          End this run
        </a>
      </p>
      <h2>Leases</h2>
      {props.leases.length === 0 ? (
        <p class="muted">The lease index has no leases for this run (yet: it trails the run by seconds).</p>
      ) : (
        <div class="scroll">
          <table class="stack" id="leases">
            <thead>
              <tr>
                <th scope="col">Lease</th>
                <th scope="col">Policy</th>
                <th scope="col">Issued</th>
                <th scope="col">Ends</th>
                <th scope="col">State</th>
                <th scope="col">Credentials (upstream revocation)</th>
              </tr>
            </thead>
            <tbody>
              {props.leases.map((l) => {
                const live = l.ended_at === null && l.expires_at > props.now;
                const grants = issued.get(l.lease_id)?.grants ?? [];
                return (
                  <tr>
                    <td class="code" data-label="Lease">
                      {l.lease_id}
                    </td>
                    <td data-label="Policy">{l.policy}</td>
                    <td data-label="Issued">
                      <Time ms={l.created_at} />
                    </td>
                    <td data-label="Ends">
                      <Time ms={l.ended_at ?? l.expires_at} />
                    </td>
                    <td data-label="State" class="lease-state">
                      {live ? (
                        <span class="allow">active</span>
                      ) : (
                        `ended (${l.end_reason ?? "expired"}) after ${formatDuration(((l.ended_at ?? l.expires_at) - l.created_at) / 1000)}`
                      )}
                    </td>
                    <td data-label="Credentials">
                      {grants.length === 0 ? (
                        "—"
                      ) : (
                        <ul>
                          {grants.map((g) => {
                            const rev = revocations.get(`${l.lease_id} ${g.id}`);
                            return (
                              <li>
                                {`${g.type}${g.path ? ` ${g.path}@v${g.version}` : ""}: `}
                                {rev ? <Decision value={rev.decision} /> : null}
                                {rev ? ` ${rev.detail ?? ""}` : live ? "live" : "pending or not revocable"}
                              </li>
                            );
                          })}
                        </ul>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <h2>Audit trail</h2>
      <AuditTable records={props.trail} />
    </Page>
  );
}

/** The confirm step before ending a run. */
export function EndRunConfirm(props: { viewer: Viewer; run: string; active: number }) {
  return (
    <Page title="End this run?" path="/console/runs" viewer={props.viewer}>
      <p>
        Ending <code>{props.run}</code> ends its {props.active} active lease{props.active === 1 ? "" : "s"}{" "}
        now, revokes their credentials upstream where the upstream allows it, and refuses every later exchange
        for this run. It cannot be undone; the action is recorded in the audit log under your name.
      </p>
      <form method="post" action={`${runHref(props.run)}/end`}>
        <Csrf viewer={props.viewer} />
        <button type="submit" class="danger">
          End this run now
        </button>{" "}
        <a class="button secondary" href={runHref(props.run)}>
          Cancel
        </a>
      </form>
    </Page>
  );
}
