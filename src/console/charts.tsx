// Inline SVG bar charts rendered on the server (no chart library, no script): issuances above the axis in green,
// denials in red, each bar with a <title> for hover and the figures repeated in a table for screen readers.

import type { Bucket } from "../adapters/audit-stats.ts";

const W = 600;
const H = 160;
const PAD_LEFT = 36;
const PAD_BOTTOM = 18;

/** A stacked issuance/denial bar chart of `buckets`; `label` names a bucket's start for axis and titles. */
export function DecisionChart(props: {
  id: string;
  title: string;
  buckets: Bucket[];
  label: (start: number) => string;
}) {
  const { buckets } = props;
  const max = Math.max(1, ...buckets.map((b) => b.allow + b.deny));
  const slot = (W - PAD_LEFT) / Math.max(1, buckets.length);
  const barW = Math.max(1, slot * 0.75);
  const plotH = H - PAD_BOTTOM - 6;
  const y = (v: number) => (v / max) * plotH;
  const totalAllow = buckets.reduce((n, b) => n + b.allow, 0);
  const totalDeny = buckets.reduce((n, b) => n + b.deny, 0);
  const tickEvery = Math.max(1, Math.ceil(buckets.length / 6));
  return (
    <figure>
      <svg
        class="chart"
        viewBox={`0 0 ${W} ${H}`}
        role="img"
        aria-labelledby={`${props.id}-t`}
        xmlns="http://www.w3.org/2000/svg"
      >
        <title id={`${props.id}-t`}>{`${props.title}: ${totalAllow} issued, ${totalDeny} denied`}</title>
        <line class="axis" x1={PAD_LEFT} y1={H - PAD_BOTTOM} x2={W} y2={H - PAD_BOTTOM} />
        <text x="0" y="12">
          {String(max)}
        </text>
        <text x="0" y={String(H - PAD_BOTTOM)}>
          0
        </text>
        {buckets.map((b, i) => {
          const x = PAD_LEFT + i * slot;
          const ha = y(b.allow);
          const hd = y(b.deny);
          const base = H - PAD_BOTTOM;
          return (
            <g>
              <title>{`${props.label(b.start)}: ${b.allow} issued, ${b.deny} denied`}</title>
              {b.allow > 0 ? (
                <rect
                  class="a"
                  x={x.toFixed(1)}
                  y={(base - ha).toFixed(1)}
                  width={barW.toFixed(1)}
                  height={ha.toFixed(1)}
                />
              ) : null}
              {b.deny > 0 ? (
                <rect
                  class="d"
                  x={x.toFixed(1)}
                  y={(base - ha - hd).toFixed(1)}
                  width={barW.toFixed(1)}
                  height={hd.toFixed(1)}
                />
              ) : null}
              {i % tickEvery === 0 ? (
                <text x={x.toFixed(1)} y={String(H - 4)}>
                  {props.label(b.start)}
                </text>
              ) : null}
            </g>
          );
        })}
      </svg>
      <figcaption>
        <div class="legend">
          <span>
            <span class="sw a" aria-hidden="true" />
            {`issued ${totalAllow}`}
          </span>
          <span>
            <span class="sw d" aria-hidden="true" />
            {`denied ${totalDeny}`}
          </span>
        </div>
      </figcaption>
    </figure>
  );
}

/** `HH:00` in UTC. */
export function hourLabel(start: number): string {
  return `${new Date(start).toISOString().slice(11, 13)}:00`;
}

/** `MM-DD` in UTC. */
export function dayLabel(start: number): string {
  return new Date(start).toISOString().slice(5, 10);
}
