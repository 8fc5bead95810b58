// What the signed-in dashboard knows, shared by its pages. Reset when the session ends.

import { ApiError } from "../api.js";

/** @typedef {import("./types.js").Workspace} Workspace */
/** @typedef {import("./types.js").User} User */
/** @typedef {import("./types.js").Token} Token */
/** @typedef {import("./types.js").CreatedToken} CreatedToken */
/** @typedef {import("./types.js").LiveState} LiveState */

export const state = {
  /** @type {User | null} */
  me: null,
  /** @type {Promise<User> | null} the pending GET /me (pages that need the role wait for it) */
  mePromise: null,
  /** @type {Map<string, Workspace>} */
  workspaces: new Map(),
  workspacesLoaded: false,
  /** @type {string | null} */
  workspacesError: null,
  /** bumped by every socket message; HTTP answers older than the socket's data are dropped */
  socketVersion: 0,
  /** @type {LiveState} */
  live: "stopped",
  /** ms epoch until which what is on screen is known to be current; 0 while the feed is live */
  staleSince: 0,
  filter: "",
  /** @type {Set<string>} `${workspaceId}\n${repoPath}` whose change list is expanded */
  expanded: new Set(),
  /** @type {Token[] | null} */
  tokens: null,
  /** @type {string | null} */
  tokensError: null,
  /** @type {CreatedToken | null} shown once */
  createdToken: null,
};

/** Forget everything of the last session. */
export function resetState() {
  Object.assign(state, {
    me: null,
    mePromise: null,
    workspaces: new Map(),
    workspacesLoaded: false,
    workspacesError: null,
    live: "stopped",
    staleSince: 0,
    expanded: new Set(),
    tokens: null,
    tokensError: null,
    createdToken: null,
  });
  projectNames.clear();
}

/** @type {Map<string, string>} project id -> name, for links and labels */
export const projectNames = new Map();

/** @param {string | null | undefined} id */
export function workspaceName(id) {
  const w = id ? state.workspaces.get(id) : undefined;
  return w?.name || (typeof id === "string" ? id.slice(0, 8) : "unknown");
}

export const isAdmin = () => !!(state.me && state.me.role === "admin");

/** @param {unknown} w @returns {w is Workspace} */
export function validWorkspace(w) {
  return !!w && typeof w === "object" && typeof (/** @type {{id?: unknown}} */ (w).id) === "string";
}

/** @param {string} message */
export function badResponse(message) {
  return new ApiError(500, "bad_response", message);
}

/**
 * A list from an API answer, without entries that are not objects with a string id.
 * @template {{ id: string }} T
 * @param {T[] | null | undefined} list
 * @returns {T[]}
 */
export function withIds(list) {
  return Array.isArray(list) ? list.filter((x) => x && typeof x === "object" && typeof x.id === "string") : [];
}
