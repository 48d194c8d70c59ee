// The console's one stylesheet, served from /console/assets/console.css (the CSP allows styles from 'self' only, so
// no inline styles anywhere). Print rules make the compliance report a document an auditor can file.

/** The stylesheet. Colours meet WCAG 2.1 AA contrast on their backgrounds (docs/console.md, "Accessibility"). */
export const CONSOLE_CSS = `
:root { --fg: #1b1f24; --muted: #4f5966; --bg: #ffffff; --panel: #f4f6f8; --line: #c9d1d9; --accent: #0b5cad;
  --allow: #1a7f37; --deny: #b42318; --warn: #8a4b00; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, textarea:focus-visible { outline: 3px solid #f0b400; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5rem; }
.skip:focus { left: .5rem; }
header.top { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; padding: .6rem 1rem; background: #102a43; color: #fff; }
header.top a { color: #fff; }
header.top .brand { font-weight: 700; text-decoration: none; margin-right: .5rem; }
header.top nav ul { display: flex; flex-wrap: wrap; gap: .25rem .9rem; list-style: none; margin: 0; padding: 0; }
header.top nav a[aria-current="page"] { text-decoration-thickness: 3px; }
header.top .who { margin-left: auto; display: flex; gap: .5rem; align-items: center; font-size: .9rem; }
header.top .who button { background: transparent; color: #fff; border: 1px solid #fff; border-radius: 4px; padding: .15rem .5rem; cursor: pointer; }
main { padding: 1rem; max-width: 78rem; margin: 0 auto; }
h1 { font-size: 1.5rem; margin: .25rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(10rem, 1fr)); gap: .75rem; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .75rem; }
.card .n { font-size: 1.6rem; font-weight: 700; display: block; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 1rem; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); }
td.code, code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; overflow-wrap: anywhere; word-break: break-word; }
.allow { color: var(--allow); font-weight: 600; }
.deny { color: var(--deny); font-weight: 600; }
.warn { color: var(--warn); font-weight: 600; }
.muted { color: var(--muted); }
.flash { border: 1px solid var(--line); border-left: 5px solid var(--allow); background: var(--panel); padding: .6rem .8rem; margin: 0 0 1rem; }
.flash.error { border-left-color: var(--deny); }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem .75rem; align-items: flex-end; background: var(--panel); padding: .75rem; border-radius: 6px; }
form.filters label, form.stack label { display: flex; flex-direction: column; font-size: .85rem; gap: .15rem; }
form.stack { display: flex; flex-direction: column; gap: .75rem; max-width: 40rem; }
input, select, textarea { font: inherit; padding: .35rem .45rem; border: 1px solid #6b7785; border-radius: 4px; max-width: 100%; background: #fff; color: var(--fg); }
textarea { width: 100%; min-height: 7rem; font-family: ui-monospace, monospace; font-size: .85rem; }
button, .button { font: inherit; background: var(--accent); color: #fff; border: 0; border-radius: 4px; padding: .45rem .9rem; cursor: pointer; text-decoration: none; display: inline-block; }
button.danger, .button.danger { background: var(--deny); }
.button.secondary { background: #fff; color: var(--accent); border: 1px solid var(--accent); }
.chart { width: 100%; height: auto; max-width: 40rem; }
.chart .a { fill: var(--allow); }
.chart .d { fill: var(--deny); }
.chart .axis { stroke: var(--line); }
.chart text { fill: var(--muted); font-size: 10px; }
.legend { display: flex; gap: 1rem; font-size: .85rem; margin: .25rem 0; }
.legend .sw { display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem; vertical-align: -1px; }
.legend .sw.a { background: var(--allow); }
.legend .sw.d { background: var(--deny); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
dl.kv dt { font-weight: 600; }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
details.record pre { white-space: pre-wrap; overflow-wrap: anywhere; background: var(--panel); padding: .5rem; font-size: .8rem; }
.pager { display: flex; gap: 1rem; margin: 1rem 0; }
.signin { max-width: 28rem; margin: 3rem auto; }
@media (max-width: 40rem) {
  header.top .who { margin-left: 0; }
  dl.kv { grid-template-columns: 1fr; }
  table.stack thead { display: none; }
  table.stack tr { display: block; border-bottom: 2px solid var(--line); padding: .35rem 0; }
  table.stack td { display: block; border: 0; padding: .1rem .25rem; }
  table.stack td[data-label]::before { content: attr(data-label) ": "; font-weight: 600; }
}
@media print {
  header.top, .noprint, form.filters, .pager { display: none !important; }
  body { font-size: 10pt; color: #000; }
  main { max-width: none; padding: 0; }
  a { color: #000; text-decoration: none; }
  table { font-size: 8.5pt; page-break-inside: auto; }
  tr { page-break-inside: avoid; }
  thead { display: table-header-group; }
  h2 { page-break-after: avoid; }
  .scroll { overflow: visible; }
}
`;
