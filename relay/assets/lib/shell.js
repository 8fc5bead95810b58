// The signed-in layout: the top bar, the current page, the document title, and who is signed in.
// app.js builds it and routes; pages reach it through these functions.

import { api, isAuthenticated } from "../api.js";
import { h } from "./dom.js";
import { applyTimeZone, plural, tickTimes } from "./format.js";
import { badResponse, state } from "./state.js";
import { applyTheme } from "./theme.js";

/** @typedef {import("./types.js").Page} Page */
/** @typedef {import("./types.js").User} User */
/** @typedef {ReturnType<typeof buildHeader>} Header */

/**
 * @typedef {object} Shell
 * @property {Header} header
 * @property {HTMLElement} main
 * @property {HTMLElement} pageSlot
 * @property {string | null} route the current route's view
 * @property {() => void} onMe called when the signed-in user is known or changed
 */

/** @type {Shell | null} */
let shell = null;
/** @type {Page | null} */
let page = null;

export const getShell = () => shell;
/** @param {Shell | null} s */
export const setShell = (s) => {
  shell = s;
};
/** Whether an answer that arrives now still has a signed-in shell to go to. */
export const signedIn = () => shell !== null && isAuthenticated();

export const currentPage = () => page;
/** @param {Page} p */
export function setPage(p) {
  page = p;
}

export function destroyPage() {
  if (!page) return;
  try {
    if (page.destroy) page.destroy();
  } catch (e) {
    console.error(e);
  }
  page.root.remove();
  page = null;
}

/**
 * Tell the current page about a change.
 * @template {"onTask" | "onWorkspaces" | "onLive" | "onPipelineRun" | "onPipelineText" | "onAiActivity"} M
 * @param {M} method
 * @param {Parameters<NonNullable<Page[M]>>} args
 */
export function notifyPage(method, ...args) {
  const fn = page ? page[method] : undefined;
  if (typeof fn !== "function") return;
  try {
    /** @type {(...a: unknown[]) => void} */ (fn)(...args);
  } catch (e) {
    console.error(e);
  }
}

/** The top bar. */
export function buildHeader() {
  /** @param {string} name @param {string} label @param {...import("./types.js").Child} extra */
  const navLink = (name, label, ...extra) =>
    h(
      "a.nav-link",
      { href: `#/${name}`, "data-testid": `nav-${name}` },
      h("span.nav-label", { text: label }),
      ...extra,
    );
  const navWorkspaces = navLink("workspaces", "Workspaces", h("span.nav-count", { hidden: true }));
  const navProjects = navLink(
    "projects",
    "Projects",
    h("span.nav-count.nav-count-invites", { hidden: true, "data-testid": "nav-invitations" }),
  );
  const navTasks = navLink("tasks", "Tasks");
  const navTokens = navLink("tokens", "Tokens");
  const navWebhooks = navLink("webhooks", "Webhooks");
  navWebhooks.title = "Outgoing webhooks: endpoints and their deliveries";
  const navAssistant = navLink("assistant", "Assistant");
  // The AI activity page (#/ai): "AI activity" where there is room, else "Activity".
  const navAiActivity = h(
    "a.nav-link",
    { href: "#/ai", "data-testid": "nav-ai-activity", title: "AI activity: tokens, cost and latency" },
    h("span.nav-label", null, h("span.nav-wide", { text: "AI activity" }), h("span.nav-narrow", { text: "Activity" })),
  );
  const navAdmin = navLink("admin", "Users");
  navAdmin.hidden = true;
  // The AI settings (providers and budgets): "AI providers" where there is room, else "AI".
  const navAi = h(
    "a.nav-link",
    { href: "#/settings/ai", "data-testid": "nav-ai", title: "AI providers and budgets" },
    h("span.nav-label", null, "AI", h("span.nav-more", { text: " providers" })),
  );
  const navProfile = navLink("profile", "Profile");
  const liveLabel = h("span.live-label", { text: "Connecting…" });
  const live = h(
    "span.live",
    { "data-testid": "live-indicator", "data-state": "reconnecting", role: "status" },
    h("span.live-dot"),
    liveLabel,
  );
  const email = h("span.user-email", { text: state.me ? state.me.email : "" });
  const logout = h("button.btn.btn-ghost.btn-small", { type: "button", "data-testid": "logout" }, "Log out");
  const staleBanner = h("div.stale-banner", { "data-testid": "stale-banner", role: "status", hidden: true });
  const root = h(
    "header.topbar",
    null,
    h(
      "div.topbar-inner",
      null,
      h(
        "a.brand",
        { href: "#/workspaces", "aria-label": "Fulcrum" },
        h("img.logo", { src: "/assets/favicon.svg", alt: "", width: 22, height: 22 }),
        h("span.brand-name", { text: "Fulcrum" }),
      ),
      h(
        "nav.nav",
        { "aria-label": "Main" },
        navWorkspaces,
        navProjects,
        navTasks,
        navTokens,
        navWebhooks,
        navAssistant,
        navAiActivity,
        navAi,
        navAdmin,
        navProfile,
      ),
      live,
      h("div.user", null, email, logout),
    ),
    staleBanner,
  );
  /** @type {[HTMLElement, string][]} */
  const navs = [
    [navWorkspaces, "workspaces"],
    [navProjects, "projects"],
    [navTasks, "tasks"],
    [navTokens, "tokens"],
    [navWebhooks, "webhooks"],
    [navAssistant, "assistant"],
    [navAiActivity, "ai"],
    [navAi, "settings-ai"],
    [navAdmin, "admin"],
    [navProfile, "profile"],
  ];
  return { root, navs, navWorkspaces, navProjects, navAdmin, live, liveLabel, email, logout, staleBanner };
}

/** The document title: the page's, or the built-once views'. */
export function updateTitle() {
  if (!shell) return;
  if (page) {
    document.title = `${page.title()} · Fulcrum`;
  } else if (shell.route === "tokens") {
    document.title = "Tokens · Fulcrum";
  } else {
    const online = [...state.workspaces.values()].filter((w) => w.online).length;
    document.title = state.workspacesLoaded ? `Workspaces (${online} online) · Fulcrum` : "Workspaces · Fulcrum";
  }
}

/** The Projects nav badge: how many invitations wait for the signed-in user. @param {number} n */
export function setInvitationCount(n) {
  if (!shell) return;
  const el = /** @type {HTMLElement} */ (shell.header.navProjects.querySelector(".nav-count"));
  el.hidden = !n;
  el.textContent = String(n);
  el.title = n ? `${plural(n, "pending invitation")} to a project` : "";
}

export async function loadInvitationCount() {
  try {
    const list = await api.myInvitations();
    if (shell) setInvitationCount(Array.isArray(list) ? list.length : 0);
  } catch {
    // Only the badge is missing; the projects page shows the invitations themselves.
  }
}

/** GET /me; the answer is applied to the shell (email, Users link, theme, time zone). */
export function loadMe() {
  const owner = shell; // a late answer must not land in a later session's shell
  /** @type {Promise<User>} */
  const p = api.me().then(
    (me) => {
      if (state.mePromise === p) state.mePromise = null;
      if (!me || typeof me !== "object") throw badResponse("Unexpected answer from /me.");
      if (shell && shell === owner) setMe(me);
      return me;
    },
    (err) => {
      if (state.mePromise === p) state.mePromise = null;
      throw err;
    },
  );
  state.mePromise = p;
  return p;
}

/** The signed-in user, loading it when it is not known yet. */
export function whenMe() {
  if (state.me) return Promise.resolve(state.me);
  return state.mePromise || loadMe();
}

/** @param {User} me */
export function setMe(me) {
  state.me = me;
  if (!shell) return;
  shell.header.email.textContent = me.email || "";
  shell.header.navAdmin.hidden = me.role !== "admin";
  shell.onMe();
  const prefs = me.preferences || {};
  applyTheme(prefs.theme);
  applyTimeZone(prefs.time_zone);
  tickTimes();
}
