// Fulcrum dashboard — API client.
//
// * Every response is the envelope {data, meta, errors}; failures become ApiError
//   carrying errors[0].code / errors[0].message.
// * The access token lives in memory only. The refresh token is an httpOnly
//   cookie the relay sets on /api/v1/auth; we never see it.
// * Refresh tokens rotate (each works once), so all refreshes go through one
//   coalesced promise, and across tabs through a Web Lock when available.
// * Whether a refresh cookie may exist is remembered as a flag (never a token) in localStorage,
//   so a signed-out page load does not ask the relay for a refresh it would refuse (a 401 that
//   browsers log as an error).
// * The events socket is in lib/events.js.

/** @import * as T from "./lib/types.js" */
/** @import * as A from "./pages/assistant.js" */
/** @typedef {import("./lib/types.js").TokenPair} TokenPair */
/** @typedef {{ status: number, data: any, meta: any }} Envelope */

export const API = "/api/v1";

export class ApiError extends Error {
  /**
   * @param {number} status 0 for network failures
   * @param {string} [code]
   * @param {string} [message]
   * @param {unknown} [meta]
   */
  constructor(status, code, message, meta) {
    super(message || code || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status; // 0 for network failures
    this.code = code || "error";
    this.meta = meta || null;
  }
}

/** Anything thrown, as an ApiError (what `catch` gets is unknown). @param {unknown} err */
export function asApiError(err) {
  if (err instanceof ApiError) return err;
  return new ApiError(0, "error", err instanceof Error ? err.message : String(err));
}

// ---------------------------------------------------------------- session state

/** @type {string | null} */
let accessToken = null;
let expiresAt = 0; // ms epoch at which the access token expires
let refreshTimer = 0;
let refreshRetryMs = 0; // backoff for refreshes that failed for non-auth reasons
/** @type {Promise<TokenPair> | null} the one shared refresh promise */
let refreshInFlight = null;
let sessionGeneration = 0; // bumped on logout so late refresh results are dropped

/** @typedef {{ type: "login" | "logout" | "expired" }} SessionEvent */
/** @type {Set<(ev: SessionEvent) => void>} */
const listeners = new Set();

/** Subscribe to session changes. Returns an unsubscribe function. @param {(ev: SessionEvent) => void} fn */
export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** @param {SessionEvent["type"]} type */
function emit(type) {
  for (const fn of [...listeners]) {
    try {
      fn({ type });
    } catch (e) {
      console.error(e);
    }
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
      refresh().then(
        () => emit("login"),
        () => {},
      );
    }
  };
}

export function isAuthenticated() {
  return accessToken !== null;
}

// A flag, not a secret: "this browser signed in and may hold a refresh cookie". Set at login and
// by every refresh that worked, dropped at logout and when a refresh is refused.
const SESSION_HINT = "fulcrum-session";

/** @param {boolean} on */
function setSessionHint(on) {
  try {
    if (on) localStorage.setItem(SESSION_HINT, "1");
    else localStorage.removeItem(SESSION_HINT);
  } catch {
    /* storage may be off: then every load tries the refresh */
  }
}

function sessionHint() {
  try {
    return localStorage.getItem(SESSION_HINT) !== null;
  } catch {
    return true;
  }
}

/** @param {TokenPair} tok */
function setSession(tok) {
  if (!tok || typeof tok.access_token !== "string") {
    throw new ApiError(500, "bad_response", "The relay returned an unexpected token response.");
  }
  accessToken = tok.access_token;
  const ttl = Math.max(5, Number(tok.expires_in) || 300);
  expiresAt = Date.now() + ttl * 1000;
  refreshRetryMs = 0;
  setSessionHint(true);
  scheduleRefresh(ttl * 1000);
}

function clearSession() {
  sessionGeneration++;
  accessToken = null;
  expiresAt = 0;
  clearTimeout(refreshTimer);
  refreshTimer = 0;
}

/** @param {number} ttlMs */
function scheduleRefresh(ttlMs) {
  clearTimeout(refreshTimer);
  // Refresh a little before expiry: 60 s early, or 20 % of the lifetime for short tokens.
  const lead = Math.min(60_000, ttlMs * 0.2);
  const delay = Math.max(1_000, ttlMs - lead);
  refreshTimer = setTimeout(backgroundRefresh, delay);
}

function backgroundRefresh() {
  if (!accessToken) return;
  refresh().catch((/** @type {unknown} */ err) => {
    if (asApiError(err).status === 401 || !accessToken) return; // refresh() already ended the session
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

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {string | null} [token]
 * @returns {Promise<Envelope>}
 */
async function send(method, path, body, token) {
  /** @type {Record<string, string>} */
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
  } catch {
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
      first.code || (res.status === 401 ? "unauthorized" : `http_${res.status}`),
      first.message || defaultMessage(res.status),
      env?.meta,
    );
  }
  return { status: res.status, data: env ? env.data : null, meta: env ? env.meta : null };
}

/** @param {number} status */
function defaultMessage(status) {
  if (status === 401) return "Your session has expired. Please sign in again.";
  if (status === 403) return "You are not allowed to do that.";
  if (status === 404) return "Not found.";
  if (status === 429) return "Too many requests. Try again in a moment.";
  if (status >= 500) return `The relay had a problem (HTTP ${status}). Try again.`;
  return `Request failed (HTTP ${status}).`;
}

// ----------------------------------------------------------------------- auth

/**
 * @param {string} email
 * @param {string} password
 * @returns {Promise<TokenPair>}
 */
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
/**
 * @param {string} token
 * @param {string} newPassword
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
  /** @returns {Promise<TokenPair>} */
  const doRefresh = async () => {
    try {
      const { data } = await send("POST", "/auth/refresh", {});
      if (generation !== sessionGeneration) {
        throw new ApiError(401, "logged_out", "Signed out.");
      }
      setSession(data);
      return data;
    } catch (caught) {
      const err = asApiError(caught);
      if (err.status === 401 || err.status === 403) {
        const hadSession = accessToken !== null;
        clearSession();
        setSessionHint(false);
        if (hadSession) emit("expired");
      }
      throw err;
    }
  };
  const locked =
    typeof navigator !== "undefined" && navigator.locks && navigator.locks.request
      ? () =>
          /** @type {Promise<TokenPair>} */ (
            /** @type {unknown} */ (navigator.locks.request("fulcrum-auth-refresh", doRefresh))
          )
      : doRefresh;
  refreshInFlight = locked().finally(() => {
    refreshInFlight = null;
  });
  return refreshInFlight;
}

/**
 * Try to restore a session from the refresh cookie (page load). Without a sign-in remembered
 * in this browser it fails at once with a 401 and asks the relay nothing.
 */
export async function restoreSession() {
  if (!sessionHint()) throw new ApiError(401, "unauthorized", "Please sign in.");
  await refresh();
  emit("login");
}

export async function logout() {
  const token = accessToken;
  clearSession();
  setSessionHint(false);
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
/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function request(method, path, body) {
  return (await requestEnvelope(method, path, body)).data;
}

/** 401 codes that say something in the request was wrong, not that the session is gone. */
const NOT_SESSION_401 = new Set(["wrong_password"]);

/** Like request(), but resolves to {status, data, meta} (list endpoints page through meta). */
/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<Envelope>}
 */
export async function requestEnvelope(method, path, body) {
  return withSession((token) => send(method, path, body, token));
}

/**
 * Runs `call` with the access token: refreshes first when the token is (nearly) expired, and once
 * more after a 401 about the session.
 * @template R
 * @param {(token: string | null) => Promise<R>} call
 * @returns {Promise<R>}
 */
async function withSession(call) {
  if (!accessToken || Date.now() > expiresAt - 5_000) {
    if (!accessToken && !refreshInFlight) {
      throw new ApiError(401, "unauthorized", "Please sign in.");
    }
    await refresh();
  }
  const used = accessToken;
  try {
    return await call(used);
  } catch (caught) {
    const err = asApiError(caught);
    // A 401 about the request itself (a wrong current password) is not about the session:
    // refreshing and sending it again would only count a second failed attempt.
    if (err.status !== 401 || NOT_SESSION_401.has(err.code)) throw err;
    // Another caller may have refreshed meanwhile; only refresh if our token is still current.
    if (accessToken === used || !accessToken) await refresh(); // throws (ending the session) if the cookie is gone
    return await call(accessToken);
  }
}

/**
 * GET what is not a JSON envelope (an artifact, a zip) with the bearer token, as a Blob. Failures
 * still come as envelopes and become ApiErrors.
 * @param {string} path
 * @returns {Promise<Blob>}
 */
export function requestBlob(path) {
  return withSession(async (token) => {
    /** @type {Record<string, string>} */
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(API + path, { headers, credentials: "same-origin", cache: "no-store" });
    } catch {
      throw new ApiError(0, "network", "Cannot reach the relay. Check your connection.");
    }
    if (res.ok) return res.blob();
    let first = null;
    try {
      const env = await res.json();
      first = env && Array.isArray(env.errors) ? env.errors[0] : null;
    } catch {
      first = null;
    }
    throw new ApiError(
      res.status,
      first?.code || (res.status === 401 ? "unauthorized" : `http_${res.status}`),
      first?.message || defaultMessage(res.status),
    );
  });
}

/**
 * POST a JSON body and answer with the response's body as a stream: for endpoints that answer
 * with server-sent events (lib/sse.js reads them). Refused requests still come as envelopes and
 * become ApiErrors; `signal` aborts the request (an ApiError with code `aborted`).
 * @param {string} path
 * @param {unknown} body
 * @param {AbortSignal} [signal]
 * @returns {Promise<ReadableStream<Uint8Array>>}
 */
export function requestStream(path, body, signal) {
  return withSession(async (token) => {
    /** @type {Record<string, string>} */
    const headers = { Accept: "text/event-stream", "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(API + path, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
        signal,
      });
    } catch {
      if (signal?.aborted) throw new ApiError(0, "aborted", "Stopped.");
      throw new ApiError(0, "network", "Cannot reach the relay. Check your connection.");
    }
    const type = res.headers.get("Content-Type") || "";
    if (res.ok && res.body && !type.startsWith("application/json")) return res.body;
    let env = null;
    try {
      env = await res.json();
    } catch {
      env = null;
    }
    const first = env && Array.isArray(env.errors) ? env.errors[0] : null;
    const status = res.ok ? 502 : res.status;
    throw new ApiError(
      status,
      first?.code || (status === 401 ? "unauthorized" : `http_${status}`),
      first?.message || (res.ok ? "The relay answered without a stream." : defaultMessage(status)),
      env?.meta,
    );
  });
}

/** "?a=1&b=2" from an object, skipping empty values. */
/** @param {Record<string, unknown> | undefined} params */
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

/**
 * @template T
 * @typedef {Promise<T>} P
 */

/**
 * Every call the dashboard makes, typed from the relay's OpenAPI document (lib/types.js).
 */
export const api = {
  /** @returns {P<T.User>} */
  me: () => request("GET", "/me"),
  /** The relay replaces the stored preferences whole. @param {T.MeChange} body @returns {P<T.User>} */
  updateMe: (body) => request("PATCH", "/me", body),
  /**
   * 401/403 wrong_password, 422 password rules.
   * @param {string} currentPassword
   * @param {string} newPassword
   * @returns {P<T.PasswordChanged>}
   */
  changePassword: (currentPassword, newPassword) =>
    request("POST", "/me/password", { current_password: currentPassword, new_password: newPassword }),
  /** @returns {P<T.Workspace[]>} */
  workspaces: () => request("GET", "/workspaces"),
  /** @param {string} id @returns {P<T.Workspace>} */
  workspace: (id) => request("GET", `/workspaces/${enc(id)}`),

  /** Every token of the caller, of every kind, revoked ones included. @returns {P<T.Token[]>} */
  tokens: () => request("GET", "/tokens"),
  /** The token with its secret in `token` (shown once). @param {T.NewTokenBody} body @returns {P<T.CreatedToken>} */
  createToken: (body) => request("POST", "/tokens", body),
  /** @param {string} id @returns {P<T.Revoked>} */
  revokeToken: (id) => request("DELETE", `/tokens/${enc(id)}`),
  /** @returns {P<T.Ticket>} */
  eventsTicket: () => request("POST", "/events/ticket", {}),

  /** Administrators only, by email. @param {{ after?: string, limit?: number }} params @returns {P<T.UserView[]>} */
  adminUsers: (params) => request("GET", `/admin/users${query(params)}`),
  /** The user, deactivated (409 `self` for your own account). @param {string} id @returns {P<T.UserView>} */
  adminDeactivate: (id) => request("POST", `/admin/users/${enc(id)}/deactivate`, {}),
  /** @param {string} id @returns {P<T.UserView>} */
  adminActivate: (id) => request("POST", `/admin/users/${enc(id)}/activate`, {}),
  /** A one-time password reset link, shown once. @param {string} id @param {number} [validForMins] @returns {P<T.ResetLink>} */
  adminResetLink: (id, validForMins = 60) =>
    request("POST", `/admin/users/${enc(id)}/reset-link`, { valid_for_mins: validForMins }),

  /** The OAuth authorization request behind the consent page. @param {string} queryString @returns {P<T.ConsentRequest>} */
  oauthRequest: (queryString) => request("GET", `/oauth/requests?${queryString}`),
  /** @param {T.ConsentBody} body @returns {P<T.ConsentAnswer>} */
  oauthConsent: (body) => request("POST", "/oauth/consent", body),

  /** @returns {P<T.Project[]>} */
  projects: () => request("GET", "/projects"),
  /** @param {string} id @returns {P<T.Project>} */
  project: (id) => request("GET", `/projects/${enc(id)}`),
  /** @param {T.ProjectBody} body @returns {P<T.Project>} */
  createProject: (body) => request("POST", "/projects", body),
  /** @param {string} id @param {T.ProjectBody} body @returns {P<T.Project>} */
  updateProject: (id, body) => request("PATCH", `/projects/${enc(id)}`, body),
  /** @param {string} id @returns {P<T.Project>} */
  archiveProject: (id) => request("POST", `/projects/${enc(id)}/archive`, {}),
  /** @param {string} id @returns {P<T.ProjectReport>} */
  projectStatus: (id) => request("GET", `/projects/${enc(id)}/status`),
  /** The project's deployments, newest first. @param {string} id @returns {P<T.Deployment[]>} */
  deployments: (id) => request("GET", `/projects/${enc(id)}/deployments`),
  /** @param {string} id @param {string} wsId @returns {P<T.Project>} */
  attachWorkspace: (id, wsId) => request("PUT", `/projects/${enc(id)}/workspaces/${enc(wsId)}`),
  /** @param {string} id @param {string} wsId @returns {P<T.Project>} */
  detachWorkspace: (id, wsId) => request("DELETE", `/projects/${enc(id)}/workspaces/${enc(wsId)}`),
  /** @param {string} id @returns {P<T.Member[]>} */
  projectMembers: (id) => request("GET", `/projects/${enc(id)}/members`),
  /**
   * Changes the role of an existing member only (404 not_a_member otherwise); new people are invited.
   * @param {string} id @param {string} email @param {string} role @returns {P<T.Member[]>}
   */
  setProjectMember: (id, email, role) => request("PUT", `/projects/${enc(id)}/members`, { email, role }),
  /** @param {string} id @param {string} userId @returns {P<unknown>} */
  removeProjectMember: (id, userId) => request("DELETE", `/projects/${enc(id)}/members/${enc(userId)}`),
  /** 409 already_member / too_many_invitations. @param {string} id @param {string} email @param {string} role @returns {P<T.Invitation>} */
  inviteToProject: (id, email, role) => request("POST", `/projects/${enc(id)}/invitations`, { email, role }),
  /** The project's pending invitations (owner only). @param {string} id @returns {P<T.Invitation[]>} */
  projectInvitations: (id) => request("GET", `/projects/${enc(id)}/invitations`),
  /** @param {string} id @param {string} invitationId @returns {P<unknown>} */
  withdrawInvitation: (id, invitationId) => request("DELETE", `/projects/${enc(id)}/invitations/${enc(invitationId)}`),
  /** The invitations addressed to the signed-in user. @returns {P<T.Invitation[]>} */
  myInvitations: () => request("GET", "/invitations"),
  /** The project just joined. @param {string} invitationId @returns {P<T.Project>} */
  acceptInvitation: (invitationId) => request("POST", `/invitations/${enc(invitationId)}/accept`, {}),
  /** @param {string} invitationId @returns {P<unknown>} */
  declineInvitation: (invitationId) => request("POST", `/invitations/${enc(invitationId)}/decline`, {}),

  /** A page of tasks, newest first. @param {T.TaskQuery} params @returns {P<{ status: number, data: T.Task[], meta: T.PageMeta | null }>} */
  tasks: (params) => requestEnvelope("GET", `/tasks${query(params)}`),
  /** @param {string} id @returns {P<T.Task>} */
  task: (id) => request("GET", `/tasks/${enc(id)}`),
  /** @param {T.RunBody} body @returns {P<T.Task>} */
  createTask: (body) => request("POST", "/tasks", body),
  /** @param {string} id @returns {P<T.Task>} */
  cancelTask: (id) => request("POST", `/tasks/${enc(id)}/cancel`, {}),
  /** @param {string} id @returns {P<T.Task>} */
  rerunTask: (id) => request("POST", `/tasks/${enc(id)}/rerun`, {}),
  /** @param {string} id @param {number} offset @param {number} limit @returns {P<T.LogPage>} */
  taskLogs: (id, offset, limit) => request("GET", `/tasks/${enc(id)}/logs${query({ offset, limit })}`),

  /** The caller's LLM providers (keys only as `key_hint`). @returns {P<T.LlmProvider[]>} */
  llmProviders: () => request("GET", "/llm-providers"),
  /** 409 when the name is taken. @param {T.ProviderInput} body @returns {P<T.LlmProvider>} */
  createLlmProvider: (body) => request("POST", "/llm-providers", body),
  /** A new `api_key` replaces the sealed one. @param {string} id @param {T.ProviderPatch} body @returns {P<T.LlmProvider>} */
  updateLlmProvider: (id, body) => request("PATCH", `/llm-providers/${enc(id)}`, body),
  /** @param {string} id @returns {P<null>} */
  deleteLlmProvider: (id) => request("DELETE", `/llm-providers/${enc(id)}`),
  /** The caller's budgets and their projects', with what each has counted. @returns {P<T.BudgetView[]>} */
  budgets: () => request("GET", "/budgets"),
  /** One per scope and period: setting it again replaces the limit. @param {T.BudgetInput} body @returns {P<T.Budget>} */
  setBudget: (body) => request("PUT", "/budgets", body),
  /** @param {string} id @returns {P<null>} */
  deleteBudget: (id) => request("DELETE", `/budgets/${enc(id)}`),

  /** The caller's AI activities and their projects', newest first. @param {T.ActivityQuery} params @returns {P<T.Activity[]>} */
  aiActivities: (params) => request("GET", `/ai-activities${query(params)}`),
  /** Figures per group over a period (UTC days). @param {T.ReportQuery} params @returns {P<T.Report>} */
  aiReport: (params) => request("GET", `/ai-activities/report${query(params)}`),
  /** The same report as CSV. @param {T.ReportQuery} params */
  aiReportCsv: (params) => requestBlob(`/ai-activities/report${query({ ...params, format: "csv" })}`),
  /** Usage counters from OTLP metrics. @param {{ project?: string }} params @returns {P<T.UsageCounter[]>} */
  aiUsage: (params) => request("GET", `/ai-activities/usage${query(params)}`),
  /** A project's AI activity over a period, as Markdown. @param {string} id @param {{ from?: string, to?: string }} [params] */
  projectAiReport: (id, params) => requestBlob(`/projects/${enc(id)}/ai-report${query(params)}`),
  /** @param {string} id @returns {P<T.AiSettings>} */
  aiSettings: (id) => request("GET", `/projects/${enc(id)}/ai-settings`),
  /** Owners and maintainers only (403). @param {string} id @param {T.AiSettings} body @returns {P<T.AiSettings>} */
  setAiSettings: (id, body) => request("PUT", `/projects/${enc(id)}/ai-settings`, body),
  /**
   * The project's commits that AI activities are linked to (404 from a relay without it).
   * @param {string} id @returns {P<import("./pages/project-ai.js").AiCommit[]>}
   */
  aiCommits: (id) => request("GET", `/projects/${enc(id)}/ai-commits`),

  /** The outgoing webhook endpoints the caller manages: their own and their projects'. @returns {P<T.EndpointView[]>} */
  webhooks: () => request("GET", "/webhooks"),
  /**
   * 201 with the signing secret (shown once); 422 for a refused URL (private, loopback…), 403/404 for a project.
   * @param {T.EndpointInput} body @returns {P<T.EndpointWithSecret>}
   */
  createWebhook: (body) => request("POST", "/webhooks", body),
  /** @param {string} id @returns {P<T.EndpointView>} */
  webhook: (id) => request("GET", `/webhooks/${enc(id)}`),
  /** What is absent stays; `enabled: true` clears why it was disabled. @param {string} id @param {T.EndpointPatch} body @returns {P<T.EndpointView>} */
  updateWebhook: (id, body) => request("PATCH", `/webhooks/${enc(id)}`, body),
  /** With its deliveries and secrets (204). @param {string} id @returns {P<null>} */
  deleteWebhook: (id) => request("DELETE", `/webhooks/${enc(id)}`),
  /** A new secret (shown once); the old one keeps signing until `previous_secret_until`. @param {string} id @returns {P<T.EndpointWithSecret>} */
  rotateWebhookSecret: (id) => request("POST", `/webhooks/${enc(id)}/rotate-secret`, {}),
  /** A `webhook_test` event for this endpoint (202). @param {string} id @returns {P<T.TestEvent>} */
  testWebhook: (id) => request("POST", `/webhooks/${enc(id)}/test`, {}),
  /** The endpoint's deliveries, newest first. @param {string} id @param {T.DeliveryQuery} params @returns {P<T.Delivery[]>} */
  webhookDeliveries: (id, params) => request("GET", `/webhooks/${enc(id)}/deliveries${query(params)}`),
  /** @param {string} id @param {string} delivery @returns {P<T.DeliveryDetail>} */
  webhookDelivery: (id, delivery) => request("GET", `/webhooks/${enc(id)}/deliveries/${enc(delivery)}`),
  /** Sent again with the same `webhook-id` (202); 409 `delivery_pending` while it is still being sent. @param {string} id @param {string} delivery @returns {P<null>} */
  replayWebhookDelivery: (id, delivery) =>
    request("POST", `/webhooks/${enc(id)}/deliveries/${enc(delivery)}/replay`, {}),

  /** The caller's conversations with the assistant, latest first. @returns {P<A.Conversation[]>} */
  conversations: () => request("GET", "/assistant/conversations"),
  /** @param {{ title?: string }} body @returns {P<A.Conversation>} */
  createConversation: (body) => request("POST", "/assistant/conversations", body),
  /** @param {string} id @returns {P<A.ConversationView>} */
  conversation: (id) => request("GET", `/assistant/conversations/${enc(id)}`),
  /** @param {string} id @returns {P<unknown>} */
  deleteConversation: (id) => request("DELETE", `/assistant/conversations/${enc(id)}`),
  /** A turn: the answer as server-sent events (lib/sse.js). @param {string} id @param {string} text @param {AbortSignal} [signal] */
  sendMessage: (id, text, signal) => requestStream(`/assistant/conversations/${enc(id)}/messages`, { text }, signal),
  /**
   * Answers the tool call the turn waits on; the turn goes on as server-sent events.
   * @param {string} id @param {A.ConfirmBody} body @param {AbortSignal} [signal]
   */
  confirmCall: (id, body, signal) => requestStream(`/assistant/conversations/${enc(id)}/confirm`, body, signal),

  /** A project's pipeline runs, newest first. @param {string} projectId @returns {P<T.RunView[]>} */
  pipelineRuns: (projectId) => request("GET", `/projects/${enc(projectId)}/pipeline-runs`),
  /**
   * `{}` or `{ pipeline: "systemcrafter" }` generates the project (its `generation` follows the run).
   * 409 no_provider, 422 for a bad definition (naming its line).
   * @param {string} projectId @param {T.StartRun} body @returns {P<T.RunView>}
   */
  startPipelineRun: (projectId, body) => request("POST", `/projects/${enc(projectId)}/pipeline-runs`, body),
  /** @param {string} id @returns {P<T.RunView>} */
  pipelineRun: (id) => request("GET", `/pipeline-runs/${enc(id)}`),
  /** @param {string} id @returns {P<T.RunView>} */
  cancelPipelineRun: (id) => request("POST", `/pipeline-runs/${enc(id)}/cancel`, {}),
  /** @param {string} id @param {T.ResumeRun} body @returns {P<T.RunView>} */
  resumePipelineRun: (id, body) => request("POST", `/pipeline-runs/${enc(id)}/resume`, body),
  /** @param {string} id @param {string} stage @returns {P<T.RunView>} */
  approveStage: (id, stage) => request("POST", `/pipeline-runs/${enc(id)}/stages/${enc(stage)}/approve`, {}),
  /** The stages before the gate run again with the comment. @param {string} id @param {string} stage @param {string} comment @returns {P<T.RunView>} */
  rejectStage: (id, stage, comment) =>
    request("POST", `/pipeline-runs/${enc(id)}/stages/${enc(stage)}/reject`, { comment }),
  /** @param {string} id @returns {P<T.CallView[]>} */
  pipelineCalls: (id) => request("GET", `/pipeline-runs/${enc(id)}/calls`),
  /** @param {string} id @returns {P<T.ArtifactMeta[]>} */
  pipelineArtifacts: (id) => request("GET", `/pipeline-runs/${enc(id)}/artifacts`),
  /** An artifact's content (its path keeps its slashes). @param {string} id @param {string} path */
  pipelineArtifact: (id, path) =>
    requestBlob(`/pipeline-runs/${enc(id)}/artifacts/${path.split("/").map(enc).join("/")}`),
  /** Every artifact of the run, as a zip. @param {string} id */
  pipelineArtifactsZip: (id) => requestBlob(`/pipeline-runs/${enc(id)}/artifacts.zip`),
};

// ------------------------------------------------------------------ bytes

/** Base64 -> Uint8Array (native decoder when the browser has one). @param {unknown} b64 */
export function base64ToBytes(b64) {
  if (typeof b64 !== "string" || b64 === "") return new Uint8Array(0);
  /** @type {{ fromBase64?: (s: string) => Uint8Array }} */
  const native = /** @type {any} */ (Uint8Array);
  if (typeof native.fromBase64 === "function") {
    try {
      return native.fromBase64(b64);
    } catch {
      /* fall through to atob */
    }
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
/**
 * @param {string} taskId
 * @param {{ onProgress?: (bytes: number) => void, signal?: AbortSignal }} [options]
 */
export async function fetchWholeLog(taskId, { onProgress, signal } = {}) {
  const LIMIT = 4 * 1024 * 1024;
  /** @type {Uint8Array[]} */
  const parts = [];
  let offset = 0;
  let total = 0;
  for (let pages = 0; pages < 100_000; pages++) {
    if (signal?.aborted) throw new ApiError(0, "aborted", "Download canceled.");
    const page = await api.taskLogs(taskId, offset, LIMIT);
    if (!page || typeof page !== "object") throw new ApiError(500, "bad_response", "Unexpected log response.");
    const bytes = base64ToBytes(page.data);
    if (bytes.length) {
      parts.push(bytes);
      total += bytes.length;
    }
    const next = typeof page.next_offset === "number" ? page.next_offset : offset + bytes.length;
    if (onProgress) onProgress(total);
    if (page.end || next <= offset || bytes.length === 0) break;
    offset = next;
  }
  return new Blob(/** @type {BlobPart[]} */ (parts), { type: "text/plain;charset=utf-8" });
}
