// Fulcrum dashboard — views and state. No framework: small DOM helpers, hash routing,
// and keyed re-rendering so live updates only touch the workspace cards that changed.
// All data is put into the page with textContent / DOM nodes, never as HTML.
//
// Routes: #/workspaces, #/tokens (built once, shown/hidden), and pages built per visit:
// #/projects, #/projects/{id}, #/workspaces/{id}/tasks, #/tasks/{id}, #/profile, #/admin.
// #/reset/{token} (a one-time password-reset link) is outside the shell, signed in or not;
// #/authorize?{query} (OAuth consent) is outside the shell too, but needs a session.

import {
  api, login, logout, restoreSession, onSession, EventStream, isAuthenticated,
  ApiError, base64ToBytes, fetchWholeLog, resetPassword,
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

let dateFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
let dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** Whether `tz` is an IANA time zone this browser knows. */
function validTimeZone(tz) {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Dates are shown in the user's time zone (the browser's when none is set). */
function applyTimeZone(tz) {
  const zone = tz && validTimeZone(tz) ? { timeZone: tz } : {};
  dateFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", ...zone });
  dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium", ...zone });
}

// ------------------------------------------------------------------ theme

const THEMES = ["system", "light", "dark"];
const THEME_KEY = "fulcrum-theme"; // remembered so the login screen and the next load start in it

/** `data-theme` on <html>: "light" / "dark" force a palette, "system" follows the OS. */
function applyTheme(theme, remember = true) {
  const t = THEMES.includes(theme) ? theme : "system";
  document.documentElement.dataset.theme = t;
  if (remember) {
    try { localStorage.setItem(THEME_KEY, t); } catch { /* storage may be off */ }
  }
}

function storedTheme() {
  try { return localStorage.getItem(THEME_KEY); } catch { return null; }
}

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

/** "in 6 days", "in 5 h", "in 12 min", "soon" — how long until `iso`. */
function timeUntil(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return "at an unknown time";
  const m = Math.floor((t - Date.now()) / 60_000);
  if (m < 1) return "soon";
  if (m < 60) return `in ${m} min`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `in ${hr} h`;
  return `in ${plural(Math.round(hr / 24), "day")}`;
}

/** "expires in 6 days", with the exact time as a tooltip. */
function expiryEl(iso) {
  const t = parseTime(iso);
  return h("time.expiry.muted.small", {
    datetime: iso || null, "data-testid": "invitation-expiry",
    title: Number.isNaN(t) ? null : `Expires ${dateTimeFmt.format(new Date(t))}`,
  }, `expires ${timeUntil(iso)}`);
}

function formatTime(iso, mode) {
  if (mode === "elapsed") {
    const t = parseTime(iso);
    return Number.isNaN(t) ? "—" : fmtDuration(Math.max(0, Date.now() - t));
  }
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

let tickCount = 0;

/** Every second: running durations. Every 15 s (and when asked): everything else. */
function tickTimes(onlyElapsed) {
  const all = onlyElapsed !== true;
  for (const el of document.querySelectorAll(all ? "time[data-rel]" : "time[data-mode=elapsed]")) {
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

/** The relay's MCP endpoint (Streamable HTTP). */
function mcpEndpoint() {
  return `${location.origin}/mcp`;
}

/** An MCP client config entry (the `mcpServers` shape) for an MCP token. */
function mcpClientConfig(token) {
  return JSON.stringify({
    mcpServers: {
      fulcrum: { type: "http", url: mcpEndpoint(), headers: { Authorization: `Bearer ${token}` } },
    },
  }, null, 2);
}

function mcpAddCommand(token) {
  return `claude mcp add --transport http fulcrum ${mcpEndpoint()} --header "Authorization: Bearer ${token}"`;
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
  mePromise: null,           // the pending GET /me (pages that need the role wait for it)
  tokens: null,
  tokensError: null,
  createdToken: null,        // {id,name,prefix,token,...} — shown once
};

let stream = null;
let shell = null;            // the signed-in layout (null while on the login screen)
let resetShowing = false;    // the "set a new password" page (#/reset/TOKEN) is up; session events wait
let consentQuery = null;     // the OAuth consent page (#/authorize?QUERY) is up: its query string
let pollTimer = 0;
let tickTimer = 0;

const appRoot = document.getElementById("app");

// ------------------------------------------------------------------ login view

function showLogin(notice) {
  teardownShell();
  resetShowing = false;
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

// ------------------------------------------------------------------ password reset view

const RESET_MIN = 8;
const RESET_MAX = 1024;

/** "#/reset/TOKEN" -> "TOKEN" (opaque text); null for any other hash. */
function resetTokenFromHash(hash) {
  const m = /^#\/?reset\/(.+)$/.exec(String(hash || ""));
  if (!m) return null;
  let token = m[1];
  try { token = decodeURIComponent(token); } catch { /* keep it as written */ }
  return token.trim() || null;
}

/**
 * "Set a new password" card for a one-time link from `fulcrum-relay user reset-password`.
 * Replaces whatever is shown (a signed-in shell too); on success the link is dropped from
 * the address bar and the login form takes over. The token is never logged or shown.
 */
function showPasswordReset(token) {
  teardownShell();
  resetShowing = true;
  consentQuery = null;
  document.title = "Set a new password · Fulcrum";
  clear(appRoot);

  const password = h("input", {
    type: "password", name: "new-password", autocomplete: "new-password", required: true,
    "data-testid": "reset-password", id: "reset-password", "aria-describedby": "reset-password-hint",
  });
  const repeat = h("input", {
    type: "password", name: "new-password-repeat", autocomplete: "new-password", required: true,
    "data-testid": "reset-password-repeat", id: "reset-password-repeat",
  });
  const submit = h("button.btn.btn-primary.btn-block", { type: "submit", "data-testid": "reset-submit" }, "Set password");
  const error = h("div.form-error", { role: "alert", "data-testid": "reset-error", hidden: true });
  const expired = h("p.field-hint", {
    "data-testid": "reset-expired", hidden: true,
    text: "This link may have been used already or have expired. Ask an operator for a new one.",
  });

  const form = h("form.login-form", { novalidate: true },
    h("label.field", null, h("span.field-label", { text: "New password" }), password,
      h("span.field-hint", { id: "reset-password-hint", text: `At least ${RESET_MIN} characters.` })),
    h("label.field", null, h("span.field-label", { text: "Repeat it" }), repeat),
    error,
    expired,
    submit,
  );

  const showError = (text, focus) => {
    error.textContent = text;
    error.hidden = false;
    if (focus) focus.focus();
  };

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    expired.hidden = true;
    const pw = password.value;
    const chars = [...pw].length;
    if (chars < RESET_MIN || chars > RESET_MAX) {
      showError(chars < RESET_MIN
        ? `The password needs at least ${RESET_MIN} characters.`
        : `The password can have at most ${RESET_MAX} characters.`, password);
      return;
    }
    if (repeat.value !== pw) {
      showError("The two passwords are not the same.", repeat);
      return;
    }
    submit.disabled = true;
    submit.textContent = "Setting password…";
    try {
      await resetPassword(token, pw);
    } catch (err) {
      if (!form.isConnected) return; // left the page meanwhile
      submit.disabled = false;
      submit.textContent = "Set password";
      expired.hidden = err.status !== 401;
      showError(err.message || "Setting the password failed.", err.status === 422 ? password : null);
      return;
    }
    if (!form.isConnected) return;
    // Drop the used link from the address bar (and history entry) before anything else.
    history.replaceState(null, "", location.pathname + location.search);
    // The login screen should not sit on top of a live session: end any this tab still holds
    // (session events are ignored while resetShowing is set).
    if (isAuthenticated()) {
      try { await logout(); } catch { /* the session is gone locally anyway */ }
    }
    showLogin("Your password is set. Log in with it.");
  });

  appRoot.append(
    h("div.login-page", null,
      h("div.login-card", { "data-testid": "reset-card" },
        h("div.login-brand", null,
          h("img.logo", { src: "/assets/favicon.svg", alt: "", width: 36, height: 36 }),
          h("div", null, h("h1", { text: "Set a new password" }), h("p.muted", { text: "Choose the password you will sign in with" })),
        ),
        form,
        h("a.login-alt", { href: "#/", "data-testid": "reset-back" },
          isAuthenticated() ? "Back to the dashboard" : "Back to sign in"),
      ),
    ),
  );
  appRoot.removeAttribute("aria-busy");
  password.focus();
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
    if (shell || resetShowing || consentQuery !== null) return;
    showLogin(err.status === 0 ? err.message : null);
  });
}

function showBoot() {
  clear(appRoot);
  appRoot.setAttribute("aria-busy", "true");
  appRoot.append(h("div.boot", { role: "status" },
    h("img.logo", { src: "/assets/favicon.svg", alt: "", width: 28, height: 28 }), h("span", { text: "Loading Fulcrum…" })));
}

// ------------------------------------------------------------------ OAuth consent view

const CONSENT_LOGIN_NOTICE = "An application is asking to use Fulcrum for you. Sign in to review what it asks for.";
const CONSENT_PARAMS = ["response_type", "client_id", "redirect_uri", "code_challenge", "code_challenge_method", "state", "scope", "resource"];
let consentSeq = 0;

/** "#/authorize?a=1&b=2" -> "a=1&b=2"; null for any other hash. */
function authorizeQueryFromHash(hash) {
  const m = /^#\/?authorize\/?(?:\?(.*))?$/.exec(String(hash || ""));
  return m ? (m[1] || "") : null;
}

/** Where a redirect URI sends the browser, for people: its origin, or its scheme for an app's URI. */
function redirectTarget(uri) {
  try {
    const u = new URL(uri);
    if (u.origin && u.origin !== "null") return u.origin;
    return u.host ? `${u.protocol}//${u.host}` : u.protocol.replace(/:$/, "") + " (an app on this device)";
  } catch {
    return String(uri || "unknown");
  }
}

/** The relay's redirect_to may be a web page or an app's own scheme, never script or data. */
function safeRedirect(to) {
  if (typeof to !== "string" || !to) return null;
  try {
    const u = new URL(to);
    return ["javascript:", "data:", "vbscript:", "blob:", "file:"].includes(u.protocol) ? null : u.href;
  } catch {
    return null;
  }
}

/**
 * "<client> wants to use Fulcrum as <you>": the relay's GET /oauth/authorize sends the browser
 * here with its query. Outside the shell, but it needs a session: without one the login form
 * comes first (session events bring it back here).
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
  renderConsent(query);
}

function renderConsent(query) {
  const seq = ++consentSeq;
  clear(appRoot);
  const raw = new URLSearchParams(query);
  const params = new URLSearchParams();
  for (const k of CONSENT_PARAMS) if (raw.has(k)) params.set(k, raw.get(k));
  const param = (k) => (params.has(k) ? params.get(k) : undefined);

  const body = h("div.consent-body", null, loadingEl("Loading the request…"));
  const title = h("h1", { text: "Authorize access" });
  appRoot.append(
    h("div.login-page", null,
      h("div.login-card.consent-card", { "data-testid": "oauth-card" },
        h("div.login-brand", null,
          h("img.logo", { src: "/assets/favicon.svg", alt: "", width: 36, height: 36 }),
          h("div", null, title, h("p.muted", { text: "Fulcrum" }))),
        body,
      ),
    ),
  );
  appRoot.removeAttribute("aria-busy");

  const stillHere = () => seq === consentSeq && consentQuery === query && body.isConnected;
  const showFatal = (message) => {
    clear(body);
    body.append(
      h("div.form-error", { role: "alert", "data-testid": "oauth-error", text: message }),
      h("a.login-alt", { href: "#/", "data-testid": "oauth-back" }, "Go to the dashboard"));
  };

  Promise.all([api.oauthRequest(params.toString()), state.me ? Promise.resolve(state.me) : api.me().catch(() => null)])
    .then(([req, me]) => {
      if (!stillHere()) return;
      if (!req || typeof req !== "object" || typeof req.client_name !== "string") {
        showFatal("The relay returned an unexpected authorization request.");
        return;
      }
      const email = me && me.email ? me.email : "you";
      const scopes = Array.isArray(req.scopes) ? req.scopes.filter((s) => typeof s === "string") : [];
      const clientSite = safeHttpUrl(req.client_uri);
      document.title = `Authorize ${req.client_name} · Fulcrum`;
      title.textContent = `Authorize ${req.client_name}`;

      const error = h("div.form-error", { role: "alert", "data-testid": "oauth-error", hidden: true });
      const status = h("p.muted.small", { role: "status", hidden: true });
      const deny = h("button.btn", { type: "button", "data-testid": "oauth-deny" }, "Deny");
      const allow = h("button.btn.btn-primary", { type: "button", "data-testid": "oauth-allow" }, "Allow");
      const actions = h("div.consent-actions", null, deny, allow);
      const other = h("button.btn-link", { type: "button", "data-testid": "oauth-switch" }, "Use another account");
      other.addEventListener("click", async () => {
        other.disabled = true;
        try { await logout(); } catch { /* the session is gone locally anyway */ }
        // The "logout" event shows the login form; signing in comes back here.
      });

      const decide = async (approve) => {
        allow.disabled = deny.disabled = true;
        (approve ? allow : deny).textContent = approve ? "Allowing…" : "Denying…";
        error.hidden = true;
        try {
          const res = await api.oauthConsent({
            client_id: param("client_id") ?? req.client_id,
            redirect_uri: param("redirect_uri") ?? req.redirect_uri,
            code_challenge: param("code_challenge"),
            code_challenge_method: param("code_challenge_method"),
            state: param("state"),
            scope: param("scope") ?? scopes.join(" "),
            resource: param("resource") ?? (req.resource || undefined),
            approve,
          });
          const to = safeRedirect(res && res.redirect_to);
          if (!to) throw badResponse("The relay did not say where to send you back to.");
          if (!stillHere()) return;
          actions.hidden = true;
          status.textContent = `Sending you back to ${req.client_name}… If nothing happens, you can close this tab.`;
          status.hidden = false;
          window.location.assign(to);
        } catch (err) {
          if (!stillHere() || !isAuthenticated()) return;
          error.textContent = err.message || "That did not work.";
          error.hidden = false;
          allow.disabled = deny.disabled = false;
          allow.textContent = "Allow";
          deny.textContent = "Deny";
        }
      };
      allow.addEventListener("click", () => decide(true));
      deny.addEventListener("click", () => decide(false));

      clear(body);
      body.append(
        h("p.consent-lead", null,
          h("strong", { "data-testid": "oauth-client-name", text: req.client_name }),
          " wants to use Fulcrum as ",
          h("strong", { "data-testid": "oauth-user", text: email }), "."),
        clientSite ? h("a.small.consent-site", { href: clientSite, target: "_blank", rel: "noopener noreferrer" },
          redirectTarget(clientSite), svgIcon("external")) : null,
        h("div.consent-section", null,
          h("span.field-label", { text: "It will be able to" }),
          scopes.length
            ? h("ul.consent-scopes", { "data-testid": "oauth-scopes" }, scopes.map((s) => h("li", { "data-scope": s },
              h("span.badge.kind-mcp", { text: s }), h("span", { text: SCOPE_HINTS[s] || "" }))))
            : h("p.muted.small", { "data-testid": "oauth-scopes", text: "Nothing beyond knowing who you are." })),
        h("p.muted.small", null, "Either way, you will be sent to ",
          h("span.mono", { "data-testid": "oauth-redirect", text: redirectTarget(req.redirect_uri), title: req.redirect_uri }), "."),
        error,
        status,
        actions,
        h("p.muted.small.consent-who", null, `Signed in as ${email}. `, other),
      );
      deny.focus();
    }, (err) => {
      if (!stillHere() || !isAuthenticated()) return; // the session ended: the login form takes over
      showFatal(err.message || "This authorization request cannot be used.");
    });
}

// ------------------------------------------------------------------ signed-in shell

function enterApp() {
  if (shell) return;
  clear(appRoot);

  const navWorkspaces = h("a.nav-link", { href: "#/workspaces", "data-testid": "nav-workspaces" }, "Workspaces",
    h("span.nav-count", { hidden: true }));
  const navProjects = h("a.nav-link", { href: "#/projects", "data-testid": "nav-projects" }, "Projects",
    h("span.nav-count.nav-count-invites", { hidden: true, "data-testid": "nav-invitations" }));
  const navTokens = h("a.nav-link", { href: "#/tokens", "data-testid": "nav-tokens" }, "Tokens");
  const navAdmin = h("a.nav-link", { href: "#/admin", "data-testid": "nav-admin", hidden: true }, "Users");
  const navProfile = h("a.nav-link", { href: "#/profile", "data-testid": "nav-profile" }, "Profile");
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
      h("nav.nav", { "aria-label": "Main" }, navWorkspaces, navProjects, navTokens, navAdmin, navProfile),
      h("div.topbar-spacer"),
      live,
      h("div.user", null, email, logoutBtn),
    ),
  );

  const workspacesView = buildWorkspacesView();
  const tokensView = buildTokensView();
  const pageSlot = h("div.page-slot");
  const main = h("main.main", null, workspacesView.root, tokensView.root, pageSlot);
  appRoot.append(header, main);
  appRoot.removeAttribute("aria-busy");

  shell = {
    header, navWorkspaces, navProjects, navTokens, navAdmin, navProfile, live, email, main, pageSlot,
    workspacesView, tokensView, route: null,
  };

  // Opened without a route: the user's default project, once /me says which (if any).
  const landing = /^#?\/?$/.test(location.hash);
  window.addEventListener("hashchange", onHashChange);
  route();

  whenMe().then((me) => {
    const dp = me && me.preferences && me.preferences.default_project;
    if (shell && landing && dp && location.hash === "#/workspaces") {
      history.replaceState(null, "", `#/projects/${enc(dp)}`);
      route(true);
    }
  }, () => {});

  loadWorkspaces();
  loadInvitationCount();
  stream = new EventStream({ onMessage: onEvent, onState: onLiveState });
  stream.start();
  clearInterval(tickTimer);
  tickTimer = setInterval(() => { tickCount = (tickCount + 1) % 15; tickTimes(tickCount !== 0); }, 1_000);
}

/** The Projects nav badge: how many invitations wait for the signed-in user. */
function setInvitationCount(n) {
  if (!shell) return;
  const el = shell.navProjects.querySelector(".nav-count");
  el.hidden = !n;
  el.textContent = String(n);
  el.title = n ? `${plural(n, "pending invitation")} to a project` : "";
}

async function loadInvitationCount() {
  try {
    const list = await api.myInvitations();
    if (shell) setInvitationCount(Array.isArray(list) ? list.length : 0);
  } catch {
    // Only the badge is missing; the projects page shows the invitations themselves.
  }
}

/** GET /me; the result is applied to the shell (email, Users link, theme, time zone). */
function loadMe() {
  const owner = shell; // a late answer must not land in a later session's shell
  const p = api.me().then((me) => {
    if (state.mePromise === p) state.mePromise = null;
    if (!me || typeof me !== "object") throw badResponse("Unexpected answer from /me.");
    if (shell && shell === owner) setMe(me);
    return me;
  }, (err) => {
    if (state.mePromise === p) state.mePromise = null;
    throw err;
  });
  state.mePromise = p;
  return p;
}

/** The signed-in user, loading it when it is not known yet. */
function whenMe() {
  if (state.me) return Promise.resolve(state.me);
  return state.mePromise || loadMe();
}

function setMe(me) {
  state.me = me;
  if (!shell) return;
  shell.email.textContent = me.email || "";
  shell.navAdmin.hidden = me.role !== "admin";
  shell.tokensView.syncAdmin();
  const prefs = me.preferences || {};
  applyTheme(prefs.theme);
  applyTimeZone(prefs.time_zone);
  tickTimes();
}

function teardownShell() {
  window.removeEventListener("hashchange", onHashChange);
  destroyPage();
  for (const f of [...logFollowers.values()]) f.stop();
  logFollowers.clear();
  if (stream) { stream.stop(); stream = null; }
  clearInterval(tickTimer);
  clearTimeout(pollTimer);
  shell = null;
  Object.assign(state, {
    me: null, mePromise: null, workspaces: new Map(), workspacesLoaded: false, workspacesError: null,
    tokens: null, tokensError: null, createdToken: null, live: "stopped", expanded: new Set(),
  });
  cardCache.clear();
  tokenProjects = null;
  applyTimeZone(null);
}

/** "#/projects/abc" -> {view: "project", id: "abc"}; null for unknown routes. */
function parseRoute(hash) {
  const path = String(hash || "").replace(/^#\/?/, "").split("?")[0];
  let parts;
  try {
    parts = path.split("/").filter(Boolean).map((p) => decodeURIComponent(p));
  } catch {
    return null;
  }
  const [a, b, c] = parts;
  if (parts.length === 0) return { view: "workspaces" };
  if (parts.length === 1 && ["workspaces", "tokens", "projects", "profile", "admin"].includes(a)) return { view: a };
  if (parts.length === 2 && a === "projects") return { view: "project", id: b };
  if (parts.length === 2 && a === "tasks") return { view: "task", id: b };
  if (parts.length === 3 && a === "workspaces" && c === "tasks") return { view: "workspace-tasks", id: b };
  return null;
}

function onHashChange() {
  route(true);
}

function route(navigated) {
  if (!shell) return;
  const r = parseRoute(location.hash) || { view: "workspaces" };
  // The two built-once views keep their canonical hashes (also for "", "#/" and unknown routes).
  if ((r.view === "workspaces" || r.view === "tokens") && location.hash !== `#/${r.view}`) {
    history.replaceState(null, "", `#/${r.view}`);
  }
  const view = r.view;
  const key = `${view}:${r.id || ""}`;
  if (page && page.key !== key) destroyPage();
  if (view !== "workspaces" && view !== "tokens" && !page) {
    page = buildPage(r);
    page.key = key;
    shell.pageSlot.append(page.root);
    if (navigated) {
      window.scrollTo(0, 0);
      if (page.heading && page.heading.isConnected) page.heading.focus({ preventScroll: true });
    }
  }
  shell.route = view;
  shell.workspacesView.root.hidden = view !== "workspaces";
  shell.tokensView.root.hidden = view !== "tokens";
  const section = page ? page.nav : view;
  for (const [el, name] of [[shell.navWorkspaces, "workspaces"], [shell.navProjects, "projects"], [shell.navTokens, "tokens"],
    [shell.navAdmin, "admin"], [shell.navProfile, "profile"]]) {
    if (section === name) el.setAttribute("aria-current", view === name ? "page" : "true");
    else el.removeAttribute("aria-current");
  }
  if (view === "tokens") loadTokens();
  updateTitle();
  tickTimes();
}

function updateTitle() {
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
  // Log follows live on the socket: re-follow from where each one got to.
  for (const f of [...logFollowers.values()]) f.onLive(s);
  notifyPage("onLive", s);
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
  } else if (msg.type === "task" && msg.task && typeof msg.task === "object" && typeof msg.task.id === "string") {
    notifyPage("onTask", msg.task);
  } else if ((msg.type === "log" || msg.type === "log_end" || msg.type === "error") && typeof msg.task === "string") {
    const follower = logFollowers.get(msg.task);
    if (follower) follower.onMessage(msg);
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
  if (shell.route === "tokens") {
    shell.tokensView.fillLimit(); // new workspaces to limit a token to
    for (const el of shell.tokensView.listSlot.querySelectorAll("[data-limit-workspace]")) {
      const name = workspaceName(el.dataset.limitWorkspace);
      if (el.textContent !== name) el.textContent = name;
    }
  }

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
  notifyPage("onWorkspaces");
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
      h("a.btn.btn-small.ws-tasks", {
        href: `#/workspaces/${encodeURIComponent(w.id)}/tasks`, "data-testid": "workspace-tasks-link",
        "aria-label": `Tasks of ${w.name || "this workspace"}`,
      }, "Tasks"),
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

/** Token kinds: which scopes each may hold, its defaults, and whether it can be limited. */
const TOKEN_KINDS = {
  agent: { label: "Agent", option: "Agent", allowed: ["read", "run"], defaults: ["read", "run"], limit: false,
    placeholder: "e.g. alice-devbox", hint: "connects a workspace" },
  mcp: { label: "MCP", option: "MCP client", allowed: ["read", "write", "run"], defaults: ["read", "write", "run"], limit: true,
    placeholder: "e.g. claude-desktop", hint: "MCP clients (Claude Code, Cursor…)" },
  api: { label: "API", option: "API (scripts, CI)", allowed: ["read", "write", "run", "admin"], defaults: ["read"], limit: true,
    placeholder: "e.g. ci-nightly", hint: "scripts, CI, n8n on the REST API" },
  ingest: { label: "Ingest", option: "Ingest (AI activity)", allowed: ["ingest"], defaults: ["ingest"], limit: true,
    placeholder: "e.g. cursor-activity", hint: "AI tools report their activity" },
};
const SCOPES = ["read", "write", "run", "ingest", "admin"];
const SCOPE_HINTS = {
  read: "See your projects, workspaces, tasks and logs, read files",
  write: "Change projects and files in workspaces that allow it",
  run: "Start and cancel tasks",
  ingest: "Report AI activity, nothing else",
  admin: "Manage the relay's users (administrators only)",
};
const TOKEN_EXPIRY_DAYS = [["", "Never"], ["7", "7 days"], ["30", "30 days"], ["90", "90 days"], ["365", "1 year"]];

const isAdmin = () => !!(state.me && state.me.role === "admin");

/** A token's scopes in the canonical order (the API sends an array; tolerate a string). */
function tokenScopes(t) {
  const raw = Array.isArray(t.scopes) ? t.scopes : typeof t.scopes === "string" ? t.scopes.split(/[\s,]+/) : [];
  const set = new Set(raw.filter((s) => typeof s === "string" && s));
  return [...SCOPES.filter((s) => set.has(s)), ...[...set].filter((s) => !SCOPES.includes(s))];
}

/** "Agent · read, run", "MCP · read", "API · read, write", "Ingest". */
function tokenKindLabel(t) {
  const k = TOKEN_KINDS[t.kind];
  const label = k ? k.label : String(t.kind || "token");
  const scopes = tokenScopes(t);
  return t.kind === "ingest" || !scopes.length ? label : `${label} · ${scopes.join(", ")}`;
}

/** "Everything", or the project / workspace it is limited to (by name when known). */
function tokenLimit(t) {
  if (t.project_id) {
    const name = projectNames.get(t.project_id);
    return h("span", { title: `Only project ${name || t.project_id}` },
      h("span.muted", { text: "Project " }), name || String(t.project_id).slice(0, 8));
  }
  if (t.workspace_id) {
    // The name is filled in again when the workspaces arrive after the tokens.
    return h("span", { title: `Only workspace ${workspaceName(t.workspace_id)}` },
      h("span.muted", { text: "Workspace " }), h("span", { dataset: { limitWorkspace: t.workspace_id }, text: workspaceName(t.workspace_id) }));
  }
  return h("span.muted", { text: "Everything" });
}

const tokenExpired = (t) => !!t.expires_at && parseTime(t.expires_at) <= Date.now();

function buildTokensView() {
  const name = h("input", {
    type: "text", name: "name", maxlength: 100, placeholder: TOKEN_KINDS.agent.placeholder, autocomplete: "off",
    "data-testid": "token-name", "aria-label": "Token name", spellcheck: "false",
  });
  const kind = h("select", { name: "kind", "data-testid": "token-kind", "aria-label": "Token kind" },
    Object.entries(TOKEN_KINDS).map(([value, k]) => h("option", { value, text: k.option })));
  const limit = h("select", { name: "limit", "data-testid": "token-limit", "aria-label": "Limit to" },
    h("option", { value: "", text: "Everything" }));
  const expiry = h("select", { name: "expiry", "data-testid": "token-expiry", "aria-label": "Expires after" },
    TOKEN_EXPIRY_DAYS.map(([value, text]) => h("option", { value, text })));
  const scopeBoxes = new Map();
  const scopeLabels = new Map();
  for (const s of SCOPES) {
    const box = h("input", { type: "checkbox", name: "scope", value: s, "data-testid": `token-scope-${s}` });
    scopeBoxes.set(s, box);
    scopeLabels.set(s, h("label.check", { title: SCOPE_HINTS[s] }, box, h("span", { text: s })));
  }
  const scopeHint = h("span.field-hint.scope-hint", { "aria-live": "polite" });
  const kindHint = h("p.field-hint.kind-hint");
  const create = h("button.btn.btn-primary", { type: "submit", "data-testid": "token-create" }, "Create token");
  const formError = h("div.form-error", { role: "alert", "data-testid": "token-error", hidden: true });
  const form = h("form.token-create", { "aria-label": "New token" },
    h("div.token-form", null,
      h("label.field.grow", null, h("span.field-label", { text: "New token name" }), name),
      h("label.field", null, h("span.field-label", { text: "Kind" }), kind),
      h("label.field", null, h("span.field-label", { text: "Limit to" }), limit),
      h("label.field", null, h("span.field-label", { text: "Expires" }), expiry),
      create,
    ),
    h("fieldset.scopes", null, h("legend.field-label", { text: "Scopes" }), [...scopeLabels.values()], scopeHint),
  );

  const showScopeHint = () => {
    const on = SCOPES.filter((s) => scopeBoxes.get(s).checked);
    scopeHint.textContent = on.length ? on.map((s) => SCOPE_HINTS[s]).join(" · ") : "Choose at least one scope.";
  };
  // The kind decides which scopes are allowed (admin only for administrators) and resets them to
  // its defaults; agent tokens cannot be limited to a project or workspace.
  const syncKind = (resetScopes) => {
    const k = TOKEN_KINDS[kind.value] || TOKEN_KINDS.agent;
    for (const s of SCOPES) {
      const box = scopeBoxes.get(s);
      const allowed = k.allowed.includes(s) && (s !== "admin" || isAdmin());
      box.disabled = !allowed;
      if (resetScopes) box.checked = allowed && k.defaults.includes(s);
      else if (!allowed) box.checked = false;
    }
    scopeLabels.get("admin").hidden = !isAdmin();
    limit.disabled = !k.limit;
    limit.title = k.limit ? "" : "Agent tokens cannot be limited to a project or workspace.";
    if (!k.limit) limit.value = "";
    name.placeholder = k.placeholder;
    clear(kindHint);
    Object.entries(TOKEN_KINDS).forEach(([value, x], i) => {
      if (i) kindHint.append(" · ");
      kindHint.append(value === kind.value
        ? h("strong", { text: `${x.label}: ${x.hint}` })
        : `${x.label}: ${x.hint}`);
    });
    showScopeHint();
  };
  kind.addEventListener("change", () => syncKind(true));
  for (const box of scopeBoxes.values()) box.addEventListener("change", showScopeHint);
  syncKind(true);

  // "Limit to": every active project, then every workspace. Rebuilt only when the choices change.
  let limitSig = "";
  const fillLimit = () => {
    const projects = (tokenProjects || []).filter((p) => p.status !== "archived")
      .sort((a, b) => String(a.name || "").localeCompare(String(b.name || ""), undefined, { sensitivity: "base", numeric: true }));
    const workspaces = [...state.workspaces.values()]
      .sort((a, b) => String(a.name || "").localeCompare(String(b.name || ""), undefined, { sensitivity: "base", numeric: true }));
    const sig = JSON.stringify([projects.map((p) => [p.id, p.name]), workspaces.map((w) => [w.id, w.name])]);
    if (sig === limitSig) return;
    limitSig = sig;
    const current = limit.value;
    clear(limit);
    limit.append(h("option", { value: "", text: "Everything" }));
    if (projects.length) {
      limit.append(h("optgroup", { label: "Projects" },
        projects.map((p) => h("option", { value: `project:${p.id}`, text: p.name || p.id }))));
    }
    if (workspaces.length) {
      limit.append(h("optgroup", { label: "Workspaces" },
        workspaces.map((w) => h("option", { value: `workspace:${w.id}`, text: w.name || w.id }))));
    }
    limit.value = [...limit.options].some((o) => o.value === current) ? current : "";
  };

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formError.hidden = true;
    const showError = (text, focus) => {
      formError.textContent = text;
      formError.hidden = false;
      if (focus) focus.focus();
    };
    const value = name.value.trim();
    if (!value || value.length > 100) {
      showError(value ? "Name must be at most 100 characters." : "Give the token a name, e.g. the workspace, tool or person it's for.", name);
      return;
    }
    const scopes = SCOPES.filter((s) => scopeBoxes.get(s).checked && !scopeBoxes.get(s).disabled);
    if (!scopes.length) {
      showError("Choose at least one scope.", [...scopeBoxes.values()].find((b) => !b.disabled));
      return;
    }
    const body = { name: value, kind: kind.value, scopes };
    const [limitKind, limitId] = limit.disabled ? [] : limit.value.split(":");
    if (limitKind === "project" && limitId) body.project_id = limitId;
    if (limitKind === "workspace" && limitId) body.workspace_id = limitId;
    if (expiry.value) body.expires_at = new Date(Date.now() + Number(expiry.value) * 86_400_000).toISOString();
    create.disabled = true;
    create.textContent = "Creating…";
    try {
      const tok = await api.createToken(body);
      state.createdToken = tok;
      name.value = "";
      tokensSeq++;
      if (state.tokens) {
        state.tokens = [{ revoked_at: null, last_used_at: null, ...tok, token: undefined }, ...state.tokens.filter((t) => t.id !== tok.id)];
      }
      renderTokens();
      loadTokens();
    } catch (err) {
      showError(err.message);
    } finally {
      create.disabled = false;
      create.textContent = "Create token";
    }
  });

  const secretSlot = h("div");
  const listSlot = h("div");
  const root = h("section.view.view-narrow", { hidden: true, "aria-labelledby": "tok-title" },
    h("div.view-head", null,
      h("div.view-title", null, h("h1", { id: "tok-title", text: "Tokens" })),
    ),
    h("p.lead.muted", null,
      "Tokens let software act for you. Each holds scopes that say what it may do, and all but agent tokens can be limited to one project or workspace. The full token is shown only once, when you create it; revoking a token cuts off everything using it."),
    h("div.panel", null, form, kindHint, formError),
    secretSlot,
    listSlot,
  );
  return { root, name, secretSlot, listSlot, fillLimit, syncAdmin: () => syncKind(false) };
}

let tokensSeq = 0; // bumped by every load and local change; only the latest load is applied
let tokenProjects = null; // the caller's projects, for "Limit to" and the rows' limit column

async function loadTokens() {
  const seq = ++tokensSeq;
  if (!state.tokens) renderTokens();
  api.projects().then((list) => {
    if (!shell || !Array.isArray(list)) return;
    tokenProjects = list.filter((p) => p && typeof p.id === "string");
    for (const p of tokenProjects) projectNames.set(p.id, p.name);
    shell.tokensView.fillLimit();
    if (state.tokens && state.tokens.some((t) => t.project_id)) renderTokens();
  }).catch(() => { /* only the project choices are missing */ });
  try {
    const list = await api.tokens();
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
  v.fillLimit();

  // Shown-once secret.
  clear(v.secretSlot);
  const ct = state.createdToken;
  if (ct) {
    const done = h("button.btn.btn-small", { type: "button" }, "Done");
    done.addEventListener("click", () => { state.createdToken = null; renderTokens(); });
    v.secretSlot.append(
      h("div.secret-panel", { role: "region", "aria-label": "New token" },
        h("div.secret-head", null,
          h("h2", null, "Token ", h("span.mono", { text: ct.name }), " created ",
            h("span.badge", { class: `kind-${TOKEN_KINDS[ct.kind] ? ct.kind : "agent"}`, text: tokenKindLabel(ct) })),
          done,
        ),
        h("p.warn", null, h("strong", { text: "Copy it now — you won't see this again." }),
          " Only a hash is stored on the relay."),
        h("div.secret-box", null, codeBox(ct.token, { "data-testid": "token-secret", "data-token-id": ct.id })),
        tokenUsage(ct),
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
      h("h2", { text: "No tokens yet" }),
      h("p.muted", { text: "Create one above: an agent token to connect a workspace, an MCP token for an MCP client, an API token for a script." })));
    return;
  }

  const dead = (t) => (t.revoked_at || tokenExpired(t) ? 1 : 0);
  const tokens = [...state.tokens].sort((a, b) =>
    dead(a) - dead(b) || (parseTime(b.created_at) || 0) - (parseTime(a.created_at) || 0));

  const rows = tokens.map((t) => {
    const revoked = !!t.revoked_at;
    const expired = !revoked && tokenExpired(t);
    const scopes = tokenScopes(t);
    let action = null;
    if (!revoked && !expired) {
      action = h("button.btn.btn-small.btn-danger", { type: "button", "data-testid": "token-revoke" }, "Revoke");
      action.addEventListener("click", () => revokeToken(t, action));
    }
    let status;
    if (revoked) {
      status = h("span.status.status-revoked", { "data-testid": "token-status" }, "Revoked ", timeEl(t.revoked_at));
    } else if (expired) {
      status = h("span.status.status-revoked", { "data-testid": "token-status" }, "Expired ", timeEl(t.expires_at));
    } else {
      status = [
        h("span.status.status-active", { "data-testid": "token-status" }, h("span.dot.dot-online"), "Active"),
        t.expires_at ? h("div.muted.small", { "data-testid": "token-expiry-label", title: dateTimeFmt.format(new Date(parseTime(t.expires_at))) },
          `expires ${timeUntil(t.expires_at)}`) : null,
      ];
    }
    return h("tr", {
      "data-testid": "token-row", "data-token-id": t.id, "data-revoked": revoked ? "true" : "false",
      "data-kind": t.kind || "", "data-scopes": scopes.join(" "), class: revoked || expired ? "is-revoked" : "",
    },
      h("td.t-name", null,
        h("div.clip", { text: t.name, title: t.name }),
        h("div.muted.small.clip", null,
          h("span.mono.prefix", { text: `${t.prefix || ""}…`, title: "Token prefix" }),
          t.oauth_client_name ? h("span", { "data-testid": "token-oauth-client", text: ` · OAuth · ${t.oauth_client_name}` }) : null)),
      h("td", null, h("span.badge", {
        class: `kind-${TOKEN_KINDS[t.kind] ? t.kind : "agent"}`,
        "data-testid": "token-kind-badge", "data-kind": t.kind || "",
        title: scopes.map((s) => `${s}: ${SCOPE_HINTS[s] || ""}`).join("\n"),
        text: tokenKindLabel(t),
      })),
      h("td.t-limit", { "data-testid": "token-limit-label" }, tokenLimit(t)),
      h("td.t-time", null, timeEl(t.created_at)),
      h("td.t-time", null, t.last_used_at
        ? [timeEl(t.last_used_at), t.last_used_addr ? h("div.muted.small.addr", { text: `from ${t.last_used_addr}` }) : null]
        : h("span.muted", { text: "never" })),
      h("td", null, status),
      h("td.t-actions", null, action),
    );
  });

  v.listSlot.append(
    h("div.table-wrap", null,
      h("table.tokens", null,
        h("thead", null, h("tr", null,
          h("th", { text: "Name" }), h("th", { text: "Kind" }), h("th", { text: "Limit" }),
          h("th", { text: "Created" }), h("th", { text: "Last used" }), h("th", { text: "Status" }), h("th", { "aria-label": "Actions" }))),
        h("tbody", null, rows),
      ),
    ),
  );
}

/** How to use a just-created token, by kind. */
function tokenUsage(ct) {
  if (ct.kind === "mcp") return mcpUsage(ct);
  if (ct.kind === "api") {
    return [
      h("p.muted.small", { text: "Send it as “Authorization: Bearer <token>” to the REST API under /api/v1, e.g.:" }),
      codeBox(`curl -H "Authorization: Bearer ${ct.token}" ${location.origin}/api/v1/projects`, { "data-testid": "api-example" }),
    ];
  }
  if (ct.kind === "ingest") {
    return h("p.muted.small", { text: "Give it to the AI tool that reports its activity; it sends it as “Authorization: Bearer <token>”. It can read nothing." });
  }
  return [
    h("p.muted.small", { text: "Run this in the workspace you want to connect:" }),
    codeBox(agentCommand(ct.token)),
  ];
}

/** How to use a just-created MCP token: the endpoint, a client config entry, a Claude Code command. */
function mcpUsage(ct) {
  const scopes = tokenScopes(ct);
  const missing = TOKEN_KINDS.mcp.allowed.filter((s) => !scopes.includes(s));
  return [
    missing.length
      ? h("p.muted.small", { text: `This token holds ${scopes.join(", ") || "no scope"}: its client is not offered the tools that need ${missing.join(" or ")}.` })
      : null,
    h("p.muted.small", { text: "MCP endpoint (Streamable HTTP) — send the token as “Authorization: Bearer <token>”:" }),
    codeBox(mcpEndpoint(), { "data-testid": "mcp-endpoint" }),
    h("p.muted.small", { text: "Add it to an MCP client's config (e.g. Claude Code's .mcp.json, Cursor's mcp.json):" }),
    codeBox(mcpClientConfig(ct.token), { class: "codebox-pre", "data-testid": "mcp-config" }),
    h("p.muted.small", { text: "Or, with Claude Code:" }),
    codeBox(mcpAddCommand(ct.token), { "data-testid": "mcp-command" }),
  ];
}

async function revokeToken(t, btn) {
  const who = {
    agent: "Agents using it will be disconnected and can't reconnect with it.",
    mcp: t.oauth_client_name
      ? `${t.oauth_client_name} will lose access and has to ask for it again.`
      : "MCP clients using it will lose access and can't reconnect with it.",
    api: "Scripts and jobs using it will be refused from now on.",
    ingest: "Tools reporting activity with it will be refused from now on.",
  }[t.kind] || "Everything using it will lose access.";
  // eslint-disable-next-line no-alert
  if (!window.confirm(`Revoke the token “${t.name}” (${t.prefix}…)?\n\n${who}`)) return;
  btn.disabled = true;
  btn.textContent = "Revoking…";
  try {
    await api.revokeToken(t.id);
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

// ------------------------------------------------------------------ pages with parameters
//
// Projects, a project, a workspace's tasks and a task are "pages": built when their route is
// entered and destroyed when it is left (a page may hold a log follow or timers). The current
// page hears about task and workspace changes and about the socket's state.

let page = null;             // {key, root, heading, nav, title(), destroy(), onTask(t), onWorkspaces(), onLive(s)}
let uidSeq = 0;
const uid = (prefix) => `${prefix}-${++uidSeq}`;
const enc = encodeURIComponent;
const projectNames = new Map(); // project id -> name, for links in task pages

function buildPage(r) {
  if (r.view === "projects") return buildProjectsPage();
  if (r.view === "project") return buildProjectPage(r.id);
  if (r.view === "workspace-tasks") return buildWorkspaceTasksPage(r.id);
  if (r.view === "task") return buildTaskPage(r.id);
  if (r.view === "profile") return buildProfilePage();
  if (r.view === "admin") return buildAdminPage();
  return null;
}

function destroyPage() {
  if (!page) return;
  try { if (page.destroy) page.destroy(); } catch (e) { console.error(e); }
  page.root.remove();
  page = null;
}

function notifyPage(method, arg) {
  if (!page || typeof page[method] !== "function") return;
  try { page[method](arg); } catch (e) { console.error(e); }
}

/** <label> above a control. */
function field(label, control, hint) {
  if (!control.id) control.id = uid("f");
  return h("div.field", null,
    h("label.field-label", { for: control.id, text: label }),
    control,
    hint ? h("span.field-hint", { text: hint }) : null);
}

function crumbs(...items) {
  const out = [];
  items.filter(Boolean).forEach((it, i) => {
    if (i) out.push(h("span.crumb-sep", { "aria-hidden": "true", text: "/" }));
    out.push(it);
  });
  return h("nav.crumbs", { "aria-label": "Breadcrumb" }, out);
}

function loadingEl(text) {
  return h("div.loading", null, h("span.spinner"), text);
}

function errorBanner(text, retry) {
  let btn = null;
  if (retry) {
    btn = h("button.btn.btn-small", { type: "button" }, "Retry");
    btn.addEventListener("click", () => { btn.disabled = true; retry(); });
  }
  return h("div.banner", { role: "alert" }, h("span", { text }), btn);
}

function badResponse(message) {
  return new ApiError(500, "bad_response", message);
}

function workspaceName(id) {
  const w = state.workspaces.get(id);
  return (w && w.name) || (typeof id === "string" ? id.slice(0, 8) : "unknown");
}

function workspaceTasksLink(id, attrs = {}) {
  return h("a", { href: `#/workspaces/${enc(id)}/tasks`, ...attrs, text: workspaceName(id) });
}

// ------------------------------------------------------------------ tasks: formatting

const TASK_STATES = ["queued", "dispatched", "running", "succeeded", "failed", "canceled", "timed_out", "lost"];
const ACTIVE_STATES = new Set(["queued", "dispatched", "running"]);
const STATE_LABELS = { timed_out: "timed out" };
const isActive = (t) => !!t && ACTIVE_STATES.has(t.state);

function fmtDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const total = Math.floor(s);
  const m = Math.floor(total / 60);
  if (m < 60) return `${m} min ${total % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function fmtBytes(n) {
  if (!Number.isFinite(n) || n < 0) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function taskTitle(t) {
  if (typeof t.command === "string" && t.command !== "") return t.command;
  if (typeof t.step === "string" && t.step !== "") return `step: ${t.step}`;
  return "(no command)";
}

function stateBadge(st, testid = "task-state") {
  const known = TASK_STATES.includes(st) ? st : "unknown";
  return h("span.task-state", { class: `st-${known}`, "data-testid": testid, "data-state": st || "" },
    ACTIVE_STATES.has(known) ? h("span.state-pulse", { "aria-hidden": "true" }) : null,
    STATE_LABELS[known] || known);
}

function exitText(t) {
  if (Number.isFinite(t.exit_code)) return String(t.exit_code);
  if (t.signal !== null && t.signal !== undefined && t.signal !== "") return `signal ${t.signal}`;
  return "—";
}

/** Finished: the recorded duration. Running: a live elapsed time (the ticker updates it). */
function taskDurationEl(t, attrs = {}) {
  if (Number.isFinite(t.duration_ms)) return h("span", { ...attrs, text: fmtDuration(t.duration_ms) });
  const started = parseTime(t.started_at);
  if (!Number.isNaN(started)) {
    if (isActive(t)) {
      return h("time.rel", { ...attrs, datetime: t.started_at, dataset: { rel: t.started_at, mode: "elapsed" } },
        fmtDuration(Date.now() - started));
    }
    const finished = parseTime(t.finished_at);
    if (!Number.isNaN(finished)) return h("span", { ...attrs, text: fmtDuration(finished - started) });
  }
  return h("span.muted", { ...attrs, text: "—" });
}

function commitEl(t) {
  const sha = typeof t.commit_sha === "string" && t.commit_sha ? t.commit_sha : null;
  if (!sha && !t.branch) return h("span.muted", { text: "—" });
  return h("span.commit-ref.mono", { title: [t.branch, sha].filter(Boolean).join(" @ ") },
    h("span.ref-branch", { text: t.branch || "detached" }),
    sha ? h("span.ref-at", { text: "@" }) : null,
    sha ? h("span.ref-sha", { text: sha.slice(0, 7) }) : null);
}

function testCounts(ts, testid) {
  if (!ts || typeof ts !== "object") return h("span.muted", { text: "—", "data-testid": testid });
  const n = (x) => (Number.isFinite(x) ? x : 0);
  return h("span.tests", {
    "data-testid": testid, "data-passed": n(ts.passed), "data-failed": n(ts.failed), "data-skipped": n(ts.skipped),
    title: `${n(ts.passed)} passed, ${n(ts.failed)} failed, ${n(ts.skipped)} skipped`,
  },
  h("span.tc.tc-passed", { text: `${n(ts.passed)} ✓` }),
  h("span.tc.tc-failed", { class: n(ts.failed) ? "nonzero" : "", text: `${n(ts.failed)} ✗` }),
  n(ts.skipped) ? h("span.tc.tc-skipped", { text: `${n(ts.skipped)} skipped` }) : null);
}

function triggeredBy(t) {
  return h("span.who", null,
    h("span", { text: t.triggered_by_email || (t.triggered_by ? String(t.triggered_by).slice(0, 8) : "unknown") }),
    t.source === "terminal" ? h("span.tag", { text: "terminal", title: "Started from a terminal session" }) : null);
}

// ------------------------------------------------------------------ tasks: list component

/**
 * A paged, filterable task list for a project or a workspace, kept current by task events:
 * rows that are on screen are replaced in place; new tasks reload page 1 (debounced).
 */
function taskList(scope, { showWorkspace = false, perPage = 25 } = {}) {
  const ls = { state: "", page: 1, perPage, total: 0, items: [], loaded: false, error: null, seq: 0, reloadTimer: 0 };
  const rows = new Map(); // task id -> <tr>

  const filter = h("select", { "data-testid": "task-filter" },
    h("option", { value: "", text: "All states" }),
    TASK_STATES.map((s) => h("option", { value: s, text: STATE_LABELS[s] || s })));
  filter.addEventListener("change", () => { ls.state = filter.value; ls.page = 1; load(); });
  const count = h("span.muted.small", { "data-testid": "task-count" });
  const prev = h("button.btn.btn-small", { type: "button", "data-testid": "task-prev" }, "← Newer");
  const next = h("button.btn.btn-small", { type: "button", "data-testid": "task-next" }, "Older →");
  const pageInfo = h("span.muted.small", { "data-testid": "task-page-info", "aria-live": "polite" });
  prev.addEventListener("click", () => { if (ls.page > 1) { ls.page--; load(); } });
  next.addEventListener("click", () => { if (ls.page * ls.perPage < ls.total) { ls.page++; load(); } });
  const body = h("div.task-list-body");
  const pager = h("div.pager", { hidden: true }, prev, pageInfo, next);
  const root = h("div.task-list", { "data-testid": "task-list" },
    h("div.list-toolbar", null, field("State", filter), h("span.grow"), count),
    body,
    pager,
  );

  const params = () => ({
    project: scope.project, workspace: scope.workspace, state: ls.state, page: ls.page, per_page: ls.perPage,
  });
  const matches = (t) => (scope.project ? t.project_id === scope.project : true) &&
    (scope.workspace ? t.workspace_id === scope.workspace : true);

  async function load() {
    const seq = ++ls.seq;
    clearTimeout(ls.reloadTimer);
    if (!ls.loaded) render();
    try {
      const { data, meta } = await api.tasks(params());
      if (seq !== ls.seq) return;
      ls.items = Array.isArray(data) ? data.filter((t) => t && typeof t.id === "string") : [];
      ls.total = meta && Number.isFinite(meta.total) ? meta.total : ls.items.length;
      if (meta && Number.isFinite(meta.per_page) && meta.per_page > 0) ls.perPage = meta.per_page;
      if (meta && Number.isFinite(meta.page) && meta.page > 0) ls.page = meta.page;
      ls.loaded = true;
      ls.error = null;
      // The last page went away (tasks deleted, or a filter shrank it): show the new last page.
      if (ls.items.length === 0 && ls.page > 1 && ls.total > 0) {
        ls.page = Math.max(1, Math.ceil(ls.total / ls.perPage));
        load();
        return;
      }
    } catch (err) {
      if (seq !== ls.seq || !shell || !isAuthenticated()) return;
      ls.error = err.message;
    }
    render();
  }

  function render() {
    clear(body);
    rows.clear();
    if (ls.error && !ls.loaded) {
      body.append(errorBanner(`Couldn't load tasks: ${ls.error}`, load));
    } else if (!ls.loaded) {
      body.append(loadingEl("Loading tasks…"));
    } else if (ls.items.length === 0) {
      body.append(h("div.empty.empty-small", { "data-testid": "task-empty" },
        h("p.muted", { text: ls.state ? `No ${STATE_LABELS[ls.state] || ls.state} tasks.` : "No tasks yet." })));
    } else {
      if (ls.error) body.append(errorBanner(`Couldn't refresh tasks: ${ls.error}`, load));
      const trs = ls.items.map((t) => {
        const tr = taskRow(t, showWorkspace);
        rows.set(t.id, tr);
        return tr;
      });
      body.append(h("div.table-wrap", null,
        h("table.data.tasks-table", null,
          h("thead", null, h("tr", null,
            h("th", { scope: "col", text: "State" }),
            h("th", { scope: "col", text: "Task" }),
            showWorkspace ? h("th", { scope: "col", text: "Workspace" }) : null,
            h("th", { scope: "col", text: "Commit" }),
            h("th", { scope: "col", text: "Duration" }),
            h("th", { scope: "col", text: "Exit" }),
            h("th", { scope: "col", text: "Tests" }),
            h("th", { scope: "col", text: "Triggered by" }),
            h("th", { scope: "col", text: "Created" }))),
          h("tbody", null, trs))));
    }
    const from = ls.items.length ? (ls.page - 1) * ls.perPage + 1 : 0;
    const to = from ? from + ls.items.length - 1 : 0;
    count.textContent = ls.loaded ? plural(ls.total, "task") : "";
    pageInfo.textContent = ls.total ? `${from}–${to} of ${ls.total}` : "";
    pager.hidden = !ls.loaded || ls.total <= ls.perPage && ls.page === 1;
    prev.disabled = ls.page <= 1;
    next.disabled = ls.page * ls.perPage >= ls.total;
  }

  function onTask(t) {
    if (!matches(t)) return;
    const i = ls.items.findIndex((x) => x.id === t.id);
    if (i >= 0) {
      ls.items[i] = t;
      const old = rows.get(t.id);
      if (old) {
        const tr = taskRow(t, showWorkspace);
        old.replaceWith(tr);
        rows.set(t.id, tr);
      }
    } else if (ls.page === 1) {
      // A new task: let the relay place it (filter, order, total).
      clearTimeout(ls.reloadTimer);
      ls.reloadTimer = setTimeout(load, 250);
    }
  }

  function refreshNames() {
    if (!showWorkspace) return;
    for (const [id, tr] of rows) {
      const t = ls.items.find((x) => x.id === id);
      const a = tr.querySelector("[data-col=workspace] a");
      if (t && a && a.textContent !== workspaceName(t.workspace_id)) a.textContent = workspaceName(t.workspace_id);
    }
  }

  return { root, load, onTask, refreshNames, destroy: () => { ls.seq++; clearTimeout(ls.reloadTimer); } };
}

function taskRow(t, showWorkspace) {
  return h("tr", { "data-testid": "task-row", "data-task-id": t.id, "data-state": t.state || "" },
    h("td", null, stateBadge(t.state, "task-row-state")),
    h("td.task-cmd", null,
      h("a.mono", { href: `#/tasks/${enc(t.id)}`, title: taskTitle(t), "data-testid": "task-link" }, taskTitle(t)),
      t.repo && t.repo !== "." ? h("span.muted.small.task-repo", { text: `in ${t.repo}` }) : null),
    showWorkspace ? h("td", { "data-col": "workspace" }, workspaceTasksLink(t.workspace_id)) : null,
    h("td", null, commitEl(t)),
    h("td.num", null, taskDurationEl(t)),
    h("td.num", { "data-testid": "task-row-exit", class: Number.isFinite(t.exit_code) && t.exit_code !== 0 ? "bad" : "" }, exitText(t)),
    h("td", null, testCounts(t.test_summary, "task-row-tests")),
    h("td", null, triggeredBy(t)),
    h("td.t-time", null, timeEl(t.created_at)),
  );
}

// ------------------------------------------------------------------ tasks: run form

function parseEnv(text) {
  const env = {};
  const lines = String(text || "").split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    const key = eq > 0 ? line.slice(0, eq).trim() : "";
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new Error(`Environment line ${i + 1}: expected KEY=value.`);
    }
    env[key] = line.slice(eq + 1);
  }
  return env;
}

/**
 * "Run" form. On a workspace: a repository select and a command. On a project: a command or a
 * QA step, and a repository path; the relay picks an online workspace. Opens the new task.
 */
function runForm({ workspaceId = null, projectId = null }) {
  const forProject = !!projectId;
  let repoControl;
  if (forProject) {
    repoControl = h("input.mono", { type: "text", value: ".", spellcheck: "false", autocomplete: "off", "data-testid": "run-repo" });
  } else {
    repoControl = h("select.mono", { "data-testid": "run-repo" });
  }
  const command = h("input.mono", {
    type: "text", placeholder: "e.g. cargo test", spellcheck: "false", autocomplete: "off", "data-testid": "run-command",
  });
  const step = h("input.mono", {
    type: "text", placeholder: "e.g. test", spellcheck: "false", autocomplete: "off", "data-testid": "run-step",
  });
  const env = h("textarea.mono", { rows: 3, spellcheck: "false", placeholder: "RUST_LOG=debug", "data-testid": "run-env" });
  const timeout = h("input", { type: "number", min: 1, step: 1, placeholder: "relay default", "data-testid": "run-timeout" });
  const submit = h("button.btn.btn-primary", { type: "submit", "data-testid": "run-submit" }, "Run");
  const error = h("div.form-error", { role: "alert", "data-testid": "run-error", hidden: true });
  const note = h("p.muted.small.run-note", { hidden: true });

  const commandField = field("Command", command);
  const stepField = field("QA step", step, "A step defined for the project, e.g. test or lint");
  let kind = "command";
  let kindSwitch = null;
  if (forProject) {
    const name = uid("kind");
    const radio = (value, label) => {
      const input = h("input", { type: "radio", name, value, checked: value === kind, "data-testid": `run-kind-${value}` });
      input.addEventListener("change", () => { if (input.checked) setKind(value); });
      return h("label.radio", null, input, h("span", { text: label }));
    };
    kindSwitch = h("fieldset.kind", null, h("legend.field-label", { text: "Run" }),
      radio("command", "Command"), radio("step", "QA step"));
  }
  function setKind(k) {
    kind = k;
    commandField.hidden = k !== "command";
    stepField.hidden = k !== "step";
  }
  setKind("command");

  const form = h("form.run-form", { "data-testid": "run-form", "aria-label": forProject ? "Run on this project" : "Run on this workspace" },
    kindSwitch,
    h("div.run-row", null,
      h("div.run-repo", null, field(forProject ? "Repository path" : "Repository", repoControl)),
      h("div.grow", null, commandField, stepField),
      submit),
    h("details.run-options", null,
      h("summary", { text: "Options" }),
      h("div.run-options-body", null,
        field("Environment", env, "KEY=value, one per line"),
        h("div.run-timeout", null, field("Timeout (seconds)", timeout)))),
    note,
    error,
  );

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const body = forProject ? { project_id: projectId } : { workspace_id: workspaceId };
    body.repo = (repoControl.value || ".").trim() || ".";
    let focusOnError = null;
    try {
      if (kind === "step") {
        const v = step.value.trim();
        if (!v) { focusOnError = step; throw new Error("Enter the name of a QA step."); }
        body.step = v;
      } else {
        const v = command.value.trim();
        if (!v) { focusOnError = command; throw new Error("Enter a command to run."); }
        body.command = v;
      }
      focusOnError = env;
      const e = parseEnv(env.value);
      if (Object.keys(e).length) body.env = e;
      if (timeout.value !== "") {
        const n = Number(timeout.value);
        focusOnError = timeout;
        if (!Number.isInteger(n) || n <= 0) throw new Error("The timeout must be a whole number of seconds.");
        body.timeout_s = n;
      }
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      if (focusOnError) {
        if (focusOnError === env || focusOnError === timeout) form.querySelector("details").open = true;
        focusOnError.focus();
      }
      return;
    }
    submit.disabled = true;
    submit.textContent = "Starting…";
    try {
      const task = await api.createTask(body);
      if (task && typeof task.id === "string") {
        location.hash = `#/tasks/${enc(task.id)}`;
        return;
      }
      throw new Error("The relay did not return the new task.");
    } catch (err) {
      error.textContent = err.code === "workspace_offline"
        ? (err.message || "The workspace is offline. Start its agent and try again.")
        : err.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
      submit.textContent = "Run";
    }
  });

  /** Workspace forms: refresh the repository choices, keeping the selection. */
  function setRepos(paths) {
    if (forProject) return;
    const list = [...new Set(["."].concat(paths || []).filter((p) => typeof p === "string" && p))];
    list.sort((a, b) => (a === "." ? -1 : b === "." ? 1 : a.localeCompare(b)));
    const current = repoControl.value || ".";
    const have = [...repoControl.options].map((o) => o.value);
    if (have.join("\n") === list.join("\n")) return;
    clear(repoControl);
    for (const p of list) repoControl.append(h("option", { value: p, text: p }));
    repoControl.value = list.includes(current) ? current : ".";
  }
  if (!forProject) setRepos([]);

  function setNote(text) {
    note.textContent = text || "";
    note.hidden = !text;
  }

  return { root: form, setRepos, setNote };
}

// ------------------------------------------------------------------ projects list

function buildProjectsPage() {
  const ps = { list: null, error: null, seq: 0, invites: null, invitesSeq: 0, inviteError: null, joined: null };
  const heading = h("h1", { id: uid("h"), tabindex: -1, text: "Projects" });
  const summary = h("span.summary");

  const name = h("input", { type: "text", maxlength: 200, autocomplete: "off", required: true, "data-testid": "project-name" });
  const description = h("input", { type: "text", maxlength: 2000, autocomplete: "off", "data-testid": "project-description" });
  const repoUrl = h("input", { type: "text", inputmode: "url", autocomplete: "off", spellcheck: "false", placeholder: "https://git.example.com/team/repo", "data-testid": "project-repo-url" });
  const techStack = h("input", { type: "text", autocomplete: "off", placeholder: "rust, postgres, typescript", "data-testid": "project-tech-stack" });
  const create = h("button.btn.btn-primary", { type: "submit", "data-testid": "project-create" }, "Create project");
  const formError = h("div.form-error", { role: "alert", "data-testid": "project-error", hidden: true });
  const form = h("form.project-form", { "aria-label": "New project" },
    h("div.form-grid", null,
      field("Name", name),
      field("Repository URL", repoUrl),
      field("Description", description),
      field("Tech stack", techStack, "Comma-separated")),
    h("div.form-actions", null, create),
    formError,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formError.hidden = true;
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
      if (p && p.id) {
        projectNames.set(p.id, p.name);
        location.hash = `#/projects/${enc(p.id)}`;
        return;
      }
      load();
    } catch (err) {
      formError.textContent = err.message;
      formError.hidden = false;
    } finally {
      create.disabled = false;
      create.textContent = "Create project";
    }
  });

  const listSlot = h("div");
  const invitesSlot = h("div");
  const root = h("section.view.view-narrow", { "aria-labelledby": heading.id },
    h("div.view-head", null, h("div.view-title", null, heading, summary)),
    invitesSlot,
    h("div.panel", { "data-testid": "project-create-panel" },
      h("h2", { text: "New project" }),
      form),
    listSlot,
  );

  async function load() {
    const seq = ++ps.seq;
    try {
      const list = await api.projects();
      if (seq !== ps.seq) return;
      ps.list = Array.isArray(list) ? list.filter((p) => p && typeof p.id === "string") : [];
      ps.error = null;
      for (const p of ps.list) projectNames.set(p.id, p.name);
    } catch (err) {
      if (seq !== ps.seq || !shell || !isAuthenticated()) return;
      ps.error = err.message;
    }
    render();
  }

  // Invitations addressed to the signed-in user: a card above everything else, none when none.
  async function loadInvites() {
    const seq = ++ps.invitesSeq;
    try {
      const list = await api.myInvitations();
      if (seq !== ps.invitesSeq) return;
      ps.invites = Array.isArray(list) ? list.filter((i) => i && typeof i.id === "string") : [];
      setInvitationCount(ps.invites.length);
    } catch (err) {
      // Stay quiet: the projects list works without them (the next visit tries again).
      if (seq !== ps.invitesSeq || !shell || !isAuthenticated()) return;
      console.warn("Couldn't load invitations:", err.message);
    }
    renderInvites();
  }

  function renderInvites() {
    clear(invitesSlot);
    const list = ps.invites || [];
    let joinedLink = null;
    if (ps.joined) {
      joinedLink = h("a", { href: `#/projects/${enc(ps.joined.id)}`, text: ps.joined.name || "the project" });
      invitesSlot.append(h("div.notice.invite-joined", { role: "status", "data-testid": "invitation-joined" },
        "You joined ", joinedLink, "."));
    }
    if (!list.length && !ps.inviteError) return joinedLink;
    invitesSlot.append(h("section.card", { "aria-label": "Invitations", "data-testid": "invitations" },
      h("div.card-head", null, h("h2", { text: "Invitations" }),
        h("span.muted.small", { text: "You have been invited to join these projects." })),
      h("div.card-body", null,
        list.length ? h("ul.plist", null, list.map(inviteRow)) : null,
        ps.inviteError ? h("div.form-error", { role: "alert", "data-testid": "invitation-error", text: ps.inviteError }) : null)));
    return joinedLink;
  }

  function inviteRow(inv) {
    const name = inv.project_name || "(unnamed)";
    const accept = h("button.btn.btn-small.btn-primary", { type: "button", "data-testid": "invitation-accept", "aria-label": `Accept the invitation to ${name}` }, "Accept");
    const decline = h("button.btn.btn-small.btn-ghost", { type: "button", "data-testid": "invitation-decline", "aria-label": `Decline the invitation to ${name}` }, "Decline");
    const answered = (joined) => {
      ps.invites = (ps.invites || []).filter((x) => x.id !== inv.id);
      ps.inviteError = null;
      setInvitationCount(ps.invites.length);
      if (joined) ps.joined = joined;
      const link = renderInvites();
      if (joined && link) link.focus();
    };
    const failed = (verb, err) => {
      ps.inviteError = err.status === 404
        ? `The invitation to “${name}” has expired or was withdrawn.`
        : `Couldn't ${verb} the invitation to “${name}”: ${err.message}`;
      if (err.status === 404) loadInvites(); else renderInvites();
    };
    accept.addEventListener("click", async () => {
      accept.disabled = true;
      decline.disabled = true;
      try {
        const p = await api.acceptInvitation(inv.id);
        const joined = p && p.id ? { id: p.id, name: p.name } : { id: inv.project_id, name: inv.project_name };
        projectNames.set(joined.id, joined.name);
        answered(joined);
        load(); // the project is in the list now
      } catch (err) {
        failed("accept", err);
      }
    });
    decline.addEventListener("click", async () => {
      // eslint-disable-next-line no-alert
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
    return h("li.prow.invite-row", { "data-testid": "invitation-row", "data-invitation-id": inv.id, "data-project-id": inv.project_id || "" },
      h("span.prow-name", { text: name }),
      inv.invited_by_email ? h("span.muted.small.invite-from", { text: `from ${inv.invited_by_email}`, title: `Invited by ${inv.invited_by_email}` }) : null,
      h("span.role", { class: `role-${inv.role}`, text: inv.role || "—" }),
      expiryEl(inv.expires_at),
      accept, decline);
  }

  function render() {
    clear(listSlot);
    const p = ps.list;
    summary.textContent = p && p.length ? `${p.filter((x) => x.status !== "archived").length} active` : "";
    if (ps.error && !p) { listSlot.append(errorBanner(`Couldn't load projects: ${ps.error}`, load)); return; }
    if (!p) { listSlot.append(loadingEl("Loading projects…")); return; }
    if (!p.length) {
      listSlot.append(h("div.empty.empty-small", null,
        h("h2", { text: "No projects yet" }),
        h("p.muted", { text: "A project groups workspaces that work on the same code, so you can run tasks and QA steps on whichever of them is online." })));
      return;
    }
    const sorted = [...p].sort((a, b) =>
      (a.status === "archived" ? 1 : 0) - (b.status === "archived" ? 1 : 0) ||
      String(a.name || "").localeCompare(String(b.name || ""), undefined, { sensitivity: "base", numeric: true }));
    listSlot.append(h("div.table-wrap", null,
      h("table.data", null,
        h("thead", null, h("tr", null,
          h("th", { scope: "col", text: "Name" }), h("th", { scope: "col", text: "Status" }),
          h("th", { scope: "col", text: "Your role" }), h("th", { scope: "col", text: "Workspaces" }),
          h("th", { scope: "col", text: "Tech stack" }), h("th", { scope: "col", text: "Updated" }))),
        h("tbody", null, sorted.map((x) => {
          const n = Array.isArray(x.workspace_ids) ? x.workspace_ids.length : 0;
          return h("tr", { "data-testid": "project-row", "data-project-id": x.id, "data-status": x.status || "", class: x.status === "archived" ? "is-archived" : "" },
            h("td.t-name", null,
              h("a", { href: `#/projects/${enc(x.id)}`, "data-testid": "project-link", text: x.name || "(unnamed)" }),
              x.description ? h("div.muted.small.clip", { text: x.description, title: x.description }) : null),
            h("td", null, projectStatusBadge(x.status)),
            h("td", { "data-testid": "project-role" }, h("span.role", { class: `role-${x.role}`, text: x.role || "—" })),
            h("td.num", { "data-testid": "project-workspace-count", text: String(n) }),
            h("td", null, stackTags(x.tech_stack)),
            h("td.t-time", null, timeEl(x.updated_at || x.created_at)));
        }))),
    ));
  }

  render();
  load();
  loadInvites();
  return { root, heading, nav: "projects", title: () => "Projects", destroy: () => { ps.seq++; ps.invitesSeq++; } };
}

function splitList(s) {
  return [...new Set(String(s || "").split(",").map((x) => x.trim()).filter(Boolean))];
}

function projectStatusBadge(status) {
  return h("span.pstatus", { class: status === "archived" ? "pstatus-archived" : "pstatus-active", "data-testid": "project-status", "data-status": status || "" },
    status === "archived" ? "archived" : "active");
}

function stackTags(list) {
  const items = Array.isArray(list) ? list.filter((x) => typeof x === "string" && x) : [];
  if (!items.length) return h("span.muted", { text: "—" });
  return h("span.stack", null, items.map((s) => h("span.tag.tag-stack", { text: s })));
}

const HEALTH_LABELS = { healthy: "Healthy", failing: "Failing", running: "Running", idle: "Idle", offline: "Offline" };
const HEALTH_HINTS = {
  healthy: "The last finished task succeeded.",
  failing: "The last finished task did not succeed.",
  running: "A task is queued or running.",
  idle: "No tasks have run yet.",
  offline: "No workspace of this project is online.",
};

function healthBadge(hv) {
  const known = HEALTH_LABELS[hv] ? hv : "unknown";
  return h("span.health", { class: `health-${known}`, "data-testid": "project-health", "data-health": hv || "", title: HEALTH_HINTS[known] || "" },
    h("span.health-dot", { "aria-hidden": "true" }), HEALTH_LABELS[known] || "Unknown");
}

// ------------------------------------------------------------------ project page

function buildProjectPage(projectId) {
  const ps = { status: null, error: null, notFound: false, seq: 0, reloadTimer: 0, members: null, membersError: null, onlineSig: "", wsSig: "",
    invites: null, invitesError: null, invitesSeq: 0, ownerShown: null };
  const heading = h("h1", { id: uid("h"), tabindex: -1, text: projectNames.get(projectId) || "Project" });
  const headSlot = h("div.project-head");
  const editSlot = h("div");
  const wsSlot = h("div.card-body");
  const healthSlot = h("div.card-body");
  const membersList = h("div");
  const invitesList = h("div.pending-invites", { hidden: true, "data-testid": "pending-invitations" });
  const invite = inviteForm();
  const membersSlot = h("div.card-body", null, membersList, invitesList, invite.root);
  const actionError = h("div.form-error", { role: "alert", hidden: true });
  const run = runForm({ projectId });
  const runCard = h("section.card", { "aria-label": "Run a task", hidden: true },
    h("div.card-head", null, h("h2", { text: "Run" }),
      h("span.muted.small", { text: "The relay runs it on an online workspace of this project." })),
    h("div.card-body", null, run.root));
  const tasks = taskList({ project: projectId }, { showWorkspace: true });
  const body = h("div", { hidden: true },
    headSlot,
    actionError,
    editSlot,
    h("div.proj-grid", null,
      h("section.card", { "aria-label": "Health" }, h("div.card-head", null, h("h2", { text: "Health" })), healthSlot),
      h("section.card", { "aria-label": "Workspaces" }, h("div.card-head", null, h("h2", { text: "Workspaces" })), wsSlot)),
    runCard,
    h("section.section", { "aria-label": "Tasks" }, h("h2.section-title", { text: "Tasks" }), tasks.root),
    h("section.card", { "aria-label": "Members" }, h("div.card-head", null, h("h2", { text: "Members" })), membersSlot),
  );
  const statusSlot = h("div");
  const root = h("section.view", { "aria-labelledby": heading.id, "data-testid": "project-page", "data-project-id": projectId },
    crumbs(h("a", { href: "#/projects", text: "Projects" }), h("span", { text: "Project" })),
    statusSlot,
    body,
  );

  const project = () => (ps.status && ps.status.project) || null;
  const role = () => (project() && project().role) || "viewer";
  const canManage = () => role() === "owner" || role() === "maintainer";

  async function load() {
    const seq = ++ps.seq;
    clearTimeout(ps.reloadTimer);
    try {
      const st = await api.projectStatus(projectId);
      if (seq !== ps.seq) return;
      if (!st || !st.project) throw badResponse("The relay returned an unexpected project status.");
      ps.status = st;
      ps.error = null;
      projectNames.set(projectId, st.project.name);
    } catch (err) {
      if (seq !== ps.seq || !shell || !isAuthenticated()) return;
      ps.error = err.message;
      ps.notFound = err.status === 404;
    }
    render();
  }

  function reloadSoon(ms = 400) {
    clearTimeout(ps.reloadTimer);
    ps.reloadTimer = setTimeout(load, ms);
  }

  /** The owner's "Invite" form (built once, so typing survives re-renders). */
  function inviteForm() {
    const email = h("input", { type: "email", autocomplete: "off", placeholder: "teammate@example.com", "data-testid": "invite-email" });
    const roleSel = h("select", { "data-testid": "invite-role" },
      ["viewer", "maintainer"].map((r) => h("option", { value: r, text: r })));
    const send = h("button.btn.btn-small", { type: "submit", "data-testid": "invite-submit" }, "Invite");
    const err = h("div.form-error", { role: "alert", hidden: true, "data-testid": "invite-error" });
    const sent = h("div.notice", { role: "status", hidden: true, "data-testid": "invite-sent" });
    const form = h("form.member-form", { "aria-label": "Invite someone" },
      h("div.grow", null, field("Invite by email", email)), field("Role", roleSel), send);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      sent.hidden = true;
      const addr = email.value.trim();
      if (!addr) { err.textContent = "Enter the email address to invite."; err.hidden = false; email.focus(); return; }
      send.disabled = true;
      try {
        const inv = await api.inviteToProject(projectId, addr, roleSel.value);
        email.value = "";
        sent.textContent = `Invitation sent to ${(inv && inv.email) || addr}; they'll see it when they sign in.`;
        sent.hidden = false;
        loadInvitations();
      } catch (e) {
        err.textContent = e.code === "already_member"
          ? `${addr} is already a member. Change their role in the list above.`
          : e.code === "too_many_invitations"
            ? "This project has too many pending invitations. Withdraw some before inviting more."
            : e.message;
        err.hidden = false;
      } finally {
        send.disabled = false;
      }
    });
    return { root: h("div.invite-box", { hidden: true }, form, err, sent) };
  }

  async function loadInvitations() {
    const seq = ++ps.invitesSeq;
    try {
      const list = await api.projectInvitations(projectId);
      if (seq !== ps.invitesSeq) return;
      ps.invites = Array.isArray(list) ? list.filter((i) => i && typeof i.id === "string") : [];
      ps.invitesError = null;
    } catch (err) {
      if (seq !== ps.invitesSeq || !shell || !isAuthenticated()) return;
      if (err.status === 403) ps.invites = []; // no longer the owner
      else ps.invitesError = err.message;
    }
    renderInvitations();
  }

  /** Owner controls appear once the project's status says the caller owns it. */
  function syncOwner() {
    const owner = role() === "owner";
    if (owner === ps.ownerShown) return;
    ps.ownerShown = owner;
    invite.root.hidden = !owner;
    if (ps.members) renderMembers();
    if (owner && !ps.invites) loadInvitations();
    else renderInvitations();
  }

  async function loadMembers() {
    try {
      const list = await api.projectMembers(projectId);
      ps.members = Array.isArray(list) ? list : [];
      ps.membersError = null;
    } catch (err) {
      if (!shell || !isAuthenticated()) return;
      ps.membersError = err.message;
    }
    renderMembers();
  }

  function render() {
    clear(statusSlot);
    if (!ps.status) {
      body.hidden = true;
      if (ps.notFound) {
        statusSlot.append(h("div.empty", { "data-testid": "not-found" },
          h("h2", { text: "Project not found" }),
          h("p.muted", null, "It doesn't exist or you are not a member. ", h("a", { href: "#/projects", text: "All projects" }))));
      } else if (ps.error) {
        statusSlot.append(errorBanner(`Couldn't load the project: ${ps.error}`, load));
      } else {
        statusSlot.append(loadingEl("Loading project…"));
      }
      return;
    }
    if (ps.error) statusSlot.append(errorBanner(`Couldn't refresh the project: ${ps.error}`, load));
    body.hidden = false;
    const p = project();
    heading.textContent = p.name || "(unnamed)";
    root.querySelector(".crumbs > span:last-child").textContent = p.name || "Project";
    updateTitle();
    renderHead(p);
    renderHealth();
    renderWorkspaceList();
    syncOwner();
    runCard.hidden = !(p.status !== "archived" && role() !== "viewer");
    tasks.refreshNames();
  }

  function renderHead(p) {
    clear(headSlot);
    let archive = null;
    if (p.role === "owner" && p.status !== "archived") {
      archive = h("button.btn.btn-small.btn-danger", { type: "button", "data-testid": "project-archive" }, "Archive");
      archive.addEventListener("click", async () => {
        // eslint-disable-next-line no-alert
        if (!window.confirm(`Archive the project “${p.name}”?\n\nIts task history stays; no new tasks can be run.`)) return;
        archive.disabled = true;
        actionError.hidden = true;
        try {
          const updated = await api.archiveProject(projectId);
          if (updated && updated.id) ps.status.project = updated;
          else ps.status.project = { ...p, status: "archived" };
          render();
          load();
        } catch (err) {
          archive.disabled = false;
          showActionError(`Couldn't archive the project: ${err.message}`);
        }
      });
    }
    let edit = null;
    if (canManage() && p.status !== "archived") {
      edit = h("button.btn.btn-small", { type: "button", "data-testid": "project-edit", "aria-expanded": editSlot.firstChild ? "true" : "false" }, "Edit");
      edit.addEventListener("click", () => {
        if (editSlot.firstChild) { clear(editSlot); edit.setAttribute("aria-expanded", "false"); return; }
        editSlot.append(editForm(project(), () => { clear(editSlot); renderHead(project()); }));
        edit.setAttribute("aria-expanded", "true");
        editSlot.querySelector("input").focus();
      });
    }
    const url = safeHttpUrl(p.repository_url);
    headSlot.append(
      h("div.view-head", null,
        h("div.view-title", null, heading, projectStatusBadge(p.status),
          h("span.role", { class: `role-${p.role}`, "data-testid": "project-role", title: "Your role", text: p.role || "" })),
        h("div.head-actions", null, edit, archive)),
      p.description ? h("p.lead.project-desc", { text: p.description }) : null,
      h("div.project-meta", null,
        p.repository_url
          ? (url
            ? h("a.ext.mono", { href: url, target: "_blank", rel: "noopener noreferrer" }, p.repository_url, svgIcon("external"))
            : h("span.mono", { text: p.repository_url }))
          : null,
        stackTags(p.tech_stack),
        p.created_at ? h("span.muted.small", null, "created ", timeEl(p.created_at)) : null),
    );
  }

  function editForm(p, done) {
    const name = h("input", { type: "text", value: p.name || "", maxlength: 200 });
    const description = h("input", { type: "text", value: p.description || "" });
    const repoUrl = h("input", { type: "text", value: p.repository_url || "", spellcheck: "false" });
    const stack = h("input", { type: "text", value: (p.tech_stack || []).join(", ") });
    const save = h("button.btn.btn-primary.btn-small", { type: "submit" }, "Save");
    const cancel = h("button.btn.btn-small", { type: "button" }, "Cancel");
    const err = h("div.form-error", { role: "alert", hidden: true });
    cancel.addEventListener("click", done);
    const form = h("form.panel.edit-form", { "aria-label": "Edit project" },
      h("div.form-grid", null,
        field("Name", name), field("Repository URL", repoUrl),
        field("Description", description), field("Tech stack", stack, "Comma-separated")),
      h("div.form-actions", null, cancel, save),
      err);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      if (!name.value.trim()) { err.textContent = "The name can't be empty."; err.hidden = false; name.focus(); return; }
      save.disabled = true;
      try {
        const updated = await api.updateProject(projectId, {
          name: name.value.trim(), description: description.value.trim(),
          repository_url: repoUrl.value.trim(), tech_stack: splitList(stack.value),
        });
        if (updated && updated.id) ps.status.project = updated;
        done();
        render();
        load();
      } catch (e) {
        err.textContent = e.message;
        err.hidden = false;
        save.disabled = false;
      }
    });
    return form;
  }

  function showActionError(text) {
    actionError.textContent = text;
    actionError.hidden = false;
  }

  function mergedWorkspaces() {
    const list = Array.isArray(ps.status.workspaces) ? ps.status.workspaces : [];
    return list.filter((w) => w && typeof w.id === "string").map((w) => {
      const live = state.workspaces.get(w.id);
      return {
        id: w.id,
        name: (live && live.name) || w.name || w.id.slice(0, 8),
        online: live ? !!live.online : !!w.online,
        last_seen_at: (live && live.last_seen_at) || w.last_seen_at || null,
      };
    }).sort((a, b) => (b.online ? 1 : 0) - (a.online ? 1 : 0) || a.name.localeCompare(b.name));
  }

  function renderHealth() {
    clear(healthSlot);
    const st = ps.status;
    const ws = mergedWorkspaces();
    const online = ws.filter((w) => w.online).length;
    const last = Array.isArray(st.last_tasks) ? st.last_tasks.filter((t) => t && t.id) : [];
    healthSlot.append(
      h("div.health-row", null,
        healthBadge(st.health),
        h("span.muted.small", { text: `${online} of ${plural(ws.length, "workspace")} online` })),
    );
    if (!last.length) {
      healthSlot.append(h("p.muted.small", { text: "No tasks have run in this project yet." }));
      return;
    }
    // Oldest to newest, left to right.
    const chips = [...last].reverse().map((t) => h("li", null,
      h("a.run-chip", {
        href: `#/tasks/${enc(t.id)}`, class: `st-${t.state}`, "data-testid": "recent-task", "data-state": t.state,
        title: `${STATE_LABELS[t.state] || t.state} · ${taskTitle(t)} · ${relTime(t.created_at)}`,
        "aria-label": `${STATE_LABELS[t.state] || t.state}: ${taskTitle(t)}`,
      })));
    const newest = last[0];
    healthSlot.append(
      h("div.recent", null,
        h("span.muted.small", { text: "Last tasks" }),
        h("ol.run-chips", null, chips)),
      h("div.last-task.small", null,
        h("span.muted", { text: "Latest: " }),
        stateBadge(newest.state, "latest-task-state"), " ",
        h("a.mono", { href: `#/tasks/${enc(newest.id)}`, text: taskTitle(newest) }), " ",
        h("span.muted", null, timeEl(newest.created_at))),
    );
  }

  const onlineSig = () => mergedWorkspaces().map((w) => `${w.id}:${w.online}`).join(",");
  /** What the workspace list shows; re-rendering only when it changes keeps the attach select usable. */
  function workspacesSig() {
    const ws = mergedWorkspaces().map((w) => [w.id, w.name, w.online, w.online ? "" : w.last_seen_at]);
    const others = [...state.workspaces.values()].map((w) => [w.id, w.name, !!w.online]);
    return JSON.stringify([ws, others, state.workspacesLoaded, project() && project().status, role()]);
  }

  function renderWorkspaceList() {
    const prevSelect = wsSlot.querySelector("select");
    const prevChoice = prevSelect ? prevSelect.value : "";
    const hadFocus = prevSelect && document.activeElement === prevSelect;
    clear(wsSlot);
    const ws = mergedWorkspaces();
    ps.onlineSig = onlineSig();
    ps.wsSig = workspacesSig();
    const manage = canManage() && project().status !== "archived";
    if (!ws.length) {
      wsSlot.append(h("p.muted.small", { text: "No workspaces yet. Attach one of yours so tasks can run." }));
    } else {
      wsSlot.append(h("ul.plist", null, ws.map((w) => {
        let detach = null;
        if (manage) {
          detach = h("button.btn.btn-small.btn-ghost", { type: "button", "data-testid": "detach-workspace", "aria-label": `Detach ${w.name}` }, "Detach");
          detach.addEventListener("click", async () => {
            // eslint-disable-next-line no-alert
            if (!window.confirm(`Detach the workspace “${w.name}” from this project?`)) return;
            detach.disabled = true;
            actionError.hidden = true;
            try {
              await api.detachWorkspace(projectId, w.id);
              load();
            } catch (err) {
              detach.disabled = false;
              showActionError(`Couldn't detach the workspace: ${err.message}`);
            }
          });
        }
        return h("li.prow", { "data-testid": "project-workspace", "data-workspace-id": w.id, "data-online": w.online ? "true" : "false" },
          h("span.dot", { class: w.online ? "dot-online" : "dot-offline", role: "img", "aria-label": w.online ? "Online" : "Offline" }),
          h("a.prow-name", { href: `#/workspaces/${enc(w.id)}/tasks`, text: w.name }),
          w.online
            ? h("span.presence.is-online", { text: "online" })
            : h("span.presence", null, w.last_seen_at ? ["last seen ", timeEl(w.last_seen_at)] : "offline"),
          detach);
      })));
    }
    if (!manage) return;
    const attached = new Set(ws.map((w) => w.id));
    const mine = sortWorkspaces([...state.workspaces.values()].filter((w) => !attached.has(w.id)));
    const select = h("select", { "data-testid": "attach-workspace-select" },
      mine.length
        ? mine.map((w) => h("option", { value: w.id, text: `${w.name || w.id.slice(0, 8)}${w.online ? "" : " (offline)"}` }))
        : h("option", { value: "", text: state.workspacesLoaded ? "No other workspaces" : "Loading…" }));
    if (prevChoice && mine.some((w) => w.id === prevChoice)) select.value = prevChoice;
    const attach = h("button.btn.btn-small", { type: "submit", "data-testid": "attach-workspace", disabled: !mine.length }, "Attach");
    const form = h("form.attach-form", { "aria-label": "Attach a workspace" },
      h("div.grow", null, field("Attach one of your workspaces", select)), attach);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!select.value) return;
      attach.disabled = true;
      actionError.hidden = true;
      try {
        const res = await api.attachWorkspace(projectId, select.value);
        if (res && res.id && ps.status) ps.status.project = res;
        await load();
      } catch (err) {
        attach.disabled = false;
        showActionError(`Couldn't attach the workspace: ${err.message}`);
      }
    });
    wsSlot.append(form);
    if (hadFocus) select.focus();
  }

  function renderMembers() {
    clear(membersList);
    if (ps.membersError && !ps.members) {
      membersList.append(errorBanner(`Couldn't load members: ${ps.membersError}`, loadMembers));
      return;
    }
    if (!ps.members) { membersList.append(loadingEl("Loading members…")); return; }
    const owner = role() === "owner";
    const me = state.me && state.me.email;
    membersList.append(h("ul.plist", null, ps.members.map((m) => {
      let roleEl = h("span.role", { class: `role-${m.role}`, text: m.role });
      let remove = null;
      if (owner && m.role !== "owner") {
        // The owner changes an existing member's role here (PUT …/members); new people are invited.
        const sel = h("select.prow-role", { "data-testid": "member-role", "aria-label": `Role of ${m.email}` },
          ["viewer", "maintainer"].map((r) => h("option", { value: r, text: r })));
        sel.value = m.role;
        sel.addEventListener("change", async () => {
          sel.disabled = true;
          actionError.hidden = true;
          try {
            const list = await api.setProjectMember(projectId, m.email, sel.value);
            if (Array.isArray(list)) { ps.members = list; renderMembers(); } else loadMembers();
          } catch (err) {
            sel.value = m.role;
            sel.disabled = false;
            showActionError(`Couldn't change the role of ${m.email}: ${err.message}`);
            if (err.code === "not_a_member") loadMembers();
          }
        });
        roleEl = sel;
      }
      if (owner && m.email !== me) {
        remove = h("button.btn.btn-small.btn-ghost.btn-danger", { type: "button", "data-testid": "member-remove", "aria-label": `Remove ${m.email}` }, "Remove");
        remove.addEventListener("click", async () => {
          // eslint-disable-next-line no-alert
          if (!window.confirm(`Remove ${m.email} from this project?`)) return;
          remove.disabled = true;
          try {
            await api.removeProjectMember(projectId, m.user_id);
            loadMembers();
          } catch (err) {
            remove.disabled = false;
            showActionError(`Couldn't remove the member: ${err.message}`);
          }
        });
      }
      return h("li.prow", { "data-testid": "member-row", "data-user-id": m.user_id || "" },
        h("span.prow-name", { text: m.email || m.user_id }),
        roleEl,
        remove);
    })));
  }

  /** Pending invitations, under the member list (owner only; nothing when there are none). */
  function renderInvitations() {
    clear(invitesList);
    const show = role() === "owner" && (ps.invites ? ps.invites.length > 0 : !!ps.invitesError);
    invitesList.hidden = !show;
    if (!show) return;
    if (!ps.invites) {
      invitesList.append(errorBanner(`Couldn't load the pending invitations: ${ps.invitesError}`, loadInvitations));
      return;
    }
    invitesList.append(
      h("h3.sub-title", { text: "Pending invitations" }),
      h("ul.plist", null, ps.invites.map((inv) => {
        const withdraw = h("button.btn.btn-small.btn-ghost.btn-danger", { type: "button", "data-testid": "invitation-withdraw", "aria-label": `Withdraw the invitation to ${inv.email}` }, "Withdraw");
        withdraw.addEventListener("click", async () => {
          // eslint-disable-next-line no-alert
          if (!window.confirm(`Withdraw the invitation to ${inv.email}?`)) return;
          withdraw.disabled = true;
          actionError.hidden = true;
          try {
            await api.withdrawInvitation(projectId, inv.id);
          } catch (err) {
            if (err.status !== 404) { // 404: it was accepted, declined or expired meanwhile
              withdraw.disabled = false;
              showActionError(`Couldn't withdraw the invitation: ${err.message}`);
              return;
            }
          }
          loadInvitations();
          loadMembers(); // it may have been accepted meanwhile
        });
        return h("li.prow.invite-row", { "data-testid": "pending-invitation-row", "data-invitation-id": inv.id },
          h("span.prow-name", { text: inv.email }),
          h("span.role", { class: `role-${inv.role}`, text: inv.role }),
          expiryEl(inv.expires_at),
          withdraw);
      })));
  }

  render();
  load();
  tasks.load();
  loadMembers();

  return {
    root, heading, nav: "projects",
    title: () => (project() ? project().name : "Project"),
    destroy() { ps.seq++; ps.invitesSeq++; clearTimeout(ps.reloadTimer); tasks.destroy(); },
    onTask(t) {
      if (t.project_id !== projectId) return;
      tasks.onTask(t);
      reloadSoon(); // health and last tasks
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

// ------------------------------------------------------------------ workspace tasks page

function buildWorkspaceTasksPage(wsId) {
  const heading = h("h1", { id: uid("h"), tabindex: -1, text: workspaceName(wsId) });
  const presence = h("span.presence");
  const run = runForm({ workspaceId: wsId });
  const tasks = taskList({ workspace: wsId });
  const notice = h("div");
  let fetched = null;       // the workspace from GET /workspaces/{id} when the list doesn't have it
  let missing = false;

  const root = h("section.view", { "aria-labelledby": heading.id, "data-testid": "workspace-tasks", "data-workspace-id": wsId },
    crumbs(h("a", { href: "#/workspaces", text: "Workspaces" }), h("span", { text: "Tasks" })),
    h("div.view-head", null, h("div.view-title", null, heading, presence)),
    notice,
    h("section.card", { "aria-label": "Run a command" },
      h("div.card-head", null, h("h2", { text: "Run" }), h("span.muted.small", { text: "Runs a shell command in a repository of this workspace." })),
      h("div.card-body", null, run.root)),
    h("section.section", { "aria-label": "Tasks" }, h("h2.section-title", { text: "Tasks" }), tasks.root),
  );

  const current = () => state.workspaces.get(wsId) || fetched;

  function render() {
    const w = current();
    clear(notice);
    if (!w) {
      heading.textContent = missing ? "Unknown workspace" : "Workspace";
      presence.textContent = "";
      if (missing) notice.append(h("div.banner", { role: "alert" }, h("span", { text: "This workspace doesn't exist or isn't yours." })));
      return;
    }
    heading.textContent = w.name || "(unnamed)";
    clear(presence);
    presence.className = w.online ? "presence is-online" : "presence";
    presence.append(h("span.dot", { class: w.online ? "dot-online" : "dot-offline", "aria-hidden": "true" }), " ",
      w.online ? "Online" : (w.last_seen_at ? ["Offline · last seen ", timeEl(w.last_seen_at)] : "Offline"));
    presence.dataset.online = w.online ? "true" : "false";
    run.setRepos((Array.isArray(w.repos) ? w.repos : []).map((r) => r && r.path));
    run.setNote(w.online ? "" : "This workspace is offline: a task can only start once its agent reconnects.");
    updateTitle();
  }

  if (!state.workspaces.has(wsId)) {
    api.workspace(wsId).then((w) => {
      if (w && w.id) { fetched = w; render(); }
    }, (err) => {
      if (err.status === 404 && !state.workspaces.has(wsId)) { missing = true; render(); }
    });
  }
  render();
  tasks.load();

  return {
    root, heading, nav: "workspaces",
    title: () => `${(current() && current().name) || "Workspace"} tasks`,
    destroy() { tasks.destroy(); },
    onTask(t) { tasks.onTask(t); },
    onWorkspaces() { render(); },
  };
}

// ------------------------------------------------------------------ task page

function buildTaskPage(taskId) {
  let task = null;
  let error = null;
  let notFound = false;
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
  const logStatus = h("span.log-status", { "data-testid": "log-status", "data-state": "waiting", role: "status" }, "Waiting…");
  const logBytes = h("span.log-bytes", { "data-testid": "log-bytes" });
  const jump = h("button.btn.btn-small", { type: "button", hidden: true, "data-testid": "log-jump" }, "↓ Jump to latest");
  const download = h("button.btn.btn-small", { type: "button", "data-testid": "log-download" }, "Download log");
  const downloadError = h("span.form-error.inline-error", { role: "alert", hidden: true });
  const trimmedMore = h("button.btn-link", { type: "button" }, "download full log");
  const trimmedNote = h("div.log-note", { "data-testid": "log-trimmed", hidden: true },
    "Showing the last 2 MB — ", trimmedMore, ".");
  const serverTruncated = h("div.log-note", { "data-testid": "log-truncated", hidden: true },
    "The relay kept only part of this task's output (log size limit reached).");
  download.addEventListener("click", () => downloadLog(download));
  trimmedMore.addEventListener("click", () => downloadLog(trimmedMore));

  const logCard = h("section.card.log-card", { "aria-label": "Log", hidden: true },
    h("div.card-head.log-head", null,
      h("h2", { text: "Log" }), logStatus, logBytes, h("span.grow"), jump, download),
    downloadError,
    trimmedNote,
    serverTruncated,
    pre);

  const body = h("div", { hidden: true }, headSlot, actionError, factsSlot, testsSlot, logCard);
  const root = h("section.view", { "aria-labelledby": heading.id, "data-testid": "task-page", "data-task-id": taskId },
    crumbSlot, statusSlot, body);

  async function load() {
    const seq = ++loadSeq;
    try {
      const t = await api.task(taskId);
      if (seq !== loadSeq) return;
      if (!t || t.id !== taskId) throw badResponse("The relay returned an unexpected task.");
      setTask(t);
      error = null;
    } catch (err) {
      if (seq !== loadSeq || !shell || !isAuthenticated()) return;
      error = err.message;
      notFound = err.status === 404;
      renderStatus();
    }
  }

  function stateRank(s) {
    return { queued: 0, dispatched: 1, running: 2 }[s] ?? 3;
  }

  function setTask(t) {
    // Events and HTTP answers can cross; never go back to an earlier state.
    if (task && !isActive(task) && isActive(t)) return;
    if (task && stateRank(t.state) < stateRank(task.state)) return;
    task = t;
    render();
    if (!logView) {
      logView = new LogView(taskId, {
        pre, status: logStatus, bytes: logBytes, trimmedNote, jump,
        onEnd: () => { load(); },
      });
      const size = Number.isFinite(t.log_bytes) ? t.log_bytes : 0;
      logView.start(Math.max(0, size - LOG_KEEP));
    }
    if (logView.ended) logView.describeEnd(task);
  }

  function renderStatus() {
    clear(statusSlot);
    if (task) {
      if (error) statusSlot.append(errorBanner(`Couldn't refresh the task: ${error}`, load));
      return;
    }
    if (notFound) {
      statusSlot.append(h("div.empty", { "data-testid": "not-found" },
        h("h2", { text: "Task not found" }),
        h("p.muted", { text: "It doesn't exist, or it belongs to a workspace or project you can't see." })));
    } else if (error) {
      statusSlot.append(errorBanner(`Couldn't load the task: ${error}`, load));
    } else {
      statusSlot.append(loadingEl("Loading task…"));
    }
  }

  function render() {
    renderStatus();
    if (!task) { body.hidden = true; return; }
    body.hidden = false;
    logCard.hidden = false;
    root.dataset.state = task.state || "";
    const t = task;

    clear(crumbSlot);
    const projectName = t.project_id ? projectNames.get(t.project_id) : null;
    if (t.project_id && !projectName && !projectFetched) {
      projectFetched = true;
      api.project(t.project_id).then((p) => {
        if (p && p.name) { projectNames.set(t.project_id, p.name); if (task) render(); }
      }, () => {});
    }
    crumbSlot.append(crumbs(
      t.project_id ? h("a", { href: `#/projects/${enc(t.project_id)}`, "data-testid": "task-project-link", text: projectName || "Project" }) : null,
      workspaceTasksLink(t.workspace_id, { "data-testid": "task-workspace-link" }),
      h("span", { text: `Task ${taskId.slice(0, 8)}` })));

    // Header: state, command, actions.
    clear(headSlot);
    let cancel = null;
    if (isActive(t)) {
      cancel = h("button.btn.btn-small.btn-danger", { type: "button", "data-testid": "task-cancel", disabled: cancelRequested },
        cancelRequested ? "Canceling…" : "Cancel");
      cancel.addEventListener("click", async () => {
        cancelRequested = true;
        cancel.disabled = true;
        cancel.textContent = "Canceling…";
        actionError.hidden = true;
        try {
          const updated = await api.cancelTask(taskId);
          if (updated && updated.id === taskId) setTask(updated);
        } catch (err) {
          cancelRequested = false;
          actionError.textContent = `Couldn't cancel the task: ${err.message}`;
          actionError.hidden = false;
          if (cancel.isConnected) {
            cancel.disabled = false;
            cancel.textContent = "Cancel";
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
        if (fresh && fresh.id) { location.hash = `#/tasks/${enc(fresh.id)}`; return; }
        throw badResponse("The relay did not return the new task.");
      } catch (err) {
        actionError.textContent = `Couldn't re-run the task: ${err.message}`;
        actionError.hidden = false;
        rerun.disabled = false;
      }
    });
    headSlot.append(
      h("div.view-head", null,
        h("div.view-title", null, heading, stateBadge(t.state)),
        h("div.head-actions", null, cancel, rerun)),
      h("div.cmd-line", null,
        h("span.cmd-kind", { text: t.command ? "$" : "step" }),
        h("code.cmd-text", { "data-testid": "task-command", text: t.command || t.step || "" })),
    );

    // Facts.
    clear(factsSlot);
    const fact = (label, value, testid) => h("div.fact", null, h("dt", { text: label }), h("dd", { "data-testid": testid || null }, value));
    const started = t.started_at ? timeEl(t.started_at) : h("span.muted", { text: "not yet" });
    const finished = t.finished_at ? timeEl(t.finished_at) : h("span.muted", { text: isActive(t) ? "—" : "unknown" });
    factsSlot.append(h("dl.facts", null,
      fact("Workspace", workspaceTasksLink(t.workspace_id)),
      fact("Repository", h("span.mono", { text: t.repo || "." })),
      fact("Commit", commitEl(t), "task-commit"),
      fact("Triggered by", triggeredBy(t), "task-triggered-by"),
      fact("Created", timeEl(t.created_at)),
      fact("Started", started),
      fact("Finished", finished),
      fact("Duration", taskDurationEl(t), "task-duration"),
      fact("Exit code", h("span.mono", { class: Number.isFinite(t.exit_code) && t.exit_code !== 0 ? "bad" : "", text: exitText(t) }), "task-exit-code"),
      Number.isFinite(t.timeout_s) ? fact("Timeout", `${t.timeout_s} s`) : null,
      Array.isArray(t.env_keys) && t.env_keys.length ? fact("Environment", h("span.mono", { text: t.env_keys.join(", ") })) : null,
      t.error ? h("div.fact.fact-wide", null, h("dt", { text: "Error" }), h("dd.bad", { "data-testid": "task-error", text: t.error })) : null,
    ));

    renderTests(t.test_summary);
    serverTruncated.hidden = !t.log_truncated;
    updateTitle();
  }

  let testsJson = "";
  function renderTests(ts) {
    const json = JSON.stringify(ts || null);
    if (json === testsJson) return; // keep the open/closed state of the failures
    testsJson = json;
    clear(testsSlot);
    if (!ts || typeof ts !== "object") return;
    const n = (x) => (Number.isFinite(x) ? x : 0);
    const failures = Array.isArray(ts.failures) ? ts.failures.filter((f) => f && typeof f === "object") : [];
    const items = failures.map((f) => h("li.failure", { "data-testid": "test-failure" },
      h("details", { open: failures.length === 1 },
        h("summary", null, h("span.mono.failure-name", { "data-testid": "test-failure-name", text: f.name || "(unnamed test)" })),
        f.message ? h("pre.failure-msg", { text: f.message }) : h("p.muted.small", { text: "No message." }))));
    let toggleAll = null;
    if (failures.length > 1) {
      toggleAll = h("button.btn-link", { type: "button" }, "Expand all");
      toggleAll.addEventListener("click", () => {
        const all = [...testsSlot.querySelectorAll("details")];
        const open = !all.every((d) => d.open);
        all.forEach((d) => { d.open = open; });
        toggleAll.textContent = open ? "Collapse all" : "Expand all";
      });
    }
    testsSlot.append(h("section.card", {
      "aria-label": "Test results", "data-testid": "test-summary",
      "data-passed": n(ts.passed), "data-failed": n(ts.failed), "data-skipped": n(ts.skipped),
    },
    h("div.card-head", null,
      h("h2", { text: "Test results" }),
      h("span.test-pills", null,
        h("span.pill.pill-passed", { "data-testid": "tests-passed" }, h("strong", { text: String(n(ts.passed)) }), " passed"),
        h("span.pill.pill-failed", { class: n(ts.failed) ? "nonzero" : "", "data-testid": "tests-failed" }, h("strong", { text: String(n(ts.failed)) }), " failed"),
        h("span.pill.pill-skipped", { "data-testid": "tests-skipped" }, h("strong", { text: String(n(ts.skipped)) }), " skipped"))),
    failures.length
      ? h("div.card-body", null,
        h("div.failures-head", null, h("h3", { text: `Failing tests (${failures.length})` }), toggleAll),
        h("ul.failures", null, items))
      : null));
  }

  async function downloadLog(btn) {
    if (download.disabled) return;
    const label = download.textContent;
    download.disabled = true;
    trimmedMore.disabled = true;
    downloadError.hidden = true;
    download.textContent = "Downloading…";
    try {
      const blob = await fetchWholeLog(taskId, {
        onProgress: (n) => { download.textContent = `Downloading… ${fmtBytes(n)}`; },
      });
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: `fulcrum-task-${taskId}.log`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (err) {
      downloadError.textContent = `Couldn't download the log: ${err.message}`;
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
    root, heading, nav: null,
    title: () => (task ? `${STATE_LABELS[task.state] || task.state} · ${taskTitle(task)}` : "Task"),
    destroy() { loadSeq++; if (logView) logView.stop(); },
    onTask(t) { if (t.id === taskId) setTask(t); },
    onWorkspaces() { if (task) { const a = crumbSlot.querySelector("[data-testid=task-workspace-link]"); if (a) a.textContent = workspaceName(task.workspace_id); } },
  };
}

// ------------------------------------------------------------------ profile page

const THEME_LABELS = { system: "Same as the system", light: "Light", dark: "Dark" };

function buildProfilePage() {
  const ps = { seq: 0, me: null, projects: null };
  const heading = h("h1", { id: uid("h"), tabindex: -1, text: "Profile" });
  const summary = h("span.summary", { "data-testid": "profile-email" });
  const browserZone = (() => {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch { return ""; }
  })();

  // Profile and preferences.
  const name = h("input", { type: "text", maxlength: 200, autocomplete: "name", "data-testid": "profile-name", disabled: true });
  const theme = h("select", { "data-testid": "profile-theme", disabled: true },
    THEMES.map((t) => h("option", { value: t, text: THEME_LABELS[t] })));
  const zoneList = h("datalist", { id: uid("zones") });
  const timeZone = h("input", {
    type: "text", autocomplete: "off", spellcheck: "false", placeholder: browserZone || "e.g. Europe/Berlin",
    list: zoneList.id, "data-testid": "profile-time-zone", disabled: true,
  });
  const defaultProject = h("select", { "data-testid": "profile-default-project", disabled: true },
    h("option", { value: "", text: "None — open on Workspaces" }));
  const save = h("button.btn.btn-primary", { type: "submit", "data-testid": "profile-save", disabled: true }, "Save");
  const saved = h("span.form-ok", { role: "status", "data-testid": "profile-saved", hidden: true, text: "Saved." });
  const formError = h("div.form-error", { role: "alert", "data-testid": "profile-error", hidden: true });
  const form = h("form.profile-form", { "aria-label": "Profile" },
    h("div.form-grid", null,
      field("Full name", name, "Shown to the people you work with."),
      field("Theme", theme),
      field("Time zone", timeZone, browserZone ? `Dates are shown in it. Empty: this browser's (${browserZone}).` : "Dates are shown in it."),
      field("Default project", defaultProject, "The dashboard opens on it.")),
    zoneList,
    formError,
    h("div.form-actions", null, saved, save),
  );
  form.addEventListener("input", () => { saved.hidden = true; });

  // Password.
  const current = h("input", { type: "password", autocomplete: "current-password", "data-testid": "password-current" });
  const next = h("input", { type: "password", autocomplete: "new-password", "data-testid": "password-new" });
  const confirm = h("input", { type: "password", autocomplete: "new-password", "data-testid": "password-confirm" });
  const pwSave = h("button.btn.btn-primary", { type: "submit", "data-testid": "password-save" }, "Change password");
  const pwResult = h("span.form-ok", { role: "status", "data-testid": "password-result", hidden: true });
  const pwError = h("div.form-error", { role: "alert", "data-testid": "password-error", hidden: true });
  const pwForm = h("form.password-form", { "aria-label": "Change password" },
    // A username field helps password managers file the new password under the right account.
    h("input.offscreen", { type: "email", autocomplete: "username", tabindex: -1, "aria-hidden": "true", readonly: true,
      value: state.me ? state.me.email : "" }),
    h("div.form-grid.form-grid-3", null,
      field("Current password", current),
      field("New password", next, `At least ${RESET_MIN} characters.`),
      field("Repeat the new password", confirm)),
    pwError,
    h("div.form-actions", null, pwResult, pwSave),
  );
  pwForm.addEventListener("input", () => { pwResult.hidden = true; });

  const root = h("section.view.view-form", { "aria-labelledby": heading.id },
    h("div.view-head", null, h("div.view-title", null, heading, summary)),
    h("section.card", { "aria-label": "Profile and preferences" },
      h("div.card-head", null, h("h2", { text: "Profile and preferences" })),
      h("div.card-body", null, form)),
    h("section.card", { "aria-label": "Password" },
      h("div.card-head", null, h("h2", { text: "Password" }),
        h("span.muted.small", { text: "Changing it signs you out everywhere else." })),
      h("div.card-body", null, pwForm)),
  );

  const fill = (me) => {
    ps.me = me;
    const prefs = me.preferences || {};
    summary.textContent = me.email || "";
    pwForm.querySelector("input.offscreen").value = me.email || "";
    name.value = me.full_name || "";
    theme.value = THEMES.includes(prefs.theme) ? prefs.theme : "system";
    timeZone.value = prefs.time_zone || "";
    fillProjects();
    for (const el of [name, theme, timeZone, defaultProject, save]) el.disabled = false;
  };

  const fillProjects = () => {
    const want = (ps.me && ps.me.preferences && ps.me.preferences.default_project) || "";
    const list = (ps.projects || []).filter((p) => p.status !== "archived" || p.id === want)
      .sort((a, b) => String(a.name || "").localeCompare(String(b.name || ""), undefined, { sensitivity: "base", numeric: true }));
    while (defaultProject.options.length > 1) defaultProject.remove(1);
    for (const p of list) defaultProject.append(h("option", { value: p.id, text: p.name || p.id }));
    if (want && !list.some((p) => p.id === want)) {
      defaultProject.append(h("option", { value: want, text: projectNames.get(want) || `${want.slice(0, 8)}… (not loaded)` }));
    }
    defaultProject.value = want;
  };

  async function load() {
    const seq = ++ps.seq;
    formError.hidden = true;
    try {
      const [me, projects] = await Promise.all([whenMe(), api.projects().catch(() => null)]);
      if (seq !== ps.seq) return;
      if (Array.isArray(projects)) {
        ps.projects = projects.filter((p) => p && typeof p.id === "string");
        for (const p of ps.projects) projectNames.set(p.id, p.name);
      }
      fill(me);
    } catch (err) {
      if (seq !== ps.seq || !shell || !isAuthenticated()) return;
      formError.textContent = `Couldn't load your profile: ${err.message}`;
      formError.hidden = false;
      const retry = h("button.btn.btn-small", { type: "button" }, "Retry");
      retry.addEventListener("click", load);
      formError.append(" ", retry);
    }
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!ps.me) return;
    formError.hidden = true;
    saved.hidden = true;
    const zone = timeZone.value.trim();
    if (zone && !validTimeZone(zone)) {
      formError.textContent = `“${zone}” is not a time zone this browser knows. Use a name like Europe/Berlin, or leave it empty.`;
      formError.hidden = false;
      timeZone.focus();
      return;
    }
    // The relay replaces the stored preferences whole: always send all of them.
    const body = {
      full_name: name.value.trim(),
      preferences: { theme: theme.value, time_zone: zone || null, default_project: defaultProject.value || null },
    };
    save.disabled = true;
    save.textContent = "Saving…";
    try {
      const me = await api.updateMe(body);
      if (me && typeof me === "object") {
        setMe(me);
        fill(me);
      }
      saved.hidden = false;
    } catch (err) {
      formError.textContent = err.message;
      formError.hidden = false;
    } finally {
      save.disabled = false;
      save.textContent = "Save";
    }
  });

  pwForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    pwError.hidden = true;
    pwResult.hidden = true;
    const showError = (text, focus) => {
      pwError.textContent = text;
      pwError.hidden = false;
      if (focus) focus.focus();
    };
    const chars = [...next.value].length;
    if (!current.value) { showError("Enter your current password.", current); return; }
    if (chars < RESET_MIN || chars > RESET_MAX) {
      showError(chars < RESET_MIN
        ? `The new password needs at least ${RESET_MIN} characters.`
        : `The new password can have at most ${RESET_MAX} characters.`, next);
      return;
    }
    if (confirm.value !== next.value) { showError("The two new passwords are not the same.", confirm); return; }
    pwSave.disabled = true;
    pwSave.textContent = "Changing…";
    try {
      const res = await api.changePassword(current.value, next.value);
      const n = Math.max(0, Number(res && res.other_logins_ended) || 0);
      current.value = next.value = confirm.value = "";
      pwResult.textContent = `Password changed; ${plural(n, "other session")} ended.`;
      pwResult.hidden = false;
    } catch (err) {
      if (err.code === "wrong_password") {
        current.value = "";
        showError("The current password is wrong.", current);
      } else {
        showError(err.message || "Changing the password failed.", err.status === 422 ? next : null);
      }
    } finally {
      pwSave.disabled = false;
      pwSave.textContent = "Change password";
    }
  });

  // The time zone suggestions (the browser's list; typing any IANA name works too).
  if (typeof Intl.supportedValuesOf === "function") {
    try { zoneList.append(...Intl.supportedValuesOf("timeZone").map((z) => h("option", { value: z }))); } catch { /* none */ }
  }
  load();
  return { root, heading, nav: "profile", title: () => "Profile", destroy: () => { ps.seq++; } };
}

// ------------------------------------------------------------------ admin: users

const ADMIN_PAGE = 100;

function buildAdminPage() {
  const as = { users: null, error: null, seq: 0, more: false, loadingMore: false, forbidden: false, reset: null, notice: null };
  const heading = h("h1", { id: uid("h"), tabindex: -1, text: "Users" });
  const summary = h("span.summary");
  const noticeSlot = h("div");
  const resetSlot = h("div");
  const listSlot = h("div");
  const root = h("section.view.view-narrow", { "aria-labelledby": heading.id },
    h("div.view-head", null, h("div.view-title", null, heading, summary)),
    h("p.lead.muted", { text: "Everyone with an account on this relay. Deactivating ends their logins and stops their tokens at once; a reset link lets them set a new password (hand it over yourself)." }),
    noticeSlot,
    resetSlot,
    listSlot,
  );

  async function load(more) {
    const seq = ++as.seq;
    const after = more && as.users && as.users.length ? as.users[as.users.length - 1].email : undefined;
    if (more) { as.loadingMore = true; render(); }
    try {
      const me = await whenMe();
      if (seq !== as.seq) return;
      if (me.role !== "admin") { as.forbidden = true; render(); return; }
      const list = await api.adminUsers({ limit: ADMIN_PAGE, after });
      if (seq !== as.seq) return;
      const page = Array.isArray(list) ? list.filter((u) => u && typeof u.id === "string") : [];
      as.users = more ? [...(as.users || []), ...page.filter((u) => !as.users.some((x) => x.id === u.id))] : page;
      as.more = page.length >= ADMIN_PAGE;
      as.error = null;
    } catch (err) {
      if (seq !== as.seq || !shell || !isAuthenticated()) return;
      if (err.status === 403) as.forbidden = true;
      else if (more) as.notice = { error: true, text: `Couldn't load more users: ${err.message}` };
      else as.error = err.message;
    } finally {
      if (seq === as.seq) as.loadingMore = false;
    }
    render();
  }

  const replaceUser = (u) => {
    if (!u || typeof u.id !== "string" || !as.users) return;
    as.users = as.users.map((x) => (x.id === u.id ? { ...x, ...u } : x));
  };

  function renderNotice() {
    clear(noticeSlot);
    if (!as.notice) return;
    noticeSlot.append(h(as.notice.error ? "div.form-error.page-notice" : "div.notice.page-notice",
      { role: as.notice.error ? "alert" : "status", "data-testid": as.notice.error ? "admin-error" : "admin-notice", text: as.notice.text }));
  }

  function renderReset() {
    clear(resetSlot);
    const r = as.reset;
    if (!r) return;
    const done = h("button.btn.btn-small", { type: "button" }, "Done");
    done.addEventListener("click", () => { as.reset = null; renderReset(); });
    const input = h("input.mono", { type: "text", readonly: true, value: r.link, "data-testid": "admin-reset-link", "aria-label": `Reset link for ${r.email}`, spellcheck: "false" });
    input.addEventListener("focus", () => input.select());
    resetSlot.append(h("div.secret-panel", { role: "region", "aria-label": "Reset link", "data-email": r.email },
      h("div.secret-head", null, h("h2", null, "Reset link for ", h("span.mono", { text: r.email })), done),
      h("p.warn", null, h("strong", { text: "Copy it now — it is shown only this once." }),
        " Hand it over yourself. It works once, ", h("span", { title: dateTimeFmt.format(new Date(parseTime(r.expires_at))) }, `until it expires ${timeUntil(r.expires_at)}`),
        "; using it ends all their logins."),
      h("div.reset-link", null, input, copyButton(() => input.value)),
    ));
    input.focus();
  }

  function userRow(u) {
    const self = !!(state.me && state.me.id === u.id);
    const active = u.active !== false;
    const reset = h("button.btn.btn-small", { type: "button", "data-testid": "admin-reset", title: "Make a one-time link to set a new password" }, "Reset link");
    const toggle = active
      ? h("button.btn.btn-small.btn-danger", {
        type: "button", "data-testid": "admin-deactivate", disabled: self,
        title: self ? "You cannot deactivate your own account." : "End their logins and stop their tokens",
      }, "Deactivate")
      : h("button.btn.btn-small", { type: "button", "data-testid": "admin-activate" }, "Activate");
    reset.addEventListener("click", async () => {
      reset.disabled = true;
      as.notice = null;
      try {
        const res = await api.adminResetLink(u.id, 60);
        if (!res || typeof res.link !== "string") throw badResponse("The relay returned no link.");
        as.reset = { email: u.email, link: res.link, expires_at: res.expires_at };
        renderNotice();
        renderReset();
      } catch (err) {
        as.notice = { error: true, text: `Couldn't make a reset link for ${u.email}: ${err.message}` };
        renderNotice();
      } finally {
        reset.disabled = false;
      }
    });
    toggle.addEventListener("click", async () => {
      // eslint-disable-next-line no-alert
      if (active && !window.confirm(`Deactivate ${u.email}?\n\nTheir logins end and their tokens stop working at once. You can activate the account again later.`)) return;
      toggle.disabled = true;
      toggle.textContent = active ? "Deactivating…" : "Activating…";
      as.notice = null;
      try {
        const changed = await (active ? api.adminDeactivate(u.id) : api.adminActivate(u.id));
        replaceUser(changed && typeof changed === "object" ? changed : { id: u.id, active: !active });
        as.notice = { error: false, text: `${u.email} is ${active ? "deactivated" : "active again"}.` };
      } catch (err) {
        as.notice = {
          error: true,
          text: err.code === "self"
            ? "You cannot deactivate your own account."
            : `Couldn't ${active ? "deactivate" : "activate"} ${u.email}: ${err.message}`,
        };
      }
      render();
    });
    return h("tr", { "data-testid": "admin-user-row", "data-email": u.email, "data-user-id": u.id, "data-active": active ? "true" : "false", class: active ? "" : "is-archived" },
      h("td.t-name", null, h("div.clip", { text: u.email, title: u.email }),
        u.full_name ? h("div.muted.small.clip", { text: u.full_name }) : null),
      h("td", null, h("span.role", { class: `role-${u.role}`, text: u.role || "member" }), self ? h("span.muted.small", { text: " (you)" }) : null),
      h("td", null, h("span.pstatus", {
        class: active ? "pstatus-active" : "pstatus-archived", "data-testid": "admin-user-state", "data-state": active ? "active" : "deactivated",
      }, active ? "active" : "deactivated")),
      h("td.t-time", null, timeEl(u.created_at)),
      h("td.t-actions", null, h("div.row-actions", null, reset, toggle)),
    );
  }

  function render() {
    renderNotice();
    clear(listSlot);
    if (as.forbidden) {
      summary.textContent = "";
      listSlot.append(h("div.empty.empty-small", { "data-testid": "admin-forbidden" },
        h("h2", { text: "Administrators only" }),
        h("p.muted", { text: "Only an administrator of this relay can see and manage its users." })));
      return;
    }
    const list = as.users;
    if (as.error && !list) { listSlot.append(errorBanner(`Couldn't load users: ${as.error}`, () => load(false))); return; }
    if (!list) { listSlot.append(loadingEl("Loading users…")); return; }
    const off = list.filter((u) => u.active === false).length;
    summary.textContent = `${plural(list.length, "user")}${as.more ? "+" : ""}${off ? ` · ${off} deactivated` : ""}`;
    listSlot.append(h("div.table-wrap", null,
      h("table.data", null,
        h("thead", null, h("tr", null,
          h("th", { scope: "col", text: "User" }), h("th", { scope: "col", text: "Role" }), h("th", { scope: "col", text: "State" }),
          h("th", { scope: "col", text: "Joined" }), h("th", { scope: "col", "aria-label": "Actions" }))),
        h("tbody", null, list.map(userRow)))));
    if (as.more) {
      const more = h("button.btn.btn-small", { type: "button", "data-testid": "admin-more", disabled: as.loadingMore },
        as.loadingMore ? "Loading…" : "Load more");
      more.addEventListener("click", () => load(true));
      listSlot.append(h("div.pager", null, more));
    }
  }

  render();
  load(false);
  return { root, heading, nav: "admin", title: () => "Users", destroy: () => { as.seq++; } };
}

// ------------------------------------------------------------------ live log

const LOG_KEEP = 2 * 1024 * 1024;  // characters of log text kept in the page
const LOG_BLOCK = 16 * 1024;       // characters per block in the <pre> (blocks start at line breaks)
const logFollowers = new Map();    // task id -> LogView following it

// ANSI/VT escape sequences: CSI, OSC (to BEL or ST), DCS/SOS/PM/APC (to ST), and 2-byte escapes.
// (A lone ESC followed by [ ] P X ^ _ opens a longer sequence, so those are not 2-byte escapes.)
const ESC_RE = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b\n]*(?:\x1b\\)?|\x1b[ -/]+[0-~]|\x1b[0-OQ-WYZ\\`-~]|\u009b[0-?]*[ -/]*[@-~]/g;
const ESC_DONE_RE = /^(?:\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b\n]*\x1b\\|\x1b[ -/]+[0-~]|\x1b[0-OQ-WYZ\\`-~])/;
const CTRL_RE = /[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]/g;

/** Index where an unfinished escape sequence (or a CR that may be half of CRLF) starts; s.length if none. */
function unfinishedTail(s) {
  const i = s.lastIndexOf("\x1b");
  if (i >= 0 && s.length - i <= 512 && s.indexOf("\n", i) < 0 && !ESC_DONE_RE.test(s.slice(i))) return i;
  return s.endsWith("\r") ? s.length - 1 : s.length;
}

function cleanLogText(s) {
  if (s.indexOf("\x1b") >= 0 || s.indexOf("\u009b") >= 0) s = s.replace(ESC_RE, "");
  if (s.indexOf("\r") >= 0) s = s.replace(/\r\n?/g, "\n");
  return s.replace(CTRL_RE, "").replace(/\x1b/g, "");
}

/**
 * Follows one task's log over the events socket and renders it into a <pre>:
 * bytes are decoded by one streaming TextDecoder, text accumulates between animation frames
 * and is appended once per frame, escape sequences are stripped, only the last LOG_KEEP
 * characters stay in the page, and the view sticks to the bottom only while the reader is there.
 * While the socket is down it reads GET /tasks/{id}/logs instead, and re-follows from the
 * offset reached when the socket is back.
 */
class LogView {
  constructor(taskId, { pre, status, bytes, trimmedNote, jump, onEnd }) {
    this.taskId = taskId;
    this.pre = pre;
    this.statusEl = status;
    this.bytesEl = bytes;
    this.bytesText = "";
    this.trimmedNote = trimmedNote;
    this.jump = jump;
    this.onEnd = onEnd;
    this.decoder = new TextDecoder("utf-8");
    this.offset = 0;           // next byte offset expected
    this.pending = "";         // decoded text not yet in the page
    this.carry = "";           // an escape sequence cut by a chunk boundary
    this.raf = 0;
    this.blocks = [];          // [{el, node, len, open}]
    this.domChars = 0;
    this.trimmed = false;
    this.dropPartialLine = false;
    this.ended = false;
    this.ending = false;
    this.stopped = false;
    this.stick = true;
    this.polling = false;
    this.pollTimer = 0;
    this.mode = "";
    this.statusText = "Waiting…";
    this._onScroll = () => {
      const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight <= 24;
      this.stick = atBottom;
      jump.hidden = atBottom;
    };
    this._onJump = () => {
      this.stick = true;
      jump.hidden = true;
      pre.scrollTop = pre.scrollHeight;
    };
    pre.addEventListener("scroll", this._onScroll, { passive: true });
    jump.addEventListener("click", this._onJump);
  }

  /** Start at `offset` (> 0 skips the head of a big log: only the tail would be kept anyway). */
  start(offset) {
    this.offset = Math.max(0, Math.floor(offset) || 0);
    if (this.offset > 0) {
      this.trimmed = true;
      this.dropPartialLine = true;
      this.trimmedNote.hidden = false;
    }
    logFollowers.set(this.taskId, this);
    this.onLive(state.live);
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    this.stopPolling();
    cancelAnimationFrame(this.raf);
    this.raf = 0;
    if (logFollowers.get(this.taskId) === this) logFollowers.delete(this.taskId);
    if (!this.ended && stream) stream.send({ type: "unfollow", task: this.taskId });
    this.pre.removeEventListener("scroll", this._onScroll);
    this.jump.removeEventListener("click", this._onJump);
  }

  /** Socket state changed: (re-)follow from where we are, or read over HTTP while it is down. */
  onLive(s) {
    if (this.ended || this.ending || this.stopped) return;
    if (s === "live" && stream && stream.send({ type: "follow", task: this.taskId, offset: this.offset })) {
      this.stopPolling();
      this.setMode("following");
    } else if (s !== "live") {
      this.setMode(s === "connecting" ? "waiting" : "polling");
      this.startPolling(s === "connecting" ? 2000 : 500);
    }
  }

  onMessage(msg) {
    if (this.ended || this.ending || this.stopped) return;
    if (msg.type === "log") {
      const offset = Number(msg.offset);
      this.ingest(Number.isFinite(offset) ? offset : this.offset, base64ToBytes(msg.data));
    } else if (msg.type === "log_end") {
      const end = Number(msg.offset);
      this.endAt(Number.isFinite(end) ? end : this.offset);
    } else if (msg.type === "error") {
      this.fail(msg.message || "The relay can't stream this log.");
    }
  }

  /** Bytes [offset, offset + bytes.length) of the log. Overlaps are skipped, gaps are marked. */
  ingest(offset, bytes) {
    if (this.ended || this.stopped) return;
    if (offset > this.offset) {
      this.pending += this.decoder.decode();
      this.pending += `\n[… ${fmtBytes(offset - this.offset)} of output not received …]\n`;
      this.offset = offset;
    }
    if (offset < this.offset) {
      const skip = this.offset - offset;
      if (skip >= bytes.length) return;
      bytes = bytes.subarray(skip);
    }
    if (!bytes.length) return;
    this.offset += bytes.length;
    this.pending += this.decoder.decode(bytes, { stream: true });
    // A hidden tab gets no animation frames: don't hoard more text than the page will keep.
    if (this.pending.length > 2 * LOG_KEEP) {
      this.pending = this.pending.slice(this.pending.length - LOG_KEEP);
      this.trimmed = true;
      this.dropPartialLine = true;
      this.clearBlocks();
    }
    this.schedule();
  }

  async endAt(end) {
    this.ending = true;
    if (end > this.offset) {
      // The socket said the log ends further on than what arrived: read the rest over HTTP.
      try { await this.readHttpUntil(end); } catch { /* show what we have */ }
    }
    this.finish();
  }

  async readHttpUntil(end) {
    while (!this.stopped && this.offset < end) {
      const page = await api.taskLogs(this.taskId, this.offset, Math.min(4 * 1024 * 1024, end - this.offset));
      const bytes = base64ToBytes(page && page.data);
      if (!bytes.length) break;
      this.ingest(Number.isFinite(page.offset) ? page.offset : this.offset, bytes);
      if (page.end) break;
    }
  }

  finish() {
    if (this.ended || this.stopped) return;
    this.ended = true;
    this.stopPolling();
    if (logFollowers.get(this.taskId) === this) logFollowers.delete(this.taskId);
    this.pending += this.decoder.decode(); // flush a dangling partial character
    this.setMode("ended");
    this.schedule();
    if (this.onEnd) this.onEnd();
  }

  fail(message) {
    this.ending = true;
    this.stopPolling();
    if (logFollowers.get(this.taskId) === this) logFollowers.delete(this.taskId);
    this.setMode("error", message);
  }

  /** The follow ended: say how the task finished. */
  describeEnd(t) {
    if (!this.ended || !t) return;
    const how = isActive(t)
      ? "task still finishing"
      : `${STATE_LABELS[t.state] || t.state}${Number.isFinite(t.exit_code) ? `, exit code ${t.exit_code}` : ""}`;
    this.setMode("ended", `End of log · ${how}`);
  }

  // ---- HTTP fallback while the socket is down

  startPolling(delay) {
    if (this.polling || this.ended || this.ending || this.stopped) return;
    this.polling = true;
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => this.pollOnce(), delay);
  }

  stopPolling() {
    this.polling = false;
    clearTimeout(this.pollTimer);
    this.pollTimer = 0;
  }

  async pollOnce() {
    if (!this.polling) return;
    if (this.mode === "waiting") this.setMode("polling");
    let wait = 2000;
    try {
      const page = await api.taskLogs(this.taskId, this.offset, 1024 * 1024);
      if (!this.polling) return; // the socket came back meanwhile
      const bytes = base64ToBytes(page && page.data);
      this.ingest(Number.isFinite(page.offset) ? page.offset : this.offset, bytes);
      if (page.end) { this.finish(); return; }
      if (bytes.length) wait = 0;
    } catch (err) {
      if (!this.polling) return;
      if (err.status === 404 || err.status === 403) { this.fail(err.message); return; }
      wait = 5000;
    }
    if (this.polling) this.pollTimer = setTimeout(() => this.pollOnce(), wait);
  }

  // ---- rendering

  setMode(mode, text) {
    this.mode = mode;
    const label = text || {
      waiting: "Connecting…",
      following: "Following live",
      polling: "Live connection down — polling",
      ended: "End of log",
      error: "Can't follow this log",
    }[mode] || mode;
    this.statusEl.dataset.state = mode;
    if (label !== this.statusText) {
      this.statusText = label;
      this.statusEl.textContent = label;
    }
    this.showBytes();
  }

  showBytes() {
    const text = this.offset ? fmtBytes(this.offset) : "";
    if (text === this.bytesText) return;
    this.bytesText = text;
    this.bytesEl.textContent = text;
  }

  schedule() {
    if (this.raf || this.stopped) return;
    this.raf = requestAnimationFrame(() => this.flush());
  }

  /** One DOM update per frame with everything that arrived since the last one. */
  flush() {
    this.raf = 0;
    if (this.stopped) return;
    let text = this.carry + this.pending;
    this.pending = "";
    this.carry = "";
    if (!this.ended) {
      const cut = unfinishedTail(text);
      if (cut < text.length) {
        this.carry = text.slice(cut);
        text = text.slice(0, cut);
      }
    }
    text = cleanLogText(text);
    if (this.dropPartialLine && text) {
      // We started mid-log: skip to the first full line (unless there is no line break near).
      const nl = text.indexOf("\n");
      if (nl >= 0 && nl < 4096) text = text.slice(nl + 1);
      if (nl >= 0 || text.length >= 4096 || this.ended) this.dropPartialLine = false;
      else text = "";
    }
    if (text) {
      if (text.length > LOG_KEEP) {
        text = text.slice(text.length - LOG_KEEP);
        this.clearBlocks();
        this.trimmed = true;
      }
      this.append(text);
      this.trimFront();
      if (this.trimmed) this.trimmedNote.hidden = false;
      if (this.stick) this.pre.scrollTop = this.pre.scrollHeight;
    }
    this.showBytes();
  }

  append(text) {
    const last = this.blocks[this.blocks.length - 1];
    if (last && last.open) {
      if (last.len + text.length <= LOG_BLOCK || last.len + text.length <= 4 * LOG_BLOCK && text.indexOf("\n") < 0) {
        last.node.appendData(text);
        last.len += text.length;
        this.domChars += text.length;
        return;
      }
      // Close this block at the last line break; the rest starts a new one.
      const nl = text.lastIndexOf("\n");
      if (nl >= 0) {
        const head = text.slice(0, nl + 1);
        last.node.appendData(head);
        last.len += head.length;
        this.domChars += head.length;
        text = text.slice(nl + 1);
      }
      last.open = false;
    }
    if (!text) return;
    const node = document.createTextNode(text);
    const el = h("span.log-block", null, node);
    this.pre.appendChild(el);
    this.blocks.push({ el, node, len: text.length, open: true });
    this.domChars += text.length;
  }

  trimFront() {
    while (this.blocks.length > 1 && this.domChars - this.blocks[0].len >= LOG_KEEP) {
      const b = this.blocks.shift();
      b.el.remove();
      this.domChars -= b.len;
      this.trimmed = true;
    }
    // One enormous block (output without line breaks): cut its front.
    if (this.domChars > LOG_KEEP + LOG_BLOCK && this.blocks.length) {
      const b = this.blocks[0];
      const cut = Math.min(b.len, this.domChars - LOG_KEEP);
      b.node.deleteData(0, cut);
      b.len -= cut;
      this.domChars -= cut;
      this.trimmed = true;
    }
  }

  clearBlocks() {
    for (const b of this.blocks) b.el.remove();
    this.blocks = [];
    this.domChars = 0;
  }
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
