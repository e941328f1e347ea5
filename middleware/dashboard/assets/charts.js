// Usage charts and the audit trail for the dashboard: inline SVG drawn from the admin router's
// `usage` buckets, with an accessible name and the numbers as a table for anyone who cannot see
// the bars. No library and no network: the bars are rectangles scaled to the largest day.
import { h } from "./vendor/preact.js";
import htm from "./vendor/htm.js";

const html = htm.bind(h);
const DAY_MS = 86_400_000;

/** The codes a refused verification can carry, in the order the bars stack them. */
export const REFUSALS = ["not_found", "revoked", "expired", "forbidden", "ip_not_allowed", "rate_limited", "usage_exceeded"];
const LABELS = {
  valid: "Valid",
  not_found: "Unknown key",
  revoked: "Revoked",
  expired: "Expired",
  forbidden: "Forbidden",
  ip_not_allowed: "Address refused",
  rate_limited: "Rate limited",
  usage_exceeded: "Quota spent",
};

/** The start of the UTC day `days - 1` days ago, as the `from` of a usage query. */
export function daysAgo(days) {
  return new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS - (days - 1) * DAY_MS);
}

/** Daily buckets (of any keys) summed per day, one entry for each of the last `days` days, empty days included. */
export function perDay(rows, days) {
  const first = daysAgo(days).getTime();
  const sums = Array.from({ length: days }, (_, i) => ({ day: new Date(first + i * DAY_MS), valid: 0, ...Object.fromEntries(REFUSALS.map((code) => [code, 0])) }));
  for (const row of rows) {
    const slot = sums[Math.round((new Date(row.time).getTime() - first) / DAY_MS)];
    if (!slot) continue;
    slot.valid += row.valid;
    for (const code of REFUSALS) slot[code] += row[code];
  }
  return sums;
}

/** Verifications per key id over the rows given (valid and refused). */
export function totalsByKey(rows) {
  const totals = new Map();
  for (const row of rows) {
    const total = totals.get(row.key_id) ?? { valid: 0, refused: 0 };
    total.valid += row.valid;
    for (const code of REFUSALS) total.refused += row[code];
    totals.set(row.key_id, total);
  }
  return totals;
}

const refusedOf = (day) => REFUSALS.reduce((sum, code) => sum + day[code], 0);
const DAY_LABEL = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });

/**
 * Verifications per day as stacked bars, valid below and refused above, with `title` as its
 * accessible name and the numbers, by code, in a table below it.
 */
export function UsageChart({ title, days }) {
  const width = 600;
  const height = 160;
  const top = Math.max(1, ...days.map((day) => day.valid + refusedOf(day)));
  const slot = width / days.length;
  const scale = (count) => (count / top) * (height - 20);
  const totals = days.reduce((sum, day) => ({ valid: sum.valid + day.valid, refused: sum.refused + refusedOf(day) }), { valid: 0, refused: 0 });
  const summary = `${title}: ${totals.valid} valid and ${totals.refused} refused verifications over ${days.length} days, at most ${top} in a day.`;
  return html`<figure class="chart">
    <figcaption>${title} <span class="muted">(${totals.valid} valid, ${totals.refused} refused)</span></figcaption>
    <svg viewBox=${`0 0 ${width} ${height}`} role="img" aria-label=${summary} preserveAspectRatio="none">
      <line x1="0" x2=${width} y1=${height - 0.5} y2=${height - 0.5} class="axis" />
      ${days.map((day, i) => {
        const valid = scale(day.valid);
        const refused = scale(refusedOf(day));
        const x = i * slot + slot * 0.15;
        const w = slot * 0.7;
        return html`<g key=${i}>
          <title>${DAY_LABEL.format(day.day)}: ${day.valid} valid, ${refusedOf(day)} refused</title>
          ${valid > 0 ? html`<rect x=${x} y=${height - valid} width=${w} height=${valid} class="bar-valid" />` : null}
          ${refused > 0 ? html`<rect x=${x} y=${height - valid - refused} width=${w} height=${refused} class="bar-refused" />` : null}
        </g>`;
      })}
    </svg>
    <p class="legend"><span class="swatch bar-valid"></span> Valid <span class="swatch bar-refused"></span> Refused</p>
    <details>
      <summary>Numbers</summary>
      <div class="table-frame">
        <table class="numbers">
          <caption class="visually-hidden">${title}, by day and code</caption>
          <thead><tr><th scope="col">Day (UTC)</th>${["valid", ...REFUSALS].map((code) => html`<th scope="col">${LABELS[code]}</th>`)}</tr></thead>
          <tbody>
            ${days.map((day, i) => html`<tr key=${i}><th scope="row">${DAY_LABEL.format(day.day)}</th>${["valid", ...REFUSALS].map((code) => html`<td>${day[code]}</td>`)}</tr>`)}
          </tbody>
        </table>
      </div>
    </details>
  </figure>`;
}

const ACTIONS = {
  created: "Created",
  updated: "Updated",
  revoked: "Revoked",
  rolled: "Rolled",
  soft_deleted: "Soft-deleted",
  restored: "Restored",
  deleted: "Deleted",
  links_changed: "Links changed",
  imported: "Imported from Medusa",
};
const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function shown(value) {
  return value === null ? "none" : typeof value === "string" ? value : JSON.stringify(value);
}

/** A key's audit events, newest first: when, what, who, and each field before and after. */
export function AuditTrail({ events, names }) {
  if (events.length === 0) return html`<p class="muted">No recorded changes.</p>`;
  return html`<ol class="audit-trail">
    ${events.map(
      (event) => html`<li key=${event.id}>
        <p><strong>${ACTIONS[event.action] ?? event.action}</strong> <time datetime=${event.at}>${WHEN.format(new Date(event.at))}</time>
          <span class="muted"> by ${event.actor_id ? (names.get(event.actor_id) ?? event.actor_id) : "unknown"}</span></p>
        ${event.action === "created" || event.action === "deleted"
          ? null
          : html`<ul>${Object.entries(event.changes).map(([field, change]) => html`<li><code>${field}</code>: ${shown(change.before)} \u2192 ${shown(change.after)}</li>`)}</ul>`}
      </li>`,
    )}
  </ol>`;
}
