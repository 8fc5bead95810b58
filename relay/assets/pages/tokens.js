// The Tokens view (#/tokens, built once): create tokens of every kind with their scopes and limits,
// show a new token's secret once with how to use it, list and revoke them.

import { api, asApiError } from "../api.js";
import { clear, codeBox, h } from "../lib/dom.js";
import { byName, fmtDateTime, parseTime, timeEl, timeUntil } from "../lib/format.js";
import { getShell, signedIn } from "../lib/shell.js";
import { isAdmin, projectNames, state, withIds, workspaceName } from "../lib/state.js";
import {
  isKind,
  SCOPE_HINTS,
  SCOPES,
  TOKEN_EXPIRY_DAYS,
  TOKEN_KINDS,
  tokenExpired,
  tokenKindLabel,
  tokenScopes,
  tokenUsage,
} from "../lib/tokens.js";

/** @typedef {import("../lib/types.js").Token} Token */
/** @typedef {import("../lib/types.js").CreatedToken} CreatedToken */
/** @typedef {import("../lib/types.js").TokenKind} TokenKind */
/** @typedef {import("../lib/types.js").Scope} Scope */
/** @typedef {import("../lib/types.js").Project} Project */
/** @typedef {import("../lib/types.js").NewTokenBody} NewTokenBody */

/** "Everything", or the project / workspace it is limited to (by name when known). */
/** @param {Token} t */
function tokenLimit(t) {
  if (t.project_id) {
    const name = projectNames.get(t.project_id);
    return h(
      "span",
      { title: `Only project ${name || t.project_id}` },
      h("span.muted", { text: "Project " }),
      name || String(t.project_id).slice(0, 8),
    );
  }
  if (t.workspace_id) {
    // The name is filled in again when the workspaces arrive after the tokens.
    return h(
      "span",
      { title: `Only workspace ${workspaceName(t.workspace_id)}` },
      h("span.muted", { text: "Workspace " }),
      h("span", { dataset: { limitWorkspace: t.workspace_id }, text: workspaceName(t.workspace_id) }),
    );
  }
  return h("span.muted", { text: "Everything" });
}

/** @type {ReturnType<typeof buildView> | null} */
let view = null;

/** Builds the view (once per session). */
export function buildTokensView() {
  tokensSeq++;
  tokenProjects = null;
  view = buildView();
  return view.root;
}

/** The signed-in user is known: offer the admin scope to administrators. */
export function syncTokensAdmin() {
  if (view) view.syncAdmin();
}

/** New workspaces to limit a token to, and workspace names in the list. */
export function onTokensWorkspaces() {
  if (!view) return;
  view.fillLimit();
  for (const el of view.listSlot.querySelectorAll("[data-limit-workspace]")) {
    const name = workspaceName(/** @type {HTMLElement} */ (el).dataset.limitWorkspace);
    if (el.textContent !== name) el.textContent = name;
  }
}

function buildView() {
  const name = h("input", {
    type: "text",
    name: "name",
    maxlength: 100,
    placeholder: TOKEN_KINDS.agent.placeholder,
    autocomplete: "off",
    "data-testid": "token-name",
    "aria-label": "Token name",
    spellcheck: "false",
  });
  const kind = h(
    "select",
    { name: "kind", "data-testid": "token-kind", "aria-label": "Token kind" },
    Object.entries(TOKEN_KINDS).map(([value, k]) => h("option", { value, text: k.option })),
  );
  const limit = h(
    "select",
    { name: "limit", "data-testid": "token-limit", "aria-label": "Limit to" },
    h("option", { value: "", text: "Everything" }),
  );
  const expiry = h(
    "select",
    { name: "expiry", "data-testid": "token-expiry", "aria-label": "Expires after" },
    TOKEN_EXPIRY_DAYS.map(([value, text]) => h("option", { value, text })),
  );
  /** @type {Map<Scope, HTMLInputElement>} */
  const scopeBoxes = new Map();
  /** @type {Map<Scope, HTMLLabelElement>} */
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
  const form = h(
    "form.token-create",
    { "aria-label": "New token" },
    h(
      "div.token-form",
      null,
      h("label.field.grow", null, h("span.field-label", { text: "New token name" }), name),
      h("label.field", null, h("span.field-label", { text: "Kind" }), kind),
      h("label.field", null, h("span.field-label", { text: "Limit to" }), limit),
      h("label.field", null, h("span.field-label", { text: "Expires" }), expiry),
      create,
    ),
    h("fieldset.scopes", null, h("legend.field-label", { text: "Scopes" }), [...scopeLabels.values()], scopeHint),
  );

  /** @param {Scope} s */
  const box = (s) => /** @type {HTMLInputElement} */ (scopeBoxes.get(s));
  const showScopeHint = () => {
    const on = SCOPES.filter((s) => box(s).checked);
    scopeHint.textContent = on.length ? on.map((s) => SCOPE_HINTS[s]).join(" · ") : "Choose at least one scope.";
  };
  // The kind decides which scopes are allowed (admin only for administrators) and resets them to
  // its defaults; agent tokens cannot be limited to a project or workspace.
  /** @param {boolean} resetScopes */
  const syncKind = (resetScopes) => {
    const k = isKind(kind.value) ? TOKEN_KINDS[kind.value] : TOKEN_KINDS.agent;
    for (const s of SCOPES) {
      const allowed = k.allowed.includes(s) && (s !== "admin" || isAdmin());
      box(s).disabled = !allowed;
      if (resetScopes) box(s).checked = allowed && k.defaults.includes(s);
      else if (!allowed) box(s).checked = false;
    }
    const adminLabel = scopeLabels.get("admin");
    if (adminLabel) adminLabel.hidden = !isAdmin();
    limit.disabled = !k.limit;
    limit.title = k.limit ? "" : "Agent tokens cannot be limited to a project or workspace.";
    if (!k.limit) limit.value = "";
    name.placeholder = k.placeholder;
    clear(kindHint);
    Object.entries(TOKEN_KINDS).forEach(([value, x], i) => {
      if (i) kindHint.append(" · ");
      kindHint.append(value === kind.value ? h("strong", { text: `${x.label}: ${x.hint}` }) : `${x.label}: ${x.hint}`);
    });
    showScopeHint();
  };
  kind.addEventListener("change", () => syncKind(true));
  for (const box of scopeBoxes.values()) box.addEventListener("change", showScopeHint);
  syncKind(true);

  // "Limit to": every active project, then every workspace. Rebuilt only when the choices change.
  let limitSig = "";
  const fillLimit = () => {
    const projects = (tokenProjects || [])
      .filter((p) => p.status !== "archived")
      .sort((a, b) => byName(a.name, b.name));
    const workspaces = [...state.workspaces.values()].sort((a, b) => byName(a.name, b.name));
    const sig = JSON.stringify([projects.map((p) => [p.id, p.name]), workspaces.map((w) => [w.id, w.name])]);
    if (sig === limitSig) return;
    limitSig = sig;
    const current = limit.value;
    clear(limit);
    limit.append(h("option", { value: "", text: "Everything" }));
    if (projects.length) {
      limit.append(
        h(
          "optgroup",
          { label: "Projects" },
          projects.map((p) => h("option", { value: `project:${p.id}`, text: p.name || p.id })),
        ),
      );
    }
    if (workspaces.length) {
      limit.append(
        h(
          "optgroup",
          { label: "Workspaces" },
          workspaces.map((w) => h("option", { value: `workspace:${w.id}`, text: w.name || w.id })),
        ),
      );
    }
    limit.value = [...limit.options].some((o) => o.value === current) ? current : "";
  };

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formError.hidden = true;
    /** @param {string} text @param {HTMLElement | null} [focus] */
    const showError = (text, focus) => {
      formError.textContent = text;
      formError.hidden = false;
      if (focus) focus.focus();
    };
    const value = name.value.trim();
    if (!value || value.length > 100) {
      showError(
        value
          ? "Name must be at most 100 characters."
          : "Give the token a name, e.g. the workspace, tool or person it's for.",
        name,
      );
      return;
    }
    const scopes = SCOPES.filter((s) => box(s).checked && !box(s).disabled);
    if (!scopes.length) {
      showError(
        "Choose at least one scope.",
        [...scopeBoxes.values()].find((b) => !b.disabled),
      );
      return;
    }
    /** @type {NewTokenBody} */
    const body = { name: value, kind: isKind(kind.value) ? kind.value : "agent", scopes };
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
        const { token: _secret, ...meta } = tok;
        state.tokens = [
          { revoked_at: null, last_used_at: null, ...meta },
          ...state.tokens.filter((t) => t.id !== tok.id),
        ];
      }
      renderTokens();
      loadTokens();
    } catch (err) {
      showError(asApiError(err).message);
    } finally {
      create.disabled = false;
      create.textContent = "Create token";
    }
  });

  // The form is not the page's purpose: it opens with "New token" (and stays open for the next).
  const newToken = h(
    "button.btn.btn-primary",
    { type: "button", "data-testid": "new-token", "aria-expanded": "false" },
    "New token",
  );
  const cancel = h("button.btn.btn-ghost", { type: "button", "data-testid": "token-create-cancel" }, "Cancel");
  const panel = h(
    "div.panel",
    { "data-testid": "token-create-panel", hidden: true },
    form,
    kindHint,
    formError,
    h("div.form-actions", null, cancel),
  );
  /** @param {boolean} open */
  const setFormOpen = (open) => {
    panel.hidden = !open;
    newToken.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) name.focus();
    else {
      formError.hidden = true;
      newToken.focus();
    }
  };
  newToken.addEventListener("click", () => setFormOpen(true));
  cancel.addEventListener("click", () => setFormOpen(false));

  const secretSlot = h("div");
  const listSlot = h("div");
  const root = h(
    "section.view.view-narrow",
    { hidden: true, "aria-labelledby": "tok-title" },
    h("div.view-head", null, h("div.view-title", null, h("h1", { id: "tok-title", text: "Tokens" })), newToken),
    h(
      "p.lead.muted",
      null,
      "Tokens let software act for you. Each holds scopes that say what it may do, and all but agent tokens can be limited to one project or workspace. The full token is shown only once, when you create it; revoking a token cuts off everything using it.",
    ),
    panel,
    secretSlot,
    listSlot,
  );
  return { root, name, secretSlot, listSlot, fillLimit, syncAdmin: () => syncKind(false) };
}

let tokensSeq = 0; // bumped by every load and local change; only the latest load is applied
/** @type {Project[] | null} the caller's projects, for "Limit to" and the rows' limit column */
let tokenProjects = null;

/** (Re)loads the tokens and the projects they can be limited to. */
export async function loadTokens() {
  const seq = ++tokensSeq;
  if (!state.tokens) renderTokens();
  api
    .projects()
    .then((list) => {
      if (!getShell() || !view || !Array.isArray(list)) return;
      tokenProjects = withIds(list);
      for (const p of tokenProjects) projectNames.set(p.id, p.name);
      view.fillLimit();
      if (state.tokens?.some((t) => t.project_id)) renderTokens();
    })
    .catch(() => {
      /* only the project choices are missing */
    });
  try {
    const list = await api.tokens();
    if (seq !== tokensSeq) return;
    state.tokens = Array.isArray(list) ? list : [];
    state.tokensError = null;
  } catch (err) {
    if (seq !== tokensSeq || !signedIn()) return;
    state.tokensError = asApiError(err).message;
  }
  renderTokens();
}

function renderTokens() {
  const v = view;
  if (!getShell() || !v) return;
  v.fillLimit();

  // Shown-once secret.
  clear(v.secretSlot);
  const ct = state.createdToken;
  if (ct) {
    const done = h("button.btn.btn-small", { type: "button" }, "Done");
    done.addEventListener("click", () => {
      state.createdToken = null;
      renderTokens();
    });
    v.secretSlot.append(
      h(
        "div.secret-panel",
        { role: "region", "aria-label": "New token" },
        h(
          "div.secret-head",
          null,
          h(
            "h2",
            null,
            "Token ",
            h("span.mono", { text: ct.name }),
            " created ",
            h("span.badge", { class: `kind-${isKind(ct.kind) ? ct.kind : "agent"}`, text: tokenKindLabel(ct) }),
          ),
          done,
        ),
        h(
          "p.warn",
          null,
          h("strong", { text: "Copy it now — you won't see this again." }),
          " Only a hash is stored on the relay.",
        ),
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
    v.listSlot.append(
      h("div.banner", { role: "alert" }, h("span", { text: `Couldn't load tokens: ${state.tokensError}` }), retry),
    );
    return;
  }
  if (!state.tokens) {
    v.listSlot.append(h("div.loading", null, h("span.spinner"), "Loading tokens…"));
    return;
  }
  if (state.tokens.length === 0) {
    v.listSlot.append(
      h(
        "div.empty.empty-small",
        null,
        h("h2", { text: "No tokens yet" }),
        h("p.muted", {
          text: "Create one with “New token”: an agent token to connect a workspace, an MCP token for an MCP client, an API token for a script.",
        }),
      ),
    );
    return;
  }

  /** @param {Token} t */
  const dead = (t) => (t.revoked_at || tokenExpired(t) ? 1 : 0);
  const tokens = [...state.tokens].sort(
    (a, b) => dead(a) - dead(b) || (parseTime(b.created_at) || 0) - (parseTime(a.created_at) || 0),
  );

  const rows = tokens.map((t) => {
    const revoked = !!t.revoked_at;
    const expired = !revoked && tokenExpired(t);
    const scopes = tokenScopes(t);
    /** @type {HTMLButtonElement | null} */
    let action = null;
    if (!revoked && !expired) {
      const btn = h("button.btn.btn-small.btn-danger", { type: "button", "data-testid": "token-revoke" }, "Revoke");
      btn.addEventListener("click", () => revokeToken(t, btn));
      action = btn;
    }
    let status;
    if (revoked) {
      status = h("span.status.status-revoked", { "data-testid": "token-status" }, "Revoked ", timeEl(t.revoked_at));
    } else if (expired) {
      status = h("span.status.status-revoked", { "data-testid": "token-status" }, "Expired ", timeEl(t.expires_at));
    } else {
      status = [
        h("span.status.status-active", { "data-testid": "token-status" }, h("span.dot.dot-online"), "Active"),
        t.expires_at
          ? h(
              "div.muted.small",
              { "data-testid": "token-expiry-label", title: fmtDateTime(t.expires_at) },
              `expires ${timeUntil(t.expires_at)}`,
            )
          : null,
      ];
    }
    return h(
      "tr",
      {
        "data-testid": "token-row",
        "data-token-id": t.id,
        "data-revoked": revoked ? "true" : "false",
        "data-kind": t.kind || "",
        "data-scopes": scopes.join(" "),
        class: revoked || expired ? "is-revoked" : "",
      },
      h(
        "td.t-name",
        null,
        h("div.clip", { text: t.name, title: t.name }),
        h(
          "div.muted.small.clip",
          null,
          h("span.mono.prefix", { text: `${t.prefix || ""}…`, title: "Token prefix" }),
          t.oauth_client_name
            ? h("span", { "data-testid": "token-oauth-client", text: ` · OAuth · ${t.oauth_client_name}` })
            : null,
        ),
      ),
      h(
        "td",
        null,
        h("span.badge", {
          class: `kind-${isKind(t.kind) ? t.kind : "agent"}`,
          "data-testid": "token-kind-badge",
          "data-kind": t.kind || "",
          title: scopes.map((s) => `${s}: ${SCOPE_HINTS[s] || ""}`).join("\n"),
          text: tokenKindLabel(t),
        }),
      ),
      h("td.t-limit", { "data-testid": "token-limit-label" }, tokenLimit(t)),
      h("td.t-time", null, timeEl(t.created_at)),
      h(
        "td.t-time",
        null,
        t.last_used_at
          ? [
              timeEl(t.last_used_at),
              t.last_used_addr ? h("div.muted.small.addr", { text: `from ${t.last_used_addr}` }) : null,
            ]
          : h("span.muted", { text: "never" }),
      ),
      h("td", null, status),
      h("td.t-actions", null, action),
    );
  });

  v.listSlot.append(
    h(
      "div.table-wrap",
      null,
      h(
        "table.tokens",
        null,
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", { text: "Name" }),
            h("th", { text: "Kind" }),
            h("th", { text: "Limit" }),
            h("th", { text: "Created" }),
            h("th", { text: "Last used" }),
            h("th", { text: "Status" }),
            h("th", { "aria-label": "Actions" }),
          ),
        ),
        h("tbody", null, rows),
      ),
    ),
  );
}

/**
 * @param {Token} t
 * @param {HTMLButtonElement} btn
 */
async function revokeToken(t, btn) {
  /** @type {Record<string, string>} */
  const whoByKind = {
    agent: "Agents using it will be disconnected and can't reconnect with it.",
    mcp: t.oauth_client_name
      ? `${t.oauth_client_name} will lose access and has to ask for it again.`
      : "MCP clients using it will lose access and can't reconnect with it.",
    api: "Scripts and jobs using it will be refused from now on.",
    ingest: "Tools reporting activity with it will be refused from now on.",
  };
  const who = whoByKind[t.kind] || "Everything using it will lose access.";
  if (!window.confirm(`Revoke the token “${t.name}” (${t.prefix}…)?\n\n${who}`)) return;
  btn.disabled = true;
  btn.textContent = "Revoking…";
  try {
    await api.revokeToken(t.id);
    if (state.createdToken && state.createdToken.id === t.id) state.createdToken = null;
    tokensSeq++;
    if (state.tokens) {
      state.tokens = state.tokens.map((x) =>
        x.id === t.id ? { ...x, revoked_at: x.revoked_at || new Date().toISOString() } : x,
      );
    }
    renderTokens();
    loadTokens();
  } catch (err) {
    btn.disabled = false;
    btn.textContent = "Revoke";
    window.alert(`Couldn't revoke the token: ${asApiError(err).message}`);
  }
}
