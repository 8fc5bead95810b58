// Fulcrum dashboard — views and state. No framework: small DOM helpers, hash routing,
// and keyed re-rendering so live updates only touch the workspace cards that changed.
// All data is put into the page with textContent / DOM nodes, never as HTML.

import {
  api, login, logout, restoreSession, onSession, EventStream, isAuthenticated,
} from "./api.js";

// ------------------------------------------------------------------ DOM helpers

/** h("div.class1.class2", {attrs}, ...children) — children: nodes, strings, arrays, null. */
function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className += (el.className ? " " : "") + v;
      else if (k === "text") el.textContent = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "value" || k === "checked" || k === "disabled" || k === "hidden") el[k] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

function svgIcon(name) {
  // A few tiny stroke icons, built as DOM (no markup strings).
  const paths = {
    branch: ["M6 3v12", "M18 9a3 3 0 1 0 0-0.01", "M6 21a3 3 0 1 0 0-0.01", "M18 9c0 6-12 3-12 9"],
    folder: ["M3 7a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z"],
    copy: ["M9 9h10v10H9z", "M5 15V5h10"],
    external: ["M14 4h6v6", "M20 4l-9 9", "M18 14v5H5V6h5"],
    host: ["M4 5h16v10H4z", "M9 19h6", "M12 15v4"],
    search: ["M11 18a7 7 0 1 0 0-14 7 7 0 0 0 0 14z", "M16 16l5 5"],
  };
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  for (const d of paths[name] || []) {
    const p = document.createElementNS(NS, "path");
    p.setAttribute("d", d);
    svg.append(p);
  }
  return svg;
}

// ------------------------------------------------------------------ formatting

const dateFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

function parseTime(iso) {
  if (!iso) return NaN;
  return Date.parse(iso);
}

/** "just now", "3 min ago", "2 h ago", "4 days ago", or a date. */
function relTime(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return "never";
  const s = Math.floor((Date.now() - t) / 1000);
  if (s < 60) return "just now"; // also covers small clock skew into the future
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `${hr} h ago`;
  const d = Math.floor(hr / 24);
  if (d < 30) return d === 1 ? "yesterday" : `${d} days ago`;
  return dateFmt.format(new Date(t));
}

/** "under a minute", "12 min", "3 h", "4 days" — how long since `iso`. */
function durationSince(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return "unknown";
  const m = Math.floor((Date.now() - t) / 60_000);
  if (m < 1) return "under a minute";
  if (m < 60) return `${m} min`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `${hr} h`;
  return plural(Math.floor(hr / 24), "day");
}

function formatTime(iso, mode) {
  return mode === "duration" ? durationSince(iso) : relTime(iso);
}

/** A <time> element whose text is kept current by the ticker. mode: "ago" | "duration". */
function timeEl(iso, mode = "ago") {
  const t = parseTime(iso);
  const el = h("time.rel", { datetime: iso || null, dataset: { rel: iso || "", mode } });
  el.textContent = formatTime(iso, mode);
  if (!Number.isNaN(t)) el.title = dateTimeFmt.format(new Date(t));
  return el;
}

function tickTimes() {
  for (const el of document.querySelectorAll("time[data-rel]")) {
    const txt = formatTime(el.dataset.rel, el.dataset.mode);
    if (el.textContent !== txt) el.textContent = txt;
  }
}

function plural(n, word, pluralWord) {
  return `${n} ${n === 1 ? word : (pluralWord || word + "s")}`;
}

function safeHttpUrl(s) {
  if (typeof s !== "string") return null;
  try {
    const u = new URL(s, location.href);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

function agentCommand(token) {
  return `fulcrum agent --relay ${location.origin} --token ${token}`;
}

// ------------------------------------------------------------------ clipboard

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try { await navigator.clipboard.writeText(text); return true; } catch { /* fall back */ }
  }
  const ta = h("textarea", { readonly: true, class: "offscreen" });
  ta.value = text;
  document.body.append(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch { ok = false; }
  ta.remove();
  return ok;
}

function copyButton(getText, label = "Copy") {
  const btn = h("button.btn.btn-small.copy", { type: "button", title: "Copy to clipboard" }, svgIcon("copy"), h("span", { text: label }));
  btn.addEventListener("click", async () => {
    const ok = await copyText(getText());
    const span = btn.querySelector("span");
    span.textContent = ok ? "Copied" : "Press Ctrl+C";
    btn.classList.toggle("copied", ok);
    clearTimeout(btn._t);
    btn._t = setTimeout(() => { span.textContent = label; btn.classList.remove("copied"); }, 1600);
  });
  return btn;
}

/** A monospace command/secret box with a copy button. */
function codeBox(text, attrs = {}) {
  const code = h("code.codebox-text", attrs, text);
  return h("div.codebox", null, code, copyButton(() => code.textContent));
}

// ------------------------------------------------------------------ state

const state = {
  me: null,
  workspaces: new Map(),     // id -> Workspace
  workspacesLoaded: false,
  workspacesError: null,
  socketVersion: 0,          // bumped by every socket message; stale HTTP results are dropped
  live: "stopped",
  filter: "",
  expanded: new Set(),       // `${workspaceId}\n${repoPath}` whose change list is expanded
  tokens: null,
  tokensError: null,
  createdToken: null,        // {id,name,prefix,token,...} — shown once
};

let stream = null;
let shell = null;            // the signed-in layout (null while on the login screen)
let pollTimer = 0;
let tickTimer = 0;

const appRoot = document.getElementById("app");

// ------------------------------------------------------------------ login view

function showLogin(notice) {
  teardownShell();
  document.title = "Sign in · Fulcrum";
  clear(appRoot);

  const email = h("input", {
    type: "email", name: "email", autocomplete: "username", required: true,
    placeholder: "you@example.com", "data-testid": "login-email", id: "login-email",
  });
  const password = h("input", {
    type: "password", name: "password", autocomplete: "current-password", required: true,
    "data-testid": "login-password", id: "login-password",
  });
  const submit = h("button.btn.btn-primary.btn-block", { type: "submit", "data-testid": "login-submit" }, "Sign in");
  const error = h("div.form-error", { role: "alert", "data-testid": "login-error", hidden: true });

  const form = h("form.login-form", { novalidate: true },
    h("label.field", null, h("span.field-label", { text: "Email" }), email),
    h("label.field", null, h("span.field-label", { text: "Password" }), password),
    error,
    submit,
  );

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    if (!email.value.trim() || !password.value) {
      error.textContent = "Enter your email and password.";
      error.hidden = false;
      (email.value.trim() ? password : email).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      await login(email.value.trim(), password.value);
      // onSession("login") takes it from here.
    } catch (err) {
      error.textContent = err.message || "Sign-in failed.";
      error.hidden = false;
      submit.disabled = false;
      submit.textContent = "Sign in";
      password.value = "";
      password.focus();
    }
  });

  appRoot.append(
    h("div.login-page", null,
      h("div.login-card", null,
        h("div.login-brand", null,
          h("img.logo", { src: "/assets/favicon.svg", alt: "", width: 36, height: 36 }),
          h("div", null, h("h1", { text: "Fulcrum" }), h("p.muted", { text: "Sign in to see your team's workspaces" })),
        ),
        notice ? h("div.notice", { role: "status", text: notice }) : null,
        form,
      ),
    ),
  );
  appRoot.removeAttribute("aria-busy");
  email.focus();
}

// ------------------------------------------------------------------ signed-in shell

function enterApp() {
  if (shell) return;
  clear(appRoot);

  const navWorkspaces = h("a.nav-link", { href: "#/workspaces", "data-testid": "nav-workspaces" }, "Workspaces",
    h("span.nav-count", { hidden: true }));
  const navTokens = h("a.nav-link", { href: "#/tokens", "data-testid": "nav-tokens" }, "Agent tokens");
  const live = h("span.live", { "data-testid": "live-indicator", "data-state": "reconnecting", role: "status" },
    h("span.live-dot"), h("span.live-label", { text: "Connecting…" }));
  const email = h("span.user-email", { text: state.me ? state.me.email : "" });
  const logoutBtn = h("button.btn.btn-ghost.btn-small", { type: "button", "data-testid": "logout" }, "Log out");
  logoutBtn.addEventListener("click", async () => {
    logoutBtn.disabled = true;
    try { await logout(); } catch { /* the session is gone locally anyway */ }
  });

  const header = h("header.topbar", null,
    h("div.topbar-inner", null,
      h("a.brand", { href: "#/workspaces" },
        h("img.logo", { src: "/assets/favicon.svg", alt: "", width: 22, height: 22 }), h("span", { text: "Fulcrum" })),
      h("nav.nav", { "aria-label": "Main" }, navWorkspaces, navTokens),
      h("div.topbar-spacer"),
      live,
      h("div.user", null, email, logoutBtn),
    ),
  );

  const workspacesView = buildWorkspacesView();
  const tokensView = buildTokensView();
  const main = h("main.main", null, workspacesView.root, tokensView.root);
  appRoot.append(header, main);
  appRoot.removeAttribute("aria-busy");

  shell = { header, navWorkspaces, navTokens, live, email, main, workspacesView, tokensView, route: null };

  window.addEventListener("hashchange", route);
  route();

  api.me().then((me) => {
    state.me = me;
    if (shell) shell.email.textContent = me.email;
  }).catch(() => {});

  loadWorkspaces();
  stream = new EventStream({ onMessage: onEvent, onState: onLiveState });
  stream.start();
  clearInterval(tickTimer);
  tickTimer = setInterval(tickTimes, 15_000);
}

function teardownShell() {
  window.removeEventListener("hashchange", route);
  if (stream) { stream.stop(); stream = null; }
  clearInterval(tickTimer);
  clearTimeout(pollTimer);
  shell = null;
  Object.assign(state, {
    me: null, workspaces: new Map(), workspacesLoaded: false, workspacesError: null,
    tokens: null, tokensError: null, createdToken: null, live: "stopped", expanded: new Set(),
  });
  cardCache.clear();
}

function route() {
  if (!shell) return;
  const hash = location.hash || "";
  let view = null;
  if (hash === "#/workspaces" || hash === "#/" || hash === "" || hash === "#") view = "workspaces";
  else if (hash === "#/tokens") view = "tokens";
  if (!view || hash !== `#/${view}`) {
    history.replaceState(null, "", `#/${view || "workspaces"}`);
    view = view || "workspaces";
  }
  shell.route = view;
  shell.workspacesView.root.hidden = view !== "workspaces";
  shell.tokensView.root.hidden = view !== "tokens";
  for (const [el, name] of [[shell.navWorkspaces, "workspaces"], [shell.navTokens, "tokens"]]) {
    if (view === name) el.setAttribute("aria-current", "page");
    else el.removeAttribute("aria-current");
  }
  if (view === "tokens") loadTokens();
  updateTitle();
  tickTimes();
}

function updateTitle() {
  if (!shell) return;
  if (shell.route === "tokens") {
    document.title = "Agent tokens · Fulcrum";
  } else {
    const online = [...state.workspaces.values()].filter((w) => w.online).length;
    document.title = state.workspacesLoaded ? `Workspaces (${online} online) · Fulcrum` : "Workspaces · Fulcrum";
  }
}

function onLiveState(s) {
  state.live = s;
  if (!shell) return;
  const live = s === "live";
  shell.live.dataset.state = live ? "live" : "reconnecting";
  shell.live.querySelector(".live-label").textContent =
    live ? "Live" : s === "connecting" ? "Connecting…" : "Reconnecting…";
  shell.live.title = live
    ? "Receiving live updates from the relay"
    : "The live connection dropped; reconnecting. The list may be out of date.";
  // While the socket is down, fall back to polling so the page doesn't go stale.
  clearTimeout(pollTimer);
  if (!live && s !== "stopped") pollTimer = setTimeout(pollWorkspaces, 20_000);
}

function pollWorkspaces() {
  if (!shell || state.live === "live") return;
  loadWorkspaces().finally(() => {
    if (shell && state.live !== "live") pollTimer = setTimeout(pollWorkspaces, 20_000);
  });
}

function onEvent(msg) {
  if (msg.type === "snapshot" && Array.isArray(msg.workspaces)) {
    state.socketVersion++;
    state.workspaces = new Map(msg.workspaces.filter(validWorkspace).map((w) => [w.id, w]));
    state.workspacesLoaded = true;
    state.workspacesError = null;
    renderWorkspaces();
  } else if (msg.type === "workspace" && validWorkspace(msg.workspace)) {
    state.socketVersion++;
    state.workspaces.set(msg.workspace.id, msg.workspace);
    state.workspacesLoaded = true;
    renderWorkspaces();
  }
  // Unknown types are ignored on purpose.
}

function validWorkspace(w) {
  return w && typeof w === "object" && typeof w.id === "string";
}

async function loadWorkspaces() {
  const version = state.socketVersion;
  try {
    const list = await api.workspaces();
    if (!shell || state.socketVersion !== version) return; // the socket has newer data
    state.workspaces = new Map((Array.isArray(list) ? list : []).filter(validWorkspace).map((w) => [w.id, w]));
    state.workspacesLoaded = true;
    state.workspacesError = null;
  } catch (err) {
    if (!shell || !isAuthenticated()) return; // the session ended; the login screen takes over
    state.workspacesError = err.message;
  }
  renderWorkspaces();
}

// ------------------------------------------------------------------ workspaces view

const cardCache = new Map(); // id -> {json, el}

function buildWorkspacesView() {
  const summary = h("span.summary");
  const filter = h("input.filter", {
    type: "search", placeholder: "Filter by name, host, branch…", "aria-label": "Filter workspaces",
    value: state.filter, spellcheck: "false",
  });
  filter.addEventListener("input", () => { state.filter = filter.value; renderWorkspaces(); });
  const banner = h("div.banner", { hidden: true, role: "alert" });
  const grid = h("div.ws-grid");
  const empty = h("div.empty-wrap", { hidden: true });
  const root = h("section.view", { "aria-labelledby": "ws-title" },
    h("div.view-head", null,
      h("div.view-title", null, h("h1", { id: "ws-title", text: "Workspaces" }), summary),
      h("label.filter-wrap", null, svgIcon("search"), filter),
    ),
    banner, empty, grid,
  );
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "/" && root.isConnected && !root.hidden && document.activeElement?.tagName !== "INPUT") {
      ev.preventDefault();
      filter.focus();
    }
  });
  return { root, summary, filter, banner, grid, empty };
}

function matchesFilter(w, q) {
  if (!q) return true;
  const hay = [w.name, w.hostname, w.root, w.agent_version,
    w.coder && w.coder.workspace_name, w.coder && w.coder.owner, w.coder && w.coder.agent_name,
    ...(w.repos || []).flatMap((r) => [r.path, r.branch, r.head_summary, r.head_sha && r.head_sha.slice(0, 12)])]
    .filter(Boolean).join("\n").toLowerCase();
  return q.toLowerCase().split(/\s+/).filter(Boolean).every((t) => hay.includes(t));
}

function sortWorkspaces(list) {
  return list.sort((a, b) =>
    (b.online ? 1 : 0) - (a.online ? 1 : 0) ||
    String(a.name || "").localeCompare(String(b.name || ""), undefined, { sensitivity: "base", numeric: true }) ||
    String(a.id).localeCompare(String(b.id)));
}

function renderWorkspaces() {
  if (!shell) return;
  const v = shell.workspacesView;
  const all = [...state.workspaces.values()];
  const online = all.filter((w) => w.online).length;

  // Nav badge + summary.
  const count = shell.navWorkspaces.querySelector(".nav-count");
  count.hidden = !state.workspacesLoaded || all.length === 0;
  count.textContent = String(online);
  count.title = `${online} online`;
  v.summary.textContent = state.workspacesLoaded && all.length
    ? `${online} online · ${all.length - online} offline`
    : "";
  updateTitle();

  // Error banner (only relevant when we have nothing better).
  v.banner.hidden = !state.workspacesError;
  if (state.workspacesError) {
    clear(v.banner);
    const retry = h("button.btn.btn-small", { type: "button" }, "Retry");
    retry.addEventListener("click", () => { retry.disabled = true; loadWorkspaces(); });
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
  if (state.workspacesLoaded && all.length > 0 && visible.length === 0) {
    v.empty.hidden = false;
    v.empty.append(h("div.empty.empty-small", null,
      h("p", null, "No workspaces match ", h("strong", { text: `“${state.filter.trim()}”` }), "."),
    ));
  }
  v.filter.parentElement.hidden = !state.workspacesLoaded || all.length === 0;

  // Keyed reconciliation: only rebuild cards whose data changed; keep order.
  const grid = v.grid;
  const keep = new Set();
  let prev = null;
  for (const w of visible) {
    const json = JSON.stringify(w);
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
  return h("div.empty", null,
    h("div.empty-art", { "aria-hidden": "true" }, svgIcon("host")),
    h("h2", { text: "No workspaces yet" }),
    h("p", null, "Run the agent in a workspace to connect it to this relay:"),
    codeBox(agentCommand("<token>")),
    h("p.muted", null, "Don't have a token? ", h("a", { href: "#/tokens", text: "Create an agent token" }), " first."),
  );
}

function buildCard(w) {
  const online = !!w.online;
  const coder = w.coder && typeof w.coder === "object" ? w.coder : null;

  const presence = online
    ? h("span.presence.is-online", null, "Online", w.connected_at ? [" for ", timeEl(w.connected_at, "duration")] : null)
    : h("span.presence", null, w.last_seen_at ? ["Last seen ", timeEl(w.last_seen_at)] : "Offline · never seen");

  let coderRow = null;
  if (coder && (coder.workspace_name || coder.owner || coder.agent_name || coder.access_url)) {
    const who = [coder.owner, coder.workspace_name].filter(Boolean).join("/");
    const url = safeHttpUrl(coder.access_url);
    coderRow = h("div.ws-line.coder", null,
      h("span.tag", { text: "Coder" }),
      who ? h("span.mono", { text: who }) : null,
      coder.agent_name ? h("span.muted", { text: `agent ${coder.agent_name}` }) : null,
      url ? h("a.ext", { href: url, target: "_blank", rel: "noopener noreferrer", title: url }, "Open", svgIcon("external")) : null,
    );
  }

  const repos = Array.isArray(w.repos) ? [...w.repos] : [];
  repos.sort((a, b) => (a.path === "." ? -1 : b.path === "." ? 1 : String(a.path).localeCompare(String(b.path))));

  return h("article.ws-card", {
    "data-testid": "workspace", "data-workspace-id": w.id, "data-online": online ? "true" : "false",
    class: online ? "is-online" : "is-offline",
  },
    h("header.ws-head", null,
      h("span.dot", { class: online ? "dot-online" : "dot-offline", title: online ? "Online" : "Offline", role: "img", "aria-label": online ? "Online" : "Offline" }),
      h("h2.ws-name", { text: w.name || "(unnamed)", title: w.name || "" }),
      presence,
    ),
    h("div.ws-meta", null,
      h("div.ws-line", null,
        svgIcon("host"),
        h("span.mono.where", { title: `${w.hostname || "unknown host"}:${w.root || ""}` },
          h("span.host", { text: w.hostname || "unknown host" }),
          w.root ? h("span.path", { text: `:${w.root}` }) : null),
        w.agent_version ? h("span.ver", { text: `agent ${w.agent_version}`, title: "Agent version" }) : null,
      ),
      coderRow,
    ),
    repos.length
      ? h("div.repos", null, repos.map((r) => buildRepo(w, r)))
      : h("div.repos-empty.muted", { text: online ? "No git repositories found under the root." : "No repository state reported." }),
  );
}

function buildRepo(w, r) {
  const key = `${w.id}\n${r.path}`;
  const n = (x) => (Number.isFinite(x) ? x : 0);
  const staged = n(r.staged), unstaged = n(r.unstaged), untracked = n(r.untracked), conflicted = n(r.conflicted);
  const clean = staged + unstaged + untracked + conflicted === 0;

  const badges = h("div.badges", null,
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
    const ahead = n(r.ahead), behind = n(r.behind);
    upstream = h("span.upstream", { title: `Tracking ${r.upstream}` },
      h("span.mono", { text: r.upstream }),
      h("span.ab", { class: ahead ? "nonzero" : "", title: `${plural(ahead, "commit")} ahead`, text: `↑${ahead}` }),
      h("span.ab", { class: behind ? "nonzero behind" : "", title: `${plural(behind, "commit")} behind`, text: `↓${behind}` }),
    );
  } else {
    upstream = h("span.upstream.muted", { text: "no upstream" });
  }

  const commit = r.head_sha
    ? h("div.commit", null,
      h("span.sha.mono", { text: r.head_sha.slice(0, 7), title: r.head_sha }),
      h("span.summary-text", { text: r.head_summary || "", title: r.head_summary || "" }))
    : h("div.commit.muted", { text: "No commits yet" });

  // Changed paths.
  const paths = Array.isArray(r.changed_paths) ? r.changed_paths : [];
  const LIMIT = 8;
  const collapsible = paths.length > LIMIT + 2;
  const expanded = state.expanded.has(key);
  let changes = null;
  if (paths.length) {
    const rows = paths.map((p, i) => {
      const row = h("li.change", { "data-testid": "changed-path", title: p.path },
        codeEl(p.code), h("span.change-path.mono", { text: p.path }));
      if (collapsible && !expanded && i >= LIMIT) row.hidden = true;
      return row;
    });
    const list = h("ul.changes", null, rows);
    let toggle = null;
    if (collapsible) {
      toggle = h("button.btn-link.toggle", { type: "button", "aria-expanded": expanded ? "true" : "false" });
      const setLabel = (open) => {
        toggle.textContent = open ? "Show fewer" : `Show all ${paths.length} paths`;
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
      };
      setLabel(expanded);
      toggle.addEventListener("click", () => {
        const open = !state.expanded.has(key);
        if (open) state.expanded.add(key); else state.expanded.delete(key);
        rows.forEach((row, i) => { if (i >= LIMIT) row.hidden = !open; });
        setLabel(open);
      });
    }
    changes = h("div.changes-wrap", null,
      list,
      toggle || r.changed_paths_truncated
        ? h("div.changes-foot", null,
          toggle,
          r.changed_paths_truncated ? h("span.muted.trunc", { text: "List truncated by the agent — not every changed path is shown." }) : null)
        : null,
    );
  } else if (r.changed_paths_truncated) {
    changes = h("div.changes-foot", null, h("span.muted.trunc", { text: "Changed paths not reported (list truncated by the agent)." }));
  }

  return h("section.repo", { "data-testid": "repo", "data-repo-path": r.path },
    h("div.repo-head", null,
      h("span.repo-path.mono", { title: r.path }, svgIcon("folder"), h("span", { text: r.path === "." ? "." : r.path })),
      branch,
      h("span.grow"),
      badges,
    ),
    h("div.repo-sub", null,
      commit,
      h("div.repo-sub-right", null,
        upstream,
        r.updated_at ? h("span.updated", { title: "When the agent last reported this repository" }, "updated ", timeEl(r.updated_at)) : null,
      ),
    ),
    changes,
  );
}

function codeEl(code) {
  const c = typeof code === "string" ? code.padEnd(2, " ").slice(0, 2) : "  ";
  const el = h("span.code.mono", { title: describeCode(c) });
  const conflict = /^(DD|AU|UD|UA|DU|AA|UU)$/.test(c);
  if (c === "??") {
    el.append(h("span.c-untracked", { text: "??" }));
  } else if (c === "!!") {
    el.append(h("span.c-untracked", { text: "!!" }));
  } else {
    el.append(h("span", { class: conflict ? "c-conflict" : c[0] === " " ? "c-none" : "c-staged", text: c[0] === " " ? "·" : c[0] }));
    el.append(h("span", { class: conflict ? "c-conflict" : c[1] === " " ? "c-none" : "c-unstaged", text: c[1] === " " ? "·" : c[1] }));
  }
  return el;
}

function describeCode(c) {
  const names = { M: "modified", A: "added", D: "deleted", R: "renamed", C: "copied", T: "type changed", U: "unmerged" };
  if (c === "??") return "untracked";
  if (c === "!!") return "ignored";
  if (/^(DD|AU|UD|UA|DU|AA|UU)$/.test(c)) return `conflict (${c})`;
  const parts = [];
  if (c[0] !== " ") parts.push(`${names[c[0]] || c[0]} in index`);
  if (c[1] !== " ") parts.push(`${names[c[1]] || c[1]} in work tree`);
  return parts.join(", ") || c;
}

// ------------------------------------------------------------------ tokens view

function buildTokensView() {
  const name = h("input", {
    type: "text", name: "name", maxlength: 100, placeholder: "e.g. alice-devbox", autocomplete: "off",
    "data-testid": "token-name", "aria-label": "Token name", spellcheck: "false",
  });
  const create = h("button.btn.btn-primary", { type: "submit", "data-testid": "token-create" }, "Create token");
  const formError = h("div.form-error", { role: "alert", "data-testid": "token-error", hidden: true });
  const form = h("form.token-form", null,
    h("label.field.grow", null, h("span.field-label", { text: "New token name" }), name),
    create,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formError.hidden = true;
    const value = name.value.trim();
    if (!value || value.length > 100) {
      formError.textContent = value ? "Name must be at most 100 characters." : "Give the token a name, e.g. the workspace or person it's for.";
      formError.hidden = false;
      name.focus();
      return;
    }
    create.disabled = true;
    create.textContent = "Creating…";
    try {
      const tok = await api.createAgentToken(value);
      state.createdToken = tok;
      name.value = "";
      tokensSeq++;
      if (state.tokens) {
        state.tokens = [{ revoked_at: null, last_used_at: null, ...tok, token: undefined }, ...state.tokens.filter((t) => t.id !== tok.id)];
      }
      renderTokens();
      loadTokens();
    } catch (err) {
      formError.textContent = err.message;
      formError.hidden = false;
    } finally {
      create.disabled = false;
      create.textContent = "Create token";
    }
  });

  const secretSlot = h("div");
  const listSlot = h("div");
  const root = h("section.view.view-narrow", { hidden: true, "aria-labelledby": "tok-title" },
    h("div.view-head", null,
      h("div.view-title", null, h("h1", { id: "tok-title", text: "Agent tokens" })),
    ),
    h("p.lead.muted", null,
      "An agent uses a token to connect a workspace to this relay. The full token is shown only once, when you create it; revoking a token disconnects every agent using it."),
    h("div.panel", null, form, formError),
    secretSlot,
    listSlot,
  );
  return { root, name, secretSlot, listSlot };
}

let tokensSeq = 0; // bumped by every load and local change; only the latest load is applied

async function loadTokens() {
  const seq = ++tokensSeq;
  if (!state.tokens) renderTokens();
  try {
    const list = await api.agentTokens();
    if (seq !== tokensSeq) return;
    state.tokens = Array.isArray(list) ? list : [];
    state.tokensError = null;
  } catch (err) {
    if (seq !== tokensSeq || !shell || !isAuthenticated()) return;
    state.tokensError = err.message;
  }
  renderTokens();
}

function renderTokens() {
  if (!shell) return;
  const v = shell.tokensView;

  // Shown-once secret.
  clear(v.secretSlot);
  const ct = state.createdToken;
  if (ct) {
    const done = h("button.btn.btn-small", { type: "button" }, "Done");
    done.addEventListener("click", () => { state.createdToken = null; renderTokens(); });
    v.secretSlot.append(
      h("div.secret-panel", { role: "region", "aria-label": "New token" },
        h("div.secret-head", null,
          h("h2", null, "Token ", h("span.mono", { text: ct.name }), " created"),
          done,
        ),
        h("p.warn", null, h("strong", { text: "Copy it now — you won't see this again." }),
          " Only a hash is stored on the relay."),
        h("div.secret-box", null, codeBox(ct.token, { "data-testid": "token-secret", "data-token-id": ct.id })),
        h("p.muted.small", { text: "Run this in the workspace you want to connect:" }),
        codeBox(agentCommand(ct.token)),
      ),
    );
  }

  // List.
  clear(v.listSlot);
  if (state.tokensError && !state.tokens) {
    const retry = h("button.btn.btn-small", { type: "button" }, "Retry");
    retry.addEventListener("click", loadTokens);
    v.listSlot.append(h("div.banner", { role: "alert" }, h("span", { text: `Couldn't load tokens: ${state.tokensError}` }), retry));
    return;
  }
  if (!state.tokens) {
    v.listSlot.append(h("div.loading", null, h("span.spinner"), "Loading tokens…"));
    return;
  }
  if (state.tokens.length === 0) {
    v.listSlot.append(h("div.empty.empty-small", null,
      h("h2", { text: "No agent tokens yet" }),
      h("p.muted", { text: "Create one above, then run the agent with it in a workspace." })));
    return;
  }

  const tokens = [...state.tokens].sort((a, b) =>
    (a.revoked_at ? 1 : 0) - (b.revoked_at ? 1 : 0) ||
    (parseTime(b.created_at) || 0) - (parseTime(a.created_at) || 0));

  const rows = tokens.map((t) => {
    const revoked = !!t.revoked_at;
    let action = null;
    if (!revoked) {
      action = h("button.btn.btn-small.btn-danger", { type: "button", "data-testid": "token-revoke" }, "Revoke");
      action.addEventListener("click", () => revokeToken(t, action));
    }
    return h("tr", { "data-testid": "token-row", "data-token-id": t.id, "data-revoked": revoked ? "true" : "false", class: revoked ? "is-revoked" : "" },
      h("td.t-name", { text: t.name }),
      h("td", null, h("span.mono.prefix", { text: `${t.prefix || ""}…`, title: "Token prefix" })),
      h("td.t-time", null, timeEl(t.created_at)),
      h("td.t-time", null, t.last_used_at ? timeEl(t.last_used_at) : h("span.muted", { text: "never" })),
      h("td", null, revoked
        ? h("span.status.status-revoked", { "data-testid": "token-status" }, "Revoked ", timeEl(t.revoked_at))
        : h("span.status.status-active", { "data-testid": "token-status" }, h("span.dot.dot-online"), "Active")),
      h("td.t-actions", null, action),
    );
  });

  v.listSlot.append(
    h("div.table-wrap", null,
      h("table.tokens", null,
        h("thead", null, h("tr", null,
          h("th", { text: "Name" }), h("th", { text: "Token" }), h("th", { text: "Created" }),
          h("th", { text: "Last used" }), h("th", { text: "Status" }), h("th", { "aria-label": "Actions" }))),
        h("tbody", null, rows),
      ),
    ),
  );
}

async function revokeToken(t, btn) {
  // eslint-disable-next-line no-alert
  if (!window.confirm(`Revoke the token “${t.name}” (${t.prefix}…)?\n\nAgents using it will be disconnected and can't reconnect with it.`)) return;
  btn.disabled = true;
  btn.textContent = "Revoking…";
  try {
    await api.revokeAgentToken(t.id);
    if (state.createdToken && state.createdToken.id === t.id) state.createdToken = null;
    tokensSeq++;
    if (state.tokens) {
      state.tokens = state.tokens.map((x) => (x.id === t.id ? { ...x, revoked_at: x.revoked_at || new Date().toISOString() } : x));
    }
    renderTokens();
    loadTokens();
  } catch (err) {
    btn.disabled = false;
    btn.textContent = "Revoke";
    window.alert(`Couldn't revoke the token: ${err.message}`);
  }
}

// ------------------------------------------------------------------ boot

onSession(({ type }) => {
  if (type === "login") enterApp();
  else if (type === "logout") showLogin();
  else if (type === "expired") showLogin("Your session has ended. Please sign in again.");
});

restoreSession().catch((err) => {
  if (shell) return;
  showLogin(err.status === 0 ? err.message : null);
});
