// Each workspace card's activity: its running tasks and its last few tasks, so that a failing
// build shows on the page a user keeps open. Loaded for all workspaces at once (two requests: the
// newest tasks, and the running ones, grouped by workspace; the REST API allows a user 100
// requests a minute), then per workspace only for one the first page may have cut short or that
// appeared later. Kept current by the task events of the live feed, and reloaded after the feed
// comes back (events may have been missed meanwhile).

import { api } from "../api.js";
import { enc, h } from "./dom.js";
import { parseTime, timeEl } from "./format.js";
import { isActive, stateBadge, taskDurationEl, taskTitle } from "./tasks.js";

/** @typedef {import("./types.js").Task} Task */
/** @typedef {import("./types.js").LiveState} LiveState */

/** How many of a workspace's last tasks its card shows. */
export const RECENT = 5;
/** How many tasks the first, shared request asks for. */
const BATCH = 100;

/**
 * @typedef {object} Activity
 * @property {Task[]} items the last tasks, newest first (at most RECENT)
 * @property {Task[]} running active tasks older than those
 * @property {boolean} loaded
 * @property {boolean} loading
 * @property {string | null} error
 * @property {Task[]} pending task events that came while loading
 * @property {number} seq
 */

/** @type {Map<string, Activity>} workspace id -> its activity */
const activity = new Map();
let onChange = () => {};
let missedEvents = false;
/** The shared load: 0 not started, 1 loading, 2 done. */
let batch = 0;
let batchSeq = 0;

/** Start over (a new session): `changed` is called when a workspace's activity changed. @param {() => void} changed */
export function resetActivity(changed) {
  activity.clear();
  onChange = changed;
  missedEvents = false;
  batch = 0;
  batchSeq++;
}

/** @param {Task} a @param {Task} b newest first */
const newestFirst = (a, b) =>
  (parseTime(b.created_at) || 0) - (parseTime(a.created_at) || 0) || (b.number || 0) - (a.number || 0);

/** @param {{ data: Task[] }} r */
const tasksOf = (r) => (Array.isArray(r.data) ? r.data : []).filter((t) => t && typeof t.id === "string");

/** @param {string} id */
function entry(id) {
  let a = activity.get(id);
  if (!a) {
    a = { items: [], running: [], loaded: false, loading: false, error: null, pending: [], seq: 0 };
    activity.set(id, a);
  }
  return a;
}

/**
 * @param {Activity} a
 * @param {Task[]} recent newest first
 * @param {Task[]} running
 */
function settle(a, recent, running) {
  a.items = recent.slice(0, RECENT);
  const shown = new Set(a.items.map((t) => t.id));
  a.running = running.filter((t) => !shown.has(t.id) && isActive(t));
  a.loaded = true;
  a.loading = false;
  a.error = null;
  for (const t of a.pending) apply(a, t);
  a.pending = [];
}

/** Loads the activity of the workspaces that have none yet. @param {string[]} ids */
export function ensureActivity(ids) {
  if (batch === 0) {
    loadAll(ids);
    return;
  }
  if (batch === 1) {
    for (const id of ids) entry(id).loading = true;
    return;
  }
  for (const id of ids) {
    const a = activity.get(id);
    if (!a || (!a.loaded && !a.loading && !a.error)) loadOne(id, []);
  }
}

/** The newest tasks and the running ones of every workspace, grouped. @param {string[]} ids */
async function loadAll(ids) {
  const seq = ++batchSeq;
  batch = 1;
  for (const id of ids) {
    const a = entry(id);
    a.loading = true;
    a.seq++;
    a.pending = [];
  }
  try {
    const [recent, running] = await Promise.all([
      api.tasks({ per_page: BATCH }),
      api.tasks({ state: "running", per_page: BATCH }),
    ]);
    if (seq !== batchSeq) return;
    const list = tasksOf(recent).sort(newestFirst);
    // Whether older tasks exist that this page did not bring.
    const cut = typeof recent.meta?.total === "number" ? recent.meta.total > list.length : list.length >= BATCH;
    /** @type {Map<string, Task[]>} */
    const byWs = new Map();
    for (const t of list) byWs.set(t.workspace_id, [...(byWs.get(t.workspace_id) || []), t]);
    const runs = tasksOf(running);
    batch = 2;
    for (const [id, a] of activity) {
      if (!a.loading) continue;
      const mine = byWs.get(id) || [];
      const run = runs.filter((t) => t.workspace_id === id);
      if (cut && mine.length < RECENT) loadOne(id, run);
      else settle(a, mine, run);
    }
  } catch (err) {
    if (seq !== batchSeq) return;
    batch = 2;
    for (const a of activity.values()) {
      if (!a.loading) continue;
      a.loading = false;
      a.pending = [];
      a.error = err instanceof Error ? err.message : String(err);
    }
  }
  onChange();
}

/**
 * One workspace's newest tasks.
 * @param {string} id
 * @param {Task[]} running its running tasks, when known
 */
async function loadOne(id, running) {
  const a = entry(id);
  const seq = ++a.seq;
  a.loading = true;
  a.pending = [];
  try {
    const recent = await api.tasks({ workspace: id, per_page: RECENT });
    if (activity.get(id) !== a || seq !== a.seq) return;
    settle(a, tasksOf(recent).sort(newestFirst), running);
  } catch (err) {
    if (activity.get(id) !== a || seq !== a.seq) return;
    a.loading = false;
    a.pending = [];
    a.error = err instanceof Error ? err.message : String(err);
  }
  onChange();
}

/**
 * @param {Activity} a
 * @param {Task} t
 */
function apply(a, t) {
  const i = a.items.findIndex((x) => x.id === t.id);
  if (i >= 0) {
    a.items[i] = t;
    return;
  }
  const j = a.running.findIndex((x) => x.id === t.id);
  if (j >= 0) {
    // Older than the last few: shown only while it runs.
    if (isActive(t)) a.running[j] = t;
    else a.running.splice(j, 1);
    return;
  }
  const oldest = a.items[a.items.length - 1];
  if (a.items.length < RECENT || !oldest || newestFirst(t, oldest) < 0) {
    a.items = [...a.items, t].sort(newestFirst);
    for (const out of a.items.splice(RECENT)) if (isActive(out)) a.running.push(out);
  } else if (isActive(t)) {
    a.running.push(t);
  }
}

/** A task event from the live feed. @param {Task} t */
export function activityTask(t) {
  const a = activity.get(t.workspace_id);
  if (!a) return;
  if (a.loading) {
    a.pending.push(t);
    return;
  }
  if (!a.loaded) return;
  apply(a, t);
  onChange();
}

/** The feed's state: after it was down, reload what may have missed events. @param {LiveState} s */
export function activityLive(s) {
  if (s === "reconnecting") missedEvents = true;
  if (s !== "live" || !missedEvents) return;
  missedEvents = false;
  if (batch !== 0) loadAll([...activity.keys()]);
}

/** What the card shows, as a string that changes when it does (for the cards' keyed re-rendering). @param {string} id */
export function activityKey(id) {
  const a = activity.get(id);
  if (!a) return "";
  return JSON.stringify([a.loaded, a.error, a.running, a.items]);
}

/** The newest task's state, for the card ("" when none is known). @param {string} id */
export function lastTaskState(id) {
  const a = activity.get(id);
  return a?.items[0]?.state || "";
}

/** The card's activity section. @param {string} id the workspace's id */
export function activityEl(id) {
  const a = activity.get(id);
  const tasks = a ? [...a.running, ...a.items] : [];
  let body;
  if (!a || (!a.loaded && !a.error)) {
    body = h("p.ws-activity-note.muted", { text: "Loading tasks…" });
  } else if (!a.loaded) {
    body = h("p.ws-activity-note.muted", { text: `Couldn't load tasks: ${a.error}` });
  } else if (tasks.length === 0) {
    body = h("p.ws-activity-note.muted", { "data-testid": "workspace-tasks-empty", text: "No tasks yet." });
  } else {
    body = h(
      "ol.ws-task-list",
      null,
      tasks.map((t) => taskLine(t)),
    );
  }
  return h(
    "section.ws-activity",
    { "data-testid": "workspace-activity", "data-live": "", "aria-label": "Recent tasks" },
    body,
  );
}

/** @param {Task} t */
function taskLine(t) {
  const title = taskTitle(t);
  return h(
    "li.ws-task",
    { "data-testid": "workspace-task", "data-task-id": t.id, "data-state": t.state || "" },
    stateBadge(t.state, "workspace-task-state"),
    h(
      "a.ws-task-link",
      { href: `#/tasks/${enc(t.id)}`, title, "data-testid": "workspace-task-link" },
      t.number ? h("span.ws-task-num.mono", { "data-testid": "workspace-task-number", text: `#${t.number}` }) : null,
      h("span.ws-task-cmd.mono", { text: title }),
    ),
    h("span.ws-task-when", null, timeEl(t.created_at)),
    taskDurationEl(t, { class: "ws-task-dur", title: "Duration" }),
  );
}
