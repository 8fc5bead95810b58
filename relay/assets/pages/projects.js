// The Projects page (#/projects): invitations waiting for the signed-in user, the list with each
// project's health and generation, and a new project behind a button; and the badges the project
// page shares.

import { api, asApiError } from "../api.js";
import { clear, dataTable, enc, errorBanner, field, h, loadingEl, uid } from "../lib/dom.js";
import { byName, expiryEl, timeEl } from "../lib/format.js";
import { setInvitationCount, signedIn } from "../lib/shell.js";
import { projectNames, withIds } from "../lib/state.js";
import { stateLabel, taskTitle } from "../lib/tasks.js";

/** @typedef {import("../lib/types.js").Project} Project */
/** @typedef {import("../lib/types.js").ProjectBody} ProjectBody */
/** @typedef {import("../lib/types.js").Invitation} Invitation */
/** @typedef {import("../lib/types.js").Page} Page */
/** @typedef {import("../lib/types.js").ProjectReport} ProjectReport */

/** At most this many status requests per page load (the REST API allows a user 100 a minute). */
const HEALTH_MAX = 20;
/** How many status requests run at once. */
const HEALTH_PARALLEL = 4;
/** A project's task event asks for its status again after this long (events come in bursts). */
const HEALTH_REFRESH_MS = 2_000;

/** @returns {Page} */
export function buildProjectsPage() {
  const ps = {
    /** @type {Project[] | null} */
    list: null,
    /** @type {string | null} */
    error: null,
    seq: 0,
    /** @type {Invitation[] | null} */
    invites: null,
    invitesSeq: 0,
    /** @type {string | null} */
    inviteError: null,
    /** @type {{ id: string, name: string } | null} */
    joined: null,
    /** @type {Map<string, ProjectReport | "loading" | "error">} project id -> its status */
    health: new Map(),
    healthAsked: 0,
    /** @type {Set<string>} projects whose status is asked for again once their tasks settle */
    healthStale: new Set(),
    /** @type {Map<string, ProjectReport>} the last status that came, per project */
    healthLast: new Map(),
    healthTimer: 0,
    /** @type {Map<string, string>} run id -> its last state: a run that changes state can change its project's generation */
    runStates: new Map(),
    listTimer: 0,
    alive: true,
  };
  /** @type {Map<string, HTMLElement>} project id -> the health cell on screen */
  const healthCells = new Map();
  const heading = h("h1", { id: uid("h"), tabindex: -1, text: "Projects" });
  const summary = h("span.summary");

  const name = h("input", {
    type: "text",
    maxlength: 200,
    autocomplete: "off",
    required: true,
    "data-testid": "project-name",
  });
  const description = h("input", {
    type: "text",
    maxlength: 2000,
    autocomplete: "off",
    "data-testid": "project-description",
  });
  const repoUrl = h("input", {
    type: "text",
    inputmode: "url",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "https://git.example.com/team/repo",
    "data-testid": "project-repo-url",
  });
  const techStack = h("input", {
    type: "text",
    autocomplete: "off",
    placeholder: "rust, postgres, typescript",
    "data-testid": "project-tech-stack",
  });
  const create = h("button.btn.btn-primary", { type: "submit", "data-testid": "project-create" }, "Create project");
  const cancel = h("button.btn.btn-ghost", { type: "button", "data-testid": "project-create-cancel" }, "Cancel");
  const formError = h("div.form-error", { role: "alert", "data-testid": "project-error", hidden: true });
  const form = h(
    "form.project-form",
    { "aria-label": "New project" },
    h(
      "div.form-grid",
      null,
      field("Name", name),
      field("Repository URL", repoUrl),
      field("Description", description),
      field("Tech stack", techStack, "Comma-separated"),
    ),
    h("div.form-actions", null, create, cancel),
    formError,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formError.hidden = true;
    /** @type {ProjectBody & { name: string }} */
    const body = { name: name.value.trim() };
    if (!body.name) {
      formError.textContent = "Give the project a name.";
      formError.hidden = false;
      name.focus();
      return;
    }
    if (description.value.trim()) body.description = description.value.trim();
    if (repoUrl.value.trim()) body.repository_url = repoUrl.value.trim();
    const stack = splitList(techStack.value);
    if (stack.length) body.tech_stack = stack;
    create.disabled = true;
    create.textContent = "Creating…";
    try {
      const p = await api.createProject(body);
      if (p?.id) {
        projectNames.set(p.id, p.name);
        location.hash = `#/projects/${enc(p.id)}`;
        return;
      }
      load();
    } catch (err) {
      formError.textContent = asApiError(err).message;
      formError.hidden = false;
    } finally {
      create.disabled = false;
      create.textContent = "Create project";
    }
  });

  // The form is not the page's purpose: it opens with "New project".
  const newProject = h(
    "button.btn.btn-primary",
    { type: "button", "data-testid": "new-project", "aria-expanded": "false" },
    "New project",
  );
  const createPanel = h(
    "div.panel",
    { "data-testid": "project-create-panel", hidden: true },
    h("h2", { text: "New project" }),
    form,
  );
  /** @param {boolean} open */
  const setFormOpen = (open) => {
    createPanel.hidden = !open;
    newProject.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) name.focus();
    else {
      formError.hidden = true;
      newProject.focus();
    }
  };
  newProject.addEventListener("click", () => setFormOpen(true));
  cancel.addEventListener("click", () => setFormOpen(false));

  const listSlot = h("div");
  const invitesSlot = h("div");
  const root = h(
    "section.view.view-narrow",
    { "aria-labelledby": heading.id },
    h("div.view-head", null, h("div.view-title", null, heading, summary), newProject),
    invitesSlot,
    createPanel,
    listSlot,
  );

  async function load() {
    const seq = ++ps.seq;
    try {
      const list = await api.projects();
      if (seq !== ps.seq) return;
      ps.list = withIds(list);
      ps.error = null;
      for (const p of ps.list) projectNames.set(p.id, p.name);
    } catch (err) {
      if (seq !== ps.seq || !signedIn()) return;
      ps.error = asApiError(err).message;
    }
    render();
  }

  // Invitations addressed to the signed-in user: a card above everything else, none when none.
  async function loadInvites() {
    const seq = ++ps.invitesSeq;
    try {
      const list = await api.myInvitations();
      if (seq !== ps.invitesSeq) return;
      ps.invites = withIds(list);
      setInvitationCount(ps.invites.length);
    } catch (err) {
      // Stay quiet: the projects list works without them (the next visit tries again).
      if (seq !== ps.invitesSeq || !signedIn()) return;
      console.warn("Couldn't load invitations:", asApiError(err).message);
    }
    renderInvites();
  }

  function renderInvites() {
    clear(invitesSlot);
    const list = ps.invites || [];
    let joinedLink = null;
    if (ps.joined) {
      joinedLink = h("a", { href: `#/projects/${enc(ps.joined.id)}`, text: ps.joined.name || "the project" });
      invitesSlot.append(
        h(
          "div.notice.invite-joined",
          { role: "status", "data-testid": "invitation-joined" },
          "You joined ",
          joinedLink,
          ".",
        ),
      );
    }
    if (!list.length && !ps.inviteError) return joinedLink;
    invitesSlot.append(
      h(
        "section.card",
        { "aria-label": "Invitations", "data-testid": "invitations" },
        h(
          "div.card-head",
          null,
          h("h2", { text: "Invitations" }),
          h("span.muted.small", { text: "You have been invited to join these projects." }),
        ),
        h(
          "div.card-body",
          null,
          list.length ? h("ul.plist", null, list.map(inviteRow)) : null,
          ps.inviteError
            ? h("div.form-error", { role: "alert", "data-testid": "invitation-error", text: ps.inviteError })
            : null,
        ),
      ),
    );
    return joinedLink;
  }

  /** @param {Invitation} inv */
  function inviteRow(inv) {
    const name = inv.project_name || "(unnamed)";
    const accept = h(
      "button.btn.btn-small.btn-primary",
      { type: "button", "data-testid": "invitation-accept", "aria-label": `Accept the invitation to ${name}` },
      "Accept",
    );
    const decline = h(
      "button.btn.btn-small.btn-ghost",
      { type: "button", "data-testid": "invitation-decline", "aria-label": `Decline the invitation to ${name}` },
      "Decline",
    );
    /** @param {{ id: string, name: string } | null} joined */
    const answered = (joined) => {
      ps.invites = (ps.invites || []).filter((x) => x.id !== inv.id);
      ps.inviteError = null;
      setInvitationCount(ps.invites.length);
      if (joined) ps.joined = joined;
      const link = renderInvites();
      if (joined && link) link.focus();
    };
    /** @param {string} verb @param {unknown} e */
    const failed = (verb, e) => {
      const err = asApiError(e);
      ps.inviteError =
        err.status === 404
          ? `The invitation to “${name}” has expired or was withdrawn.`
          : `Couldn't ${verb} the invitation to “${name}”: ${err.message}`;
      if (err.status === 404) loadInvites();
      else renderInvites();
    };
    accept.addEventListener("click", async () => {
      accept.disabled = true;
      decline.disabled = true;
      try {
        const p = await api.acceptInvitation(inv.id);
        const joined = p?.id ? { id: p.id, name: p.name } : { id: inv.project_id, name: inv.project_name };
        projectNames.set(joined.id, joined.name);
        answered(joined);
        load(); // the project is in the list now
      } catch (err) {
        failed("accept", err);
      }
    });
    decline.addEventListener("click", async () => {
      if (!window.confirm(`Decline the invitation to “${name}”?`)) return;
      accept.disabled = true;
      decline.disabled = true;
      try {
        await api.declineInvitation(inv.id);
        answered(null);
      } catch (err) {
        failed("decline", err);
      }
    });
    return h(
      "li.prow.invite-row",
      { "data-testid": "invitation-row", "data-invitation-id": inv.id, "data-project-id": inv.project_id || "" },
      h("span.prow-name", { text: name }),
      inv.invited_by_email
        ? h("span.muted.small.invite-from", {
            text: `from ${inv.invited_by_email}`,
            title: `Invited by ${inv.invited_by_email}`,
          })
        : null,
      h("span.role", { class: `role-${inv.role}`, text: inv.role || "—" }),
      expiryEl(inv.expires_at),
      accept,
      decline,
    );
  }

  /** The health cell of a row, filled when its status arrives. @param {Project} x */
  function healthCell(x) {
    const td = h("td.project-health-cell");
    healthCells.set(x.id, td);
    fillHealth(x.id, td);
    return td;
  }

  /** @param {string} id @param {HTMLElement} td */
  function fillHealth(id, td) {
    // A status asked for again keeps showing the last one until the new one comes.
    const r = ps.health.get(id) === "loading" ? ps.healthLast.get(id) || "loading" : ps.health.get(id);
    clear(td);
    if (r && typeof r === "object") {
      const last = Array.isArray(r.last_tasks) ? r.last_tasks[0] : null;
      td.append(healthBadge(r.health));
      if (last?.id)
        td.append(
          " ",
          h("a.muted.small.project-last-task", {
            href: `#/tasks/${enc(last.id)}`,
            "data-testid": "project-last-task",
            "data-state": last.state || "",
            title: `Last task: ${taskTitle(last)} (${stateLabel(last.state)})`,
            text: last.number ? `#${last.number}` : "last task",
          }),
        );
    } else {
      td.append(
        h("span.muted", {
          text: r === "loading" ? "…" : "—",
          title: r === "error" ? "Couldn't load its health" : r === "loading" ? "Loading" : "Not loaded",
        }),
      );
    }
  }

  /**
   * The health of the active projects shown, in list order: at most HEALTH_MAX status requests
   * per page load, HEALTH_PARALLEL at a time.
   * @param {Project[]} sorted
   */
  function loadHealth(sorted) {
    const want = sorted.filter((x) => x.status !== "archived" && !ps.health.has(x.id));
    const queue = want.slice(0, Math.max(0, HEALTH_MAX - ps.healthAsked));
    ps.healthAsked += queue.length;
    for (const x of queue) ps.health.set(x.id, "loading");
    const worker = async () => {
      for (let x = queue.shift(); x && ps.alive; x = queue.shift()) {
        const id = x.id;
        try {
          const report = await api.projectStatus(id);
          ps.health.set(id, report);
          ps.healthLast.set(id, report);
        } catch {
          ps.health.set(id, "error");
        }
        const td = healthCells.get(id);
        if (td && ps.alive) fillHealth(id, td);
      }
    };
    for (let i = 0; i < Math.min(HEALTH_PARALLEL, queue.length); i++) worker();
  }

  /**
   * A task of a listed project changed: its health may have too. Asked for again after a pause,
   * within the same budget of status requests per page load.
   * @param {import("../lib/types.js").Task} t
   */
  function onProjectTask(t) {
    const id = t.project_id;
    const known = id ? ps.health.get(id) : undefined;
    if (!id || !known || known === "loading") return;
    ps.healthStale.add(id);
    if (ps.healthTimer) return;
    ps.healthTimer = window.setTimeout(() => {
      ps.healthTimer = 0;
      const room = Math.max(0, HEALTH_MAX - ps.healthAsked);
      const again = [...ps.healthStale].filter((x) => ps.health.get(x) !== "loading").slice(0, room);
      ps.healthStale.clear();
      for (const x of again) ps.health.delete(x);
      loadHealth((ps.list || []).filter((p) => again.includes(p.id)));
    }, HEALTH_REFRESH_MS);
  }

  function render() {
    clear(listSlot);
    const p = ps.list;
    summary.textContent = p?.length ? `${p.filter((x) => x.status !== "archived").length} active` : "";
    if (ps.error && !p) {
      listSlot.append(errorBanner(`Couldn't load projects: ${ps.error}`, load));
      return;
    }
    if (!p) {
      listSlot.append(loadingEl("Loading projects…"));
      return;
    }
    if (!p.length) {
      listSlot.append(
        h(
          "div.empty.empty-small",
          null,
          h("h2", { text: "No projects yet" }),
          h("p.muted", {
            text: "A project groups workspaces that work on the same code, so you can run tasks and QA steps on whichever of them is online. Create one with “New project”.",
          }),
        ),
      );
      return;
    }
    const sorted = [...p].sort(
      (a, b) => (a.status === "archived" ? 1 : 0) - (b.status === "archived" ? 1 : 0) || byName(a.name, b.name),
    );
    healthCells.clear();
    loadHealth(sorted);
    listSlot.append(
      dataTable(
        "",
        ["Name", "Health", "Generation", "Status", "Your role", "Workspaces", "Tech stack", "Updated"],
        sorted.map((x) => {
          const n = Array.isArray(x.workspace_ids) ? x.workspace_ids.length : 0;
          return h(
            "tr",
            {
              "data-testid": "project-row",
              "data-project-id": x.id,
              "data-status": x.status || "",
              class: x.status === "archived" ? "is-archived" : "",
            },
            h(
              "td.t-name",
              null,
              h("a", {
                href: `#/projects/${enc(x.id)}`,
                "data-testid": "project-link",
                text: x.name || "(unnamed)",
              }),
              x.description ? h("div.muted.small.clip", { text: x.description, title: x.description }) : null,
            ),
            healthCell(x),
            h("td", null, generationBadge(x.generation)),
            h("td", null, projectStatusBadge(x.status)),
            h(
              "td",
              { "data-testid": "project-role" },
              h("span.role", { class: `role-${x.role}`, text: x.role || "—" }),
            ),
            h("td.num", { "data-testid": "project-workspace-count", text: String(n) }),
            h("td", null, stackTags(x.tech_stack)),
            h("td.t-time", null, timeEl(x.updated_at || x.created_at)),
          );
        }),
      ),
    );
  }

  render();
  load();
  loadInvites();
  return {
    root,
    heading,
    nav: "projects",
    title: () => "Projects",
    onTask: onProjectTask,
    onPipelineRun(r) {
      if (!ps.list?.some((x) => x.id === r.project_id) || ps.runStates.get(r.id) === r.state) return;
      ps.runStates.set(r.id, r.state);
      clearTimeout(ps.listTimer);
      ps.listTimer = window.setTimeout(load, 1_000);
    },
    destroy: () => {
      clearTimeout(ps.healthTimer);
      clearTimeout(ps.listTimer);
      ps.alive = false;
      ps.seq++;
      ps.invitesSeq++;
    },
  };
}

/** "a, b, a" -> ["a", "b"]. @param {string} s */
export function splitList(s) {
  return [
    ...new Set(
      String(s || "")
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    ),
  ];
}

/** @param {string} status */
export function projectStatusBadge(status) {
  return h(
    "span.pstatus",
    {
      class: status === "archived" ? "pstatus-archived" : "pstatus-active",
      "data-testid": "project-status",
      "data-status": status || "",
    },
    status === "archived" ? "archived" : "active",
  );
}

/** @type {Record<string, { st: string, hint: string }>} a generation's badge colour (a run state's) and tooltip */
const GENERATION = {
  draft: { st: "pending", hint: "Not generated yet: Generate starts SystemCrafter." },
  generating: { st: "running", hint: "SystemCrafter is generating it." },
  ready: { st: "succeeded", hint: "SystemCrafter generated it." },
  failed: { st: "failed", hint: "Its last SystemCrafter run failed." },
};

/**
 * Where the project's generation stands (draft, generating, ready, failed), as a badge.
 * @param {string} g
 */
export function generationBadge(g) {
  const known = GENERATION[g];
  const moving = g === "generating";
  return h(
    "span.task-state",
    {
      class: `st-${known?.st || "unknown"}`,
      "data-testid": "project-generation",
      "data-generation": g || "",
      title: known?.hint || null,
      "data-live": moving ? "" : null,
    },
    moving ? h("span.state-pulse", { "aria-hidden": "true" }) : null,
    known ? g : "unknown",
  );
}

/** @param {unknown} list */
export function stackTags(list) {
  const items = Array.isArray(list) ? list.filter((x) => typeof x === "string" && x) : [];
  if (!items.length) return h("span.muted", { text: "—" });
  return h(
    "span.stack",
    null,
    items.map((s) => h("span.tag.tag-stack", { text: s })),
  );
}

/** @type {Record<string, string>} */
const HEALTH_LABELS = { healthy: "Healthy", failing: "Failing", running: "Running", idle: "Idle", offline: "Offline" };
/** @type {Record<string, string>} */
const HEALTH_HINTS = {
  healthy: "The last finished task succeeded.",
  failing: "The last finished task did not succeed.",
  running: "A task is queued or running.",
  idle: "No tasks have run yet.",
  offline: "No workspace of this project is online.",
};

/** @param {string} hv */
export function healthBadge(hv) {
  const known = HEALTH_LABELS[hv] ? hv : "unknown";
  return h(
    "span.health",
    {
      class: `health-${known}`,
      "data-testid": "project-health",
      "data-health": hv || "",
      title: HEALTH_HINTS[known] || "",
      "data-live": known === "running" ? "" : null,
    },
    h("span.health-dot", { "aria-hidden": "true" }),
    HEALTH_LABELS[known] || "Unknown",
  );
}
