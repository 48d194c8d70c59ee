// Policies: issuer, pins, allow/deny, grants, lint findings, last use and issuances in 30 days; the "explain a token"
// box (the same answer as POST /v1/explain, consuming nothing).

import type { PolicyUsage } from "../../adapters/audit-stats.ts";
import type { ExplainResponse } from "../../core/exchange.ts";
import type { CompiledPolicy } from "../../core/policy/compile.ts";
import type { Finding } from "../../core/policy/lint.ts";
import type { ConditionMap } from "../../core/policy/types.ts";
import type { Viewer } from "../auth.ts";
import { Csrf, Decision, formatDuration, Page, Time } from "../layout.tsx";

/** One policy row: the compiled policy, its use, its lint findings, whether it pins an immutable id. */
export interface PolicyView {
  policy: CompiledPolicy;
  usage: PolicyUsage | undefined;
  lastIssued: number | null;
  findings: Finding[];
  pinned: boolean;
}

function Conditions(props: { map: ConditionMap }) {
  const entries = Object.entries(props.map);
  if (entries.length === 0) return <span class="muted">—</span>;
  return (
    <ul>
      {entries.map(([claim, values]) => (
        <li class="mono">{`${claim}: ${values.map((v) => JSON.stringify(v)).join(" | ")}`}</li>
      ))}
    </ul>
  );
}

/** The policy field `sensitive` (leak response), read so a set built before it existed still renders. */
function isSensitive(p: CompiledPolicy): boolean {
  return "sensitive" in p.def && p.def.sensitive === true;
}

function grantSummary(p: CompiledPolicy): string {
  return Object.keys(p.def.grants).join(", ") || "—";
}

/** The explain box: policy, pasted token, and the answer of the last submission. */
export function ExplainBox(props: {
  viewer: Viewer;
  policies: string[];
  selected?: string;
  answer?: ExplainResponse | { error: string; error_description: string };
}) {
  return (
    <section aria-labelledby="explain">
      <h2 id="explain">Explain a token</h2>
      <p class="muted">
        Paste a CI job's OIDC token: the console answers exactly as <code>POST /v1/explain</code> does. The
        token is not used up, nothing is issued, and it is not shown again.
      </p>
      <form class="stack" method="post" action="/console/explain">
        <Csrf viewer={props.viewer} />
        <label>
          Policy
          <select name="policy" required>
            {props.policies.map((p) => (
              <option value={p} selected={p === props.selected}>
                {p}
              </option>
            ))}
          </select>
        </label>
        <label>
          Token
          <textarea name="token" required spellcheck={false} autocomplete="off" />
        </label>
        <button type="submit">Explain</button>
      </form>
      {props.answer ? (
        <div id="explain-answer">
          <h3>Answer</h3>
          {"decision" in props.answer ? (
            <p>
              <Decision value={props.answer.decision} />
              {props.answer.error ? ` (${props.answer.error})` : ""}
            </p>
          ) : (
            <p class="deny">{`${props.answer.error}: ${props.answer.error_description}`}</p>
          )}
          <pre class="mono">{JSON.stringify(props.answer, null, 2)}</pre>
        </div>
      ) : null}
    </section>
  );
}

/** The policies list. */
export function Policies(props: {
  viewer: Viewer;
  views: PolicyView[];
  stored: number | undefined;
  answer?: ExplainResponse | { error: string; error_description: string };
  selected?: string;
}) {
  return (
    <Page title="Policies" path="/console/policies" viewer={props.viewer}>
      {props.stored !== undefined ? (
        <p class="muted">{`This set keeps ${props.stored} policies in POLICY_KV; open one by name: /console/policies/<name>.`}</p>
      ) : null}
      <div class="scroll">
        <table class="stack" id="policies">
          <thead>
            <tr>
              <th scope="col">Policy</th>
              <th scope="col">Issuer</th>
              <th scope="col">Grants</th>
              <th scope="col">Issued (30 d)</th>
              <th scope="col">Last issued</th>
              <th scope="col">Lint</th>
            </tr>
          </thead>
          <tbody>
            {props.views.map((v) => (
              <tr>
                <td data-label="Policy">
                  <a href={`/console/policies/${encodeURIComponent(v.policy.def.name)}`}>
                    {v.policy.def.name}
                  </a>
                  {isSensitive(v.policy) ? <span class="warn"> sensitive</span> : ""}
                  {v.pinned ? "" : <span class="deny"> no immutable pin</span>}
                </td>
                <td data-label="Issuer">{v.policy.issuer.name}</td>
                <td data-label="Grants">{grantSummary(v.policy)}</td>
                <td data-label="Issued (30 d)">{v.usage?.issuances ?? 0}</td>
                <td data-label="Last issued">
                  <Time ms={v.lastIssued} />
                </td>
                <td data-label="Lint" class={v.findings.length ? "warn" : ""}>
                  {v.findings.length
                    ? `${v.findings.length} finding${v.findings.length === 1 ? "" : "s"}`
                    : "clean"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <ExplainBox
        viewer={props.viewer}
        policies={props.views.map((v) => v.policy.def.name)}
        {...(props.selected !== undefined ? { selected: props.selected } : {})}
        {...(props.answer !== undefined ? { answer: props.answer } : {})}
      />
    </Page>
  );
}

/** One policy's page. */
export function PolicyPage(props: { viewer: Viewer; view: PolicyView }) {
  const { policy, findings } = props.view;
  const def = policy.def;
  return (
    <Page title={`Policy ${def.name}`} path="/console/policies" viewer={props.viewer}>
      {def.description ? <p>{def.description}</p> : null}
      <dl class="kv">
        <dt>Issuer</dt>
        <dd>{`${policy.issuer.name} (${policy.issuer.url})`}</dd>
        <dt>Audience</dt>
        <dd>{def.audience ?? "RUNPASS_AUDIENCE"}</dd>
        <dt>Immutable pins</dt>
        <dd>
          {props.view.pinned ? (
            [...policy.pins.entries()]
              .map(([claim, values]) => `${claim} = ${[...values].join(" | ")}`)
              .join("; ")
          ) : (
            <span class="deny">none (this policy could match tokens from re-registered names)</span>
          )}
        </dd>
        <dt>Sensitive</dt>
        <dd>{isSensitive(policy) ? "yes: off-hours issuance raises an alert (docs/leaks.md)" : "no"}</dd>
        <dt>Lease cap</dt>
        <dd>{formatDuration(def.ttl)}</dd>
        <dt>Version</dt>
        <dd class="mono">{def.version}</dd>
        <dt>Issued (30 d)</dt>
        <dd>{props.view.usage?.issuances ?? 0}</dd>
        <dt>Denied (30 d)</dt>
        <dd>{props.view.usage?.denials ?? 0}</dd>
        <dt>Last issued</dt>
        <dd>
          <Time ms={props.view.lastIssued} />
        </dd>
      </dl>
      <h2>Allow (every key must match)</h2>
      <Conditions map={def.allow} />
      <h2>Deny</h2>
      {def.deny.length === 0 ? (
        <p class="muted">No deny rules.</p>
      ) : (
        def.deny.map((d) => <Conditions map={d} />)
      )}
      <h2>Grants</h2>
      <pre class="mono">{JSON.stringify(def.grants, null, 2)}</pre>
      <h2>Lint findings</h2>
      {findings.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ul>
          {findings.map((f) => (
            <li>
              <span class={f.severity === "error" ? "deny" : "warn"}>{`${f.rule} ${f.severity}`}</span>
              {` ${f.file}:${f.line}: ${f.message} — ${f.fix}`}
            </li>
          ))}
        </ul>
      )}
      <ExplainBox viewer={props.viewer} policies={[def.name]} selected={def.name} />
    </Page>
  );
}
