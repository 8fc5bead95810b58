// Fulcrum dashboard: boot and routing. No framework and no build: ES modules, small DOM helpers
// (lib/dom.js), hash routing, and keyed re-rendering so live updates only touch what changed.
// Everything is put into the page with DOM nodes and text nodes, never as HTML.
//
// Routes: #/workspaces and #/tokens (built once, shown and hidden), and pages built per visit:
// #/projects, #/projects/{id}, #/tasks, #/workspaces/{id}, #/workspaces/{id}/tasks, #/tasks/{id},
// #/pipeline-runs/{id}, #/assistant, #/ai (AI activity; its filters in the hash's query),
// #/webhooks (the chosen endpoint and delivery in the hash's query), #/settings/ai, #/profile,
// #/admin.
// #/reset/{token} (a one-time password-reset link) is outside the shell, signed in or not;
// #/authorize?{query} (OAuth consent) is outside the shell too, but needs a session.

import { isAuthenticated, logout, onSession, restoreSession } from "./api.js";
import { activityLive, activityTask } from "./lib/activity.js";
import { budgetBanner } from "./lib/budgetalert.js";
import { clear, enc, h } from "./lib/dom.js";
import { applyTimeZone, tickTimes } from "./lib/format.js";
import { loadWorkspaces, startLive, stopLive } from "./lib/live.js";
import {
  buildHeader,
  currentPage,
  destroyPage,
  getShell,
  loadInvitationCount,
  notifyPage,
  setPage,
  setShell,
  updateTitle,
  whenMe,
} from "./lib/shell.js";
import { resetState } from "./lib/state.js";
import { applyTheme, storedTheme } from "./lib/theme.js";
import { buildAdminPage } from "./pages/admin.js";
import { buildAiActivityPage } from "./pages/ai-activity.js";
import { buildTasksPage } from "./pages/all-tasks.js";
import { buildAssistantPage } from "./pages/assistant.js";
import { authorizeQueryFromHash, CONSENT_LOGIN_NOTICE, renderConsent } from "./pages/authorize.js";
import { renderBoot, renderLogin, renderPasswordReset, resetTokenFromHash } from "./pages/login.js";
import { buildPipelineRunPage } from "./pages/pipeline-run.js";
import { buildProfilePage } from "./pages/profile.js";
import { buildProjectPage } from "./pages/project.js";
import { buildProjectsPage } from "./pages/projects.js";
import { buildAiSettingsPage } from "./pages/settings-ai.js";
import { buildTaskPage, buildWorkspaceTasksPage } from "./pages/tasks.js";
import { buildTokensView, loadTokens, onTokensWorkspaces, syncTokensAdmin } from "./pages/tokens.js";
import { buildWebhooksPage } from "./pages/webhooks.js";
import { buildWorkspacePage } from "./pages/workspace.js";
import { buildWorkspacesView, onWorkspacesKey, renderWorkspaces } from "./pages/workspaces.js";

/** @typedef {import("./lib/types.js").Page} Page */
/** @typedef {import("./lib/types.js").Route} Route */

const appRoot = /** @type {HTMLElement} */ (document.getElementById("app"));

let resetShowing = false; // the "set a new password" page (#/reset/TOKEN) is up; session events wait
/** @type {string | null} the OAuth consent page (#/authorize?QUERY) is up: its query string */
let consentQuery = null;
let tickTimer = 0;
let tickCount = 0;
/** @type {{ workspaces: HTMLElement, tokens: HTMLElement } | null} the two built-once views */
let views = null;
/** @type {ReturnType<typeof budgetBanner> | null} the budget alerts under the top bar */
let budgets = null;

// ------------------------------------------------------------------ outside the shell

/** @param {string | null} [notice] */
function showLogin(notice) {
  teardownShell();
  resetShowing = false;
  renderLogin(appRoot, notice);
}

function showBoot() {
  renderBoot(appRoot);
}

/** @param {string} token */
function showPasswordReset(token) {
  teardownShell();
  resetShowing = true;
  consentQuery = null;
  renderPasswordReset(appRoot, token, async () => {
    // The login screen should not sit on top of a live session: end any this tab still holds
    // (session events are ignored while resetShowing is set).
    if (isAuthenticated()) {
      try {
        await logout();
      } catch {
        /* the session is gone locally anyway */
      }
    }
    showLogin("Your password is set. Log in with it.");
  });
}

/**
 * The consent page needs a session: without one the login form comes first (session events
 * bring it back here).
 * @param {string} query
 */
function showConsent(query) {
  teardownShell();
  resetShowing = false;
  consentQuery = query;
  document.title = "Authorize · Fulcrum";
  if (!isAuthenticated()) {
    showBoot();
    restoreSession().catch((err) => {
      // On success the "login" event renders the page; a refresh in flight elsewhere may win too.
      if (consentQuery !== query || isAuthenticated()) return;
      showLogin(err.status === 0 ? err.message : CONSENT_LOGIN_NOTICE);
    });
    return;
  }
  renderConsent(appRoot, query, () => consentQuery === query);
}

/** Hash changes into or out of the pages outside the shell (the shell's own routing handles the rest). */
function onOutsideHashChange() {
  const token = resetTokenFromHash(location.hash);
  if (token !== null) {
    consentQuery = null;
    showPasswordReset(token);
    return;
  }
  const query = authorizeQueryFromHash(location.hash);
  if (query !== null) {
    if (query !== consentQuery) showConsent(query);
    return;
  }
  if (resetShowing || consentQuery !== null) resumeSession();
}

/** Leave a page outside the shell (or boot): into the app when a session exists or can be restored, else login. */
function resumeSession() {
  resetShowing = false;
  consentQuery = null;
  if (isAuthenticated()) {
    enterApp();
    return;
  }
  showBoot();
  restoreSession().catch((err) => {
    if (getShell() || resetShowing || consentQuery !== null) return;
    showLogin(err.status === 0 ? err.message : null);
  });
}

// ------------------------------------------------------------------ the signed-in shell

function enterApp() {
  if (getShell()) return;
  clear(appRoot);

  const header = buildHeader();
  header.logout.addEventListener("click", async () => {
    header.logout.disabled = true;
    try {
      await logout();
    } catch {
      /* the session is gone locally anyway */
    }
  });
  views = { workspaces: buildWorkspacesView(), tokens: buildTokensView() };
  budgets = budgetBanner();
  const pageSlot = h("div.page-slot");
  const main = h("main.main", null, budgets.root, views.workspaces, views.tokens, pageSlot);
  appRoot.append(header.root, main);
  appRoot.removeAttribute("aria-busy");
  setShell({ header, main, pageSlot, route: null, onMe: syncTokensAdmin });

  // Opened without a route: the user's default project, once /me says which (if any).
  const landing = /^#?\/?$/.test(location.hash);
  window.addEventListener("hashchange", onHashChange);
  document.addEventListener("keydown", onWorkspacesKey);
  route(false);

  whenMe().then(
    (me) => {
      const dp = me?.preferences?.default_project;
      if (getShell() && landing && dp && location.hash === "#/workspaces") {
        history.replaceState(null, "", `#/projects/${enc(dp)}`);
        route(true);
      }
    },
    () => {},
  );

  startLive({
    workspaces: () => {
      renderWorkspaces();
      if (getShell()?.route === "tokens") onTokensWorkspaces();
      updateTitle();
      notifyPage("onWorkspaces");
    },
    task: (t) => {
      activityTask(t);
      notifyPage("onTask", t);
    },
    pipelineRun: (r) => notifyPage("onPipelineRun", r),
    pipelineText: (m) => notifyPage("onPipelineText", m),
    aiActivity: (a) => notifyPage("onAiActivity", a),
    budgetAlert: (a) => budgets?.onAlert(a),
    state: onLiveState,
  });
  loadWorkspaces();
  budgets.load();
  loadInvitationCount();
  clearInterval(tickTimer);
  tickTimer = setInterval(() => {
    tickCount = (tickCount + 1) % 15;
    tickTimes(tickCount !== 0);
  }, 1_000);
}

function teardownShell() {
  window.removeEventListener("hashchange", onHashChange);
  document.removeEventListener("keydown", onWorkspacesKey);
  destroyPage();
  stopLive();
  budgets?.destroy();
  budgets = null;
  clearInterval(tickTimer);
  setShell(null);
  views = null;
  resetState();
  applyTimeZone(null);
}

/** @param {import("./lib/types.js").LiveState} s */
function onLiveState(s) {
  const shell = getShell();
  if (!shell) return;
  activityLive(s);
  budgets?.onLive(s);
  const live = s === "live";
  const el = shell.header.live;
  el.dataset.state = live ? "live" : "reconnecting";
  shell.header.liveLabel.textContent = live ? "Live" : s === "connecting" ? "Connecting…" : "Reconnecting…";
  el.title = live
    ? "Receiving live updates from the relay"
    : "The live connection dropped; reconnecting. What is shown may be out of date.";
  notifyPage("onLive", s);
}

/**
 * "#/projects/abc" -> {view: "project", id: "abc"}; null for unknown routes.
 * @param {string} hash
 * @returns {Route | null}
 */
function parseRoute(hash) {
  const path = String(hash || "")
    .replace(/^#\/?/, "")
    .split("?")[0];
  let parts;
  try {
    parts = path
      .split("/")
      .filter(Boolean)
      .map((p) => decodeURIComponent(p));
  } catch {
    return null;
  }
  const [a, b, c] = parts;
  if (parts.length === 0) return { view: "workspaces" };
  if (
    parts.length === 1 &&
    ["workspaces", "tokens", "projects", "tasks", "profile", "admin", "ai", "assistant", "webhooks"].includes(a)
  )
    return { view: a };
  if (parts.length === 2 && a === "settings" && b === "ai") return { view: "settings-ai" };
  if (parts.length === 2 && a === "projects") return { view: "project", id: b };
  if (parts.length === 2 && a === "pipeline-runs") return { view: "pipeline-run", id: b };
  if (parts.length === 2 && a === "tasks") return { view: "task", id: b };
  if (parts.length === 2 && a === "workspaces") return { view: "workspace", id: b };
  if (parts.length === 3 && a === "workspaces" && c === "tasks") return { view: "workspace-tasks", id: b };
  return null;
}

/**
 * @param {Route} r
 * @returns {Page | null}
 */
function buildPage(r) {
  if (r.view === "projects") return buildProjectsPage();
  if (r.view === "tasks") return buildTasksPage();
  if (r.view === "profile") return buildProfilePage();
  if (r.view === "admin") return buildAdminPage();
  if (r.view === "settings-ai") return buildAiSettingsPage();
  if (r.view === "ai") return buildAiActivityPage();
  if (r.view === "assistant") return buildAssistantPage();
  if (r.view === "webhooks") return buildWebhooksPage();
  if (!r.id) return null;
  if (r.view === "project") return buildProjectPage(r.id);
  if (r.view === "workspace") return buildWorkspacePage(r.id);
  if (r.view === "workspace-tasks") return buildWorkspaceTasksPage(r.id);
  if (r.view === "task") return buildTaskPage(r.id);
  if (r.view === "pipeline-run") return buildPipelineRunPage(r.id);
  return null;
}

function onHashChange() {
  route(true);
}

/** @param {boolean} navigated */
function route(navigated) {
  const shell = getShell();
  if (!shell || !views) return;
  const r = parseRoute(location.hash) || { view: "workspaces" };
  // The two built-once views keep their canonical hashes (also for "", "#/" and unknown routes).
  if ((r.view === "workspaces" || r.view === "tokens") && location.hash !== `#/${r.view}`) {
    history.replaceState(null, "", `#/${r.view}`);
  }
  const view = r.view;
  const key = `${view}:${r.id || ""}`;
  let page = currentPage();
  if (page && page.key !== key) destroyPage();
  page = currentPage();
  if (view !== "workspaces" && view !== "tokens" && !page) {
    page = buildPage(r);
    if (page) {
      page.key = key;
      setPage(page);
      shell.pageSlot.append(page.root);
      if (navigated) {
        window.scrollTo(0, 0);
        if (page.heading?.isConnected) page.heading.focus({ preventScroll: true });
      }
    }
  }
  shell.route = view;
  views.workspaces.hidden = view !== "workspaces";
  views.tokens.hidden = view !== "tokens";
  const section = page ? page.nav : view;
  for (const [el, name] of shell.header.navs) {
    if (section === name) el.setAttribute("aria-current", view === name ? "page" : "true");
    else el.removeAttribute("aria-current");
  }
  if (view === "tokens") loadTokens();
  updateTitle();
  tickTimes();
}

// ------------------------------------------------------------------ boot

onSession(({ type }) => {
  if (resetShowing) return; // the reset page stays up; leaving it picks the session up
  if (consentQuery !== null) {
    // The consent page needs a session: signing in (again) comes back to it.
    if (type === "login") showConsent(consentQuery);
    else showLogin(type === "expired" ? "Your session has ended. Sign in again to continue." : CONSENT_LOGIN_NOTICE);
    return;
  }
  if (type === "login") enterApp();
  else if (type === "logout") showLogin();
  else if (type === "expired") showLogin("Your session has ended. Please sign in again.");
});

// Registered before the shell's own hashchange listener, so a reset link or a consent request
// wins over routing.
window.addEventListener("hashchange", onOutsideHashChange);

applyTheme(storedTheme(), false);

{
  const resetToken = resetTokenFromHash(location.hash);
  const authorizeQuery = resetToken === null ? authorizeQueryFromHash(location.hash) : null;
  if (resetToken !== null) showPasswordReset(resetToken);
  else if (authorizeQuery !== null) showConsent(authorizeQuery);
  else resumeSession();
}
