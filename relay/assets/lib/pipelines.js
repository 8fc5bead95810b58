// AI pipeline runs: how a run and its stages are shown (state badges, reasons, tokens, cost,
// durations), the built-in pipelines, and the shape of a run's stage graph.

import { enc, h } from "./dom.js";
import { fmtCount, fmtDuration, fmtUsd, parseTime } from "./format.js";

/** @typedef {import("./types.js").RunView} RunView */
/** @typedef {import("./types.js").StageView} StageView */
/** @typedef {import("./types.js").RunUsage} RunUsage */
/** @typedef {import("./types.js").Attrs} Attrs */

/** The pipelines the relay ships, for the Generate form. */
export const BUILTIN_PIPELINES = [
  {
    value: "systemcrafter",
    label: "SystemCrafter",
    hint: "A complete system from the project's name and description: requirements, architecture, API, database, code, tests.",
  },
  {
    value: "feature",
    label: "Feature",
    hint: "A requested change in the project's repository: analysis, plan, change, tests, pull request description.",
  },
];

/** Run and stage states that still change on their own. */
const MOVING = new Set(["queued", "running"]);
/** A run the engine is working on (it can be canceled, not resumed). @param {RunView | null | undefined} r */
export const runActive = (r) => !!r && MOVING.has(r.state);

/** The states the badges know (run states, then stage states). */
const STATES = new Set([
  "queued",
  "running",
  "paused",
  "succeeded",
  "failed",
  "canceled",
  "pending",
  "waiting",
  "skipped",
]);

/**
 * A run's or a stage's state, as a badge (the task badges' colours; paused and waiting in amber).
 * @param {string} st
 * @param {string} [testid]
 */
export function pipelineBadge(st, testid = "run-state") {
  const known = STATES.has(st) ? st : "unknown";
  const moving = MOVING.has(known);
  return h(
    "span.task-state",
    { class: `st-${known}`, "data-testid": testid, "data-state": st || "", "data-live": moving ? "" : null },
    moving ? h("span.state-pulse", { "aria-hidden": "true" }) : null,
    known,
  );
}

/** @type {Record<string, string>} the relay's stable reason codes, for people */
const REASONS = {
  approval_required: "waiting for approval",
  recovering: "waiting for recovery",
  budget_exceeded: "budget reached",
  no_provider: "no AI provider set up",
  provider_key_unavailable: "the provider's key can't be opened",
  definition_invalid: "the definition is invalid",
  access_lost: "its starter lost access to the project",
  stage_failed: "a stage failed",
  not_supported: "stage kind not supported yet",
  stuck: "no stage can start",
  canceled: "canceled",
};

/** "waiting for approval" for `approval_required`; unknown codes with spaces. @param {string | null | undefined} code */
export function reasonLabel(code) {
  if (!code) return "";
  return REASONS[code] || code.replace(/_/g, " ");
}

/** The branch a run's writing stages commit on: `fulcrum/run-<handle>` ("" without a handle). @param {string | null | undefined} handle */
export const runBranch = (handle) => (handle ? `fulcrum/run-${handle}` : "");

/** "1,234 in · 567 out" (and cached, when any). @param {RunUsage | null | undefined} u @param {boolean} [compact] */
export function tokensText(u, compact = false) {
  if (!u) return "—";
  const parts = [`${fmtCount(u.input_tokens, compact)} in`, `${fmtCount(u.output_tokens, compact)} out`];
  if (u.cached_tokens) parts.push(`${fmtCount(u.cached_tokens, compact)} cached`);
  return parts.join(" · ");
}

/** The cost so far: "$0.0042". @param {RunUsage | null | undefined} u */
export const costText = (u) => (u ? fmtUsd(u.cost_usd) : "—");

/**
 * How long something took: finished, the recorded span; still going, a live elapsed time (the
 * ticker keeps it current); not started, a dash.
 * @param {string | null | undefined} startedAt
 * @param {string | null | undefined} finishedAt
 * @param {boolean} going
 * @param {Attrs} [attrs]
 */
export function spanEl(startedAt, finishedAt, going, attrs = {}) {
  const started = parseTime(startedAt);
  if (Number.isNaN(started)) return h("span.muted", { ...attrs, text: "—" });
  const finished = parseTime(finishedAt);
  if (!Number.isNaN(finished)) return h("span", { ...attrs, text: fmtDuration(finished - started) });
  if (!going) return h("span.muted", { ...attrs, text: "—" });
  return h(
    "time.rel",
    { ...attrs, datetime: startedAt, "data-live": "", dataset: { rel: startedAt || "", mode: "elapsed" } },
    fmtDuration(Date.now() - started),
  );
}

/** A run's duration. @param {RunView} r @param {Attrs} [attrs] */
export const runDurationEl = (r, attrs) => spanEl(r.started_at, r.finished_at, runActive(r), attrs);

/** @param {RunView} r */
export const runHref = (r) => `#/pipeline-runs/${enc(r.id)}`;

/**
 * Each stage's column in the graph: 0 for those that need nothing, else one more than the
 * deepest stage they need (a need that is not in the run, or a cycle, counts as nothing).
 * @param {StageView[]} stages
 * @returns {Map<string, number>}
 */
export function stageDepths(stages) {
  const byName = new Map(stages.map((s) => [s.name, s]));
  /** @type {Map<string, number>} */
  const depth = new Map();
  /** @type {Set<string>} */
  const visiting = new Set();
  /** @param {string} name @returns {number} */
  const of = (name) => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    const s = byName.get(name);
    if (!s || visiting.has(name)) return -1;
    visiting.add(name);
    let d = 0;
    for (const n of s.needs || []) d = Math.max(d, of(n) + 1);
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };
  for (const s of stages) of(s.name);
  return depth;
}

/** The stages that need `name` directly. @param {StageView[]} stages @param {string} name */
export function dependents(stages, name) {
  return stages.filter((s) => (s.needs || []).includes(name)).map((s) => s.name);
}

/** A waiting approval gate of the run, if any. @param {RunView | null | undefined} r */
export function waitingGate(r) {
  return r?.stages?.find((s) => s.kind === "approval" && s.state === "waiting") || null;
}

/**
 * A small bar: how much of a limit is used (amber from 80 %, red when reached).
 * @param {number} used
 * @param {number | null | undefined} limit
 * @param {string} label what the bar measures, for screen readers
 */
export function usageBar(used, limit, label) {
  if (typeof limit !== "number" || !(limit > 0)) return null;
  const ratio = Math.max(0, used / limit);
  const fill = h("span.meter-fill");
  fill.style.setProperty("width", `${Math.min(100, ratio * 100).toFixed(1)}%`);
  return h(
    "span.meter",
    {
      class: ratio >= 1 ? "is-over" : ratio >= 0.8 ? "is-near" : "",
      role: "img",
      "aria-label": `${label}: ${Math.round(ratio * 100)} %`,
      title: `${Math.round(ratio * 100)} % used`,
    },
    fill,
  );
}
