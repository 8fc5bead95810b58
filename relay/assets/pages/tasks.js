// A workspace's tasks page (#/workspaces/{id}/tasks) and a task's page (#/tasks/{id}) with its live log.

import { api, asApiError, fetchWholeLog } from "../api.js";
import { append, clear, crumbs, enc, errorBanner, h, loadingEl, saveBlob, uid } from "../lib/dom.js";
import { fmtBytes, fmtSeconds, timeEl } from "../lib/format.js";
import { LOG_KEEP, LogView } from "../lib/logview.js";
import { runForm } from "../lib/runform.js";
import { signedIn, updateTitle } from "../lib/shell.js";
import { badResponse, projectNames, state, workspaceName } from "../lib/state.js";
import {
  commitEl,
  exitText,
  isActive,
  stateBadge,
  stateLabel,
  taskDurationEl,
  taskList,
  taskTitle,
  triggeredBy,
  workspaceTasksLink,
} from "../lib/tasks.js";

/** @typedef {import("../lib/types.js").Task} Task */
/** @typedef {import("../lib/types.js").TestSummary} TestSummary */
/** @typedef {import("../lib/types.js").Workspace} Workspace */
/** @typedef {import("../lib/types.js").Page} Page */

/**
 * @param {string} wsId
 * @returns {Page}
 */
export function buildWorkspaceTasksPage(wsId) {
  const heading = h("h1", { id: uid("h"), tabindex: -1, text: workspaceName(wsId) });
  const presence = h("span.presence", { "data-live": "note" });
  const run = runForm({ workspaceId: wsId });
  const tasks = taskList({ workspace: wsId });
  const notice = h("div");
  /** @type {Workspace | null} the workspace from GET /workspaces/{id} when the list doesn't have it */
  let fetched = null;
  let missing = false;

  const root = h(
    "section.view",
    { "aria-labelledby": heading.id, "data-testid": "workspace-tasks", "data-workspace-id": wsId },
    crumbs(h("a", { href: "#/workspaces", text: "Workspaces" }), h("span", { text: "Tasks" })),
    h("div.view-head", null, h("div.view-title", null, heading, presence)),
    notice,
    h(
      "section.card",
      { "aria-label": "Run a command" },
      h(
        "div.card-head",
        null,
        h("h2", { text: "Run" }),
        h("span.muted.small", { text: "Runs a shell command in a repository of this workspace." }),
      ),
      h("div.card-body", null, run.root),
    ),
    h("section.section", { "aria-label": "Tasks" }, h("h2.section-title", { text: "Tasks" }), tasks.root),
  );

  const current = () => state.workspaces.get(wsId) || fetched;

  function render() {
    const w = current();
    clear(notice);
    if (!w) {
      heading.textContent = missing ? "Unknown workspace" : "Workspace";
      presence.textContent = "";
      if (missing)
        notice.append(
          h("div.banner", { role: "alert" }, h("span", { text: "This workspace doesn't exist or isn't yours." })),
        );
      return;
    }
    heading.textContent = w.name || "(unnamed)";
    clear(presence);
    presence.className = w.online ? "presence is-online" : "presence";
    append(presence, [
      h("span.dot", { class: w.online ? "dot-online" : "dot-offline", "aria-hidden": "true" }),
      " ",
      w.online ? "Online" : w.last_seen_at ? ["Offline · last seen ", timeEl(w.last_seen_at)] : "Offline",
    ]);
    presence.dataset.online = w.online ? "true" : "false";
    run.setRepos((Array.isArray(w.repos) ? w.repos : []).map((r) => r?.path));
    run.setNote(w.online ? "" : "This workspace is offline: a task can only start once its agent reconnects.");
    updateTitle();
  }

  if (!state.workspaces.has(wsId)) {
    api.workspace(wsId).then(
      (w) => {
        if (w?.id) {
          fetched = w;
          render();
        }
      },
      (err) => {
        if (err.status === 404 && !state.workspaces.has(wsId)) {
          missing = true;
          render();
        }
      },
    );
  }
  render();
  tasks.load();

  return {
    root,
    heading,
    nav: "workspaces",
    title: () => `${current()?.name || "Workspace"} tasks`,
    destroy() {
      tasks.destroy();
    },
    onTask(t) {
      tasks.onTask(t);
    },
    onWorkspaces() {
      render();
    },
  };
}

// ------------------------------------------------------------------ task page

/**
 * @param {string} taskId
 * @returns {Page}
 */
export function buildTaskPage(taskId) {
  /** @type {Task | null} */
  let task = null;
  /** @type {string | null} */
  let error = null;
  let notFound = false;
  /** @type {LogView | null} */
  let logView = null;
  let loadSeq = 0;
  let projectFetched = false;
  let cancelRequested = false;
  const heading = h("h1", { id: uid("h"), tabindex: -1 }, "Task ", h("span.mono.muted", { text: taskId.slice(0, 8) }));
  const crumbSlot = h("div");
  const headSlot = h("div");
  const factsSlot = h("div");
  const testsSlot = h("div");
  const statusSlot = h("div");
  const actionError = h("div.form-error", { role: "alert", "data-testid": "task-action-error", hidden: true });

  // Log view: built once; the LogView fills the <pre>.
  const pre = h("pre.log", { "data-testid": "task-log", tabindex: 0, "aria-label": "Task output" });
  // The status is a live region (mode changes are announced); the growing byte count is not.
  const logStatus = h(
    "span.log-status",
    { "data-testid": "log-status", "data-state": "waiting", role: "status" },
    "Waiting…",
  );
  const logBytes = h("span.log-bytes", { "data-testid": "log-bytes" });
  const jump = h(
    "button.btn.btn-small",
    { type: "button", hidden: true, "data-testid": "log-jump" },
    "↓ Jump to latest",
  );
  const download = h("button.btn.btn-small", { type: "button", "data-testid": "log-download" }, "Download log");
  const downloadError = h("span.form-error.inline-error", { role: "alert", hidden: true });
  const trimmedMore = h("button.btn-link", { type: "button" }, "download full log");
  const trimmedNote = h(
    "div.log-note",
    { "data-testid": "log-trimmed", hidden: true },
    `Showing the last ${fmtBytes(LOG_KEEP)} — `,
    trimmedMore,
    ".",
  );
  const serverTruncated = h(
    "div.log-note",
    { "data-testid": "log-truncated", hidden: true },
    "The relay kept only part of this task's output (log size limit reached).",
  );
  download.addEventListener("click", () => downloadLog(download));
  trimmedMore.addEventListener("click", () => downloadLog(trimmedMore));

  const toolsSlot = h("div");
  const reasonSlot = h("div");
  const logCard = h(
    "section.card.log-card",
    { "aria-label": "Log", hidden: true },
    h("div.card-head.log-head", null, h("h2", { text: "Log" }), logStatus, logBytes, h("span.grow"), jump, download),
    toolsSlot,
    downloadError,
    trimmedNote,
    serverTruncated,
    pre,
  );

  const body = h("div", { hidden: true }, headSlot, reasonSlot, actionError, factsSlot, testsSlot, logCard);
  const root = h(
    "section.view",
    { "aria-labelledby": heading.id, "data-testid": "task-page", "data-task-id": taskId },
    crumbSlot,
    statusSlot,
    body,
  );

  async function load() {
    const seq = ++loadSeq;
    try {
      const t = await api.task(taskId);
      if (seq !== loadSeq) return;
      if (!t || t.id !== taskId) throw badResponse("The relay returned an unexpected task.");
      setTask(t);
      error = null;
    } catch (caught) {
      if (seq !== loadSeq || !signedIn()) return;
      const err = asApiError(caught);
      error = err.message;
      notFound = err.status === 404;
      renderStatus();
    }
  }

  /** @param {string} s */
  function stateRank(s) {
    return s === "queued" ? 0 : s === "dispatched" ? 1 : s === "running" ? 2 : 3;
  }

  /** @param {Task} t */
  function setTask(t) {
    // Events and HTTP answers can cross; never go back to an earlier state.
    if (task && !isActive(task) && isActive(t)) return;
    if (task && stateRank(t.state) < stateRank(task.state)) return;
    task = t;
    render();
    if (!logView) {
      logView = new LogView(taskId, {
        pre,
        status: logStatus,
        bytes: logBytes,
        trimmedNote,
        jump,
        onEnd: () => {
          load();
        },
        onInfo: () => renderReason(),
        line: lineFromHash(),
      });
      toolsSlot.replaceWith(logView.toolbar);
      const size = typeof t.log_bytes === "number" ? t.log_bytes : 0;
      logView.start(Math.max(0, size - LOG_KEEP));
    }
    if (logView.ended) logView.describeEnd(task);
  }

  /** The line a `#/tasks/{id}?line=N` link asks for (1-based), or 0. */
  function lineFromHash() {
    const q = location.hash.split("?")[1] || "";
    const n = Number(new URLSearchParams(q).get("line"));
    return Number.isInteger(n) && n > 0 ? n : 0;
  }

  function onHashChange() {
    const n = lineFromHash();
    if (n && logView && location.hash.startsWith(`#/tasks/${enc(taskId)}`))
      logView.goToLine(n, { select: true, reveal: true });
  }
  window.addEventListener("hashchange", onHashChange);

  /** Why the task ended (state, exit code or signal, failing step) and a way to its first error. */
  function renderReason() {
    clear(reasonSlot);
    const t = task;
    if (!t) return;
    const errLine = logView ? logView.firstError : -1;
    const failed = !isActive(t) && t.state !== "succeeded";
    if (!failed && errLine < 0) return;
    const parts = [];
    if (failed) {
      const label = stateLabel(t.state);
      parts.push(label.charAt(0).toUpperCase() + label.slice(1));
      if (typeof t.exit_code === "number") parts.push(`exit code ${t.exit_code}`);
      else if (typeof t.signal === "number") parts.push(`signal ${t.signal}`);
      const step = logView?.failedStep || (t.step && failed ? t.step : null);
      if (step) parts.push(`step ${step}`);
      if (t.error) parts.push(t.error);
    } else {
      parts.push(isActive(t) ? "An error line in the output so far" : "Finished, with an error line in the output");
    }
    const jumpErr =
      errLine >= 0
        ? h(
            "button.btn.btn-small",
            { type: "button", "data-testid": "task-jump-error" },
            `Jump to first error (line ${errLine + 1})`,
          )
        : null;
    jumpErr?.addEventListener("click", () => logView?.goToFirstError());
    reasonSlot.append(
      h(
        "div.exit-reason",
        { "data-testid": "task-exit-reason", class: failed ? "is-failed" : "" },
        h("span.exit-reason-text", { text: parts.join(" · ") }),
        jumpErr,
      ),
    );
  }

  function renderStatus() {
    clear(statusSlot);
    if (task) {
      if (error) statusSlot.append(errorBanner(`Couldn't refresh the task: ${error}`, load));
      return;
    }
    if (notFound) {
      statusSlot.append(
        h(
          "div.empty",
          { "data-testid": "not-found" },
          h("h2", { text: "Task not found" }),
          h("p.muted", { text: "It doesn't exist, or it belongs to a workspace or project you can't see." }),
        ),
      );
    } else if (error) {
      statusSlot.append(errorBanner(`Couldn't load the task: ${error}`, load));
    } else {
      statusSlot.append(loadingEl("Loading task…"));
    }
  }

  function render() {
    renderStatus();
    if (!task) {
      body.hidden = true;
      return;
    }
    body.hidden = false;
    logCard.hidden = false;
    root.dataset.state = task.state || "";
    const t = task;

    clear(crumbSlot);
    const projectId = t.project_id;
    const projectName = projectId ? projectNames.get(projectId) : null;
    if (projectId && !projectName && !projectFetched) {
      projectFetched = true;
      api.project(projectId).then(
        (p) => {
          if (p?.name) {
            projectNames.set(projectId, p.name);
            if (task) render();
          }
        },
        () => {},
      );
    }
    crumbSlot.append(
      crumbs(
        t.project_id
          ? h("a", {
              href: `#/projects/${enc(t.project_id)}`,
              "data-testid": "task-project-link",
              text: projectName || "Project",
            })
          : null,
        workspaceTasksLink(t.workspace_id, { "data-testid": "task-workspace-link" }),
        h("span", { text: t.number ? `Task #${t.number}` : `Task ${taskId.slice(0, 8)}` }),
      ),
    );
    // Titled by what it runs, with its short handle.
    clear(heading);
    if (t.number) heading.append(h("span.mono.muted", { text: `#${t.number} ` }));
    heading.append(t.command ?? (t.step ? `step ${t.step}` : "Task"));

    // Header: state, command, actions.
    clear(headSlot);
    /** @type {HTMLButtonElement | null} */
    let cancel = null;
    if (isActive(t)) {
      const btn = h(
        "button.btn.btn-small.btn-danger",
        { type: "button", "data-testid": "task-cancel", disabled: cancelRequested },
        cancelRequested ? "Canceling…" : "Cancel",
      );
      cancel = btn;
      btn.addEventListener("click", async () => {
        cancelRequested = true;
        btn.disabled = true;
        btn.textContent = "Canceling…";
        actionError.hidden = true;
        try {
          const updated = await api.cancelTask(taskId);
          if (updated && updated.id === taskId) setTask(updated);
        } catch (err) {
          cancelRequested = false;
          actionError.textContent = `Couldn't cancel the task: ${asApiError(err).message}`;
          actionError.hidden = false;
          if (btn.isConnected) {
            btn.disabled = false;
            btn.textContent = "Cancel";
          }
        }
      });
    }
    const rerun = h("button.btn.btn-small", { type: "button", "data-testid": "task-rerun" }, "Re-run");
    rerun.addEventListener("click", async () => {
      rerun.disabled = true;
      actionError.hidden = true;
      try {
        const fresh = await api.rerunTask(taskId);
        if (fresh?.id) {
          location.hash = `#/tasks/${enc(fresh.id)}`;
          return;
        }
        throw badResponse("The relay did not return the new task.");
      } catch (err) {
        actionError.textContent = `Couldn't re-run the task: ${asApiError(err).message}`;
        actionError.hidden = false;
        rerun.disabled = false;
      }
    });
    headSlot.append(
      h(
        "div.view-head",
        null,
        h("div.view-title", null, heading, stateBadge(t.state)),
        h("div.head-actions", null, cancel, rerun),
      ),
      h(
        "div.cmd-line",
        null,
        h("span.cmd-kind", { text: t.command ? "$" : "step" }),
        h("code.cmd-text", { "data-testid": "task-command", text: t.command || t.step || "" }),
      ),
    );

    // Facts.
    clear(factsSlot);
    /** @param {string} label @param {import("../lib/types.js").Child} value @param {string} [testid] */
    const fact = (label, value, testid) =>
      h("div.fact", null, h("dt", { text: label }), h("dd", { "data-testid": testid || null }, value));
    const started = t.started_at ? timeEl(t.started_at) : h("span.muted", { text: "not yet" });
    const finished = t.finished_at ? timeEl(t.finished_at) : h("span.muted", { text: isActive(t) ? "—" : "unknown" });
    factsSlot.append(
      h(
        "dl.facts",
        null,
        fact("Workspace", workspaceTasksLink(t.workspace_id)),
        fact("Repository", h("span.mono", { text: t.repo || "." })),
        fact("Commit", commitEl(t), "task-commit"),
        fact("Triggered by", triggeredBy(t), "task-triggered-by"),
        fact("Created", timeEl(t.created_at)),
        fact("Started", started),
        fact("Finished", finished),
        fact("Duration", taskDurationEl(t), "task-duration"),
        fact(
          "Exit code",
          h("span.mono", {
            class: typeof t.exit_code === "number" && t.exit_code !== 0 ? "bad" : "",
            text: exitText(t),
          }),
          "task-exit-code",
        ),
        typeof t.timeout_s === "number"
          ? fact("Timeout", h("span", { text: fmtSeconds(t.timeout_s), title: `${t.timeout_s} s` }), "task-timeout")
          : null,
        Array.isArray(t.env_keys) && t.env_keys.length
          ? fact("Environment", h("span.mono", { text: t.env_keys.join(", ") }))
          : null,
        t.error
          ? h(
              "div.fact.fact-wide",
              null,
              h("dt", { text: "Error" }),
              h("dd.bad", { "data-testid": "task-error", text: t.error }),
            )
          : null,
      ),
    );

    renderTests(t.test_summary);
    renderReason();
    serverTruncated.hidden = !t.log_truncated;
    updateTitle();
  }

  let testsJson = "";
  /** @param {TestSummary | null | undefined} ts */
  function renderTests(ts) {
    const json = JSON.stringify(ts || null);
    if (json === testsJson) return; // keep the open/closed state of the failures
    testsJson = json;
    clear(testsSlot);
    if (!ts || typeof ts !== "object") return;
    /** @param {unknown} x */
    const n = (x) => (typeof x === "number" && Number.isFinite(x) ? x : 0);
    const failures = Array.isArray(ts.failures) ? ts.failures.filter((f) => f && typeof f === "object") : [];
    const items = failures.map((f) =>
      h(
        "li.failure",
        { "data-testid": "test-failure" },
        h(
          "details",
          { open: failures.length === 1 },
          h(
            "summary",
            null,
            h("span.mono.failure-name", { "data-testid": "test-failure-name", text: f.name || "(unnamed test)" }),
          ),
          f.message ? h("pre.failure-msg", { text: f.message }) : h("p.muted.small", { text: "No message." }),
        ),
      ),
    );
    /** @type {HTMLButtonElement | null} */
    let toggleAll = null;
    if (failures.length > 1) {
      const btn = h("button.btn-link", { type: "button" }, "Expand all");
      toggleAll = btn;
      btn.addEventListener("click", () => {
        const all = [...testsSlot.querySelectorAll("details")];
        const open = !all.every((d) => d.open);
        for (const d of all) d.open = open;
        btn.textContent = open ? "Collapse all" : "Expand all";
      });
    }
    testsSlot.append(
      h(
        "section.card",
        {
          "aria-label": "Test results",
          "data-testid": "test-summary",
          "data-passed": n(ts.passed),
          "data-failed": n(ts.failed),
          "data-skipped": n(ts.skipped),
        },
        h(
          "div.card-head",
          null,
          h("h2", { text: "Test results" }),
          h(
            "span.test-pills",
            null,
            h(
              "span.pill.pill-passed",
              { "data-testid": "tests-passed" },
              h("strong", { text: String(n(ts.passed)) }),
              " passed",
            ),
            h(
              "span.pill.pill-failed",
              { class: n(ts.failed) ? "nonzero" : "", "data-testid": "tests-failed" },
              h("strong", { text: String(n(ts.failed)) }),
              " failed",
            ),
            h(
              "span.pill.pill-skipped",
              { "data-testid": "tests-skipped" },
              h("strong", { text: String(n(ts.skipped)) }),
              " skipped",
            ),
          ),
        ),
        failures.length
          ? h(
              "div.card-body",
              null,
              h("div.failures-head", null, h("h3", { text: `Failing tests (${failures.length})` }), toggleAll),
              h("ul.failures", null, items),
            )
          : null,
      ),
    );
  }

  /** @param {HTMLElement} btn */
  async function downloadLog(btn) {
    if (download.disabled) return;
    const label = download.textContent;
    download.disabled = true;
    trimmedMore.disabled = true;
    downloadError.hidden = true;
    download.textContent = "Downloading…";
    try {
      const blob = await fetchWholeLog(taskId, {
        onProgress: (n) => {
          download.textContent = `Downloading… ${fmtBytes(n)}`;
        },
      });
      saveBlob(blob, `fulcrum-task-${taskId}.log`);
    } catch (err) {
      downloadError.textContent = `Couldn't download the log: ${asApiError(err).message}`;
      downloadError.hidden = false;
    } finally {
      download.disabled = false;
      trimmedMore.disabled = false;
      download.textContent = label;
      if (btn === trimmedMore) trimmedMore.focus();
    }
  }

  renderStatus();
  load();

  return {
    root,
    heading,
    nav: null,
    title: () => (task ? `${stateLabel(task.state)} · ${taskTitle(task)}` : "Task"),
    destroy() {
      loadSeq++;
      window.removeEventListener("hashchange", onHashChange);
      if (logView) logView.stop();
    },
    onTask(t) {
      if (t.id === taskId) setTask(t);
    },
    onWorkspaces() {
      if (task) {
        const a = crumbSlot.querySelector("[data-testid=task-workspace-link]");
        if (a) a.textContent = workspaceName(task.workspace_id);
      }
    },
  };
}
