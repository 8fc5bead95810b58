// The OAuth consent page (#/authorize?QUERY): "<client> wants to use Fulcrum as <you>". Outside
// the signed-in shell, but it needs a session; app.js shows the login form first when there is none.

import { api, asApiError, isAuthenticated, logout } from "../api.js";
import { append, clear, h, loadingEl, svgIcon } from "../lib/dom.js";
import { safeHttpUrl } from "../lib/format.js";
import { badResponse, state } from "../lib/state.js";
import { SCOPE_HINTS } from "../lib/tokens.js";

export const CONSENT_LOGIN_NOTICE =
  "An application is asking to use Fulcrum for you. Sign in to review what it asks for.";
const CONSENT_PARAMS = [
  "response_type",
  "client_id",
  "redirect_uri",
  "code_challenge",
  "code_challenge_method",
  "state",
  "scope",
  "resource",
];
let consentSeq = 0;

/** "#/authorize?a=1&b=2" -> "a=1&b=2"; null for any other hash. */
/** @param {string} hash */
export function authorizeQueryFromHash(hash) {
  const m = /^#\/?authorize\/?(?:\?(.*))?$/.exec(String(hash || ""));
  return m ? m[1] || "" : null;
}

/** Where a redirect URI sends the browser, for people: its origin, or its scheme for an app's URI. */
/** @param {string | null | undefined} uri */
function redirectTarget(uri) {
  try {
    const u = new URL(String(uri));
    if (u.origin && u.origin !== "null") return u.origin;
    return u.host ? `${u.protocol}//${u.host}` : `${u.protocol.replace(/:$/, "")} (an app on this device)`;
  } catch {
    return String(uri || "unknown");
  }
}

/** The relay's redirect_to may be a web page or an app's own scheme, never script or data. */
/** @param {unknown} to */
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
 * Renders the consent card for an authorization request (the caller has a session).
 * @param {HTMLElement} appRoot
 * @param {string} query the authorize query string
 * @param {() => boolean} current whether this request is still the one on screen
 */
export function renderConsent(appRoot, query, current) {
  const seq = ++consentSeq;
  clear(appRoot);
  const raw = new URLSearchParams(query);
  const params = new URLSearchParams();
  for (const k of CONSENT_PARAMS) {
    const v = raw.get(k);
    if (v !== null) params.set(k, v);
  }
  /** @param {string} k */
  const param = (k) => params.get(k) ?? undefined;

  const body = h("div.consent-body", null, loadingEl("Loading the request…"));
  const title = h("h1", { text: "Authorize access" });
  appRoot.append(
    h(
      "div.login-page",
      null,
      h(
        "div.login-card.consent-card",
        { "data-testid": "oauth-card" },
        h(
          "div.login-brand",
          null,
          h("img.logo", { src: "/assets/favicon.svg", alt: "", width: 36, height: 36 }),
          h("div", null, title, h("p.muted", { text: "Fulcrum" })),
        ),
        body,
      ),
    ),
  );
  appRoot.removeAttribute("aria-busy");

  const stillHere = () => seq === consentSeq && current() && body.isConnected;
  /** @param {string} message */
  const showFatal = (message) => {
    clear(body);
    body.append(
      h("div.form-error", { role: "alert", "data-testid": "oauth-error", text: message }),
      h("a.login-alt", { href: "#/", "data-testid": "oauth-back" }, "Go to the dashboard"),
    );
  };

  Promise.all([
    api.oauthRequest(params.toString()),
    state.me ? Promise.resolve(state.me) : api.me().catch(() => null),
  ]).then(
    ([req, me]) => {
      if (!stillHere()) return;
      if (!req || typeof req !== "object" || typeof req.client_name !== "string") {
        showFatal("The relay returned an unexpected authorization request.");
        return;
      }
      const email = me?.email ? me.email : "you";
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
        try {
          await logout();
        } catch {
          /* the session is gone locally anyway */
        }
        // The "logout" event shows the login form; signing in comes back here.
      });

      /** @param {boolean} approve */
      const decide = async (approve) => {
        allow.disabled = deny.disabled = true;
        (approve ? allow : deny).textContent = approve ? "Allowing…" : "Denying…";
        error.hidden = true;
        try {
          const res = await api.oauthConsent({
            client_id: param("client_id") ?? req.client_id,
            redirect_uri: param("redirect_uri") ?? req.redirect_uri,
            // Left out when the request had none: the relay says what is missing.
            code_challenge: /** @type {string} */ (param("code_challenge")),
            code_challenge_method: /** @type {string} */ (param("code_challenge_method")),
            state: param("state"),
            scope: param("scope") ?? scopes.join(" "),
            resource: param("resource") ?? (req.resource || undefined),
            approve,
          });
          const to = safeRedirect(res?.redirect_to);
          if (!to) throw badResponse("The relay did not say where to send you back to.");
          if (!stillHere()) return;
          actions.hidden = true;
          status.textContent = `Sending you back to ${req.client_name}… If nothing happens, you can close this tab.`;
          status.hidden = false;
          window.location.assign(to);
        } catch (e) {
          if (!stillHere() || !isAuthenticated()) return;
          error.textContent = asApiError(e).message || "That did not work.";
          error.hidden = false;
          allow.disabled = deny.disabled = false;
          allow.textContent = "Allow";
          deny.textContent = "Deny";
        }
      };
      allow.addEventListener("click", () => decide(true));
      deny.addEventListener("click", () => decide(false));

      clear(body);
      append(body, [
        h(
          "p.consent-lead",
          null,
          h("strong", { "data-testid": "oauth-client-name", text: req.client_name }),
          " wants to use Fulcrum as ",
          h("strong", { "data-testid": "oauth-user", text: email }),
          ".",
        ),
        clientSite
          ? h(
              "a.small.consent-site",
              { href: clientSite, target: "_blank", rel: "noopener noreferrer" },
              redirectTarget(clientSite),
              svgIcon("external"),
            )
          : null,
        h(
          "div.consent-section",
          null,
          h("span.field-label", { text: "It will be able to" }),
          scopes.length
            ? h(
                "ul.consent-scopes",
                { "data-testid": "oauth-scopes" },
                scopes.map((s) =>
                  h(
                    "li",
                    { "data-scope": s },
                    h("span.badge.kind-mcp", { text: s }),
                    h("span", { text: SCOPE_HINTS[s] || "" }),
                  ),
                ),
              )
            : h("p.muted.small", { "data-testid": "oauth-scopes", text: "Nothing beyond knowing who you are." }),
        ),
        h(
          "p.muted.small",
          null,
          "Either way, you will be sent to ",
          h("span.mono", {
            "data-testid": "oauth-redirect",
            text: redirectTarget(req.redirect_uri),
            title: req.redirect_uri,
          }),
          ".",
        ),
        error,
        status,
        actions,
        h("p.muted.small.consent-who", null, `Signed in as ${email}. `, other),
      ]);
      deny.focus();
    },
    (err) => {
      if (!stillHere() || !isAuthenticated()) return; // the session ended: the login form takes over
      showFatal(err.message || "This authorization request cannot be used.");
    },
  );
}
