// The live feed: the events socket, what its messages change, the HTTP fallback while it is down,
// and the marking of everything live on screen as stale (with the time it was last known) while
// it is down.

import { api, isAuthenticated } from "../api.js";
import { EventStream } from "./events.js";
import { fmtClock } from "./format.js";
import { state, validWorkspace } from "./state.js";

/** @typedef {import("./types.js").Task} Task */
/** @typedef {import("./types.js").RunView} RunView */
/** @typedef {import("./types.js").PipelineText} PipelineText */
/** @typedef {import("./types.js").LiveState} LiveState */
/** @typedef {import("./types.js").EventMessage} EventMessage */
/** @typedef {import("./types.js").ActivityEvent} ActivityEvent */
/** @typedef {import("./types.js").BudgetAlert} BudgetAlert */

/**
 * What the socket's messages are handed to.
 * @typedef {object} LiveHandlers
 * @property {() => void} workspaces the workspaces changed (state.workspaces)
 * @property {(t: Task) => void} task a task was created or changed
 * @property {(r: RunView) => void} pipelineRun a pipeline run was created or changed
 * @property {(m: PipelineText) => void} pipelineText the next piece of a stage's LLM answer
 * @property {(a: ActivityEvent) => void} aiActivity an AI activity was recorded
 * @property {(a: BudgetAlert) => void} budgetAlert a budget crossed 80 % or 100 % of its limit
 * @property {(s: LiveState) => void} state the socket's state changed (state.live)
 */

/**
 * A log follow: gets the log messages of its task and hears about the socket's state.
 * @typedef {{ onMessage: (msg: EventMessage) => void, onLive: (s: LiveState) => void, stop: () => void }} LogFollower
 */

/** @type {Map<string, LogFollower>} task id -> the log view following it */
export const logFollowers = new Map();

/** @type {EventStream | null} */
let stream = null;
/** @type {LiveHandlers | null} */
let handlers = null;
let pollTimer = 0;
/** When the data on screen was last known to be current: the last message, or the last HTTP load. */
let freshAt = 0;

/** @param {LiveHandlers} h */
export function startLive(h) {
  stopLive();
  handlers = h;
  stream = new EventStream({ onMessage: onEvent, onState: onLiveState });
  stream.start();
}

export function stopLive() {
  for (const f of [...logFollowers.values()]) f.stop();
  logFollowers.clear();
  if (stream) stream.stop();
  stream = null;
  handlers = null;
  clearTimeout(pollTimer);
  freshAt = 0;
  setStale(0);
}

/** Send a message on the socket now; false when it is not open. @param {object} msg */
export function streamSend(msg) {
  return !!stream && stream.send(msg);
}

/** @param {LiveState} s */
function onLiveState(s) {
  const was = state.live;
  state.live = s;
  if (s === "live") {
    freshAt = Date.now();
    setStale(0);
  } else if (s === "reconnecting") {
    // Live until now when the socket just dropped; otherwise as of the last load.
    if (was === "live") freshAt = Date.now();
    if (freshAt) setStale(freshAt);
  } else if (s === "stopped") {
    setStale(0);
  }
  // While the socket is down, fall back to polling so the page doesn't go stale.
  clearTimeout(pollTimer);
  if (s !== "live" && s !== "stopped") pollTimer = setTimeout(pollWorkspaces, 20_000);
  // Log follows live on the socket: re-follow from where each one got to.
  for (const f of [...logFollowers.values()]) f.onLive(s);
  if (handlers) handlers.state(s);
}

function pollWorkspaces() {
  if (!handlers || state.live === "live") return;
  loadWorkspaces().finally(() => {
    if (handlers && state.live !== "live") pollTimer = setTimeout(pollWorkspaces, 20_000);
  });
}

/** @param {EventMessage} msg */
function onEvent(msg) {
  if (state.live === "live") freshAt = Date.now();
  if (msg.type === "snapshot" && Array.isArray(msg.workspaces)) {
    state.socketVersion++;
    state.workspaces = new Map(msg.workspaces.filter(validWorkspace).map((w) => [w.id, w]));
    state.workspacesLoaded = true;
    state.workspacesError = null;
    if (handlers) handlers.workspaces();
  } else if (msg.type === "workspace" && validWorkspace(msg.workspace)) {
    state.socketVersion++;
    state.workspaces.set(msg.workspace.id, msg.workspace);
    state.workspacesLoaded = true;
    if (handlers) handlers.workspaces();
  } else if (msg.type === "task" && msg.task && typeof msg.task === "object" && typeof msg.task.id === "string") {
    if (handlers) handlers.task(msg.task);
  } else if (msg.type === "pipeline_run" && msg.run && typeof msg.run === "object" && typeof msg.run.id === "string") {
    if (handlers) handlers.pipelineRun(msg.run);
  } else if (
    msg.type === "pipeline_text" &&
    typeof msg.run === "string" &&
    typeof msg.stage === "string" &&
    typeof msg.text === "string"
  ) {
    if (handlers) handlers.pipelineText(msg);
  } else if (
    msg.type === "ai_activity" &&
    msg.activity &&
    typeof msg.activity === "object" &&
    typeof msg.activity.id === "string"
  ) {
    if (handlers) handlers.aiActivity(msg.activity);
  } else if (
    msg.type === "budget_alert" &&
    msg.alert &&
    typeof msg.alert === "object" &&
    typeof msg.alert.budget_id === "string"
  ) {
    if (handlers) handlers.budgetAlert(msg.alert);
  } else if ((msg.type === "log" || msg.type === "log_end" || msg.type === "error") && typeof msg.task === "string") {
    const follower = logFollowers.get(msg.task);
    if (follower) follower.onMessage(msg);
  }
  // Unknown types (and pings) are ignored on purpose.
}

/** GET /workspaces, unless the socket has sent newer data meanwhile. */
export async function loadWorkspaces() {
  const version = state.socketVersion;
  try {
    const list = await api.workspaces();
    if (!handlers || state.socketVersion !== version) return; // the socket has newer data
    state.workspaces = new Map((Array.isArray(list) ? list : []).filter(validWorkspace).map((w) => [w.id, w]));
    state.workspacesLoaded = true;
    state.workspacesError = null;
    if (!freshAt) freshAt = Date.now();
  } catch (err) {
    if (!handlers || !isAuthenticated()) return; // the session ended; the login screen takes over
    state.workspacesError = err instanceof Error ? err.message : String(err);
  }
  handlers.workspaces();
}

// ------------------------------------------------------------------ stale marking
//
// Elements that show live state carry `data-live`: while the feed is down they get
// `data-stale="true"` (the stylesheet greys them and stops their pulse), and those with
// `data-live="note"` get a "last known …" note. New elements are marked as they are added.

/** @type {MutationObserver | null} */
let observer = null;

/** @param {number} since 0: the feed is live (or stopped), nothing is stale */
function setStale(since) {
  state.staleSince = since;
  const root = document.getElementById("app");
  if (!root) return;
  if (observer) observer.disconnect();
  observer = null;
  if (!since) {
    delete root.dataset.stale;
    for (const el of root.querySelectorAll("[data-stale]")) el.removeAttribute("data-stale");
    for (const el of root.querySelectorAll(".stale-note")) el.remove();
    for (const el of root.querySelectorAll(".stale-banner")) {
      if (el instanceof HTMLElement) el.hidden = true;
    }
    return;
  }
  root.dataset.stale = "true";
  const when = fmtClock(since);
  for (const el of root.querySelectorAll(".stale-banner")) {
    if (!(el instanceof HTMLElement)) continue;
    el.textContent = `Live updates are paused: what you see is the last known state, as of ${when}. Reconnecting…`;
    el.hidden = false;
  }
  markStale(root, when);
  observer = new MutationObserver((records) => {
    for (const r of records) {
      // A live element whose content was re-rendered gets its note back.
      const owner = r.target instanceof Element ? r.target.closest("[data-live]") : null;
      if (owner) markStale(owner, when);
      for (const n of r.addedNodes) {
        if (n instanceof Element && !n.classList.contains("stale-note")) markStale(n, when);
      }
    }
  });
  observer.observe(root, { childList: true, subtree: true });
}

/**
 * @param {Element} el the element and everything in it
 * @param {string} when
 */
function markStale(el, when) {
  const found = [...el.querySelectorAll("[data-live]")];
  if (el.hasAttribute("data-live")) found.push(el);
  for (const x of found) {
    x.setAttribute("data-stale", "true");
    if (x.getAttribute("data-live") === "note" && !x.querySelector(":scope > .stale-note")) {
      const note = document.createElement("span");
      note.className = "stale-note";
      note.dataset.testid = "stale-note";
      note.textContent = `last known ${when}`;
      x.append(note);
    }
  }
}
