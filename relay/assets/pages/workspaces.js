// The Workspaces view (#/workspaces, built once): a live card per workspace with its repositories'
// branches, commits and changed files, and its running and last tasks (lib/activity.js). Cards are
// re-built only when their workspace or its tasks changed.

import { activityEl, activityKey, ensureActivity, lastTaskState, resetActivity } from "../lib/activity.js";
import { clear, codeBox, enc, h, svgIcon } from "../lib/dom.js";
import { byName, plural, safeHttpUrl, timeEl } from "../lib/format.js";
import { loadWorkspaces } from "../lib/live.js";
import { getShell, updateTitle } from "../lib/shell.js";
import { state } from "../lib/state.js";
import { agentCommand } from "../lib/tokens.js";

/** @typedef {import("../lib/types.js").Workspace} Workspace */
/** @typedef {import("../lib/types.js").RepoRecord} RepoRecord */

/** @type {Map<string, { json: string, el: HTMLElement }>} workspace id -> its card */
const cardCache = new Map();
/** @type {ReturnType<typeof buildView> | null} */
let view = null;

/** Builds the view (once per session). */
export function buildWorkspacesView() {
  cardCache.clear();
  resetActivity(renderWorkspaces);
  view = buildView();
  return view.root;
}

function buildView() {
  const summary = h("span.summary");
  const filter = h("input.filter", {
    type: "search",
    placeholder: "Filter by name, host, branch…",
    "aria-label": "Filter workspaces",
    value: state.filter,
    spellcheck: "false",
  });
  filter.addEventListener("input", () => {
    state.filter = filter.value;
    renderWorkspaces();
  });
  const banner = h("div.banner", { hidden: true, role: "alert" });
  const grid = h("div.ws-grid");
  const empty = h("div.empty-wrap", { hidden: true });
  const root = h(
    "section.view",
    { "aria-labelledby": "ws-title" },
    h(
      "div.view-head",
      null,
      h("div.view-title", null, h("h1", { id: "ws-title", text: "Workspaces" }), summary),
      h("label.filter-wrap", null, svgIcon("search"), filter),
    ),
    banner,
    empty,
    grid,
  );
  return { root, summary, filter, banner, grid, empty };
}

/** "/" focuses the filter while the view is shown. @param {KeyboardEvent} ev */
export function onWorkspacesKey(ev) {
  if (!view) return;
  if (ev.key === "/" && view.root.isConnected && !view.root.hidden && document.activeElement?.tagName !== "INPUT") {
    ev.preventDefault();
    view.filter.focus();
  }
}

/**
 * @param {Workspace} w
 * @param {string} q
 */
function matchesFilter(w, q) {
  if (!q) return true;
  const hay = [
    w.name,
    w.hostname,
    w.root,
    w.agent_version,
    w.coder?.workspace_name,
    w.coder?.owner,
    w.coder?.agent_name,
    ...(w.repos || []).flatMap((r) => [r.path, r.branch, r.head_summary, r.head_sha?.slice(0, 12)]),
  ]
    .filter(Boolean)
    .join("\n")
    .toLowerCase();
  return q
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .every((t) => hay.includes(t));
}

/** Online first, then by name. @param {Workspace[]} list */
export function sortWorkspaces(list) {
  return list.sort(
    (a, b) =>
      (b.online ? 1 : 0) - (a.online ? 1 : 0) || byName(a.name, b.name) || String(a.id).localeCompare(String(b.id)),
  );
}

/** Brings the view up to date with state.workspaces. */
export function renderWorkspaces() {
  const shell = getShell();
  const v = view;
  if (!shell || !v) return;
  const all = [...state.workspaces.values()];
  const online = all.filter((w) => w.online).length;

  // Nav badge + summary.
  const count = /** @type {HTMLElement} */ (shell.header.navWorkspaces.querySelector(".nav-count"));
  count.hidden = !state.workspacesLoaded || all.length === 0;
  count.textContent = String(online);
  count.title = `${online} online`;
  v.summary.textContent =
    state.workspacesLoaded && all.length ? `${online} online · ${all.length - online} offline` : "";
  updateTitle();

  // Error banner (only relevant when we have nothing better).
  v.banner.hidden = !state.workspacesError;
  if (state.workspacesError) {
    clear(v.banner);
    const retry = h("button.btn.btn-small", { type: "button" }, "Retry");
    retry.addEventListener("click", () => {
      retry.disabled = true;
      loadWorkspaces();
    });
    v.banner.append(h("span", { text: `Couldn't load workspaces: ${state.workspacesError}` }), retry);
  }

  // Empty / loading states.
  clear(v.empty);
  v.empty.hidden = true;
  if (!state.workspacesLoaded) {
    if (!state.workspacesError) {
      v.empty.hidden = false;
      v.empty.append(h("div.loading", null, h("span.spinner"), "Loading workspaces…"));
    }
  } else if (all.length === 0) {
    v.empty.hidden = false;
    v.empty.append(emptyWorkspaces());
  }

  const visible = sortWorkspaces(all.filter((w) => matchesFilter(w, state.filter.trim())));
  ensureActivity(visible.map((w) => w.id));
  if (state.workspacesLoaded && all.length > 0 && visible.length === 0) {
    v.empty.hidden = false;
    v.empty.append(
      h(
        "div.empty.empty-small",
        null,
        h("p", null, "No workspaces match ", h("strong", { text: `“${state.filter.trim()}”` }), "."),
      ),
    );
  }
  const filterWrap = v.filter.parentElement;
  if (filterWrap) filterWrap.hidden = !state.workspacesLoaded || all.length === 0;

  // Keyed reconciliation: only rebuild cards whose data changed; keep order.
  const grid = v.grid;
  const keep = new Set();
  /** @type {HTMLElement | null} */
  let prev = null;
  for (const w of visible) {
    const json = JSON.stringify(w) + activityKey(w.id);
    let entry = cardCache.get(w.id);
    if (!entry || entry.json !== json) {
      const el = buildCard(w);
      if (entry && entry.el.parentNode === grid) {
        entry.el.replaceWith(el);
        el.classList.add("flash");
        setTimeout(() => el.classList.remove("flash"), 1500);
      }
      entry = { json, el };
      cardCache.set(w.id, entry);
    }
    keep.add(w.id);
    /** @type {ChildNode | null} */
    const want = prev ? prev.nextSibling : grid.firstChild;
    if (want !== entry.el) grid.insertBefore(entry.el, want);
    prev = entry.el;
  }
  for (const [id, entry] of cardCache) {
    if (!keep.has(id)) {
      entry.el.remove();
      if (!state.workspaces.has(id)) cardCache.delete(id);
    }
  }
}

function emptyWorkspaces() {
  return h(
    "div.empty",
    null,
    h("div.empty-art", { "aria-hidden": "true" }, svgIcon("host")),
    h("h2", { text: "No workspaces yet" }),
    h("p", null, "Run the agent in a workspace to connect it to this relay:"),
    codeBox(agentCommand("<token>")),
    h("p.muted", null, "Don't have a token? ", h("a", { href: "#/tokens", text: "Create an agent token" }), " first."),
  );
}

/** @param {Workspace} w */
function buildCard(w) {
  const online = !!w.online;
  const coder = w.coder && typeof w.coder === "object" ? w.coder : null;

  const presence = online
    ? h(
        "span.presence.is-online",
        null,
        "Online",
        w.connected_at ? [" for ", timeEl(w.connected_at, "duration")] : null,
      )
    : h("span.presence", null, w.last_seen_at ? ["Last seen ", timeEl(w.last_seen_at)] : "Offline · never seen");

  let coderRow = null;
  if (coder && (coder.workspace_name || coder.owner || coder.agent_name || coder.access_url)) {
    const who = [coder.owner, coder.workspace_name].filter(Boolean).join("/");
    const url = safeHttpUrl(coder.access_url);
    coderRow = h(
      "div.ws-line.coder",
      null,
      h("span.tag", { text: "Coder" }),
      who ? h("span.mono", { text: who }) : null,
      coder.agent_name ? h("span.muted", { text: `agent ${coder.agent_name}` }) : null,
      url
        ? h(
            "a.ext",
            { href: url, target: "_blank", rel: "noopener noreferrer", title: url },
            "Open",
            svgIcon("external"),
          )
        : null,
    );
  }

  const last = lastTaskState(w.id);
  const repos = Array.isArray(w.repos) ? [...w.repos] : [];
  repos.sort((a, b) => (a.path === "." ? -1 : b.path === "." ? 1 : String(a.path).localeCompare(String(b.path))));

  // data-live: while the live feed is down the card is marked stale, with when it was last known.
  return h(
    "article.ws-card",
    {
      "data-testid": "workspace",
      "data-workspace-id": w.id,
      "data-online": online ? "true" : "false",
      "data-last-task-state": last || null,
      class: [online ? "is-online" : "is-offline", ["failed", "timed_out", "lost"].includes(last) ? "is-failing" : ""]
        .filter(Boolean)
        .join(" "),
      "data-live": "",
    },
    h(
      "header.ws-head",
      null,
      h("span.dot", {
        class: online ? "dot-online" : "dot-offline",
        title: online ? "Online" : "Offline",
        role: "img",
        "aria-label": online ? "Online" : "Offline",
      }),
      h(
        "h2.ws-name",
        { title: w.name || "" },
        h("a.ws-name-link", {
          href: `#/workspaces/${enc(w.id)}`,
          "data-testid": "workspace-link",
          text: w.name || "(unnamed)",
        }),
      ),
      presence,
      h(
        "a.btn.btn-small.ws-tasks",
        {
          href: `#/workspaces/${enc(w.id)}/tasks`,
          "data-testid": "workspace-tasks-link",
          "aria-label": `Tasks of ${w.name || "this workspace"}`,
        },
        "Tasks",
      ),
    ),
    h("div.ws-stale", { "data-live": "note" }),
    h(
      "div.ws-meta",
      null,
      h(
        "div.ws-line",
        null,
        svgIcon("host"),
        h(
          "span.mono.where",
          { title: `${w.hostname || "unknown host"}:${w.root || ""}` },
          h("span.host", { text: w.hostname || "unknown host" }),
          w.root ? h("span.path", { text: `:${w.root}` }) : null,
        ),
        w.agent_version ? h("span.ver", { text: `agent ${w.agent_version}`, title: "Agent version" }) : null,
      ),
      coderRow,
    ),
    activityEl(w.id),
    repos.length
      ? h(
          "div.repos",
          null,
          repos.map((r) => buildRepo(w, r)),
        )
      : h("div.repos-empty.muted", {
          text: online ? "No git repositories found under the root." : "No repository state reported.",
        }),
  );
}

/**
 * @param {Workspace} w
 * @param {RepoRecord} r
 */
export function buildRepo(w, r) {
  const key = `${w.id}\n${r.path}`;
  /** @param {unknown} x */
  const n = (x) => (typeof x === "number" && Number.isFinite(x) ? x : 0);
  const staged = n(r.staged),
    unstaged = n(r.unstaged),
    untracked = n(r.untracked),
    conflicted = n(r.conflicted);
  const clean = staged + unstaged + untracked + conflicted === 0;

  const badges = h(
    "div.badges",
    null,
    clean ? h("span.badge.b-clean", { text: "clean" }) : null,
    conflicted ? h("span.badge.b-conflict", { text: `${conflicted} conflicted`, title: "Conflicted paths" }) : null,
    staged ? h("span.badge.b-staged", { text: `${staged} staged`, title: "Staged changes" }) : null,
    unstaged ? h("span.badge.b-unstaged", { text: `${unstaged} unstaged`, title: "Unstaged changes" }) : null,
    untracked ? h("span.badge.b-untracked", { text: `${untracked} untracked`, title: "Untracked files" }) : null,
  );

  const branch = r.branch
    ? h("span.branch", { title: `Branch ${r.branch}` }, svgIcon("branch"), h("span", { text: r.branch }))
    : h("span.branch.detached", { title: "Detached HEAD" }, svgIcon("branch"), h("span", { text: "detached" }));

  let upstream;
  if (r.upstream) {
    const ahead = n(r.ahead),
      behind = n(r.behind);
    upstream = h(
      "span.upstream",
      { title: `Tracking ${r.upstream}` },
      h("span.mono", { text: r.upstream }),
      h("span.ab", { class: ahead ? "nonzero" : "", title: `${plural(ahead, "commit")} ahead`, text: `↑${ahead}` }),
      h("span.ab", {
        class: behind ? "nonzero behind" : "",
        title: `${plural(behind, "commit")} behind`,
        text: `↓${behind}`,
      }),
    );
  } else {
    upstream = h("span.upstream.muted", { text: "no upstream" });
  }

  const commit = r.head_sha
    ? h(
        "div.commit",
        null,
        h("span.sha.mono", { text: r.head_sha.slice(0, 7), title: r.head_sha }),
        h("span.summary-text", { text: r.head_summary || "", title: r.head_summary || "" }),
      )
    : h("div.commit.muted", { text: "No commits yet" });

  // Changed paths.
  const paths = Array.isArray(r.changed_paths) ? r.changed_paths : [];
  const LIMIT = 8;
  const collapsible = paths.length > LIMIT + 2;
  const expanded = state.expanded.has(key);
  let changes = null;
  if (paths.length) {
    const rows = paths.map((p, i) => {
      const row = h(
        "li.change",
        { "data-testid": "changed-path", title: p.path },
        codeEl(p.code),
        h("span.change-path.mono", { text: p.path }),
      );
      if (collapsible && !expanded && i >= LIMIT) row.hidden = true;
      return row;
    });
    const list = h("ul.changes", null, rows);
    /** @type {HTMLButtonElement | null} */
    let toggle = null;
    if (collapsible) {
      const btn = h("button.btn-link.toggle", { type: "button", "aria-expanded": expanded ? "true" : "false" });
      toggle = btn;
      /** @param {boolean} open */
      const setLabel = (open) => {
        btn.textContent = open ? "Show fewer" : `Show all ${paths.length} paths`;
        btn.setAttribute("aria-expanded", open ? "true" : "false");
      };
      setLabel(expanded);
      btn.addEventListener("click", () => {
        const open = !state.expanded.has(key);
        if (open) state.expanded.add(key);
        else state.expanded.delete(key);
        rows.forEach((row, i) => {
          if (i >= LIMIT) row.hidden = !open;
        });
        setLabel(open);
      });
    }
    changes = h(
      "div.changes-wrap",
      null,
      list,
      toggle || r.changed_paths_truncated
        ? h(
            "div.changes-foot",
            null,
            toggle,
            r.changed_paths_truncated
              ? h("span.muted.trunc", { text: "List truncated by the agent — not every changed path is shown." })
              : null,
          )
        : null,
    );
  } else if (r.changed_paths_truncated) {
    changes = h(
      "div.changes-foot",
      null,
      h("span.muted.trunc", { text: "Changed paths not reported (list truncated by the agent)." }),
    );
  }

  return h(
    "section.repo",
    { "data-testid": "repo", "data-repo-path": r.path },
    h(
      "div.repo-head",
      null,
      h(
        "span.repo-path.mono",
        { title: r.path },
        svgIcon("folder"),
        h("span", { text: r.path === "." ? "." : r.path }),
      ),
      branch,
      h("span.grow"),
      badges,
    ),
    h(
      "div.repo-sub",
      null,
      commit,
      h(
        "div.repo-sub-right",
        null,
        upstream,
        r.updated_at
          ? h(
              "span.updated",
              { title: "When the agent last reported this repository" },
              "updated ",
              timeEl(r.updated_at),
            )
          : null,
      ),
    ),
    changes,
  );
}

/** @param {unknown} code */
function codeEl(code) {
  const c = typeof code === "string" ? code.padEnd(2, " ").slice(0, 2) : "  ";
  const el = h("span.code.mono", { title: describeCode(c) });
  const conflict = /^(DD|AU|UD|UA|DU|AA|UU)$/.test(c);
  if (c === "??") {
    el.append(h("span.c-untracked", { text: "??" }));
  } else if (c === "!!") {
    el.append(h("span.c-untracked", { text: "!!" }));
  } else {
    el.append(
      h("span", {
        class: conflict ? "c-conflict" : c[0] === " " ? "c-none" : "c-staged",
        text: c[0] === " " ? "·" : c[0],
      }),
    );
    el.append(
      h("span", {
        class: conflict ? "c-conflict" : c[1] === " " ? "c-none" : "c-unstaged",
        text: c[1] === " " ? "·" : c[1],
      }),
    );
  }
  return el;
}

/** @param {string} c */
function describeCode(c) {
  /** @type {Record<string, string>} */
  const names = {
    M: "modified",
    A: "added",
    D: "deleted",
    R: "renamed",
    C: "copied",
    T: "type changed",
    U: "unmerged",
  };
  if (c === "??") return "untracked";
  if (c === "!!") return "ignored";
  if (/^(DD|AU|UD|UA|DU|AA|UU)$/.test(c)) return `conflict (${c})`;
  const parts = [];
  if (c[0] !== " ") parts.push(`${names[c[0]] || c[0]} in index`);
  if (c[1] !== " ") parts.push(`${names[c[1]] || c[1]} in work tree`);
  return parts.join(", ") || c;
}
