// The Webhooks page (#/webhooks): the outgoing webhook endpoints the user manages (their own, and
// those of the projects they own or maintain), a form for a new one, and the chosen endpoint's
// details, actions (enable or disable, edit, send a test event, rotate the secret, delete) and
// delivery log (pages/webhook-deliveries.js). A signing secret is shown once, when the endpoint
// is made or its secret rotated. The chosen endpoint and delivery live in the hash's query
// (#/webhooks?endpoint=ID&delivery=ID), so a delivery can be linked to.

import { api, asApiError } from "../api.js";
import { append, clear, codeBox, errorBanner, field, h, loadingEl, uid } from "../lib/dom.js";
import { byName, fmtDateTime, parseTime, plural, timeEl, timeUntil } from "../lib/format.js";
import { signedIn, updateTitle } from "../lib/shell.js";
import { projectNames, withIds } from "../lib/state.js";
import {
  CHOSEN_KINDS,
  EVENT_KINDS,
  endpointBadge,
  eventChips,
  isEventKind,
  scopeEl,
  scopeName,
} from "../lib/webhooks.js";
import { deliveriesCard } from "./webhook-deliveries.js";

/** @typedef {import("../lib/types.js").EndpointView} EndpointView */
/** @typedef {import("../lib/types.js").EndpointInput} EndpointInput */
/** @typedef {import("../lib/types.js").EndpointPatch} EndpointPatch */
/** @typedef {import("../lib/types.js").EndpointWithSecret} EndpointWithSecret */
/** @typedef {import("../lib/types.js").WebhookEventKind} WebhookEventKind */
/** @typedef {import("../lib/types.js").Project} Project */
/** @typedef {import("../lib/types.js").LiveState} LiveState */
/** @typedef {import("../lib/types.js").Page} Page */

/** Longest description the relay keeps. */
const MAX_DESCRIPTION = 500;

/** The chosen endpoint and delivery, from the hash's query. */
function hashSelection() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  return { endpoint: q.get("endpoint") || null, delivery: q.get("delivery") || null };
}

/** The page's hash with an endpoint (and a delivery of it) chosen. @param {string | null} endpoint @param {string | null} [delivery] */
function pageHash(endpoint, delivery) {
  const q = new URLSearchParams();
  if (endpoint) q.set("endpoint", endpoint);
  if (endpoint && delivery) q.set("delivery", delivery);
  const s = q.toString();
  return s ? `#/webhooks?${s}` : "#/webhooks";
}

/** Whether the text looks like a URL the relay may take (it checks the rest). @param {string} s */
const httpUrl = (s) => /^https?:\/\/[^\s/]+/i.test(s);

/**
 * Event kind checkboxes (the kinds an endpoint chooses), and the kinds it has beyond them.
 * @param {string} testid
 * @param {string[]} [checked]
 */
function eventBoxes(testid, checked = ["task_finished"]) {
  /** @type {Map<WebhookEventKind, HTMLInputElement>} */
  const boxes = new Map();
  const labels = CHOSEN_KINDS.map((k) => {
    const box = h("input", {
      type: "checkbox",
      value: k,
      checked: checked.includes(k),
      "data-testid": `${testid}-${k}`,
    });
    boxes.set(k, box);
    return h(
      "label.check.wh-check",
      null,
      box,
      h(
        "span",
        null,
        h("span.wh-check-name", { text: EVENT_KINDS[k].label }),
        h("span.muted.small", { text: EVENT_KINDS[k].hint }),
      ),
    );
  });
  // A kind the form does not offer (a test subscription made through the API) is kept.
  const extra = checked.filter((k) => !CHOSEN_KINDS.some((c) => c === k) && isEventKind(k));
  const root = h(
    "fieldset.wh-kinds",
    null,
    h("legend.field-label", { text: "Events" }),
    labels,
    h("span.field-hint", { text: "Test events come whatever is chosen." }),
  );
  return {
    root,
    /** @returns {WebhookEventKind[]} */
    value: () => [...CHOSEN_KINDS.filter((k) => boxes.get(k)?.checked), ...extra.filter(isEventKind)],
    focus: () => boxes.get(CHOSEN_KINDS[0])?.focus(),
  };
}

/** @returns {Page} */
export function buildWebhooksPage() {
  const initial = hashSelection();
  const st = {
    /** @type {EndpointView[] | null} */
    endpoints: null,
    /** @type {string | null} */
    error: null,
    seq: 0,
    /** @type {Project[]} the user's projects (names, and the scopes a new endpoint can have) */
    projects: [],
    /** @type {string | null} the chosen endpoint */
    selected: initial.endpoint,
    /** @type {string | null} the chosen delivery */
    delivery: initial.delivery,
    /** @type {{ endpoint: EndpointView, secret: string, rotated: boolean } | null} a secret, shown once */
    secret: null,
    /** the chosen endpoint's edit form is open */
    editing: false,
    /** @type {ReturnType<typeof deliveriesCard> | null} the chosen endpoint's delivery log */
    deliveries: null,
    /** @type {LiveState} */
    live: "connecting",
  };

  const heading = h("h1", { id: uid("h"), tabindex: -1, text: "Webhooks" });
  const summary = h("span.summary", { "data-testid": "webhook-count" });
  const newButton = h(
    "button.btn.btn-primary",
    { type: "button", "data-testid": "webhook-new", "aria-expanded": "false" },
    "New endpoint",
  );
  const form = newForm();
  const secretSlot = h("div");
  const listSlot = h("div.wh-endpoints");
  const listCard = h(
    "section.card.wh-list-card",
    { "aria-label": "Endpoints", "data-testid": "webhook-endpoints" },
    h(
      "div.card-head",
      null,
      h("h2", { text: "Endpoints" }),
      h("span.muted.small", { text: "Yours, and those of the projects you own or maintain." }),
    ),
    listSlot,
  );
  const endpointSlot = h("div");
  const deliveriesSlot = h("div");
  const root = h(
    "section.view.wh-page",
    { "aria-labelledby": heading.id, "data-testid": "webhooks-page" },
    h("div.view-head", null, h("div.view-title", null, heading, summary), newButton),
    h(
      "p.lead.muted",
      null,
      "Fulcrum posts events to your URLs as they happen (a task finished, a budget reached 80 % or 100 %), for automations such as n8n. Every message is signed as ",
      h("a", {
        href: "https://www.standardwebhooks.com/",
        target: "_blank",
        rel: "noopener noreferrer",
        text: "Standard Webhooks",
      }),
      " says: check the webhook-signature header with the endpoint's secret. A failed delivery is tried again with growing waits.",
    ),
    form.root,
    secretSlot,
    listCard,
    endpointSlot,
    deliveriesSlot,
  );

  newButton.addEventListener("click", () => setFormOpen(form.root.hidden));
  /** @param {boolean} open */
  function setFormOpen(open) {
    form.root.hidden = !open;
    newButton.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) form.focus();
    else {
      form.reset();
      newButton.focus();
    }
  }

  // ---------------------------------------------------------------- loading

  async function load() {
    const my = ++st.seq;
    try {
      const list = await api.webhooks();
      if (my !== st.seq) return;
      const first = !st.endpoints;
      st.endpoints = sortEndpoints(withIds(list));
      st.error = null;
      // None yet: the form is what the page is for (opened, not focused).
      if (first && !st.endpoints.length && form.root.hidden) {
        form.root.hidden = false;
        newButton.setAttribute("aria-expanded", "true");
      }
    } catch (err) {
      if (my !== st.seq || !signedIn()) return;
      st.error = asApiError(err).message;
    }
    // Nothing chosen: the first endpoint is.
    if (!st.selected && st.endpoints?.length && location.hash.startsWith("#/webhooks")) {
      st.selected = st.endpoints[0].id;
      history.replaceState(null, "", pageHash(st.selected));
    }
    render(true);
    updateTitle();
  }

  function loadProjects() {
    api.projects().then(
      (list) => {
        st.projects = withIds(list).sort((a, b) => byName(a.name, b.name));
        for (const p of st.projects) projectNames.set(p.id, p.name);
        form.setProjects(st.projects);
        if (st.endpoints) st.endpoints = sortEndpoints(st.endpoints); // by the projects' names now
        render(true);
      },
      () => {},
    );
  }

  /** Personal first, then by project name, then by URL. @param {EndpointView[]} list */
  function sortEndpoints(list) {
    return [...list].sort(
      (a, b) =>
        (a.project_id ? 1 : 0) - (b.project_id ? 1 : 0) ||
        byName(a.project_id ? scopeName(a) : "", b.project_id ? scopeName(b) : "") ||
        byName(a.url, b.url) ||
        (parseTime(a.created_at) || 0) - (parseTime(b.created_at) || 0),
    );
  }

  /** An endpoint changed (or was made): in the list, at once. @param {EndpointView} e */
  function putEndpoint(e) {
    if (!e || typeof e.id !== "string") return;
    const { secret: _secret, ...view } = /** @type {EndpointView & { secret?: string }} */ (e);
    st.endpoints = sortEndpoints([...(st.endpoints || []).filter((x) => x.id !== e.id), view]);
  }

  // ---------------------------------------------------------------- rendering

  /** @param {boolean} [keepForm] leave the chosen endpoint's card alone while its edit form is open */
  function render(keepForm = false) {
    renderSecret();
    renderList();
    renderEndpoint(keepForm);
  }

  function renderList() {
    clear(listSlot);
    summary.textContent = st.endpoints ? plural(st.endpoints.length, "endpoint") : "";
    if (!st.endpoints) {
      listSlot.append(
        st.error ? errorBanner(`Couldn't load the endpoints: ${st.error}`, load) : loadingEl("Loading endpoints…"),
      );
      return;
    }
    root.dataset.loaded = "true";
    if (st.error) listSlot.append(errorBanner(`Couldn't refresh the endpoints: ${st.error}`, load));
    if (!st.endpoints.length) {
      listSlot.append(
        h(
          "div.wh-empty",
          { "data-testid": "webhooks-empty" },
          h("h3", { text: "No endpoints yet" }),
          h("p.muted", {
            text: "Add one with “New endpoint”: a URL that takes a POST, such as an n8n Webhook node's production URL, and the events it wants.",
          }),
        ),
      );
      return;
    }
    listSlot.append(
      h(
        "div.table-wrap",
        null,
        h(
          "table.data.wh-endpoint-table",
          null,
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", { scope: "col", text: "Endpoint" }),
              h("th", { scope: "col", text: "Scope" }),
              h("th", { scope: "col", text: "Events" }),
              h("th", { scope: "col", text: "State" }),
              h("th", { scope: "col", text: "Changed" }),
            ),
          ),
          h("tbody", null, st.endpoints.map(endpointRow)),
        ),
      ),
    );
  }

  /** @param {EndpointView} e */
  function endpointRow(e) {
    const chosen = e.id === st.selected;
    const href = pageHash(e.id);
    const tr = h(
      "tr",
      {
        "data-testid": "webhook-row",
        "data-endpoint-id": e.id,
        "data-enabled": e.enabled ? "true" : "false",
        class: `${chosen ? "is-selected" : ""}${e.enabled ? "" : " is-disabled"}`.trim() || null,
        "aria-current": chosen ? "true" : null,
      },
      h(
        "td.wh-endpoint-cell",
        null,
        h("a.wh-url.mono", { href, title: e.url, "data-testid": "webhook-url", text: e.url }),
        e.description ? h("div.wh-desc.muted.small", { title: e.description, text: e.description }) : null,
      ),
      h("td", null, scopeEl(e)),
      h("td", null, eventChips(e.events)),
      h(
        "td",
        null,
        endpointBadge(e),
        !e.enabled && e.disabled_reason
          ? h("div.wh-reason.muted.small", { title: e.disabled_reason, text: e.disabled_reason })
          : null,
      ),
      h("td.t-time", null, timeEl(e.updated_at)),
    );
    tr.addEventListener("click", (ev) => {
      if (ev.target instanceof Element && ev.target.closest("a, button")) return;
      location.hash = href;
    });
    return tr;
  }

  function renderSecret() {
    clear(secretSlot);
    const s = st.secret;
    if (!s) return;
    const done = h("button.btn.btn-small", { type: "button", "data-testid": "webhook-secret-done" }, "Done");
    done.addEventListener("click", () => {
      st.secret = null;
      renderSecret();
    });
    const until = s.endpoint.previous_secret_until;
    secretSlot.append(
      h(
        "div.secret-panel",
        {
          role: "region",
          "aria-label": s.rotated ? "New signing secret" : "Signing secret",
          "data-testid": "webhook-secret-panel",
        },
        h(
          "div.secret-head",
          null,
          h(
            "h2",
            null,
            s.rotated ? "New signing secret for " : "Endpoint added: signing secret for ",
            h("span.mono", { text: s.endpoint.url }),
          ),
          done,
        ),
        h(
          "p.warn",
          null,
          h("strong", { text: "Copy it now — it is not shown again." }),
          " The relay keeps it sealed and never shows it back; rotate it if it is lost.",
        ),
        h(
          "div.secret-box",
          null,
          codeBox(s.secret, { "data-testid": "webhook-secret", "data-endpoint-id": s.endpoint.id }),
        ),
        s.rotated
          ? h(
              "p.muted.small",
              { "data-testid": "webhook-secret-overlap" },
              "The previous secret keeps signing too until ",
              h("strong", { text: until ? fmtDateTime(until) : "24 hours from now" }),
              ": until then the webhook-signature header holds both signatures, so the receiver can switch to the new secret without missing a message.",
            )
          : h(
              "p.muted.small",
              null,
              "The receiver checks each message's webhook-signature header (HMAC-SHA256 of webhook-id, webhook-timestamp and the body) with this secret; Standard Webhooks libraries take it as it is, whsec_ prefix included.",
            ),
      ),
    );
  }

  // ---------------------------------------------------------------- the chosen endpoint

  function chosen() {
    return st.endpoints?.find((e) => e.id === st.selected) || null;
  }

  /** @param {boolean} [keepForm] leave the card alone while its edit form is open (what is typed stays) */
  function renderEndpoint(keepForm = false) {
    const e = chosen();
    const shown = endpointSlot.firstElementChild;
    if (keepForm && st.editing && e && shown instanceof HTMLElement && shown.dataset.endpointId === e.id) return;
    clear(endpointSlot);
    // The delivery log belongs to one endpoint: a new one is made when another is chosen.
    if (!e || st.deliveries?.root.dataset.endpointId !== e.id) {
      st.deliveries?.destroy();
      st.deliveries = null;
      clear(deliveriesSlot);
    }
    if (!st.selected || !st.endpoints) return;
    if (!e) {
      endpointSlot.append(
        h(
          "div.banner",
          { role: "alert", "data-testid": "webhook-missing" },
          h("span", { text: "No such endpoint among yours: it was deleted, or you no longer manage its project." }),
          h("a.btn.btn-small", { href: pageHash(null) }, "Show all"),
        ),
      );
      return;
    }
    endpointSlot.append(endpointCard(e));
    if (!st.deliveries) {
      const card = deliveriesCard(e.id, {
        href: (deliveryId) => pageHash(e.id, deliveryId),
        enabled: () => !!chosen()?.enabled,
      });
      card.root.dataset.endpointId = e.id;
      st.deliveries = card;
      deliveriesSlot.append(card.root);
      card.load();
      card.show(st.delivery);
    }
  }

  /** The chosen endpoint: what it is, why it is disabled, its actions and edit form. @param {EndpointView} e */
  function endpointCard(e) {
    const note = h("div.form-error", { role: "alert", "data-testid": "webhook-action-error", hidden: true });
    const ok = h("p.form-ok", { role: "status", "data-testid": "webhook-action-ok", hidden: true });
    /** @param {string} text */
    const fail = (text) => {
      ok.hidden = true;
      note.textContent = text;
      note.hidden = false;
    };
    /** @param {string} text */
    const done = (text) => {
      note.hidden = true;
      ok.textContent = text;
      ok.hidden = false;
    };

    /**
     * A button that calls the relay, disabled while it does.
     * @param {string} label @param {string} testid @param {() => Promise<void>} run @param {string} [cls]
     */
    const action = (label, testid, run, cls = "") => {
      const b = h(`button.btn.btn-small${cls}`, { type: "button", "data-testid": testid }, label);
      b.addEventListener("click", async () => {
        b.disabled = true;
        note.hidden = true;
        ok.hidden = true;
        try {
          await run();
        } catch (err) {
          fail(asApiError(err).message);
        } finally {
          if (b.isConnected) b.disabled = false;
        }
      });
      return b;
    };

    const toggle = action(e.enabled ? "Disable" : "Enable", "webhook-toggle", async () => {
      putEndpoint(await api.updateWebhook(e.id, { enabled: !e.enabled }));
      render();
      st.deliveries?.renderList();
    });
    toggle.title = e.enabled
      ? "Stop posting to it. Events that happen while it is disabled are not sent later."
      : "Post events to it again";
    const edit = h(
      "button.btn.btn-small",
      { type: "button", "data-testid": "webhook-edit", "aria-expanded": st.editing ? "true" : "false" },
      "Edit",
    );
    edit.addEventListener("click", () => {
      st.editing = !st.editing;
      renderEndpoint();
      const input = endpointSlot.querySelector(".item-form input");
      if (st.editing && input instanceof HTMLInputElement) input.focus();
    });
    const test = action("Send test event", "webhook-test", async () => {
      const ev = await api.testWebhook(e.id);
      done(
        `Test event sent${ev?.event_id ? ` (${ev.event_id.slice(0, 8)})` : ""}: its delivery shows in the log below in a moment.`,
      );
      st.deliveries?.burst();
    });
    if (!e.enabled) {
      test.disabled = true;
      test.title = "A disabled endpoint gets nothing: enable it first";
    }
    const rotate = action("Rotate secret", "webhook-rotate", async () => {
      if (
        !window.confirm(
          `Make a new signing secret for ${e.url}?\n\nThe new one is shown once. The current one keeps signing too for 24 hours, so the receiver can switch without missing a message.`,
        )
      )
        return;
      const got = await api.rotateWebhookSecret(e.id);
      putEndpoint(got);
      st.secret = { endpoint: got, secret: got.secret, rotated: true };
      render();
      secretSlot.scrollIntoView({ block: "nearest" });
    });
    const del = action(
      "Delete",
      "webhook-delete",
      async () => {
        if (
          !window.confirm(
            `Delete the endpoint ${e.url}?\n\nIts delivery log and signing secrets are deleted too, and nothing is posted to it any more.`,
          )
        )
          return;
        await api.deleteWebhook(e.id);
        st.endpoints = (st.endpoints || []).filter((x) => x.id !== e.id);
        if (st.secret?.endpoint.id === e.id) st.secret = null;
        st.editing = false;
        st.selected = null;
        st.delivery = null;
        history.replaceState(null, "", pageHash(null));
        render();
        load();
      },
      ".btn-danger",
    );

    /** @param {string} label @param {import("../lib/types.js").Child} value @param {string} [cls] */
    const fact = (label, value, cls) =>
      h("div.fact", { class: cls || null }, h("dt", { text: label }), h("dd", null, value));
    const overlap = e.previous_secret_until && parseTime(e.previous_secret_until) > Date.now();
    return h(
      "section.card.wh-endpoint-card",
      { "aria-label": "Endpoint", "data-testid": "webhook-detail", "data-endpoint-id": e.id },
      h(
        "div.card-head.wh-endpoint-head",
        null,
        h("h2.wh-endpoint-url.mono", { title: e.url, text: e.url }),
        endpointBadge(e),
        h("span.grow"),
        h("div.wh-actions", null, toggle, edit, test, rotate, del),
      ),
      h(
        "div.card-body",
        null,
        !e.enabled
          ? h(
              "div.exit-reason.is-warn",
              { "data-testid": "webhook-disabled-reason" },
              h("span.exit-reason-text", {
                text: `Disabled${e.disabled_reason ? `: ${e.disabled_reason}` : ""}. Nothing is posted to it until it is enabled.`,
              }),
            )
          : null,
        note,
        ok,
        h(
          "dl.facts.facts-tight.wh-facts",
          null,
          fact("Scope", scopeEl(e)),
          fact("Events", eventChips(e.events)),
          fact("Added", timeEl(e.created_at)),
          fact("Changed", timeEl(e.updated_at)),
          fact(
            "Signing secret",
            overlap
              ? h("span", {
                  "data-testid": "webhook-overlap",
                  text: `rotated: the previous one signs too until ${fmtDateTime(e.previous_secret_until)} (${timeUntil(e.previous_secret_until)})`,
                })
              : h("span.muted", { text: "one secret (whsec_…)" }),
            "fact-wide",
          ),
          e.description ? fact("Description", e.description, "fact-wide") : null,
        ),
        st.editing ? editForm(e) : null,
      ),
    );
  }

  /** The URL, description and events of the chosen endpoint. @param {EndpointView} e */
  function editForm(e) {
    const url = h("input.mono", {
      type: "text",
      inputmode: "url",
      spellcheck: "false",
      autocomplete: "off",
      value: e.url,
      maxlength: 2000,
      "data-testid": "webhook-edit-url",
    });
    const description = h("input", {
      type: "text",
      value: e.description,
      maxlength: MAX_DESCRIPTION,
      autocomplete: "off",
      "data-testid": "webhook-edit-description",
    });
    const kinds = eventBoxes("webhook-edit-event", e.events);
    const err = h("div.form-error", { role: "alert", "data-testid": "webhook-edit-error", hidden: true });
    const save = h("button.btn.btn-primary.btn-small", { type: "submit", "data-testid": "webhook-edit-save" }, "Save");
    const cancel = h("button.btn.btn-small", { type: "button" }, "Cancel");
    cancel.addEventListener("click", () => {
      st.editing = false;
      renderEndpoint();
    });
    const f = h(
      "form.inline-form",
      { "aria-label": `Edit ${e.url}` },
      h("div.inline-fields", null, field("URL", url), field("Description", description)),
      kinds.root,
      err,
      h("div.form-actions", null, cancel, save),
    );
    f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      /** @param {string} text @param {{ focus: () => void }} [el] */
      const bad = (text, el) => {
        err.textContent = text;
        err.hidden = false;
        el?.focus();
      };
      const u = url.value.trim();
      if (!httpUrl(u)) return bad("The URL starts with https:// (or http://).", url);
      const events = kinds.value();
      if (!events.length) return bad("Choose at least one kind of event.", kinds);
      /** @type {EndpointPatch} */
      const body = { events };
      if (u !== e.url) body.url = u;
      if (description.value.trim() !== e.description) body.description = description.value.trim();
      save.disabled = true;
      try {
        putEndpoint(await api.updateWebhook(e.id, body));
        st.editing = false;
        render();
      } catch (caught) {
        bad(asApiError(caught).message, url);
        save.disabled = false;
      }
    });
    return h("div.item-form", null, f);
  }

  // ---------------------------------------------------------------- a new endpoint

  function newForm() {
    const url = h("input.mono", {
      type: "text",
      inputmode: "url",
      spellcheck: "false",
      autocomplete: "off",
      maxlength: 2000,
      placeholder: "https://n8n.example.com/webhook/fulcrum",
      "data-testid": "webhook-url-input",
    });
    const description = h("input", {
      type: "text",
      maxlength: MAX_DESCRIPTION,
      autocomplete: "off",
      placeholder: "e.g. n8n: tell the team about failed tasks",
      "data-testid": "webhook-description",
    });
    const scope = h("select", { "data-testid": "webhook-scope" }, h("option", { value: "", text: "Personal" }));
    const scopeHint = h("span.field-hint");
    const kinds = eventBoxes("webhook-event");
    const err = h("div.form-error", { role: "alert", "data-testid": "webhook-error", hidden: true });
    const save = h("button.btn.btn-primary", { type: "submit", "data-testid": "webhook-save" }, "Add endpoint");
    const cancel = h("button.btn", { type: "button" }, "Cancel");
    const scopeField = field("Scope", scope);
    scopeField.append(scopeHint);
    const root = h(
      "form.panel.wh-form",
      { "aria-label": "New endpoint", "data-testid": "webhook-form", hidden: true },
      h("h2", { text: "New endpoint" }),
      h(
        "div.form-grid",
        null,
        field(
          "URL",
          url,
          "Where to post: a public http(s) address (private and loopback ones are refused unless the relay allows them).",
        ),
        scopeField,
        field("Description", description, "Optional: what it is for."),
      ),
      kinds.root,
      err,
      h("div.form-actions", null, cancel, save),
    );
    const syncScope = () => {
      scopeHint.textContent = scope.value
        ? `The events of ${projectNames.get(scope.value) || "the project"} (its tasks, its budget); its owners and maintainers manage the endpoint.`
        : "Your own events: the tasks that run in your workspaces and the budgets you set.";
    };
    scope.addEventListener("change", syncScope);
    syncScope();
    cancel.addEventListener("click", () => setFormOpen(false));
    root.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      /** @param {string} text @param {{ focus: () => void }} el */
      const bad = (text, el) => {
        err.textContent = text;
        err.hidden = false;
        el.focus();
      };
      const u = url.value.trim();
      if (!u) return bad("Give the URL to post to.", url);
      if (!httpUrl(u)) return bad("The URL starts with https:// (or http://).", url);
      const events = kinds.value();
      if (!events.length) return bad("Choose at least one kind of event.", kinds);
      /** @type {EndpointInput} */
      const body = { url: u, events };
      if (description.value.trim()) body.description = description.value.trim();
      if (scope.value) body.project_id = scope.value;
      save.disabled = true;
      try {
        const created = await api.createWebhook(body);
        putEndpoint(created);
        st.secret = { endpoint: created, secret: created.secret, rotated: false };
        st.editing = false;
        setFormOpen(false);
        select(created.id, null, false); // the secret, above the list, stays in view
      } catch (caught) {
        // What the relay refused, as it words it (a private address, a URL too long…).
        bad(asApiError(caught).message, url);
      } finally {
        save.disabled = false;
      }
    });
    return {
      root,
      focus: () => url.focus(),
      reset() {
        url.value = "";
        description.value = "";
        err.hidden = true;
      },
      /** The scopes a new endpoint can have: personal, or a project the user owns or maintains. @param {Project[]} list */
      setProjects(list) {
        const current = scope.value;
        const managed = list.filter((p) => p.status !== "archived" && (p.role === "owner" || p.role === "maintainer"));
        clear(scope);
        append(scope, [
          h("option", { value: "", text: "Personal" }),
          managed.length
            ? h(
                "optgroup",
                { label: "Projects you own or maintain" },
                managed.map((p) => h("option", { value: p.id, text: p.name || p.id })),
              )
            : null,
        ]);
        scope.value = managed.some((p) => p.id === current) ? current : "";
        syncScope();
      },
    };
  }

  // ---------------------------------------------------------------- choosing

  /**
   * Choose an endpoint (and a delivery of it), in the hash too.
   * @param {string | null} endpoint @param {string | null} delivery @param {boolean} [scroll]
   */
  function select(endpoint, delivery, scroll = true) {
    const hash = pageHash(endpoint, delivery);
    if (location.hash !== hash) history.pushState(null, "", hash);
    apply(endpoint, delivery, scroll);
  }

  /** @param {string | null} endpoint @param {string | null} delivery @param {boolean} [scroll] to the endpoint's card */
  function apply(endpoint, delivery, scroll = true) {
    const changed = endpoint !== st.selected;
    st.selected = endpoint;
    st.delivery = delivery;
    if (changed) {
      st.editing = false;
      render();
      const detail = endpointSlot.firstElementChild;
      // Down to the card when it is out of sight (a long list); else the page stays put.
      if (scroll && detail instanceof HTMLElement && endpoint) {
        const top = detail.getBoundingClientRect().top;
        if (top < 0 || top > window.innerHeight - 120) detail.scrollIntoView({ block: "start" });
      }
    } else {
      st.deliveries?.show(delivery);
    }
    updateTitle();
  }

  /** A link to another endpoint or delivery of the page, followed while it is open. */
  function onHash() {
    if (!location.hash.startsWith("#/webhooks")) return;
    const s = hashSelection();
    if (!s.endpoint && st.endpoints?.length) {
      // Back to the bare page: the first endpoint, as when it opened.
      const first = st.endpoints[0].id;
      history.replaceState(null, "", pageHash(first));
      apply(first, null);
      return;
    }
    if (s.endpoint === st.selected && s.delivery === st.delivery) return;
    apply(s.endpoint, s.delivery);
  }
  window.addEventListener("hashchange", onHash);

  render();
  load();
  loadProjects();

  return {
    root,
    heading,
    nav: "webhooks",
    title: () => {
      const e = chosen();
      return e ? `Webhooks · ${e.url.replace(/^https?:\/\//, "")}` : "Webhooks";
    },
    destroy() {
      st.seq++;
      st.deliveries?.destroy();
      window.removeEventListener("hashchange", onHash);
    },
    onLive(s) {
      // Back after the connection dropped: what changed meanwhile was not heard.
      if (s === "live" && st.live === "reconnecting") {
        load();
        st.deliveries?.load();
      }
      st.live = s;
    },
  };
}
