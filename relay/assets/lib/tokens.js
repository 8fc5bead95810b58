// Tokens: their kinds and scopes, how they are labelled, and how to use a new one (shown once).

import { codeBox, h } from "./dom.js";
import { parseTime } from "./format.js";

/** @typedef {import("./types.js").Token} Token */
/** @typedef {import("./types.js").CreatedToken} CreatedToken */
/** @typedef {import("./types.js").TokenKind} TokenKind */
/** @typedef {import("./types.js").Scope} Scope */

/** The command that connects a workspace with an agent token. @param {string} token */
export function agentCommand(token) {
  return `fulcrum agent --relay ${location.origin} --token ${token}`;
}

/** The relay's MCP endpoint (Streamable HTTP). */
function mcpEndpoint() {
  return `${location.origin}/mcp`;
}

/** An MCP client config entry (the `mcpServers` shape) for an MCP token. */
/** @param {string} token */
function mcpClientConfig(token) {
  return JSON.stringify(
    {
      mcpServers: {
        fulcrum: { type: "http", url: mcpEndpoint(), headers: { Authorization: `Bearer ${token}` } },
      },
    },
    null,
    2,
  );
}

/** @param {string} token */
function mcpAddCommand(token) {
  return `claude mcp add --transport http fulcrum ${mcpEndpoint()} --header "Authorization: Bearer ${token}"`;
}

/** Token kinds: which scopes each may hold, its defaults, and whether it can be limited. */
/**
 * @typedef {object} KindInfo
 * @property {string} label
 * @property {string} option
 * @property {Scope[]} allowed
 * @property {Scope[]} defaults
 * @property {boolean} limit whether it can be limited to a project or workspace
 * @property {string} placeholder
 * @property {string} hint
 */
/** @type {Record<TokenKind, KindInfo>} */
export const TOKEN_KINDS = {
  agent: {
    label: "Agent",
    option: "Agent",
    allowed: ["read", "run"],
    defaults: ["read", "run"],
    limit: false,
    placeholder: "e.g. alice-devbox",
    hint: "connects a workspace",
  },
  mcp: {
    label: "MCP",
    option: "MCP client",
    allowed: ["read", "write", "run"],
    defaults: ["read", "write", "run"],
    limit: true,
    placeholder: "e.g. claude-desktop",
    hint: "MCP clients (Claude Code, Cursor…)",
  },
  api: {
    label: "API",
    option: "API (scripts, CI)",
    allowed: ["read", "write", "run", "admin"],
    defaults: ["read"],
    limit: true,
    placeholder: "e.g. ci-nightly",
    hint: "scripts, CI, n8n on the REST API",
  },
  ingest: {
    label: "Ingest",
    option: "Ingest (AI activity)",
    allowed: ["ingest"],
    defaults: ["ingest"],
    limit: true,
    placeholder: "e.g. cursor-activity",
    hint: "AI tools report their activity",
  },
};
/** @type {Scope[]} */
export const SCOPES = ["read", "write", "run", "ingest", "admin"];
/** @type {Record<string, string>} */
export const SCOPE_HINTS = {
  read: "See your projects, workspaces, tasks and logs, read files",
  write: "Change projects and files in workspaces that allow it",
  run: "Start and cancel tasks",
  ingest: "Report AI activity, nothing else",
  admin: "Manage the relay's users (administrators only)",
};
export const TOKEN_EXPIRY_DAYS = [
  ["", "Never"],
  ["7", "7 days"],
  ["30", "30 days"],
  ["90", "90 days"],
  ["365", "1 year"],
];

/** @param {string} k @returns {k is TokenKind} */
export const isKind = (k) => Object.hasOwn(TOKEN_KINDS, k);

/** A token's scopes in the canonical order (the API sends an array; tolerate a string). */
/** @param {Token} t @returns {string[]} */
export function tokenScopes(t) {
  /** @type {unknown} */
  const scopes = t.scopes;
  const raw = Array.isArray(scopes) ? scopes : typeof scopes === "string" ? scopes.split(/[\s,]+/) : [];
  /** @type {Set<string>} */
  const set = new Set(raw.filter((s) => typeof s === "string" && s));
  return [...SCOPES.filter((s) => set.has(s)), ...[...set].filter((s) => !SCOPES.includes(/** @type {Scope} */ (s)))];
}

/** "Agent · read, run", "MCP · read", "API · read, write", "Ingest". */
/** @param {Token} t */
export function tokenKindLabel(t) {
  const k = isKind(t.kind) ? TOKEN_KINDS[t.kind] : null;
  const label = k ? k.label : String(t.kind || "token");
  const scopes = tokenScopes(t);
  return t.kind === "ingest" || !scopes.length ? label : `${label} · ${scopes.join(", ")}`;
}

/** @param {Token} t */
export const tokenExpired = (t) => !!t.expires_at && parseTime(t.expires_at) <= Date.now();

/** How to use a just-created token, by kind. */
/** @param {CreatedToken} ct */
export function tokenUsage(ct) {
  if (ct.kind === "mcp") return mcpUsage(ct);
  if (ct.kind === "api") {
    return [
      h("p.muted.small", { text: "Send it as “Authorization: Bearer <token>” to the REST API under /api/v1, e.g.:" }),
      codeBox(`curl -H "Authorization: Bearer ${ct.token}" ${location.origin}/api/v1/projects`, {
        "data-testid": "api-example",
      }),
    ];
  }
  if (ct.kind === "ingest") {
    return h("p.muted.small", {
      text: "Give it to the AI tool that reports its activity; it sends it as “Authorization: Bearer <token>”. It can read nothing.",
    });
  }
  return [
    h("p.muted.small", { text: "Run this in the workspace you want to connect:" }),
    codeBox(agentCommand(ct.token)),
  ];
}

/** How to use a just-created MCP token: the endpoint, a client config entry, a Claude Code command. */
/** @param {CreatedToken} ct */
function mcpUsage(ct) {
  const scopes = tokenScopes(ct);
  const missing = TOKEN_KINDS.mcp.allowed.filter((s) => !scopes.includes(s));
  return [
    missing.length
      ? h("p.muted.small", {
          text: `This token holds ${scopes.join(", ") || "no scope"}: its client is not offered the tools that need ${missing.join(" or ")}.`,
        })
      : null,
    h("p.muted.small", { text: "MCP endpoint (Streamable HTTP) — send the token as “Authorization: Bearer <token>”:" }),
    codeBox(mcpEndpoint(), { "data-testid": "mcp-endpoint" }),
    h("p.muted.small", { text: "Add it to an MCP client's config (e.g. Claude Code's .mcp.json, Cursor's mcp.json):" }),
    codeBox(mcpClientConfig(ct.token), { class: "codebox-pre", "data-testid": "mcp-config" }),
    h("p.muted.small", { text: "Or, with Claude Code:" }),
    codeBox(mcpAddCommand(ct.token), { "data-testid": "mcp-command" }),
  ];
}
