// The budgets on the AI settings page: spending limits on LLM calls, for all of the user's calls
// or one project's (its owner sets those), in total or per month; what each has counted so far
// with a bar; set (or replace) one, delete one.

import { api, asApiError } from "../api.js";
import { refreshBudgetAlerts } from "../lib/budgetalert.js";
import { append, clear, errorBanner, field, h, loadingEl } from "../lib/dom.js";
import { fmtUsd, timeEl } from "../lib/format.js";
import { usageBar } from "../lib/pipelines.js";
import { signedIn } from "../lib/shell.js";
import { projectNames, withIds } from "../lib/state.js";

/** @typedef {import("../lib/types.js").BudgetView} BudgetView */
/** @typedef {import("../lib/types.js").BudgetInput} BudgetInput */
/** @typedef {import("../lib/types.js").Project} Project */

/** @type {Record<string, string>} */
const PERIODS = { month: "Per month", total: "In total" };

export function budgetsSection() {
  /** @type {BudgetView[] | null} */
  let budgets = null;
  /** @type {string | null} */
  let error = null;
  let seq = 0;

  const scope = h("select", { "data-testid": "budget-scope" }, h("option", { value: "", text: "All my LLM calls" }));
  const period = h(
    "select",
    { "data-testid": "budget-period" },
    Object.entries(PERIODS).map(([value, text]) => h("option", { value, text })),
  );
  const limit = h("input", {
    type: "number",
    min: 0,
    step: "0.01",
    inputmode: "decimal",
    placeholder: "e.g. 20",
    "data-testid": "budget-limit",
  });
  const save = h("button.btn.btn-primary", { type: "submit", "data-testid": "budget-save" }, "Set budget");
  const formError = h("div.form-error", { role: "alert", "data-testid": "budget-error", hidden: true });
  const form = h(
    "form.budget-form",
    { "aria-label": "Set a budget" },
    h("div.grow", null, field("Limits", scope)),
    field("Period", period),
    field("Limit (USD)", limit),
    save,
  );
  const listSlot = h("div");
  const root = h(
    "section.card.budgets-card",
    { "aria-label": "Budgets", "data-testid": "budgets" },
    h(
      "div.card-head",
      null,
      h("h2", { text: "Budgets" }),
      h("span.muted.small", {
        text: "A call that would go over a budget is not made: its run pauses until the limit is raised.",
      }),
    ),
    h(
      "div.card-body",
      null,
      form,
      h("p.field-hint", {
        text: "One budget per scope and period: setting it again replaces the limit. A project's budget is set by its owner and counts everyone's calls in it.",
      }),
      formError,
      listSlot,
    ),
  );

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formError.hidden = true;
    const n = Number(limit.value);
    if (limit.value.trim() === "" || !Number.isFinite(n) || n < 0) {
      formError.textContent = "The limit is an amount in US dollars, 0 or more.";
      formError.hidden = false;
      limit.focus();
      return;
    }
    /** @type {BudgetInput} */
    const body = { period: period.value === "total" ? "total" : "month", limit_usd: n };
    if (scope.value) body.project_id = scope.value;
    save.disabled = true;
    try {
      await api.setBudget(body);
      limit.value = "";
      refreshBudgetAlerts(); // a raised limit ends its alert
      await load();
    } catch (err) {
      formError.textContent = asApiError(err).message;
      formError.hidden = false;
    } finally {
      save.disabled = false;
    }
  });

  async function load() {
    const my = ++seq;
    try {
      const list = await api.budgets();
      if (my !== seq) return;
      budgets = withIds(list);
      error = null;
    } catch (err) {
      if (my !== seq || !signedIn()) return;
      error = asApiError(err).message;
    }
    render();
  }

  function render() {
    clear(listSlot);
    if (!budgets) {
      listSlot.append(error ? errorBanner(`Couldn't load the budgets: ${error}`, load) : loadingEl("Loading budgets…"));
      return;
    }
    if (error) listSlot.append(errorBanner(`Couldn't refresh the budgets: ${error}`, load));
    if (!budgets.length) {
      listSlot.append(h("p.muted.small", { text: "No budgets: calls are limited only by each run's own budget." }));
      return;
    }
    const sorted = [...budgets].sort(
      (a, b) => (a.project_id ? 1 : 0) - (b.project_id ? 1 : 0) || scopeName(a).localeCompare(scopeName(b)),
    );
    listSlot.append(
      h(
        "ul.item-list.budget-list",
        { "aria-label": "Budgets" },
        sorted.map((b) => {
          const del = h(
            "button.btn.btn-small.btn-danger",
            { type: "button", "data-testid": "budget-delete" },
            "Delete",
          );
          del.addEventListener("click", async () => {
            if (!window.confirm(`Delete the budget on ${scopeName(b)} (${PERIODS[b.period] || b.period})?`)) return;
            del.disabled = true;
            try {
              await api.deleteBudget(b.id);
              refreshBudgetAlerts();
              await load();
            } catch (err) {
              del.disabled = false;
              window.alert(`Couldn't delete the budget: ${asApiError(err).message}`);
            }
          });
          const over = b.spent_usd >= b.limit_usd;
          return h(
            "li.item",
            { "data-testid": "budget-row", "data-budget-id": b.id, "data-project-id": b.project_id || "" },
            h(
              "div.item-main",
              null,
              h(
                "div.item-title",
                null,
                h("span.item-name", { text: scopeName(b) }),
                h("span.tag.tag-stack", { text: PERIODS[b.period] || b.period }),
              ),
              h("div.item-facts", null, h("span.muted", null, "changed ", timeEl(b.updated_at))),
            ),
            h(
              "div.budget-use",
              null,
              h(
                "span.num",
                null,
                h("span", { class: over ? "bad" : "", "data-testid": "budget-spent", text: fmtUsd(b.spent_usd) }),
                h("span.muted", { text: " of " }),
                h("span", { "data-testid": "budget-limit-value", text: fmtUsd(b.limit_usd) }),
              ),
              usageBar(b.spent_usd, b.limit_usd, "Budget used"),
            ),
            h("div.item-actions", null, del),
          );
        }),
      ),
    );
  }

  /** @param {BudgetView} b */
  function scopeName(b) {
    if (!b.project_id) return "All my LLM calls";
    return `Project ${projectNames.get(b.project_id) || b.project_id.slice(0, 8)}`;
  }

  render();

  return {
    root,
    load,
    /** The projects a budget can be set on: those the user owns. @param {Project[]} list */
    setProjects(list) {
      const current = scope.value;
      const owned = list.filter((p) => p.role === "owner");
      clear(scope);
      append(scope, [
        h("option", { value: "", text: "All my LLM calls" }),
        owned.map((p) => h("option", { value: p.id, text: `Project ${p.name || p.id}` })),
      ]);
      scope.value = owned.some((p) => p.id === current) ? current : "";
      render();
    },
    destroy() {
      seq++;
    },
  };
}
