// AI activity, as the AI activity page and the project page show it: periods of UTC days (the
// relay's reports count by UTC day), figures (tokens, cost, latency percentiles), where an
// activity came from, and the code it changed.

import { h } from "./dom.js";
import { fmtCount, fmtDuration, fmtUsd } from "./format.js";

/** @typedef {import("./types.js").Figures} Figures */
/** @typedef {import("./types.js").CodeChange} CodeChange */

const DAY_MS = 86_400_000;
const dayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
const dayLongFmt = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  year: "numeric",
  month: "short",
  day: "numeric",
  timeZone: "UTC",
});
const monthFmt = new Intl.DateTimeFormat(undefined, { month: "long", year: "numeric", timeZone: "UTC" });

/** `YYYY-MM-DD` of today, in UTC. */
export const utcToday = () => new Date().toISOString().slice(0, 10);

/** Whether `s` is a `YYYY-MM-DD` day. @param {unknown} s @returns {s is string} */
export const isDay = (s) => typeof s === "string" && /^\d{4}-\d{2}-\d{2}$/.test(s) && !Number.isNaN(dayMs(s));

/** @param {string} day */
const dayMs = (day) => Date.parse(`${day}T00:00:00Z`);

/** The day `n` days after `day` (before, when negative). @param {string} day @param {number} n */
export const addDays = (day, n) => new Date(dayMs(day) + n * DAY_MS).toISOString().slice(0, 10);

/** How many days from `from` to `to`, both counted. @param {string} from @param {string} to */
export const dayCount = (from, to) => Math.round((dayMs(to) - dayMs(from)) / DAY_MS) + 1;

/** Every day from `from` to `to`, both included (at most `max`). @param {string} from @param {string} to @param {number} [max] */
export function daysBetween(from, to, max = 400) {
  const out = [];
  for (let d = from; d <= to && out.length < max; d = addDays(d, 1)) out.push(d);
  return out;
}

/** "Mar 4". @param {string} day */
export const dayLabel = (day) => dayFmt.format(new Date(dayMs(day)));
/** "Wed, Mar 4, 2026". @param {string} day */
export const dayTitle = (day) => dayLongFmt.format(new Date(dayMs(day)));

/** The periods the pickers offer, with the days each covers (UTC, up to today). */
export const PERIODS = {
  month: { label: "This month", range: () => ({ from: `${utcToday().slice(0, 8)}01`, to: utcToday() }) },
  "last-month": {
    label: "Last month",
    range: () => {
      const end = addDays(`${utcToday().slice(0, 8)}01`, -1);
      return { from: `${end.slice(0, 8)}01`, to: end };
    },
  },
  "7d": { label: "Last 7 days", range: () => ({ from: addDays(utcToday(), -6), to: utcToday() }) },
  "30d": { label: "Last 30 days", range: () => ({ from: addDays(utcToday(), -29), to: utcToday() }) },
  "90d": { label: "Last 90 days", range: () => ({ from: addDays(utcToday(), -89), to: utcToday() }) },
};
/** @typedef {keyof typeof PERIODS | "custom"} PeriodName */

/** @param {string} name @returns {name is keyof typeof PERIODS} */
export const isPeriod = (name) => Object.hasOwn(PERIODS, name);

/** The named period that covers exactly these days, else "custom". @param {string} from @param {string} to @returns {PeriodName} */
export function periodName(from, to) {
  for (const [name, p] of Object.entries(PERIODS)) {
    const r = p.range();
    if (r.from === from && r.to === to && isPeriod(name)) return name;
  }
  return "custom";
}

/** "March 2026", "Mar 4 – Mar 17, 2026". @param {string} from @param {string} to */
export function periodText(from, to) {
  const end = addDays(to, 1);
  if (from.endsWith("-01") && (end.endsWith("-01") || to === utcToday()) && from.slice(0, 7) === to.slice(0, 7)) {
    return monthFmt.format(new Date(dayMs(from)));
  }
  if (from === to) return dayTitle(from);
  const year = to.slice(0, 4);
  return `${dayLabel(from)}${from.slice(0, 4) === year ? "" : `, ${from.slice(0, 4)}`} – ${dayLabel(to)}, ${year}`;
}

/** Micro-dollars as "$0.0042". @param {number | null | undefined} micros */
export const fmtMicros = (micros) => fmtUsd(typeof micros === "number" ? micros / 1e6 : null);

/** "1.2 s", or "—" when nothing reported a latency. @param {number | null | undefined} ms */
export const fmtLatency = (ms) => (typeof ms === "number" && Number.isFinite(ms) ? fmtDuration(ms) : "—");

/** "12.3K in · 4.5K out". @param {{ input_tokens: number, output_tokens: number }} f */
export const tokensText = (f) => `${fmtCount(f.input_tokens, true)} in · ${fmtCount(f.output_tokens, true)} out`;

/** The exact token counts, for a tooltip. @param {{ input_tokens: number, output_tokens: number, cached_tokens: number }} f */
export const tokensTitle = (f) =>
  `${fmtCount(f.input_tokens)} input (${fmtCount(f.cached_tokens)} from cache) · ${fmtCount(f.output_tokens)} output`;

/** @type {Record<string, string>} how an activity reached Fulcrum, for people */
const SOURCES = {
  api: "Reported by a tool through the ingest API",
  otlp: "Reported by a tool as OpenTelemetry (OTLP)",
  gateway: "A call through Fulcrum's LLM gateway",
  pipeline: "A call of a pipeline run",
  assistant: "A call of the Fulcrum assistant",
};

/** @param {string} source */
export function sourceTag(source) {
  const known = Object.hasOwn(SOURCES, source);
  return h("span.tag.ai-source", {
    class: `source-${known ? source : "other"}`,
    title: SOURCES[source] || null,
    text: source,
  });
}

/**
 * The files an activity changed, each with its commit's short SHA; past `shown`, the rest fold.
 * @param {CodeChange[] | null | undefined} changes
 * @param {number} [shown]
 */
export function codeChangesEl(changes, shown = 2) {
  const list = Array.isArray(changes) ? changes.filter((c) => c && typeof c.path === "string") : [];
  if (!list.length) return h("span.muted", { text: "—" });
  /** @param {CodeChange} c */
  const item = (c) =>
    h(
      "li.ai-change",
      { "data-testid": "ai-code-change" },
      h("span.mono.ai-change-path", { title: c.path, text: c.path }),
      c.commit ? h("span.mono.ref-sha", { title: c.commit, text: c.commit.slice(0, 7) }) : null,
    );
  const first = h("ul.ai-changes", null, list.slice(0, shown).map(item));
  if (list.length <= shown) return first;
  return h(
    "div",
    null,
    first,
    h(
      "details.ai-more",
      null,
      h("summary.muted.small", { text: `${list.length - shown} more` }),
      h("ul.ai-changes", null, list.slice(shown).map(item)),
    ),
  );
}

/**
 * A row of facts: activities, tokens, cost and latency.
 * @param {Figures} f
 * @param {string} prefix the facts' test ids start with it (`ai-total`)
 */
export function figuresFacts(f, prefix) {
  /** @param {string} label @param {string} id @param {string} value @param {number | string} raw @param {string | null} [tip] */
  const fact = (label, id, value, raw, tip = null) =>
    h(
      "div.fact",
      null,
      h("dt", { text: label }),
      h("dd.num", { "data-testid": `${prefix}-${id}`, "data-value": String(raw), title: tip, text: value }),
    );
  const ms = (/** @type {number | null | undefined} */ v) => (typeof v === "number" ? Math.round(v) : "");
  return h(
    "dl.facts.ai-facts",
    { "data-testid": prefix },
    fact("Activities", "activities", fmtCount(f.activities), f.activities),
    fact("Tokens in", "input", fmtCount(f.input_tokens, true), f.input_tokens, fmtCount(f.input_tokens)),
    fact("Tokens out", "output", fmtCount(f.output_tokens, true), f.output_tokens, fmtCount(f.output_tokens)),
    fact("Cached", "cached", fmtCount(f.cached_tokens, true), f.cached_tokens, fmtCount(f.cached_tokens)),
    fact("Cost", "cost", fmtUsd(f.cost_usd), f.cost_usd),
    fact(
      "Latency p50",
      "p50",
      fmtLatency(f.latency_p50_ms),
      ms(f.latency_p50_ms),
      "The median, of those that reported a latency",
    ),
    fact("Latency p95", "p95", fmtLatency(f.latency_p95_ms), ms(f.latency_p95_ms)),
  );
}

/** A file-name-safe form of a name ("My App" -> "my-app"). @param {string} s */
export function fileSlug(s) {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "")
      .slice(0, 40) || "project"
  );
}
