// The project page's Pipelines card: the project's AI pipeline runs (kept current by run events)
// and the Generate form that starts one: a built-in pipeline or a TOML definition, an optional
// budget, provider and feature request.

import { api, asApiError } from "../api.js";
import { clear, dataTable, enc, errorBanner, field, h, loadingEl } from "../lib/dom.js";
import { fmtUsd, parseTime, timeEl } from "../lib/format.js";
import { BUILTIN_PIPELINES, costText, pipelineBadge, runDurationEl, runHref } from "../lib/pipelines.js";
import { signedIn } from "../lib/shell.js";
import { badResponse } from "../lib/state.js";

/** @typedef {import("../lib/types.js").RunView} RunView */
/** @typedef {import("../lib/types.js").StartRun} StartRun */
/** @typedef {import("../lib/types.js").LlmProvider} LlmProvider */

const CUSTOM = "custom";

/**
 * @param {string} projectId
 * @param {{ canStart: () => boolean }} hooks
 */
export function pipelinesCard(projectId, hooks) {
  /** @type {RunView[] | null} */
  let runs = null;
  /** @type {string | null} */
  let error = null;
  let seq = 0;

  const generate = h(
    "button.btn.btn-primary.btn-small",
    { type: "button", "data-testid": "pipeline-generate", "aria-expanded": "false", hidden: true },
    "Generate",
  );
  const formSlot = h("div");
  const listSlot = h("div.pipeline-runs");
  const root = h(
    "section.card",
    { "aria-label": "Pipelines", "data-testid": "pipelines-card" },
    h(
      "div.card-head",
      null,
      h("h2", { text: "Pipelines" }),
      h("span.muted.small", { text: "AI generation runs: stages, approvals, artifacts." }),
      h("span.grow"),
      generate,
    ),
    formSlot,
    listSlot,
  );

  generate.addEventListener("click", () => {
    if (formSlot.firstChild) {
      closeForm();
      return;
    }
    const form = generateForm();
    formSlot.append(form.root);
    generate.setAttribute("aria-expanded", "true");
    form.focus();
  });

  function closeForm() {
    clear(formSlot);
    generate.setAttribute("aria-expanded", "false");
    generate.focus();
  }

  async function load() {
    const my = ++seq;
    try {
      const list = await api.pipelineRuns(projectId);
      if (my !== seq) return;
      runs = (Array.isArray(list) ? list : []).filter((r) => r && typeof r.id === "string");
      error = null;
    } catch (err) {
      if (my !== seq || !signedIn()) return;
      error = asApiError(err).message;
    }
    render();
  }

  function render() {
    generate.hidden = !hooks.canStart();
    if (generate.hidden && formSlot.firstChild) clear(formSlot);
    clear(listSlot);
    if (!runs) {
      listSlot.append(error ? errorBanner(`Couldn't load the runs: ${error}`, load) : loadingEl("Loading runs…"));
      return;
    }
    if (error) listSlot.append(errorBanner(`Couldn't refresh the runs: ${error}`, load));
    if (!runs.length) {
      listSlot.append(
        h("p.muted.small.card-pad", {
          text: hooks.canStart()
            ? "No runs yet. Generate starts one: a whole system from the project's description, a feature, or your own definition."
            : "No runs yet.",
        }),
      );
      return;
    }
    listSlot.append(
      dataTable(
        ".runs-table",
        ["Run", "Pipeline", "State", "Cost", "Started", "Duration"],
        runs.map((r) =>
          h(
            "tr",
            { "data-testid": "pipeline-run-row", "data-run-id": r.id, "data-state": r.state },
            h("td", null, h("a.mono", { href: runHref(r), "data-testid": "pipeline-run-link", text: r.handle })),
            h("td", { text: r.pipeline }),
            h("td", null, pipelineBadge(r.state, "pipeline-run-state")),
            h("td.num", {
              text: costText(r.usage),
              title: typeof r.budget_usd === "number" ? `of a ${fmtUsd(r.budget_usd)} budget` : null,
            }),
            h("td.t-time", null, timeEl(r.started_at || r.created_at)),
            h("td.num", null, runDurationEl(r)),
          ),
        ),
      ),
    );
  }

  /** A run was created or changed (from the socket). @param {RunView} r */
  function onRun(r) {
    if (r.project_id !== projectId || !runs) return;
    const i = runs.findIndex((x) => x.id === r.id);
    if (i >= 0) runs[i] = r;
    else {
      runs.push(r);
      runs.sort((a, b) => (parseTime(b.created_at) || 0) - (parseTime(a.created_at) || 0));
    }
    render();
  }

  // ---------------------------------------------------------------- the Generate form

  function generateForm() {
    const pipeline = h(
      "select",
      { "data-testid": "generate-pipeline" },
      BUILTIN_PIPELINES.map((p) => h("option", { value: p.value, text: p.label })),
      h("option", { value: CUSTOM, text: "Custom definition…" }),
    );
    const hint = h("p.field-hint.generate-hint");
    const budget = h("input", {
      type: "number",
      min: 0,
      step: "0.01",
      inputmode: "decimal",
      placeholder: "No limit of its own",
      "data-testid": "generate-budget",
    });
    const provider = h("select", { "data-testid": "generate-provider" }, h("option", { value: "", text: "Automatic" }));
    const request = h("textarea", {
      rows: 3,
      "data-testid": "generate-request",
      placeholder: "e.g. Let users export their to-do lists as CSV.",
    });
    const definition = h("textarea.mono", {
      rows: 14,
      spellcheck: "false",
      "data-testid": "generate-definition",
      placeholder:
        'name = "docs"\n\n[[stages]]\nname = "outline"\nkind = "llm"\nprompt = "Outline a README for {{ inputs.name }}"',
    });
    const requestField = field("Feature request", request, "What to build: the feature pipeline's stages read it.");
    const definitionField = field(
      "Definition (TOML)",
      definition,
      "Stages with their kind, prompt, needs and artifacts. Errors name the line.",
    );
    const notice = h("div.notice", { hidden: true, "data-testid": "generate-no-provider" });
    const formError = h("div.form-error", { role: "alert", "data-testid": "generate-error", hidden: true });
    const cancel = h("button.btn", { type: "button" }, "Cancel");
    const submit = h("button.btn.btn-primary", { type: "submit", "data-testid": "generate-submit" }, "Start run");
    const root = h(
      "form.generate-form",
      { "aria-label": "Generate", "data-testid": "generate-form" },
      h(
        "div.form-grid.form-grid-3",
        null,
        field("Pipeline", pipeline),
        field("Budget (USD)", budget, "Optional. The run pauses when it is reached."),
        field("Provider", provider, "Automatic: yours for this project, then yours for all."),
      ),
      hint,
      requestField,
      definitionField,
      notice,
      formError,
      h("div.form-actions", null, cancel, submit),
    );

    const sync = () => {
      const v = pipeline.value;
      hint.textContent =
        v === CUSTOM
          ? "Paste a pipeline definition. Its prompts read inputs.name and inputs.description (the project's)."
          : BUILTIN_PIPELINES.find((p) => p.value === v)?.hint || "";
      requestField.hidden = v !== "feature";
      definitionField.hidden = v !== CUSTOM;
    };
    pipeline.addEventListener("change", () => {
      sync();
      if (pipeline.value === CUSTOM) definition.focus();
      else if (pipeline.value === "feature") request.focus();
    });
    sync();
    cancel.addEventListener("click", closeForm);

    // The providers to choose from; with none, say where to set one up.
    api.llmProviders().then(
      (list) => {
        const mine = Array.isArray(list) ? list.filter((p) => p && typeof p.id === "string") : [];
        for (const p of mine) {
          const scope = p.project_id ? (p.project_id === projectId ? " (this project)" : " (another project)") : "";
          provider.append(h("option", { value: p.id, text: `${p.name} · ${p.default_model}${scope}` }));
        }
        if (!mine.length) {
          clear(notice);
          notice.append(
            "You have no AI provider yet: the run would use the project owner's, if they set one up for it. ",
            h("a", { href: "#/settings/ai", text: "Set up a provider" }),
          );
          notice.hidden = false;
        }
      },
      () => {},
    );

    /** @param {string} text @param {HTMLElement | null} [focus] */
    const showError = (text, focus) => {
      clear(formError);
      formError.append(text);
      // A definition error quotes the lines it is about: keep them as they are.
      formError.classList.toggle("is-code", text.includes("\n"));
      formError.hidden = false;
      focus?.focus();
    };

    root.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      formError.hidden = true;
      /** @type {StartRun} */
      const body = {};
      if (pipeline.value === CUSTOM) {
        if (!definition.value.trim()) {
          showError("Paste a pipeline definition (TOML).", definition);
          return;
        }
        body.definition = definition.value;
      } else {
        body.pipeline = pipeline.value;
      }
      if (pipeline.value === "feature") {
        if (!request.value.trim()) {
          showError("Describe the feature: the pipeline's stages work from it.", request);
          return;
        }
        // The document gives `inputs` no properties (so the generated type allows none): it is free-form JSON.
        body.inputs = /** @type {StartRun["inputs"]} */ (/** @type {unknown} */ ({ request: request.value.trim() }));
      }
      if (budget.value.trim() !== "") {
        const n = Number(budget.value);
        if (!Number.isFinite(n) || n < 0) {
          showError("The budget is an amount in US dollars, 0 or more.", budget);
          return;
        }
        body.budget_usd = n;
      }
      if (provider.value) body.provider_id = provider.value;
      submit.disabled = true;
      submit.textContent = "Starting…";
      try {
        const run = await api.startPipelineRun(projectId, body);
        if (!run?.id) throw badResponse("The relay did not return the new run.");
        location.hash = `#/pipeline-runs/${enc(run.id)}`;
      } catch (caught) {
        const err = asApiError(caught);
        submit.disabled = false;
        submit.textContent = "Start run";
        if (err.code === "no_provider") {
          clear(formError);
          formError.classList.remove("is-code");
          formError.append(
            "No AI provider is set up for this project. ",
            h("a", {
              href: "#/settings/ai",
              "data-testid": "generate-provider-link",
              text: "Set one up in AI providers",
            }),
            ", then start the run again.",
          );
          formError.hidden = false;
          return;
        }
        showError(err.message);
        const line = pipeline.value === CUSTOM ? /\bline (\d+)/.exec(err.message) : null;
        if (line) selectLine(definition, Number(line[1]));
      }
    });

    return {
      root,
      focus: () => pipeline.focus(),
    };
  }

  render();

  return {
    root,
    load,
    onRun,
    /** A run's handle, when the list holds it. @param {string} runId */
    handleOf: (runId) => runs?.find((r) => r.id === runId)?.handle || null,
    /** The role or the project's status changed. */
    sync: render,
    destroy() {
      seq++;
    },
  };
}

/**
 * Selects line `n` (1-based) of a textarea and scrolls to it: where a definition error points.
 * @param {HTMLTextAreaElement} ta
 * @param {number} n
 */
function selectLine(ta, n) {
  const lines = ta.value.split("\n");
  if (!(n >= 1 && n <= lines.length)) return;
  const start = lines.slice(0, n - 1).reduce((sum, l) => sum + l.length + 1, 0);
  ta.focus();
  ta.setSelectionRange(start, start + lines[n - 1].length);
  const lineHeight = Number.parseFloat(getComputedStyle(ta).lineHeight) || 18;
  ta.scrollTop = Math.max(0, (n - 3) * lineHeight);
}
