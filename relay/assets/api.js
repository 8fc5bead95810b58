// Fulcrum dashboard — API client.
//
// * Every response is the envelope {data, meta, errors}; failures become ApiError
//   carrying errors[0].code / errors[0].message.
// * The access token lives in memory only. The refresh token is an httpOnly
//   cookie the relay sets on /api/v1/auth; we never see it.
// * Refresh tokens rotate (each works once), so all refreshes go through one
//   coalesced promise, and across tabs through a Web Lock when available.
// * EventStream: ticket -> WebSocket -> reconnect with jittered backoff.

const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, code, message, meta) {
    super(message || code || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;   // 0 for network failures
    this.code = code || "error";
    this.meta = meta || null;
  }
}

// ---------------------------------------------------------------- session state

let accessToken = null;
let expiresAt = 0;            // ms epoch at which the access token expires
let refreshTimer = 0;
let refreshRetryMs = 0;       // backoff for refreshes that failed for non-auth reasons
let refreshInFlight = null;   // the one shared refresh promise
let sessionGeneration = 0;    // bumped on logout so late refresh results are dropped

const listeners = new Set();  // session listeners: fn({type: "login"|"logout"|"expired"})

/** Subscribe to session changes. Returns an unsubscribe function. */
export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(type) {
  for (const fn of [...listeners]) {
    try { fn({ type }); } catch (e) { console.error(e); }
  }
}

// Tell other tabs about logins/logouts (the cookie is shared; tokens are not).
const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("fulcrum-auth") : null;
if (channel) {
  channel.onmessage = (ev) => {
    const msg = ev.data || {};
    if (msg.type === "logout" && accessToken) {
      clearSession();
      emit("logout");
    } else if (msg.type === "login" && !accessToken) {
      // Another tab signed in: pick up the session through the shared cookie.
      refresh().then(() => emit("login"), () => {});
    }
  };
}

export function isAuthenticated() {
  return accessToken !== null;
}

function setSession(tok) {
  if (!tok || typeof tok.access_token !== "string") {
    throw new ApiError(500, "bad_response", "The relay returned an unexpected token response.");
  }
  accessToken = tok.access_token;
  const ttl = Math.max(5, Number(tok.expires_in) || 300);
  expiresAt = Date.now() + ttl * 1000;
  refreshRetryMs = 0;
  scheduleRefresh(ttl * 1000);
}

function clearSession() {
  sessionGeneration++;
  accessToken = null;
  expiresAt = 0;
  clearTimeout(refreshTimer);
  refreshTimer = 0;
}

function scheduleRefresh(ttlMs) {
  clearTimeout(refreshTimer);
  // Refresh a little before expiry: 60 s early, or 20 % of the lifetime for short tokens.
  const lead = Math.min(60_000, ttlMs * 0.2);
  const delay = Math.max(1_000, ttlMs - lead);
  refreshTimer = setTimeout(backgroundRefresh, delay);
}

function backgroundRefresh() {
  if (!accessToken) return;
  refresh().catch((err) => {
    if (err.status === 401 || !accessToken) return; // refresh() already ended the session
    // Transient failure (network, 5xx): retry with backoff while the token still lives.
    refreshRetryMs = Math.min(30_000, refreshRetryMs ? refreshRetryMs * 2 : 2_000);
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(backgroundRefresh, refreshRetryMs);
  });
}

// Background tabs throttle timers; catch up when the tab becomes visible again.
if (typeof document !== "undefined") {
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && accessToken && Date.now() > expiresAt - 30_000) {
      backgroundRefresh();
    }
  });
}

// --------------------------------------------------------------------- transport

async function send(method, path, body, token) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "network", "Cannot reach the relay. Check your connection.");
  }
  let env = null;
  try {
    const text = await res.text();
    env = text ? JSON.parse(text) : null;
  } catch {
    env = null;
  }
  const errors = env && Array.isArray(env.errors) ? env.errors : [];
  if (!res.ok || errors.length > 0) {
    const first = errors[0] || {};
    throw new ApiError(
      res.status,
      first.code || (res.status === 401 ? "unauthorized" : "http_" + res.status),
      first.message || defaultMessage(res.status),
      env && env.meta,
    );
  }
  return { status: res.status, data: env ? env.data : null, meta: env ? env.meta : null };
}

function defaultMessage(status) {
  if (status === 401) return "Your session has expired. Please sign in again.";
  if (status === 403) return "You are not allowed to do that.";
  if (status === 404) return "Not found.";
  if (status === 429) return "Too many requests. Try again in a moment.";
  if (status >= 500) return `The relay had a problem (HTTP ${status}). Try again.`;
  return `Request failed (HTTP ${status}).`;
}

// ----------------------------------------------------------------------- auth

export async function login(email, password) {
  const { data } = await send("POST", "/auth/login", { email, password });
  setSession(data);
  if (channel) channel.postMessage({ type: "login" });
  emit("login");
  return data;
}

/**
 * Set a new password with a one-time reset link's token (`fulcrum-relay user reset-password`).
 * Sent without a bearer token and starts no session: the user signs in afterwards.
 * Errors: 401 invalid_reset (unknown, used or expired link), 422 (password rules), 429.
 */
export async function resetPassword(token, newPassword) {
  const { data } = await send("POST", "/auth/reset", { token, new_password: newPassword });
  return data;
}

/**
 * Exchange the refresh cookie for a new access token. Concurrent callers share
 * one request; other tabs are serialised with a Web Lock, so a rotated refresh
 * token is never presented twice.
 */
export function refresh() {
  if (refreshInFlight) return refreshInFlight;
  const generation = sessionGeneration;
  const doRefresh = async () => {
    try {
      const { data } = await send("POST", "/auth/refresh", {});
      if (generation !== sessionGeneration) {
        throw new ApiError(401, "logged_out", "Signed out.");
      }
      setSession(data);
      return data;
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        const hadSession = accessToken !== null;
        clearSession();
        if (hadSession) emit("expired");
      }
      throw err;
    }
  };
  const locked = typeof navigator !== "undefined" && navigator.locks && navigator.locks.request
    ? () => navigator.locks.request("fulcrum-auth-refresh", doRefresh)
    : doRefresh;
  refreshInFlight = locked().finally(() => { refreshInFlight = null; });
  return refreshInFlight;
}

/** Try to restore a session from the refresh cookie (page load). */
export async function restoreSession() {
  await refresh();
  emit("login");
}

export async function logout() {
  const token = accessToken;
  clearSession();
  if (channel) channel.postMessage({ type: "logout" });
  try {
    await send("POST", "/auth/logout", {}, token);
  } finally {
    emit("logout");
  }
}

// ------------------------------------------------------------- authed requests

/**
 * Authenticated JSON request. Returns `data` from the envelope.
 * Refreshes first when the token is (nearly) expired, and retries once after a 401.
 */
export async function request(method, path, body) {
  return (await requestEnvelope(method, path, body)).data;
}

/** 401 codes that say something in the request was wrong, not that the session is gone. */
const NOT_SESSION_401 = new Set(["wrong_password"]);

/** Like request(), but resolves to {status, data, meta} (list endpoints page through meta). */
export async function requestEnvelope(method, path, body) {
  if (!accessToken || Date.now() > expiresAt - 5_000) {
    if (!accessToken && !refreshInFlight) {
      throw new ApiError(401, "unauthorized", "Please sign in.");
    }
    await refresh();
  }
  const used = accessToken;
  try {
    return await send(method, path, body, used);
  } catch (err) {
    // A 401 about the request itself (a wrong current password) is not about the session:
    // refreshing and sending it again would only count a second failed attempt.
    if (err.status !== 401 || NOT_SESSION_401.has(err.code)) throw err;
    // Another caller may have refreshed meanwhile; only refresh if our token is still current.
    if (accessToken === used || !accessToken) await refresh(); // throws (ending the session) if the cookie is gone
    return await send(method, path, body, accessToken);
  }
}

/** "?a=1&b=2" from an object, skipping empty values. */
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === null || v === undefined || v === "") continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

const enc = encodeURIComponent;

export const api = {
  /** -> {id, email, created_at, full_name, preferences: {theme, time_zone, default_project}, role} */
  me: () => request("GET", "/me"),
  /** {full_name?, preferences?} -> the user. The relay replaces the stored preferences whole. */
  updateMe: (body) => request("PATCH", "/me", body),
  /** -> {other_logins_ended} (401/403 wrong_password, 422 password rules) */
  changePassword: (currentPassword, newPassword) =>
    request("POST", "/me/password", { current_password: currentPassword, new_password: newPassword }),
  workspaces: () => request("GET", "/workspaces"),
  workspace: (id) => request("GET", `/workspaces/${encodeURIComponent(id)}`),

  /** Every token of the caller, of every kind, revoked ones included. */
  tokens: () => request("GET", "/tokens"),
  /**
   * {name, kind: "agent"|"mcp"|"api"|"ingest", scopes?, project_id?, workspace_id?, expires_at?}
   * -> the token with its secret in `token` (shown once).
   */
  createToken: (body) => request("POST", "/tokens", body),
  revokeToken: (id) => request("DELETE", `/tokens/${enc(id)}`),
  eventsTicket: () => request("POST", "/events/ticket", {}),

  /** Administrators only. {after?, limit?} -> [{id, email, full_name, role, active, created_at}] by email. */
  adminUsers: (params) => request("GET", `/admin/users${query(params)}`),
  /** -> the user, deactivated (409 `self` for your own account). */
  adminDeactivate: (id) => request("POST", `/admin/users/${enc(id)}/deactivate`, {}),
  adminActivate: (id) => request("POST", `/admin/users/${enc(id)}/activate`, {}),
  /** -> {link, expires_at}: a one-time password reset link, shown once. */
  adminResetLink: (id, validForMins = 60) =>
    request("POST", `/admin/users/${enc(id)}/reset-link`, { valid_for_mins: validForMins }),

  /** The OAuth authorization request behind the consent page (`query`: the authorize query string). */
  oauthRequest: (queryString) => request("GET", `/oauth/requests?${queryString}`),
  /** {client_id, redirect_uri, code_challenge, code_challenge_method, state, scope, resource, approve} -> {redirect_to} */
  oauthConsent: (body) => request("POST", "/oauth/consent", body),

  projects: () => request("GET", "/projects"),
  project: (id) => request("GET", `/projects/${enc(id)}`),
  createProject: (body) => request("POST", "/projects", body),
  updateProject: (id, body) => request("PATCH", `/projects/${enc(id)}`, body),
  archiveProject: (id) => request("POST", `/projects/${enc(id)}/archive`, {}),
  projectStatus: (id) => request("GET", `/projects/${enc(id)}/status`),
  attachWorkspace: (id, wsId) => request("PUT", `/projects/${enc(id)}/workspaces/${enc(wsId)}`),
  detachWorkspace: (id, wsId) => request("DELETE", `/projects/${enc(id)}/workspaces/${enc(wsId)}`),
  projectMembers: (id) => request("GET", `/projects/${enc(id)}/members`),
  /** Changes the role of an existing member only (404 not_a_member otherwise); new people are invited. */
  setProjectMember: (id, email, role) => request("PUT", `/projects/${enc(id)}/members`, { email, role }),
  removeProjectMember: (id, userId) => request("DELETE", `/projects/${enc(id)}/members/${enc(userId)}`),
  /** role: "maintainer" | "viewer" -> Invitation (409 already_member / too_many_invitations). */
  inviteToProject: (id, email, role) => request("POST", `/projects/${enc(id)}/invitations`, { email, role }),
  /** The project's pending invitations (owner only). */
  projectInvitations: (id) => request("GET", `/projects/${enc(id)}/invitations`),
  withdrawInvitation: (id, invitationId) => request("DELETE", `/projects/${enc(id)}/invitations/${enc(invitationId)}`),
  /** The invitations addressed to the signed-in user. */
  myInvitations: () => request("GET", "/invitations"),
  /** -> the Project just joined */
  acceptInvitation: (invitationId) => request("POST", `/invitations/${enc(invitationId)}/accept`, {}),
  declineInvitation: (invitationId) => request("POST", `/invitations/${enc(invitationId)}/decline`, {}),

  /** {project?, workspace?, state?, page?, per_page?} -> {data: [Task], meta: {page, per_page, total}} */
  tasks: (params) => requestEnvelope("GET", `/tasks${query(params)}`),
  task: (id) => request("GET", `/tasks/${enc(id)}`),
  createTask: (body) => request("POST", "/tasks", body),
  cancelTask: (id) => request("POST", `/tasks/${enc(id)}/cancel`, {}),
  rerunTask: (id) => request("POST", `/tasks/${enc(id)}/rerun`, {}),
  /** -> {offset, next_offset, data: base64, end} */
  taskLogs: (id, offset, limit) => request("GET", `/tasks/${enc(id)}/logs${query({ offset, limit })}`),
};

// ------------------------------------------------------------------ bytes

/** Base64 -> Uint8Array (native decoder when the browser has one). */
export function base64ToBytes(b64) {
  if (typeof b64 !== "string" || b64 === "") return new Uint8Array(0);
  if (typeof Uint8Array.fromBase64 === "function") {
    try { return Uint8Array.fromBase64(b64); } catch { /* fall through to atob */ }
  }
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Every byte of a task's log, page by page (4 MiB each), as a Blob.
 * Stops at `end`, or at the current end of a still-running task's log.
 * `onProgress(bytes)` is called after each page; `signal` aborts between pages.
 */
export async function fetchWholeLog(taskId, { onProgress, signal } = {}) {
  const LIMIT = 4 * 1024 * 1024;
  const parts = [];
  let offset = 0;
  let total = 0;
  for (let pages = 0; pages < 100_000; pages++) {
    if (signal && signal.aborted) throw new ApiError(0, "aborted", "Download canceled.");
    const page = await api.taskLogs(taskId, offset, LIMIT);
    if (!page || typeof page !== "object") throw new ApiError(500, "bad_response", "Unexpected log response.");
    const bytes = base64ToBytes(page.data);
    if (bytes.length) { parts.push(bytes); total += bytes.length; }
    const next = Number.isFinite(page.next_offset) ? page.next_offset : offset + bytes.length;
    if (onProgress) onProgress(total);
    if (page.end || next <= offset || bytes.length === 0) break;
    offset = next;
  }
  return new Blob(parts, { type: "text/plain;charset=utf-8" });
}

// ----------------------------------------------------------------- event socket

/**
 * Live events. `onMessage(msg)` gets each parsed JSON message; `onState(state)`
 * gets "connecting" | "live" | "reconnecting" | "stopped".
 * Every (re)connect fetches a fresh ticket. Subscriptions made with send() (log follows)
 * do not survive a reconnect: re-send them when the state becomes "live" again.
 */
export class EventStream {
  constructor({ onMessage, onState }) {
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.timer = 0;
    this.stableTimer = 0;
    this.attempt = 0;
    this.running = false;
    this.state = "stopped";
    this.nextRetryAt = 0;
    this._online = () => this.retryNow();
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    window.addEventListener("online", this._online);
    this._setState("connecting");
    this._connect();
  }

  stop() {
    this.running = false;
    window.removeEventListener("online", this._online);
    clearTimeout(this.timer);
    clearTimeout(this.stableTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000, "bye"); } catch { /* ignore */ }
    }
    this._setState("stopped");
  }

  /** Send a JSON message now. False when the socket is not open (the caller re-sends on "live"). */
  send(msg) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  /** Skip the remaining backoff (e.g. when the browser comes back online). */
  retryNow() {
    if (!this.running || this.ws) return;
    clearTimeout(this.timer);
    this._connect();
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    try { this.onState(state); } catch (e) { console.error(e); }
  }

  async _connect() {
    if (!this.running) return;
    let ticket;
    try {
      const data = await api.eventsTicket();
      ticket = data && data.ticket;
      if (!ticket) throw new ApiError(500, "bad_response", "No ticket in response");
    } catch (err) {
      if (!this.running) return;
      if (err.status === 401) { this.stop(); return; } // session is gone; the app shows login
      this._scheduleReconnect();
      return;
    }
    if (!this.running) return;

    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}${API}/events?ticket=${encodeURIComponent(ticket)}`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this._setState("live");
      // Only forget the backoff once the connection has proven stable.
      clearTimeout(this.stableTimer);
      this.stableTimer = setTimeout(() => { this.attempt = 0; }, 10_000);
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg && typeof msg === "object") {
        try { this.onMessage(msg); } catch (e) { console.error(e); }
      }
    };
    ws.onerror = () => { /* a close event follows */ };
    ws.onclose = () => {
      clearTimeout(this.stableTimer);
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.running) this._scheduleReconnect();
    };
  }

  _scheduleReconnect() {
    this._setState("reconnecting");
    // 0.5 s doubling up to 15 s, with ±30 % jitter.
    const base = Math.min(15_000, 500 * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 10);
    const delay = Math.round(base * (0.7 + Math.random() * 0.6));
    this.nextRetryAt = Date.now() + delay;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this._connect(), delay);
  }
}
