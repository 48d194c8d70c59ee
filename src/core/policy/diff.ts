// What changed between two versions of one policy, and whether each change widens access, narrows it, or moves
// it sideways, in words a reviewer can check. Pure: `runpass policy diff` (src/cli/policy-diff.ts) loads both
// sides and prints the result.

import { formatDuration } from "../duration.ts";
import { canonicalJson } from "../encoding.ts";
import type { IssuerConfig } from "../oidc/issuers.ts";
import { type ConditionMap, GRANT_NAMES, type Grants, type PolicyDefinition, type Scalar } from "./types.ts";

/** How a change moves access: wider (more tokens or more power), narrower, or sideways. */
export type Effect = "wider" | "narrower" | "changed";

/** One difference, with the part of the policy it concerns. */
export interface Change {
  area: "issuer" | "audience" | "allow" | "deny" | "ttl" | "grant" | "description" | "load";
  effect: Effect;
  text: string;
}

function fmt(v: Scalar): string {
  if (typeof v !== "string") return `${v} (${typeof v})`;
  return /^[^\s,;"']+$/.test(v) ? v : JSON.stringify(v);
}

const valueKey = (v: Scalar) => `${typeof v}:${String(v)}`;

function minus(a: readonly Scalar[], b: readonly Scalar[]): Scalar[] {
  const keys = new Set(b.map(valueKey));
  return a.filter((v) => !keys.has(valueKey(v)));
}

function describeRule(rule: ConditionMap): string {
  return Object.entries(rule)
    .map(([claim, values]) => `${claim} ${values.map(fmt).join(" or ")}`)
    .join(" with ");
}

const dur = (s: number) => formatDuration(s);

function lengthEffect(before: number, after: number): Effect {
  return after > before ? "wider" : "narrower";
}

function diffAllow(before: ConditionMap, after: ConditionMap, out: Change[]): void {
  for (const [claim, values] of Object.entries(after)) {
    const old = before[claim];
    if (!old) {
      out.push({
        area: "allow",
        effect: "narrower",
        text: `now also requires ${claim} ${values.map(fmt).join(", ")}`,
      });
      continue;
    }
    const added = minus(values, old);
    const removed = minus(old, values);
    if (added.length)
      out.push({
        area: "allow",
        effect: "wider",
        text: `now also allows ${claim} ${added.map(fmt).join(", ")}`,
      });
    if (removed.length)
      out.push({
        area: "allow",
        effect: "narrower",
        text: `no longer allows ${claim} ${removed.map(fmt).join(", ")}`,
      });
  }
  for (const [claim, values] of Object.entries(before)) {
    if (after[claim]) continue;
    out.push({
      area: "allow",
      effect: "wider",
      text: `no longer requires ${claim} (was ${values.map(fmt).join(", ")}): any value is allowed`,
    });
  }
}

function ruleKey(rule: ConditionMap): string {
  const sorted: Record<string, string[]> = {};
  for (const claim of Object.keys(rule).sort())
    sorted[claim] = (rule[claim] as Scalar[]).map(valueKey).sort();
  return JSON.stringify(sorted);
}

const claimSet = (rule: ConditionMap) => Object.keys(rule).sort().join(",");

function diffDeny(before: ConditionMap[], after: ConditionMap[], out: Change[]): void {
  const oldLeft = [...before];
  const newLeft: ConditionMap[] = [];
  for (const rule of after) {
    const i = oldLeft.findIndex((o) => ruleKey(o) === ruleKey(rule));
    if (i >= 0) oldLeft.splice(i, 1);
    else newLeft.push(rule);
  }
  // Rules over the same claims are the same rule edited: report their values.
  for (const rule of [...newLeft]) {
    const i = oldLeft.findIndex((o) => claimSet(o) === claimSet(rule));
    if (i < 0) continue;
    const old = oldLeft.splice(i, 1)[0] as ConditionMap;
    newLeft.splice(newLeft.indexOf(rule), 1);
    const label = `the deny rule on ${Object.keys(rule).join(" with ")}`;
    for (const [claim, values] of Object.entries(rule)) {
      const added = minus(values, old[claim] ?? []);
      const removed = minus(old[claim] ?? [], values);
      if (added.length)
        out.push({
          area: "deny",
          effect: "narrower",
          text: `${label} now also denies ${claim} ${added.map(fmt).join(", ")}`,
        });
      if (removed.length)
        out.push({
          area: "deny",
          effect: "wider",
          text: `${label} no longer denies ${claim} ${removed.map(fmt).join(", ")}`,
        });
    }
  }
  for (const rule of newLeft)
    out.push({ area: "deny", effect: "narrower", text: `now denies ${describeRule(rule)}` });
  for (const rule of oldLeft)
    out.push({ area: "deny", effect: "wider", text: `no longer denies ${describeRule(rule)}` });
}

function grantSummary(kind: keyof Grants, grants: Grants): string {
  switch (kind) {
    case "token": {
      const g = grants.token!;
      return `audience ${g.audience}, ttl ${dur(g.ttl)}`;
    }
    case "aws": {
      const g = grants.aws!;
      return `role ${g.role_arn}, ${dur(g.duration)}`;
    }
    case "gcp": {
      const g = grants.gcp!;
      return `${g.service_account ?? "federated principal"} via ${g.workload_identity_provider}, ${dur(g.lifetime)}`;
    }
    case "azure": {
      const g = grants.azure!;
      return `app ${g.client_id} in tenant ${g.tenant_id}, scope ${g.scope}`;
    }
    case "github": {
      const g = grants.github!;
      const perms = Object.entries(g.permissions).map(([p, l]) => `${p}: ${l}`);
      return `${g.owner}/${g.repositories.join(", ")}; ${perms.join(", ")}`;
    }
    case "secrets":
      return Object.keys(grants.secrets!).join(", ");
    case "ssh": {
      const g = grants.ssh!;
      return `principals ${g.principals.join(", ")}, ${dur(g.ttl)}`;
    }
    case "x509": {
      const g = grants.x509!;
      return `common name ${g.common_name}, ${[...g.uris, ...g.dns_names].join(", ") || "no SANs"}, ${dur(g.ttl)}`;
    }
    case "postgres": {
      const g = grants.postgres!;
      return `connection ${g.connection}, roles ${g.roles.join(", ")}, ${dur(g.ttl)}`;
    }
  }
}

/** Added and removed members of two lists, reported with the effect each direction has. */
function diffList(
  label: string,
  before: readonly string[],
  after: readonly string[],
  effects: { added: Effect; removed: Effect },
  push: (effect: Effect, text: string) => void,
): void {
  const added = after.filter((v) => !before.includes(v));
  const removed = before.filter((v) => !after.includes(v));
  if (added.length) push(effects.added, `${label} gains ${added.join(", ")}`);
  if (removed.length) push(effects.removed, `${label} loses ${removed.join(", ")}`);
}

const LEVELS = { read: 1, write: 2, admin: 3 } as const;

function secretRef(e: { path: string; version?: number }): string {
  return e.version !== undefined ? `${e.path}@${e.version}` : e.path;
}

function diffGrants(before: Grants, after: Grants, out: Change[]): void {
  const push = (effect: Effect, text: string) => out.push({ area: "grant", effect, text });
  // Every grant kind runpass knows: a grant missing here would change without the diff saying so.
  for (const kind of GRANT_NAMES) {
    const a = before[kind];
    const b = after[kind];
    if (!a && !b) continue;
    if (!a) {
      push("wider", `gains a ${kind} grant (${grantSummary(kind, after)})`);
      continue;
    }
    if (!b) {
      push("narrower", `loses its ${kind} grant (was ${grantSummary(kind, before)})`);
      continue;
    }
    if (kind === "token") {
      const [x, y] = [before.token!, after.token!];
      if (x.audience !== y.audience) push("changed", `token grant audience ${x.audience} → ${y.audience}`);
      if (x.ttl !== y.ttl) push(lengthEffect(x.ttl, y.ttl), `token grant ttl ${dur(x.ttl)} → ${dur(y.ttl)}`);
    } else if (kind === "aws") {
      const [x, y] = [before.aws!, after.aws!];
      if (x.role_arn !== y.role_arn) push("changed", `aws grant role ${x.role_arn} → ${y.role_arn}`);
      if (x.duration !== y.duration)
        push(
          lengthEffect(x.duration, y.duration),
          `aws grant duration ${dur(x.duration)} → ${dur(y.duration)}`,
        );
      if (x.region !== y.region) push("changed", `aws grant region ${x.region} → ${y.region}`);
      for (const field of ["session_name", "source_identity"] as const) {
        if (x[field] !== y[field])
          push("changed", `aws grant ${field} ${x[field] ?? "(none)"} → ${y[field] ?? "(none)"}`);
      }
      for (const key of new Set([...Object.keys(x.session_tags), ...Object.keys(y.session_tags)])) {
        const [p, q] = [x.session_tags[key], y.session_tags[key]];
        if (p === q) continue;
        push("changed", `aws grant session tag ${key}: ${p ?? "(none)"} → ${q ?? "(none)"}`);
      }
      const addedArns = y.policy_arns.filter((arn) => !x.policy_arns.includes(arn));
      const removedArns = x.policy_arns.filter((arn) => !y.policy_arns.includes(arn));
      if (addedArns.length) push("changed", `aws grant adds session policy ARNs ${addedArns.join(", ")}`);
      if (removedArns.length)
        push("changed", `aws grant drops session policy ARNs ${removedArns.join(", ")}`);
      if (x.session_policy !== y.session_policy) {
        const what = !x.session_policy ? "gains" : !y.session_policy ? "loses" : "changes";
        // An inline session policy only ever limits the role; losing it widens the session.
        const effect: Effect = what === "gains" ? "narrower" : what === "loses" ? "wider" : "changed";
        push(effect, `aws grant ${what} its inline session policy`);
      }
      if (canonicalJson(x.transitive_tag_keys) !== canonicalJson(y.transitive_tag_keys))
        push(
          "changed",
          `aws grant transitive tag keys [${x.transitive_tag_keys}] → [${y.transitive_tag_keys}]`,
        );
    } else if (kind === "gcp") {
      const [x, y] = [before.gcp!, after.gcp!];
      for (const field of ["workload_identity_provider", "service_account"] as const) {
        if (x[field] !== y[field])
          push("changed", `gcp grant ${field} ${x[field] ?? "(none)"} → ${y[field] ?? "(none)"}`);
      }
      const addedScopes = y.scopes.filter((s) => !x.scopes.includes(s));
      const removedScopes = x.scopes.filter((s) => !y.scopes.includes(s));
      if (addedScopes.length) push("wider", `gcp grant gains scopes ${addedScopes.join(", ")}`);
      if (removedScopes.length) push("narrower", `gcp grant loses scopes ${removedScopes.join(", ")}`);
      if (x.lifetime !== y.lifetime)
        push(
          lengthEffect(x.lifetime, y.lifetime),
          `gcp grant lifetime ${dur(x.lifetime)} → ${dur(y.lifetime)}`,
        );
    } else if (kind === "azure") {
      const [x, y] = [before.azure!, after.azure!];
      for (const field of ["tenant_id", "client_id", "scope"] as const) {
        if (x[field] !== y[field]) push("changed", `azure grant ${field} ${x[field]} → ${y[field]}`);
      }
    } else if (kind === "ssh") {
      const [x, y] = [before.ssh!, after.ssh!];
      // Principals and extensions widen what a certificate opens; critical options narrow it.
      for (const field of ["principals", "extensions", "source_address", "known_hosts"] as const) {
        const [p, q] = [x[field] ?? [], y[field] ?? []];
        const added = q.filter((v) => !p.includes(v as never));
        const removed = p.filter((v) => !q.includes(v as never));
        const widens = field === "principals" || field === "extensions";
        if (added.length) push(widens ? "wider" : "changed", `ssh grant gains ${field} ${added.join(", ")}`);
        if (removed.length)
          push(widens ? "narrower" : "changed", `ssh grant loses ${field} ${removed.join(", ")}`);
      }
      if (x.source_address && !y.source_address) push("wider", "ssh grant no longer limits source addresses");
      if (x.force_command !== y.force_command)
        push(
          y.force_command === undefined ? "wider" : x.force_command === undefined ? "narrower" : "changed",
          `ssh grant force_command ${x.force_command ?? "(none)"} → ${y.force_command ?? "(none)"}`,
        );
      if (x.ttl !== y.ttl) push(lengthEffect(x.ttl, y.ttl), `ssh grant ttl ${dur(x.ttl)} → ${dur(y.ttl)}`);
    } else if (kind === "github") {
      const [x, y] = [before.github!, after.github!];
      if (x.owner !== y.owner) push("changed", `github grant owner ${x.owner} → ${y.owner}`);
      const addedRepos = y.repositories.filter((r) => !x.repositories.includes(r));
      const removedRepos = x.repositories.filter((r) => !y.repositories.includes(r));
      if (addedRepos.length) push("wider", `github grant gains repositories ${addedRepos.join(", ")}`);
      if (removedRepos.length) push("narrower", `github grant loses repositories ${removedRepos.join(", ")}`);
      for (const perm of new Set([...Object.keys(x.permissions), ...Object.keys(y.permissions)])) {
        const [p, q] = [x.permissions[perm], y.permissions[perm]];
        if (p === q) continue;
        if (!p) push("wider", `github grant gains ${perm}: ${q}`);
        else if (!q) push("narrower", `github grant loses ${perm}: ${p}`);
        else push(lengthEffect(LEVELS[p], LEVELS[q]), `github grant ${perm}: ${p} → ${q}`);
      }
    } else if (kind === "x509") {
      const [x, y] = [before.x509!, after.x509!];
      if (x.common_name !== y.common_name)
        push("changed", `x509 grant common_name ${x.common_name} → ${y.common_name}`);
      // Every SAN is a name a server may accept: more names widen what the certificate opens.
      diffList("x509 grant URIs:", x.uris, y.uris, { added: "wider", removed: "narrower" }, push);
      diffList(
        "x509 grant DNS names:",
        x.dns_names,
        y.dns_names,
        { added: "wider", removed: "narrower" },
        push,
      );
      if (x.ttl !== y.ttl) push(lengthEffect(x.ttl, y.ttl), `x509 grant ttl ${dur(x.ttl)} → ${dur(y.ttl)}`);
    } else if (kind === "postgres") {
      const [x, y] = [before.postgres!, after.postgres!];
      if (x.connection !== y.connection)
        push("changed", `postgres grant connection ${x.connection} → ${y.connection}`);
      diffList("postgres grant roles:", x.roles, y.roles, { added: "wider", removed: "narrower" }, push);
      diffList(
        "postgres grant statements:",
        x.statements,
        y.statements,
        { added: "changed", removed: "changed" },
        push,
      );
      if (x.connection_limit !== y.connection_limit)
        push(
          lengthEffect(x.connection_limit, y.connection_limit),
          `postgres grant connection_limit ${x.connection_limit} → ${y.connection_limit}`,
        );
      if (x.ttl !== y.ttl)
        push(lengthEffect(x.ttl, y.ttl), `postgres grant ttl ${dur(x.ttl)} → ${dur(y.ttl)}`);
    } else if (kind === "secrets") {
      const [x, y] = [before.secrets!, after.secrets!];
      for (const name of new Set([...Object.keys(x), ...Object.keys(y)])) {
        const [p, q] = [x[name], y[name]];
        if (!p && q) push("wider", `secrets grant gains ${name} (${secretRef(q)})`);
        else if (p && !q) push("narrower", `secrets grant loses ${name} (was ${secretRef(p)})`);
        else if (p && q && secretRef(p) !== secretRef(q))
          push("changed", `secrets grant ${name}: ${secretRef(p)} → ${secretRef(q)}`);
      }
    }
  }
}

function diffIssuer(
  name: string,
  x: IssuerConfig | undefined,
  y: IssuerConfig | undefined,
  out: Change[],
): void {
  if (!x || !y) return;
  if (x.url !== y.url)
    out.push({ area: "issuer", effect: "changed", text: `issuer ${name} url ${x.url} → ${y.url}` });
  if (x.kind !== y.kind)
    out.push({ area: "issuer", effect: "changed", text: `issuer ${name} kind ${x.kind} → ${y.kind}` });
  if (x.maxTokenAge !== y.maxTokenAge)
    out.push({
      area: "issuer",
      effect: lengthEffect(x.maxTokenAge, y.maxTokenAge),
      text: `issuer ${name} max_token_age ${dur(x.maxTokenAge)} → ${dur(y.maxTokenAge)}`,
    });
  if ((x.jwksUri ?? "") !== (y.jwksUri ?? ""))
    out.push({
      area: "issuer",
      effect: "changed",
      text: `issuer ${name} jwks_uri ${x.jwksUri ?? "(discovery)"} → ${y.jwksUri ?? "(discovery)"}`,
    });
  if (canonicalJson(x.algorithms) !== canonicalJson(y.algorithms))
    out.push({
      area: "issuer",
      effect: "changed",
      text: `issuer ${name} algorithms ${x.algorithms.join(", ")} → ${y.algorithms.join(", ")}`,
    });
}

/** Every difference between two versions of one policy, with its effect on access. */
export function diffPolicy(
  a: PolicyDefinition,
  b: PolicyDefinition,
  issuers: { before?: IssuerConfig; after?: IssuerConfig } = {},
): Change[] {
  const out: Change[] = [];
  if (a.issuer !== b.issuer)
    out.push({ area: "issuer", effect: "changed", text: `issuer ${a.issuer} → ${b.issuer}` });
  else diffIssuer(a.issuer, issuers.before, issuers.after, out);
  if (a.audience !== b.audience)
    out.push({
      area: "audience",
      effect: "changed",
      text: `audience ${a.audience ?? "(RUNPASS_AUDIENCE)"} → ${b.audience ?? "(RUNPASS_AUDIENCE)"}`,
    });
  diffAllow(a.allow, b.allow, out);
  diffDeny(a.deny, b.deny, out);
  if (a.ttl !== b.ttl)
    out.push({ area: "ttl", effect: lengthEffect(a.ttl, b.ttl), text: `ttl ${dur(a.ttl)} → ${dur(b.ttl)}` });
  if (Boolean(a.deliver_once) !== Boolean(b.deliver_once))
    out.push(
      b.deliver_once
        ? { area: "grant", effect: "narrower", text: "secrets are now delivered once per run (deliver_once)" }
        : { area: "grant", effect: "wider", text: "secrets are no longer limited to one delivery per run" },
    );
  if (Boolean(a.sensitive) !== Boolean(b.sensitive))
    out.push({
      area: "description",
      effect: "changed",
      text: b.sensitive
        ? "now sensitive: use outside business hours raises an alert"
        : "no longer sensitive: use outside business hours no longer raises an alert",
    });
  diffGrants(a.grants, b.grants, out);
  if ((a.description ?? "") !== (b.description ?? ""))
    out.push({ area: "description", effect: "changed", text: "description changed" });
  return out;
}

/** One line on what a new policy allows and grants. */
export function summarisePolicy(def: PolicyDefinition): string {
  const parts = [`issuer ${def.issuer}`, `allows ${describeRule(def.allow).replaceAll(" with ", ", ")}`];
  if (def.deny.length) parts.push(`denies ${def.deny.map(describeRule).join("; ")}`);
  parts.push(`ttl ${dur(def.ttl)}`);
  const kinds = Object.keys(def.grants) as Array<keyof Grants>;
  parts.push(`grants ${kinds.map((k) => `${k} (${grantSummary(k, def.grants)})`).join(", ")}`);
  return parts.join("; ");
}
