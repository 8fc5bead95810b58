// The AI settings page (#/settings/ai): the LLM providers pipelines call (add, change the base URL
// or model, rotate the key, delete; keys are write-only and shown only by their last characters)
// and the budgets that limit what the calls spend (pages/settings-budgets.js).

import { api, asApiError } from "../api.js";
import { append, clear, errorBanner, field, h, loadingEl, uid } from "../lib/dom.js";
import { byName, timeEl } from "../lib/format.js";
import { signedIn } from "../lib/shell.js";
import { projectNames, withIds } from "../lib/state.js";
import { budgetsSection } from "./settings-budgets.js";

/** @typedef {import("../lib/types.js").LlmProvider} LlmProvider */
/** @typedef {import("../lib/types.js").ProviderInput} ProviderInput */
/** @typedef {import("../lib/types.js").ProviderKind} ProviderKind */
/** @typedef {import("../lib/types.js").Project} Project */
/** @typedef {import("../lib/types.js").Page} Page */

/** What each wire format is, where it is, and a model it serves. */
const KINDS = {
  openai: {
    label: "OpenAI-compatible",
    option: "OpenAI-compatible (OpenAI, Ollama, vLLM, LM Studio…)",
    url: "https://api.openai.com/v1",
    model: "gpt-4.1-mini",
  },
  anthropic: {
    label: "Anthropic",
    option: "Anthropic",
    url: "https://api.anthropic.com/v1",
    model: "claude-sonnet-4-5",
  },
};
/** @param {string} k @returns {k is ProviderKind} */
const isKind = (k) => Object.hasOwn(KINDS, k);

/** "…cdef", or "no key". @param {LlmProvider} p */
function keyHint(p) {
  if (!p.key_hint) return h("span.muted", { "data-testid": "provider-key-hint", text: "no key" });
  const hint = p.key_hint.startsWith("…") ? p.key_hint : `…${p.key_hint}`;
  return h("span.mono", { "data-testid": "provider-key-hint", title: "The key's last characters", text: hint });
}

/** @returns {Page} */
export function buildAiSettingsPage() {
  /** @type {LlmProvider[] | null} */
  let providers = null;
  /** @type {string | null} */
  let error = null;
  let seq = 0;
  /** @type {Project[]} */
  let projects = [];
  /** @type {{ id: string, mode: "edit" | "key" } | null} the provider row whose inline form is open */
  let editing = null;

  const heading = h("h1", { id: uid("h"), tabindex: -1, text: "AI providers" });
  const addButton = h(
    "button.btn.btn-primary",
    { type: "button", "data-testid": "provider-new", "aria-expanded": "false" },
    "Add provider",
  );
  const add = addForm();
  const listSlot = h("div");
  const budgets = budgetsSection();
  const root = h(
    "section.view.view-narrow",
    { "aria-labelledby": heading.id, "data-testid": "ai-settings" },
    h("div.view-head", null, h("div.view-title", null, heading), addButton),
    h(
      "p.lead.muted",
      null,
      "Pipelines call a large language model through a provider you set up here: OpenAI, Anthropic, or any server that speaks OpenAI's API (Ollama, vLLM). A key is sealed on the relay when you save it and never shown again, only its last characters.",
    ),
    add.root,
    listSlot,
    budgets.root,
  );

  addButton.addEventListener("click", () => setAddOpen(add.root.hidden));
  /** @param {boolean} open */
  function setAddOpen(open) {
    add.root.hidden = !open;
    addButton.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) add.focus();
    else addButton.focus();
  }

  async function load() {
    const my = ++seq;
    try {
      const list = await api.llmProviders();
      if (my !== seq) return;
      providers = withIds(list).sort((a, b) => byName(a.name, b.name));
      error = null;
      if (!providers.length && add.root.hidden) setAddOpen(true);
    } catch (err) {
      if (my !== seq || !signedIn()) return;
      error = asApiError(err).message;
    }
    render();
  }

  function loadProjects() {
    api.projects().then(
      (list) => {
        projects = withIds(list)
          .filter((p) => p.status !== "archived")
          .sort((a, b) => byName(a.name, b.name));
        for (const p of projects) projectNames.set(p.id, p.name);
        add.setProjects(projects);
        budgets.setProjects(projects);
        render();
      },
      () => {},
    );
  }

  function render() {
    clear(listSlot);
    if (!providers) {
      listSlot.append(
        error ? errorBanner(`Couldn't load the providers: ${error}`, load) : loadingEl("Loading providers…"),
      );
      return;
    }
    if (error) listSlot.append(errorBanner(`Couldn't refresh the providers: ${error}`, load));
    if (!providers.length) {
      listSlot.append(
        h(
          "div.empty.empty-small",
          { "data-testid": "providers-empty" },
          h("h2", { text: "No providers yet" }),
          h("p.muted", { text: "Add one above: pipelines can't start without a provider to call." }),
        ),
      );
      return;
    }
    listSlot.append(
      h(
        "ul.card.item-list.provider-list",
        { "aria-label": "Providers" },
        providers.map((p) => providerItem(p)),
      ),
    );
  }

  /** A provider: name, kind and scope; where it calls, its model and key; its actions. @param {LlmProvider} p */
  function providerItem(p) {
    /** @param {string} label @param {"edit" | "key"} mode @param {string} testid */
    const toggle = (label, mode, testid) => {
      const open = editing?.id === p.id && editing.mode === mode;
      const b = h(
        "button.btn.btn-small",
        { type: "button", "data-testid": testid, "aria-expanded": open ? "true" : "false" },
        label,
      );
      b.addEventListener("click", () => {
        editing = open ? null : { id: p.id, mode };
        render();
        const input = listSlot.querySelector(".item-form input");
        if (input instanceof HTMLInputElement) input.focus();
      });
      return b;
    };
    const del = h("button.btn.btn-small.btn-danger", { type: "button", "data-testid": "provider-delete" }, "Delete");
    del.addEventListener("click", async () => {
      if (
        !window.confirm(
          `Delete the provider “${p.name}”?\n\nIts key is destroyed. Runs that use it stop at their next call until another provider is chosen.`,
        )
      )
        return;
      del.disabled = true;
      try {
        await api.deleteLlmProvider(p.id);
        if (editing?.id === p.id) editing = null;
        providers = (providers || []).filter((x) => x.id !== p.id);
        render();
        load();
      } catch (err) {
        del.disabled = false;
        window.alert(`Couldn't delete the provider: ${asApiError(err).message}`);
      }
    });
    const scope = p.project_id ? `only ${projectNames.get(p.project_id) || p.project_id.slice(0, 8)}` : "all projects";
    return h(
      "li.item",
      { "data-testid": "provider-row", "data-provider-id": p.id, "data-kind": p.kind },
      h(
        "div.item-main",
        null,
        h(
          "div.item-title",
          null,
          h("span.item-name", { text: p.name }),
          h("span.badge", { class: `kind-${p.kind}`, text: isKind(p.kind) ? KINDS[p.kind].label : p.kind }),
          h("span.muted.small", { text: `for ${scope}` }),
        ),
        h(
          "div.item-facts",
          null,
          h("span.mono.clip", { "data-testid": "provider-base-url", title: p.base_url, text: p.base_url }),
          h(
            "span",
            null,
            h("span.muted", { text: "model " }),
            h("span.mono", { "data-testid": "provider-model", text: p.default_model }),
          ),
          h("span", null, h("span.muted", { text: "key " }), keyHint(p)),
          h("span.muted", null, "added ", timeEl(p.created_at)),
        ),
      ),
      h(
        "div.item-actions",
        null,
        toggle("Edit", "edit", "provider-edit"),
        toggle("Rotate key", "key", "provider-rotate"),
        del,
      ),
      editing?.id === p.id ? inlineForm(p, editing.mode) : null,
    );
  }

  /**
   * The inline form under a provider: its base URL and model, or a new key.
   * @param {LlmProvider} p
   * @param {"edit" | "key"} mode
   */
  function inlineForm(p, mode) {
    const err = h("div.form-error", { role: "alert", hidden: true });
    const save = h(
      "button.btn.btn-primary.btn-small",
      { type: "submit", "data-testid": "provider-inline-save" },
      "Save",
    );
    const cancel = h("button.btn.btn-small", { type: "button" }, "Cancel");
    cancel.addEventListener("click", () => {
      editing = null;
      render();
    });
    /** @type {HTMLElement[]} */
    let fields;
    /** @type {() => import("../lib/types.js").ProviderPatch | null} */
    let patch;
    if (mode === "key") {
      const key = h("input", {
        type: "password",
        autocomplete: "new-password",
        spellcheck: "false",
        "data-testid": "provider-new-key",
      });
      fields = [field("New API key", key, "Replaces the sealed key at once; the old one is destroyed.")];
      patch = () => {
        if (!key.value.trim()) {
          err.textContent = "Paste the new key.";
          err.hidden = false;
          key.focus();
          return null;
        }
        return { api_key: key.value.trim() };
      };
    } else {
      const url = h("input.mono", {
        type: "text",
        value: p.base_url,
        spellcheck: "false",
        "data-testid": "provider-edit-url",
      });
      const model = h("input.mono", {
        type: "text",
        value: p.default_model,
        spellcheck: "false",
        "data-testid": "provider-edit-model",
      });
      fields = [field("Base URL", url), field("Default model", model)];
      patch = () => {
        if (!url.value.trim() || !model.value.trim()) {
          err.textContent = "The base URL and the model can't be empty.";
          err.hidden = false;
          return null;
        }
        return { base_url: url.value.trim(), default_model: model.value.trim() };
      };
    }
    const form = h(
      "form.inline-form",
      { "aria-label": mode === "key" ? `New key for ${p.name}` : `Edit ${p.name}` },
      h("div.inline-fields", null, fields),
      h("div.form-actions", null, cancel, save),
      err,
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      const body = patch();
      if (!body) return;
      save.disabled = true;
      try {
        const updated = await api.updateLlmProvider(p.id, body);
        editing = null;
        if (updated?.id && providers) providers = providers.map((x) => (x.id === updated.id ? updated : x));
        render();
        load();
      } catch (caught) {
        err.textContent = asApiError(caught).message;
        err.hidden = false;
        save.disabled = false;
      }
    });
    return h("div.item-form", null, form);
  }

  // ---------------------------------------------------------------- adding one

  function addForm() {
    const name = h("input", {
      type: "text",
      maxlength: 100,
      autocomplete: "off",
      placeholder: "e.g. OpenAI, Local Ollama",
      "data-testid": "provider-name",
    });
    const kind = h(
      "select",
      { "data-testid": "provider-kind" },
      Object.entries(KINDS).map(([value, k]) => h("option", { value, text: k.option })),
    );
    const url = h("input.mono", { type: "text", spellcheck: "false", "data-testid": "provider-base-url-input" });
    const model = h("input.mono", { type: "text", spellcheck: "false", "data-testid": "provider-model-input" });
    const key = h("input", {
      type: "password",
      autocomplete: "new-password",
      spellcheck: "false",
      "data-testid": "provider-key",
    });
    const scope = h("select", { "data-testid": "provider-scope" }, h("option", { value: "", text: "All my projects" }));
    const urlHint = h("span.field-hint");
    const save = h("button.btn.btn-primary", { type: "submit", "data-testid": "provider-save" }, "Add provider");
    const cancel = h("button.btn", { type: "button" }, "Cancel");
    const err = h("div.form-error", { role: "alert", "data-testid": "provider-error", hidden: true });
    const urlField = field("Base URL", url);
    urlField.append(urlHint);
    const root = h(
      "form.panel.provider-form",
      { "aria-label": "Add a provider", "data-testid": "provider-form", hidden: true },
      h(
        "div.form-grid",
        null,
        field("Name", name),
        field("Kind", kind),
        urlField,
        field("Default model", model, "Used by stages that name no model."),
        field("API key", key, "Sealed on the relay, never shown again. Optional for local servers."),
        field("For", scope, "One project, or all of yours."),
      ),
      err,
      h("div.form-actions", null, cancel, save),
    );
    const syncKind = () => {
      const k = isKind(kind.value) ? KINDS[kind.value] : KINDS.openai;
      url.placeholder = k.url;
      model.placeholder = k.model;
      urlHint.textContent =
        kind.value === "openai" ? `Empty: ${k.url}. Ollama: http://127.0.0.1:11434/v1.` : `Empty: ${k.url}.`;
    };
    kind.addEventListener("change", syncKind);
    syncKind();
    cancel.addEventListener("click", () => {
      err.hidden = true;
      setAddOpen(false);
    });
    root.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      /** @param {string} text @param {HTMLElement} el */
      const bad = (text, el) => {
        err.textContent = text;
        err.hidden = false;
        el.focus();
      };
      const k = isKind(kind.value) ? kind.value : "openai";
      if (!name.value.trim()) {
        bad("Give the provider a name.", name);
        return;
      }
      if (!model.value.trim()) {
        bad("Name the model stages use when they name none.", model);
        return;
      }
      /** @type {ProviderInput} */
      const body = {
        name: name.value.trim(),
        kind: k,
        base_url: url.value.trim() || KINDS[k].url,
        default_model: model.value.trim(),
      };
      if (key.value.trim()) body.api_key = key.value.trim();
      if (scope.value) body.project_id = scope.value;
      save.disabled = true;
      try {
        const created = await api.createLlmProvider(body);
        key.value = "";
        name.value = "";
        url.value = "";
        model.value = "";
        if (created?.id && providers) providers = [...providers.filter((x) => x.id !== created.id), created];
        setAddOpen(false);
        render();
        load();
      } catch (caught) {
        // The key stays typed in: nothing was stored.
        bad(asApiError(caught).message, name);
      } finally {
        save.disabled = false;
      }
    });
    return {
      root,
      focus: () => name.focus(),
      /** @param {Project[]} list */
      setProjects(list) {
        const current = scope.value;
        clear(scope);
        append(scope, [
          h("option", { value: "", text: "All my projects" }),
          list.map((p) => h("option", { value: p.id, text: p.name || p.id })),
        ]);
        scope.value = list.some((p) => p.id === current) ? current : "";
      },
    };
  }

  render();
  load();
  loadProjects();
  budgets.load();

  return {
    root,
    heading,
    nav: "settings-ai",
    title: () => "AI providers",
    destroy() {
      seq++;
      budgets.destroy();
    },
  };
}
