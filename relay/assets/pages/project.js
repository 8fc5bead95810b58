// A project's page (#/projects/{id}): its generation and Generate (SystemCrafter), health and last
// tasks, its workspaces, a run form, its AI pipeline runs, its deployments, its AI activity, its
// tasks, and its members and invitations.

import { api, asApiError } from "../api.js";
import { append, clear, crumbs, enc, errorBanner, field, h, loadingEl, svgIcon, uid } from "../lib/dom.js";
import { byName, plural, relTime, safeHttpUrl, timeEl } from "../lib/format.js";
import { runForm } from "../lib/runform.js";
import { signedIn, updateTitle } from "../lib/shell.js";
import { badResponse, projectNames, state } from "../lib/state.js";
import { stateBadge, stateLabel, taskList, taskTitle } from "../lib/tasks.js";
import { projectAiCard } from "./project-ai.js";
import { deploymentsCard } from "./project-deployments.js";
import { membersCard } from "./project-members.js";
import { pipelinesCard } from "./project-pipelines.js";
import { generationBadge, healthBadge, projectStatusBadge, splitList, stackTags } from "./projects.js";
import { sortWorkspaces } from "./workspaces.js";

/** @typedef {import("../lib/types.js").Project} Project */
/** @typedef {import("../lib/types.js").ProjectReport} ProjectReport */
/** @typedef {import("../lib/types.js").Page} Page */

/**
 * @param {string} projectId
 * @returns {Page}
 */
export function buildProjectPage(projectId) {
  const ps = {
    /** @type {ProjectReport | null} */
    status: null,
    /** @type {string | null} */
    error: null,
    notFound: false,
    seq: 0,
    reloadTimer: 0,
    onlineSig: "",
    wsSig: "",
    starting: false, // Generate's request is out
    /** @type {Map<string, string>} run id -> its last state: the project's generation follows its runs */
    runStates: new Map(),
  };
  const heading = h("h1", { id: uid("h"), tabindex: -1, text: projectNames.get(projectId) || "Project" });
  const headSlot = h("div.project-head");
  const editSlot = h("div");
  const wsSlot = h("div.card-body");
  const healthSlot = h("div.card-body");
  const actionError = h("div.form-error", { role: "alert", "data-testid": "project-action-error", hidden: true });
  const members = membersCard(projectId, {
    role: () => role(),
    showError: (text) => showActionError(text),
    hideError: () => {
      actionError.hidden = true;
    },
  });
  const run = runForm({ projectId });
  const runCard = h(
    "section.card",
    { "aria-label": "Run a task", hidden: true },
    h(
      "div.card-head",
      null,
      h("h2", { text: "Run" }),
      h("span.muted.small", { text: "The relay runs it on an online workspace of this project." }),
    ),
    h("div.card-body", null, run.root),
  );
  /** Whether the signed-in user may start pipeline runs here (not a viewer, not archived). */
  const canStart = () => {
    const p = ps.status?.project;
    return !!p && p.status !== "archived" && (p.role || "viewer") !== "viewer";
  };
  const pipelines = pipelinesCard(projectId, { canStart });
  const deployments = deploymentsCard(projectId, { runHandle: (id) => pipelines.handleOf(id) });
  const ai = projectAiCard(projectId, { role: () => role(), name: () => project()?.name || projectId.slice(0, 8) });
  const tasks = taskList({ project: projectId }, { showWorkspace: true });
  const body = h(
    "div",
    { hidden: true },
    headSlot,
    actionError,
    editSlot,
    h(
      "div.proj-grid",
      null,
      h("section.card", { "aria-label": "Health" }, h("div.card-head", null, h("h2", { text: "Health" })), healthSlot),
      h(
        "section.card",
        { "aria-label": "Workspaces" },
        h("div.card-head", null, h("h2", { text: "Workspaces" })),
        wsSlot,
      ),
    ),
    runCard,
    pipelines.root,
    deployments.root,
    ai.root,
    h("section.section", { "aria-label": "Tasks" }, h("h2.section-title", { text: "Tasks" }), tasks.root),
    h(
      "section.card",
      { "aria-label": "Members" },
      h("div.card-head", null, h("h2", { text: "Members" })),
      members.root,
    ),
  );
  const statusSlot = h("div");
  const crumbName = h("span", { text: "Project" });
  const root = h(
    "section.view",
    { "aria-labelledby": heading.id, "data-testid": "project-page", "data-project-id": projectId },
    crumbs(h("a", { href: "#/projects", text: "Projects" }), crumbName),
    statusSlot,
    body,
  );

  /** @returns {Project | null} */
  const project = () => ps.status?.project || null;
  const role = () => project()?.role || "viewer";
  const canManage = () => role() === "owner" || role() === "maintainer";

  async function load() {
    const seq = ++ps.seq;
    clearTimeout(ps.reloadTimer);
    try {
      const st = await api.projectStatus(projectId);
      if (seq !== ps.seq) return;
      if (!st?.project) throw badResponse("The relay returned an unexpected project status.");
      ps.status = st;
      ps.error = null;
      projectNames.set(projectId, st.project.name);
    } catch (caught) {
      const err = asApiError(caught);
      if (seq !== ps.seq || !signedIn()) return;
      ps.error = err.message;
      ps.notFound = err.status === 404;
    }
    render();
  }

  /** @param {number} [ms] */
  function reloadSoon(ms = 400) {
    clearTimeout(ps.reloadTimer);
    ps.reloadTimer = setTimeout(load, ms);
  }

  function render() {
    clear(statusSlot);
    if (!ps.status) {
      body.hidden = true;
      if (ps.notFound) {
        statusSlot.append(
          h(
            "div.empty",
            { "data-testid": "not-found" },
            h("h2", { text: "Project not found" }),
            h(
              "p.muted",
              null,
              "It doesn't exist or you are not a member. ",
              h("a", { href: "#/projects", text: "All projects" }),
            ),
          ),
        );
      } else if (ps.error) {
        statusSlot.append(errorBanner(`Couldn't load the project: ${ps.error}`, load));
      } else {
        statusSlot.append(loadingEl("Loading project…"));
      }
      return;
    }
    if (ps.error) statusSlot.append(errorBanner(`Couldn't refresh the project: ${ps.error}`, load));
    body.hidden = false;
    const p = ps.status.project;
    heading.textContent = p.name || "(unnamed)";
    crumbName.textContent = p.name || "Project";
    updateTitle();
    renderHead(p);
    renderHealth();
    renderWorkspaceList();
    members.syncOwner();
    ai.sync();
    runCard.hidden = !(p.status !== "archived" && role() !== "viewer");
    pipelines.sync();
    tasks.refreshNames();
  }

  /** @param {Project} p */
  function renderHead(p) {
    clear(headSlot);
    /** @type {HTMLButtonElement | null} */
    let archive = null;
    if (p.role === "owner" && p.status !== "archived") {
      const btn = h("button.btn.btn-small.btn-danger", { type: "button", "data-testid": "project-archive" }, "Archive");
      archive = btn;
      btn.addEventListener("click", async () => {
        if (!window.confirm(`Archive the project “${p.name}”?\n\nIts task history stays; no new tasks can be run.`))
          return;
        btn.disabled = true;
        actionError.hidden = true;
        try {
          const updated = await api.archiveProject(projectId);
          if (ps.status) ps.status.project = updated?.id ? updated : { ...p, status: "archived" };
          render();
          load();
        } catch (caught) {
          const err = asApiError(caught);
          btn.disabled = false;
          showActionError(`Couldn't archive the project: ${err.message}`);
        }
      });
    }
    /** @type {HTMLButtonElement | null} */
    let edit = null;
    if (canManage() && p.status !== "archived") {
      const btn = h(
        "button.btn.btn-small",
        { type: "button", "data-testid": "project-edit", "aria-expanded": editSlot.firstChild ? "true" : "false" },
        "Edit",
      );
      edit = btn;
      btn.addEventListener("click", () => {
        if (editSlot.firstChild) {
          clear(editSlot);
          btn.setAttribute("aria-expanded", "false");
          return;
        }
        const form = editForm(project() || p, () => {
          clear(editSlot);
          renderHead(project() || p);
        });
        editSlot.append(form);
        btn.setAttribute("aria-expanded", "true");
        form.querySelector("input")?.focus();
      });
    }
    const url = safeHttpUrl(p.repository_url);
    append(headSlot, [
      h(
        "div.view-head",
        null,
        h(
          "div.view-title",
          null,
          heading,
          projectStatusBadge(p.status),
          generationBadge(p.generation),
          h("span.role", {
            class: `role-${p.role}`,
            "data-testid": "project-role",
            title: "Your role",
            text: p.role || "",
          }),
        ),
        h("div.head-actions", null, generateButton(p), edit, archive),
      ),
      p.description ? h("p.lead.project-desc", { text: p.description }) : null,
      h(
        "div.project-meta",
        null,
        p.repository_url
          ? url
            ? h(
                "a.ext.mono",
                { href: url, target: "_blank", rel: "noopener noreferrer" },
                p.repository_url,
                svgIcon("external"),
              )
            : h("span.mono", { text: p.repository_url })
          : null,
        stackTags(p.tech_stack),
        p.created_at ? h("span.muted.small", null, "created ", timeEl(p.created_at)) : null,
      ),
    ]);
  }

  /**
   * Generate: starts SystemCrafter on a draft project, or again on one whose generation failed,
   * and opens the new run. Shown disabled while the project generates.
   * @param {Project} p
   */
  function generateButton(p) {
    const g = p.generation;
    if (!canStart() || (g !== "draft" && g !== "failed" && g !== "generating")) return null;
    const busy = g === "generating";
    const btn = h(
      "button.btn.btn-primary",
      {
        type: "button",
        "data-testid": "project-generate",
        disabled: busy || ps.starting,
        title: busy
          ? "SystemCrafter is generating this project: its run is under Pipelines."
          : "Start SystemCrafter: a complete system from the project's name and description.",
      },
      ps.starting ? "Starting…" : "Generate",
    );
    btn.addEventListener("click", async () => {
      ps.starting = true;
      btn.disabled = true;
      btn.textContent = "Starting…";
      actionError.hidden = true;
      try {
        const started = await api.startPipelineRun(projectId, { pipeline: "systemcrafter" });
        if (!started?.id) throw badResponse("The relay did not return the new run.");
        if (root.isConnected) location.hash = `#/pipeline-runs/${enc(started.id)}`;
      } catch (caught) {
        const err = asApiError(caught);
        ps.starting = false;
        const now = project();
        if (btn.isConnected) {
          btn.disabled = false;
          btn.textContent = "Generate";
        } else if (now) renderHead(now); // the head was drawn again meanwhile, with the request out
        if (err.code === "no_provider") {
          clear(actionError);
          actionError.append(
            "No AI provider is set up for this project. ",
            h("a", {
              href: "#/settings/ai",
              "data-testid": "project-generate-provider-link",
              text: "Set one up in AI providers",
            }),
            ", then generate again.",
          );
          actionError.hidden = false;
        } else showActionError(`Couldn't start generating: ${err.message}`);
      }
    });
    return btn;
  }

  /**
   * @param {Project} p
   * @param {() => void} done
   */
  function editForm(p, done) {
    const name = h("input", { type: "text", value: p.name || "", maxlength: 200 });
    const description = h("input", { type: "text", value: p.description || "" });
    const repoUrl = h("input", { type: "text", value: p.repository_url || "", spellcheck: "false" });
    const stack = h("input", { type: "text", value: (p.tech_stack || []).join(", ") });
    const save = h("button.btn.btn-primary.btn-small", { type: "submit" }, "Save");
    const cancel = h("button.btn.btn-small", { type: "button" }, "Cancel");
    const err = h("div.form-error", { role: "alert", hidden: true });
    cancel.addEventListener("click", done);
    const form = h(
      "form.panel.edit-form",
      { "aria-label": "Edit project" },
      h(
        "div.form-grid",
        null,
        field("Name", name),
        field("Repository URL", repoUrl),
        field("Description", description),
        field("Tech stack", stack, "Comma-separated"),
      ),
      h("div.form-actions", null, cancel, save),
      err,
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      if (!name.value.trim()) {
        err.textContent = "The name can't be empty.";
        err.hidden = false;
        name.focus();
        return;
      }
      save.disabled = true;
      try {
        const updated = await api.updateProject(projectId, {
          name: name.value.trim(),
          description: description.value.trim(),
          repository_url: repoUrl.value.trim(),
          tech_stack: splitList(stack.value),
        });
        if (updated?.id && ps.status) ps.status.project = updated;
        done();
        render();
        load();
      } catch (caught) {
        err.textContent = asApiError(caught).message;
        err.hidden = false;
        save.disabled = false;
      }
    });
    return form;
  }

  /** @param {string} text */
  function showActionError(text) {
    actionError.textContent = text;
    actionError.hidden = false;
  }

  function mergedWorkspaces() {
    const list = ps.status && Array.isArray(ps.status.workspaces) ? ps.status.workspaces : [];
    return list
      .filter((w) => w && typeof w.id === "string")
      .map((w) => {
        const live = state.workspaces.get(w.id);
        return {
          id: w.id,
          name: live?.name || w.name || w.id.slice(0, 8),
          online: live ? !!live.online : !!w.online,
          last_seen_at: live?.last_seen_at || w.last_seen_at || null,
        };
      })
      .sort((a, b) => (b.online ? 1 : 0) - (a.online ? 1 : 0) || byName(a.name, b.name));
  }

  function renderHealth() {
    clear(healthSlot);
    const st = ps.status;
    if (!st) return;
    const ws = mergedWorkspaces();
    const online = ws.filter((w) => w.online).length;
    const last = Array.isArray(st.last_tasks) ? st.last_tasks.filter((t) => t?.id) : [];
    healthSlot.append(
      h(
        "div.health-row",
        null,
        healthBadge(st.health),
        h("span.muted.small", { text: `${online} of ${plural(ws.length, "workspace")} online` }),
      ),
    );
    if (!last.length) {
      healthSlot.append(h("p.muted.small", { text: "No tasks have run in this project yet." }));
      return;
    }
    // Oldest to newest, left to right.
    const chips = [...last].reverse().map((t) =>
      h(
        "li",
        null,
        h("a.run-chip", {
          href: `#/tasks/${enc(t.id)}`,
          class: `st-${t.state}`,
          "data-testid": "recent-task",
          "data-state": t.state,
          title: `${stateLabel(t.state)} · ${taskTitle(t)} · ${relTime(t.created_at)}`,
          "aria-label": `${stateLabel(t.state)}: ${taskTitle(t)}`,
        }),
      ),
    );
    const newest = last[0];
    healthSlot.append(
      h("div.recent", null, h("span.muted.small", { text: "Last tasks" }), h("ol.run-chips", null, chips)),
      h(
        "div.last-task.small",
        null,
        h("span.muted", { text: "Latest: " }),
        stateBadge(newest.state, "latest-task-state"),
        " ",
        h("a.mono", { href: `#/tasks/${enc(newest.id)}`, text: taskTitle(newest) }),
        " ",
        h("span.muted", null, timeEl(newest.created_at)),
      ),
    );
  }

  const onlineSig = () =>
    mergedWorkspaces()
      .map((w) => `${w.id}:${w.online}`)
      .join(",");
  /** What the workspace list shows; re-rendering only when it changes keeps the attach select usable. */
  function workspacesSig() {
    const ws = mergedWorkspaces().map((w) => [w.id, w.name, w.online, w.online ? "" : w.last_seen_at]);
    const others = [...state.workspaces.values()].map((w) => [w.id, w.name, !!w.online]);
    return JSON.stringify([ws, others, state.workspacesLoaded, project()?.status, role()]);
  }

  function renderWorkspaceList() {
    const prevSelect = wsSlot.querySelector("select");
    const prevChoice = prevSelect ? prevSelect.value : "";
    const hadFocus = prevSelect && document.activeElement === prevSelect;
    clear(wsSlot);
    const ws = mergedWorkspaces();
    ps.onlineSig = onlineSig();
    ps.wsSig = workspacesSig();
    const manage = canManage() && project()?.status !== "archived";
    if (!ws.length) {
      wsSlot.append(h("p.muted.small", { text: "No workspaces yet. Attach one of yours so tasks can run." }));
    } else {
      wsSlot.append(
        h(
          "ul.plist",
          null,
          ws.map((w) => {
            /** @type {HTMLButtonElement | null} */
            let detach = null;
            if (manage) {
              const btn = h(
                "button.btn.btn-small.btn-ghost",
                { type: "button", "data-testid": "detach-workspace", "aria-label": `Detach ${w.name}` },
                "Detach",
              );
              detach = btn;
              btn.addEventListener("click", async () => {
                if (!window.confirm(`Detach the workspace “${w.name}” from this project?`)) return;
                btn.disabled = true;
                actionError.hidden = true;
                try {
                  await api.detachWorkspace(projectId, w.id);
                  load();
                } catch (caught) {
                  const err = asApiError(caught);
                  btn.disabled = false;
                  showActionError(`Couldn't detach the workspace: ${err.message}`);
                }
              });
            }
            return h(
              "li.prow",
              {
                "data-testid": "project-workspace",
                "data-workspace-id": w.id,
                "data-online": w.online ? "true" : "false",
                "data-live": "",
              },
              h("span.dot", {
                class: w.online ? "dot-online" : "dot-offline",
                role: "img",
                "aria-label": w.online ? "Online" : "Offline",
              }),
              h("a.prow-name", { href: `#/workspaces/${enc(w.id)}/tasks`, text: w.name }),
              w.online
                ? h("span.presence.is-online", { text: "online" })
                : h("span.presence", null, w.last_seen_at ? ["last seen ", timeEl(w.last_seen_at)] : "offline"),
              detach,
            );
          }),
        ),
      );
    }
    if (!manage) return;
    const attached = new Set(ws.map((w) => w.id));
    const mine = sortWorkspaces([...state.workspaces.values()].filter((w) => !attached.has(w.id)));
    const select = h(
      "select",
      { "data-testid": "attach-workspace-select" },
      mine.length
        ? mine.map((w) =>
            h("option", { value: w.id, text: `${w.name || w.id.slice(0, 8)}${w.online ? "" : " (offline)"}` }),
          )
        : h("option", { value: "", text: state.workspacesLoaded ? "No other workspaces" : "Loading…" }),
    );
    if (prevChoice && mine.some((w) => w.id === prevChoice)) select.value = prevChoice;
    const attach = h(
      "button.btn.btn-small",
      { type: "submit", "data-testid": "attach-workspace", disabled: !mine.length },
      "Attach",
    );
    const form = h(
      "form.attach-form",
      { "aria-label": "Attach a workspace" },
      h("div.grow", null, field("Attach one of your workspaces", select)),
      attach,
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!select.value) return;
      attach.disabled = true;
      actionError.hidden = true;
      try {
        const res = await api.attachWorkspace(projectId, select.value);
        if (res?.id && ps.status) ps.status.project = res;
        await load();
      } catch (caught) {
        const err = asApiError(caught);
        attach.disabled = false;
        showActionError(`Couldn't attach the workspace: ${err.message}`);
      }
    });
    wsSlot.append(form);
    if (hadFocus) select.focus();
  }

  render();
  load();
  tasks.load();
  members.load();
  pipelines.load().then(deployments.sync); // the Run column names runs by their handles
  deployments.load();
  ai.load();

  return {
    root,
    heading,
    nav: "projects",
    title: () => project()?.name || "Project",
    destroy() {
      ps.seq++;
      members.destroy();
      pipelines.destroy();
      deployments.destroy();
      ai.destroy();
      clearTimeout(ps.reloadTimer);
      tasks.destroy();
    },
    onTask(t) {
      if (t.project_id !== projectId) return;
      tasks.onTask(t);
      reloadSoon(); // health and last tasks
    },
    onPipelineRun(r) {
      pipelines.onRun(r);
      deployments.onRun(r);
      if (r.project_id !== projectId || ps.runStates.get(r.id) === r.state) return;
      ps.runStates.set(r.id, r.state);
      reloadSoon(); // the generation follows the runs
    },
    onAiActivity(a) {
      ai.onAiActivity(a);
    },
    onWorkspaces() {
      if (!ps.status || workspacesSig() === ps.wsSig) return;
      const onlineChanged = onlineSig() !== ps.onlineSig;
      renderWorkspaceList();
      renderHealth();
      tasks.refreshNames();
      if (onlineChanged) reloadSoon(); // online/offline changes the health
    },
  };
}
