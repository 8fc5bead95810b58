// Tasks: how a task is shown (state, source, duration, commit, tests) and the paged, filterable
// task list that task events keep current.

import { api } from "../api.js";
import { clear, dataTable, enc, errorBanner, field, h, loadingEl } from "./dom.js";
import { fmtDuration, parseTime, plural, timeEl } from "./format.js";
import { signedIn } from "./shell.js";
import { projectNames, state, workspaceName } from "./state.js";

/** @typedef {import("./types.js").Task} Task */
/** @typedef {import("./types.js").TaskState} TaskState */
/** @typedef {import("./types.js").TaskSource} TaskSource */
/** @typedef {import("./types.js").TestSummary} TestSummary */
/** @typedef {import("./types.js").TaskQuery} TaskQuery */

/** @type {TaskState[]} */
export const TASK_STATES = ["queued", "dispatched", "running", "succeeded", "failed", "canceled", "timed_out", "lost"];
/** @type {Set<string>} */
const ACTIVE_STATES = new Set(["queued", "dispatched", "running"]);
/** @type {Record<string, string>} */
export const STATE_LABELS = { timed_out: "timed out" };
/** @param {{ state: string } | null | undefined} t */
export const isActive = (t) => !!t && ACTIVE_STATES.has(t.state);
/** @param {string} st */
export const stateLabel = (st) => STATE_LABELS[st] || st;

/**
 * The doors a task can be started through, with their badge and what it means.
 * @type {Record<TaskSource, { label: string, hint: string }>}
 */
export const TASK_SOURCES = {
  api: { label: "api", hint: "Started from the dashboard or the REST API" },
  terminal: { label: "terminal", hint: "Started from a terminal session (fulcrum run)" },
  mcp: { label: "mcp", hint: "Started by an MCP client (an AI assistant)" },
  pipeline: { label: "pipeline", hint: "Started by a pipeline run's build, QA or deploy stage" },
};

/** The command, or the step. @param {Task} t */
export function taskTitle(t) {
  if (typeof t.command === "string" && t.command !== "") return t.command;
  if (typeof t.step === "string" && t.step !== "") return `step: ${t.step}`;
  return "(no command)";
}

/**
 * @param {string} st
 * @param {string} [testid]
 */
export function stateBadge(st, testid = "task-state") {
  const known = TASK_STATES.includes(/** @type {TaskState} */ (st)) ? st : "unknown";
  const active = ACTIVE_STATES.has(known);
  return h(
    "span.task-state",
    { class: `st-${known}`, "data-testid": testid, "data-state": st || "", "data-live": active ? "" : null },
    active ? h("span.state-pulse", { "aria-hidden": "true" }) : null,
    STATE_LABELS[known] || known,
  );
}

/** @param {Task} t */
export function exitText(t) {
  if (typeof t.exit_code === "number") return String(t.exit_code);
  if (typeof t.signal === "number") return `signal ${t.signal}`;
  return "—";
}

/** Finished: the recorded duration. Running: a live elapsed time (the ticker updates it). */
/**
 * @param {Task} t
 * @param {import("./types.js").Attrs} [attrs]
 */
export function taskDurationEl(t, attrs = {}) {
  if (typeof t.duration_ms === "number") return h("span", { ...attrs, text: fmtDuration(t.duration_ms) });
  const started = parseTime(t.started_at);
  if (!Number.isNaN(started)) {
    if (isActive(t)) {
      return h(
        "time.rel",
        { ...attrs, datetime: t.started_at, "data-live": "", dataset: { rel: t.started_at, mode: "elapsed" } },
        fmtDuration(Date.now() - started),
      );
    }
    const finished = parseTime(t.finished_at);
    if (!Number.isNaN(finished)) return h("span", { ...attrs, text: fmtDuration(finished - started) });
  }
  return h("span.muted", { ...attrs, text: "—" });
}

/** @param {Task} t */
export function commitEl(t) {
  const sha = typeof t.commit_sha === "string" && t.commit_sha ? t.commit_sha : null;
  if (!sha && !t.branch) return h("span.muted", { text: "—" });
  return h(
    "span.commit-ref.mono",
    { title: [t.branch, sha].filter(Boolean).join(" @ ") },
    h("span.ref-branch", { text: t.branch || "detached" }),
    sha ? h("span.ref-at", { text: "@" }) : null,
    sha ? h("span.ref-sha", { text: sha.slice(0, 7) }) : null,
  );
}

/**
 * @param {TestSummary | null | undefined} ts
 * @param {string} testid
 */
export function testCounts(ts, testid) {
  if (!ts || typeof ts !== "object") return h("span.muted", { text: "—", "data-testid": testid });
  /** @param {unknown} x */
  const n = (x) => (typeof x === "number" && Number.isFinite(x) ? x : 0);
  return h(
    "span.tests",
    {
      "data-testid": testid,
      "data-passed": n(ts.passed),
      "data-failed": n(ts.failed),
      "data-skipped": n(ts.skipped),
      title: `${n(ts.passed)} passed, ${n(ts.failed)} failed, ${n(ts.skipped)} skipped`,
    },
    h("span.tc.tc-passed", { text: `${n(ts.passed)} ✓` }),
    h("span.tc.tc-failed", { class: n(ts.failed) ? "nonzero" : "", text: `${n(ts.failed)} ✗` }),
    n(ts.skipped) ? h("span.tc.tc-skipped", { text: `${n(ts.skipped)} skipped` }) : null,
  );
}

/** Where a task came from: its source's badge, for every source. @param {string} source */
export function sourceBadge(source) {
  const known = Object.hasOwn(TASK_SOURCES, source) ? TASK_SOURCES[/** @type {TaskSource} */ (source)] : null;
  return h("span.tag.source", {
    class: `source-${known ? source : "other"}`,
    "data-testid": "task-source",
    "data-source": source || "",
    title: known ? known.hint : `Started through ${source || "an unknown door"}`,
    text: known ? known.label : source || "unknown",
  });
}

/** @param {Task} t */
export function triggeredBy(t) {
  return h(
    "span.who",
    null,
    h("span", { text: t.triggered_by_email || (t.triggered_by ? String(t.triggered_by).slice(0, 8) : "unknown") }),
    sourceBadge(t.source),
  );
}

/**
 * A link to a workspace's tasks page, named after the workspace.
 * @param {string} id
 * @param {import("./types.js").Attrs} [attrs]
 */
export function workspaceTasksLink(id, attrs = {}) {
  return h("a", { href: `#/workspaces/${enc(id)}/tasks`, ...attrs, text: workspaceName(id) });
}

// ------------------------------------------------------------------ the task list

/**
 * A paged, filterable task list for a project or a workspace, or across all of them (`global`:
 * with filters for the workspace, the project and who started a task), kept current by task
 * events: rows that are on screen are replaced in place; new tasks reload page 1 (debounced).
 * @param {{ project?: string, workspace?: string }} scope
 * @param {{ showWorkspace?: boolean, perPage?: number, global?: boolean }} [options]
 */
export function taskList(scope, { showWorkspace = false, perPage = 25, global = false } = {}) {
  const ls = {
    state: "",
    source: "",
    workspace: "",
    project: "",
    who: "",
    page: 1,
    perPage,
    total: 0,
    /** @type {Task[]} */
    items: [],
    loaded: false,
    /** @type {string | null} */
    error: null,
    seq: 0,
    reloadTimer: 0,
  };
  /** @type {Map<string, HTMLTableRowElement>} task id -> its row */
  const rows = new Map();

  const filter = h(
    "select",
    { "data-testid": "task-filter" },
    h("option", { value: "", text: "All states" }),
    TASK_STATES.map((s) => h("option", { value: s, text: stateLabel(s) })),
  );
  filter.addEventListener("change", () => {
    ls.state = filter.value;
    ls.page = 1;
    load();
  });
  const sourceFilter = h(
    "select",
    { "data-testid": "task-source-filter" },
    h("option", { value: "", text: "All sources" }),
    Object.entries(TASK_SOURCES).map(([value, s]) => h("option", { value, text: s.label, title: s.hint })),
  );
  sourceFilter.addEventListener("change", () => {
    ls.source = sourceFilter.value;
    ls.page = 1;
    load();
  });
  // The global list's filters: workspace and project are asked of the relay; "who" filters the
  // page the relay sent, here in the browser (GET /tasks has no filter for who started a task).
  const wsFilter = h("select", { "data-testid": "task-workspace-filter" });
  wsFilter.addEventListener("change", () => {
    ls.workspace = wsFilter.value;
    ls.page = 1;
    load();
  });
  const projectFilter = h("select", { "data-testid": "task-project-filter" });
  projectFilter.addEventListener("change", () => {
    ls.project = projectFilter.value;
    ls.page = 1;
    load();
  });
  const whoFilter = h("input", {
    type: "search",
    placeholder: "email",
    "aria-label": "Started by (on this page)",
    "data-testid": "task-who-filter",
    spellcheck: "false",
  });
  whoFilter.addEventListener("input", () => {
    ls.who = whoFilter.value.trim().toLowerCase();
    render();
  });
  /**
   * @param {HTMLSelectElement} sel
   * @param {string} all the "any" option's label
   * @param {[string, string][]} options value, label
   */
  const setOptions = (sel, all, options) => {
    const value = sel.value;
    clear(sel);
    sel.append(
      h("option", { value: "", text: all }),
      ...options.map(([v, label]) => h("option", { value: v, text: label })),
    );
    if (value && !options.some(([v]) => v === value)) sel.append(h("option", { value, text: value.slice(0, 8) }));
    sel.value = value;
  };
  const syncFilters = () => {
    if (!global) return;
    const byLabel = (/** @type {[string, string]} */ a, /** @type {[string, string]} */ b) => a[1].localeCompare(b[1]);
    setOptions(
      wsFilter,
      "All workspaces",
      [...state.workspaces.values()]
        .map((w) => /** @type {[string, string]} */ ([w.id, w.name || w.id.slice(0, 8)]))
        .sort(byLabel),
    );
    setOptions(projectFilter, "All projects", [...projectNames.entries()].sort(byLabel));
  };
  syncFilters();
  const count = h("span.muted.small", { "data-testid": "task-count" });
  const prev = h("button.btn.btn-small", { type: "button", "data-testid": "task-prev" }, "← Newer");
  const next = h("button.btn.btn-small", { type: "button", "data-testid": "task-next" }, "Older →");
  const pageInfo = h("span.muted.small", { "data-testid": "task-page-info", "aria-live": "polite" });
  prev.addEventListener("click", () => {
    if (ls.page > 1) {
      ls.page--;
      load();
    }
  });
  next.addEventListener("click", () => {
    if (ls.page * ls.perPage < ls.total) {
      ls.page++;
      load();
    }
  });
  const body = h("div.task-list-body");
  const pager = h("div.pager", { hidden: true }, prev, pageInfo, next);
  const root = h(
    "div.task-list",
    { "data-testid": "task-list" },
    h(
      "div.list-toolbar",
      null,
      field("State", filter),
      field("Source", sourceFilter),
      global ? [field("Workspace", wsFilter), field("Project", projectFilter), field("Who", whoFilter)] : null,
      h("span.grow"),
      count,
    ),
    body,
    pager,
  );

  /** @returns {TaskQuery} */
  const params = () => ({
    project: scope.project || ls.project || undefined,
    workspace: scope.workspace || ls.workspace || undefined,
    state: ls.state,
    source: ls.source,
    page: ls.page,
    per_page: ls.perPage,
  });
  /** @param {Task} t */
  const matches = (t) =>
    (scope.project || ls.project ? t.project_id === (scope.project || ls.project) : true) &&
    (scope.workspace || ls.workspace ? t.workspace_id === (scope.workspace || ls.workspace) : true) &&
    (ls.state ? t.state === ls.state : true) &&
    (ls.source ? t.source === ls.source : true);

  async function load() {
    const seq = ++ls.seq;
    clearTimeout(ls.reloadTimer);
    if (!ls.loaded) render();
    try {
      const { data, meta } = await api.tasks(params());
      if (seq !== ls.seq) return;
      // A relay that cannot filter by source yet sends every source: filter the page here too.
      ls.items = (Array.isArray(data) ? data : []).filter(
        (t) => t && typeof t.id === "string" && (!ls.source || t.source === ls.source),
      );
      ls.total = meta && typeof meta.total === "number" ? meta.total : ls.items.length;
      if (meta && typeof meta.per_page === "number" && meta.per_page > 0) ls.perPage = meta.per_page;
      if (meta && typeof meta.page === "number" && meta.page > 0) ls.page = meta.page;
      ls.loaded = true;
      ls.error = null;
      // The last page went away (tasks deleted, or a filter shrank it): show the new last page.
      if (ls.items.length === 0 && ls.page > 1 && ls.total > 0) {
        ls.page = Math.max(1, Math.ceil(ls.total / ls.perPage));
        load();
        return;
      }
    } catch (err) {
      if (seq !== ls.seq || !signedIn()) return;
      ls.error = err instanceof Error ? err.message : String(err);
    }
    render();
  }

  /** @param {Task} t */
  const byWho = (t) =>
    !ls.who ||
    String(t.triggered_by_email || "")
      .toLowerCase()
      .includes(ls.who);

  function render() {
    clear(body);
    rows.clear();
    const filtered = [ls.state ? stateLabel(ls.state) : "", ls.source ? `${ls.source}-started` : ""]
      .filter(Boolean)
      .join(" ");
    const shown = ls.items.filter(byWho);
    if (ls.error && !ls.loaded) {
      body.append(errorBanner(`Couldn't load tasks: ${ls.error}`, load));
    } else if (!ls.loaded) {
      body.append(loadingEl("Loading tasks…"));
    } else if (shown.length === 0) {
      const text =
        ls.items.length > 0
          ? `No tasks on this page were started by “${ls.who}”.`
          : filtered || ls.workspace || ls.project
            ? `No ${filtered ? `${filtered} ` : ""}tasks match.`
            : "No tasks yet.";
      body.append(h("div.empty.empty-small", { "data-testid": "task-empty" }, h("p.muted", { text })));
    } else {
      if (ls.error) body.append(errorBanner(`Couldn't refresh tasks: ${ls.error}`, load));
      const trs = shown.map((t) => {
        const tr = taskRow(t, showWorkspace);
        rows.set(t.id, tr);
        return tr;
      });
      body.append(
        dataTable(
          ".tasks-table",
          [
            "State",
            "Task",
            showWorkspace ? "Workspace" : null,
            "Commit",
            "Duration",
            "Exit",
            "Tests",
            "Triggered by",
            "Created",
          ],
          trs,
        ),
      );
    }
    const from = ls.items.length ? (ls.page - 1) * ls.perPage + 1 : 0;
    const to = from ? from + ls.items.length - 1 : 0;
    count.textContent = !ls.loaded
      ? ""
      : ls.who
        ? `${shown.length} of ${ls.items.length} on this page`
        : plural(ls.total, "task");
    pageInfo.textContent = ls.total ? `${from}–${to} of ${ls.total}` : "";
    pager.hidden = !ls.loaded || (ls.total <= ls.perPage && ls.page === 1);
    prev.disabled = ls.page <= 1;
    next.disabled = ls.page * ls.perPage >= ls.total;
  }

  /** @param {Task} t */
  function onTask(t) {
    const i = ls.items.findIndex((x) => x.id === t.id);
    if (i >= 0) {
      ls.items[i] = t;
      const old = rows.get(t.id);
      if (old) {
        const tr = taskRow(t, showWorkspace);
        old.replaceWith(tr);
        rows.set(t.id, tr);
      }
    } else if (ls.page === 1 && matches(t)) {
      // A new task: let the relay place it (filter, order, total).
      clearTimeout(ls.reloadTimer);
      ls.reloadTimer = setTimeout(load, 250);
    }
  }

  function refreshNames() {
    syncFilters();
    if (!showWorkspace) return;
    for (const [id, tr] of rows) {
      const t = ls.items.find((x) => x.id === id);
      const a = tr.querySelector("[data-col=workspace] a");
      if (t && a && a.textContent !== workspaceName(t.workspace_id)) a.textContent = workspaceName(t.workspace_id);
    }
  }

  return {
    root,
    load,
    onTask,
    refreshNames,
    destroy: () => {
      ls.seq++;
      clearTimeout(ls.reloadTimer);
    },
  };
}

/**
 * @param {Task} t
 * @param {boolean} showWorkspace
 */
function taskRow(t, showWorkspace) {
  return h(
    "tr",
    { "data-testid": "task-row", "data-task-id": t.id, "data-state": t.state || "", "data-source": t.source || "" },
    h("td", null, stateBadge(t.state, "task-row-state")),
    h(
      "td.task-cmd",
      null,
      t.number ? h("span.task-num.mono.muted", { "data-testid": "task-row-number", text: `#${t.number} ` }) : null,
      h("a.mono", { href: `#/tasks/${enc(t.id)}`, title: taskTitle(t), "data-testid": "task-link" }, taskTitle(t)),
      t.repo && t.repo !== "." ? h("span.muted.small.task-repo", { text: `in ${t.repo}` }) : null,
    ),
    showWorkspace
      ? h(
          "td",
          { "data-col": "workspace" },
          workspaceTasksLink(t.workspace_id),
          t.project_id && projectNames.has(t.project_id)
            ? h("a.muted.small.task-project", {
                href: `#/projects/${enc(t.project_id)}`,
                text: projectNames.get(t.project_id) || "",
              })
            : null,
        )
      : null,
    h("td", null, commitEl(t)),
    h("td.num", null, taskDurationEl(t)),
    h(
      "td.num",
      { "data-testid": "task-row-exit", class: typeof t.exit_code === "number" && t.exit_code !== 0 ? "bad" : "" },
      exitText(t),
    ),
    h("td", null, testCounts(t.test_summary, "task-row-tests")),
    h("td", null, triggeredBy(t)),
    h("td.t-time", null, timeEl(t.created_at)),
  );
}
