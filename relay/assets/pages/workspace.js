// A workspace's page (#/workspaces/{id}): the agent's facts (version, presence, and while its agent
// is connected the transport, latency, policy and hosted MCP servers), Coder facts, every
// repository with its branch, upstream and changed files, and the workspace's recent tasks (the
// full list is #/workspaces/{id}/tasks). Kept current by the live feed's workspace and task events.

import { api } from "../api.js";
import { clear, crumbs, enc, h, uid } from "../lib/dom.js";
import { plural, safeHttpUrl, timeEl } from "../lib/format.js";
import { updateTitle } from "../lib/shell.js";
import { state } from "../lib/state.js";
import { taskList } from "../lib/tasks.js";
import { buildRepo } from "./workspaces.js";

/** @typedef {import("../lib/types.js").Workspace} Workspace */
/** @typedef {import("../lib/types.js").Page} Page */
/** @typedef {import("../lib/types.js").Child} Child */

/** How many recent tasks the page lists (the tasks page pages through all). */
const RECENT_TASKS = 10;

/**
 * @param {string} label
 * @param {Child} value
 * @param {string} [testid]
 */
const fact = (label, value, testid) =>
  h("div.fact", null, h("dt", { text: label }), h("dd", { "data-testid": testid || null }, value));

/** @param {string} text */
const muted = (text) => h("span.muted", { text });

/**
 * @param {string} wsId
 * @returns {Page}
 */
export function buildWorkspacePage(wsId) {
  const heading = h("h1", { id: uid("h"), tabindex: -1, text: "Workspace" });
  const presence = h("span.presence", { "data-live": "note" });
  const notice = h("div");
  const factsSlot = h("div", { "data-live": "" });
  const reposSlot = h("div.ws-page-repos", { "data-testid": "workspace-repos", "data-live": "" });
  const tasks = taskList({ workspace: wsId }, { perPage: RECENT_TASKS });
  const tasksHref = `#/workspaces/${enc(wsId)}/tasks`;
  /** @type {Workspace | null} the workspace from GET /workspaces/{id} */
  let fetched = null;
  let missing = false;
  let alive = true;
  /** @type {string} what was rendered last, to skip identical updates */
  let rendered = "";

  const root = h(
    "section.view",
    { "aria-labelledby": heading.id, "data-testid": "workspace-page", "data-workspace-id": wsId },
    crumbs(h("a", { href: "#/workspaces", text: "Workspaces" }), h("span", { text: "Workspace" })),
    h(
      "div.view-head",
      null,
      h("div.view-title", null, heading, presence),
      h("a.btn.btn-small", { href: tasksHref, "data-testid": "workspace-page-tasks-link" }, "Run and all tasks"),
    ),
    notice,
    factsSlot,
    h("section.section", { "aria-label": "Repositories" }, h("h2.section-title", { text: "Repositories" }), reposSlot),
    h(
      "section.section",
      { "aria-label": "Recent tasks" },
      h(
        "div.section-head",
        null,
        h("h2.section-title", { text: "Recent tasks" }),
        h("a", { href: tasksHref, text: "All tasks →" }),
      ),
      tasks.root,
    ),
  );

  // The list's workspace (from the live feed) is newer than a fetched one once it exists; the
  // fetched one has the agent facts before the feed's snapshot arrives.
  const current = () => state.workspaces.get(wsId) || fetched;

  function render() {
    const w = current();
    const key = JSON.stringify([w, missing]);
    if (key === rendered) return;
    rendered = key;
    clear(notice);
    if (!w) {
      heading.textContent = missing ? "Unknown workspace" : "Workspace";
      presence.textContent = "";
      clear(factsSlot);
      clear(reposSlot);
      if (missing)
        notice.append(
          h("div.banner", { role: "alert" }, h("span", { text: "This workspace doesn't exist or isn't yours." })),
        );
      updateTitle();
      return;
    }
    heading.textContent = w.name || "(unnamed)";
    clear(presence);
    presence.className = w.online ? "presence is-online" : "presence";
    presence.dataset.online = w.online ? "true" : "false";
    presence.append(
      h("span.dot", { class: w.online ? "dot-online" : "dot-offline", "aria-hidden": "true" }),
      " ",
      w.online ? "Online" : "Offline",
    );
    renderFacts(w);
    renderRepos(w);
    updateTitle();
  }

  /** @param {Workspace} w */
  function renderFacts(w) {
    clear(factsSlot);
    const agent = w.online && w.agent && typeof w.agent === "object" ? w.agent : null;
    const coder = w.coder && typeof w.coder === "object" ? w.coder : null;
    const policy = agent && Array.isArray(agent.policy) ? agent.policy : [];
    const rtt = agent && typeof agent.rtt_ms === "number" && Number.isFinite(agent.rtt_ms) ? agent.rtt_ms : null;
    const coderWho = coder ? [coder.owner, coder.workspace_name].filter(Boolean).join("/") : "";
    const coderUrl = coder ? safeHttpUrl(coder.access_url) : null;
    const notConnected = () => muted(w.online ? "not reported" : "not connected");
    factsSlot.append(
      h(
        "dl.facts",
        { "data-testid": "workspace-facts", "data-online": w.online ? "true" : "false" },
        fact("Host", h("span.mono", { text: w.hostname || "unknown host", title: w.hostname || "" })),
        fact("Root", h("span.mono", { text: w.root || "", title: w.root || "" })),
        fact("Agent version", w.agent_version ? h("span.mono", { text: w.agent_version }) : muted("unknown")),
        w.online
          ? fact("Connected", w.connected_at ? timeEl(w.connected_at) : muted("now"), "workspace-connected")
          : fact("Last seen", w.last_seen_at ? timeEl(w.last_seen_at) : muted("never"), "workspace-last-seen"),
        fact(
          "Transport",
          agent ? h("span", { text: transportLabel(agent.transport) }) : notConnected(),
          "workspace-transport",
        ),
        fact(
          "Latency",
          rtt !== null ? h("span", { text: `${rtt < 10 ? rtt.toFixed(1) : Math.round(rtt)} ms` }) : notConnected(),
          "workspace-rtt",
        ),
        fact(
          "Policy",
          agent
            ? h(
                "span.policy",
                { title: "What the workspace allows callers, as its agent said" },
                policy.length ? policy.map((p) => h("span.tag", { text: p })) : muted("read only"),
              )
            : notConnected(),
          "workspace-policy",
        ),
        fact(
          "MCP servers",
          agent
            ? h("span", {
                text: agent.hosted_servers
                  ? `${plural(agent.hosted_servers, "server")} · ${agent.hosted_running} running`
                  : "none hosted",
              })
            : notConnected(),
          "workspace-mcp-servers",
        ),
        coder
          ? fact(
              "Coder",
              h(
                "span",
                null,
                coderWho ? h("span.mono", { text: coderWho }) : null,
                coder.agent_name ? h("span.muted", { text: ` agent ${coder.agent_name}` }) : null,
                coderUrl
                  ? [" · ", h("a.ext", { href: coderUrl, target: "_blank", rel: "noopener noreferrer" }, "Open")]
                  : null,
              ),
              "workspace-coder",
            )
          : null,
      ),
    );
  }

  /** @param {Workspace} w */
  function renderRepos(w) {
    clear(reposSlot);
    const repos = Array.isArray(w.repos) ? [...w.repos] : [];
    repos.sort((a, b) => (a.path === "." ? -1 : b.path === "." ? 1 : String(a.path).localeCompare(String(b.path))));
    if (!repos.length) {
      reposSlot.append(
        h("p.muted", {
          text: w.online ? "No git repositories found under the root." : "No repository state reported.",
        }),
      );
      return;
    }
    reposSlot.append(
      h(
        "div.repos",
        null,
        repos.map((r) => buildRepo(w, r)),
      ),
    );
  }

  // Always fetched once: the feed's list may not have this workspace yet (or at all).
  api.workspace(wsId).then(
    (w) => {
      if (!alive || !w?.id) return;
      fetched = w;
      render();
    },
    (err) => {
      if (!alive) return;
      if (err.status === 404 && !state.workspaces.has(wsId)) {
        missing = true;
        render();
      }
    },
  );
  render();
  tasks.load();

  return {
    root,
    heading,
    nav: "workspaces",
    title: () => current()?.name || "Workspace",
    destroy() {
      alive = false;
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

/** @param {string} t */
function transportLabel(t) {
  if (t === "quic") return "QUIC";
  if (t === "websocket") return "WebSocket";
  return t || "unknown";
}
