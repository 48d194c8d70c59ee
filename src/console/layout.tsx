// The console's page shell (navigation, sign-out, skip link) and the small formatting pieces every page uses.

import type { Child } from "hono/jsx";
import type { Viewer } from "./auth.ts";

/** Navigation entries: path → label. */
const NAV: Array<[string, string]> = [
  ["/console", "Overview"],
  ["/console/runs", "Runs"],
  ["/console/audit", "Audit"],
  ["/console/policies", "Policies"],
  ["/console/secrets", "Secrets"],
  ["/console/alerts", "Alerts"],
  ["/console/reports/compliance", "Compliance report"],
];

function current(path: string, href: string): boolean {
  return href === "/console" ? path === "/console" || path === "/console/" : path.startsWith(href);
}

/** A full page: title, navigation for `path`, the viewer's name and sign-out. */
export function Page(props: { title: string; path: string; viewer?: Viewer; children: Child }) {
  const viewer = props.viewer;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <title>{`${props.title} · runpass console`}</title>
        <link rel="stylesheet" href="/console/assets/console.css" />
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header class="top">
          <a class="brand" href="/console">
            runpass
          </a>
          {viewer ? (
            <nav aria-label="Console">
              <ul>
                {NAV.map(([href, label]) => (
                  <li>
                    <a href={href} aria-current={current(props.path, href) ? "page" : undefined}>
                      {label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
          ) : null}
          {viewer ? (
            <div class="who">
              <span>
                Signed in as <strong>{viewer.actor}</strong>
              </span>
              {viewer.via === "session" ? (
                <form method="post" action="/console/sign-out">
                  <input type="hidden" name="csrf" value={viewer.csrf} />
                  <button type="submit">Sign out</button>
                </form>
              ) : null}
            </div>
          ) : null}
        </header>
        <main id="main">
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </body>
    </html>
  );
}

/** An ISO timestamp shown as `YYYY-MM-DD HH:MM:SS UTC` (machine-readable in `datetime`). */
export function Time(props: { ms: number | null | undefined }) {
  if (props.ms === null || props.ms === undefined || Number.isNaN(props.ms))
    return <span class="muted">—</span>;
  const iso = new Date(props.ms).toISOString();
  return <time datetime={iso}>{`${iso.slice(0, 19).replace("T", " ")} UTC`}</time>;
}

/** A duration in seconds, in the largest sensible units. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${(s / 3600).toFixed(1)} h`;
  return `${Math.round(s / 86_400)} d`;
}

/** allow/deny in colour plus text (never colour alone). */
export function Decision(props: { value: string }) {
  return <span class={props.value === "allow" ? "allow" : "deny"}>{props.value}</span>;
}

/** A form's hidden CSRF field. */
export function Csrf(props: { viewer: Viewer }) {
  return <input type="hidden" name="csrf" value={props.viewer.csrf} />;
}

/** A notice at the top of a page (the result of an action). */
export function Flash(props: { text: string | undefined; error?: boolean }) {
  if (!props.text) return null;
  return (
    <p class={props.error ? "flash error" : "flash"} role="status">
      {props.text}
    </p>
  );
}

/** The console path of a run's page. */
export function runHref(run: string): string {
  return `/console/runs/${encodeURIComponent(run)}`;
}
