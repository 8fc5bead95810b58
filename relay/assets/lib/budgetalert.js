// The budget alert banner under the top bar, on every page: a budget of the user's (or of one of
// their projects) that reached 80 % of its limit in its period (a warning), or all of it (AI
// calls through Fulcrum are refused until it is raised). From GET /budgets when the shell starts
// and from the socket's `budget_alert` messages; each alert can be dismissed for the rest of the
// browser session (a higher level shows again).

import { api } from "../api.js";
import { clear, h } from "./dom.js";
import { fmtUsd } from "./format.js";
import { projectNames, withIds } from "./state.js";

/** @typedef {import("./types.js").BudgetAlert} BudgetAlert */
/** @typedef {import("./types.js").BudgetView} BudgetView */

const DISMISSED_KEY = "fulcrum-budget-alerts-dismissed";

/** @returns {Set<string>} `${budget_id}:${level}` dismissed in this browser session */
function dismissed() {
  try {
    const list = JSON.parse(sessionStorage.getItem(DISMISSED_KEY) || "[]");
    return new Set(Array.isArray(list) ? list.filter((x) => typeof x === "string") : []);
  } catch {
    return new Set();
  }
}

/** @param {string} key */
function dismiss(key) {
  const all = dismissed();
  all.add(key);
  try {
    sessionStorage.setItem(DISMISSED_KEY, JSON.stringify([...all]));
  } catch {
    /* storage may be off: dismissed until the page reloads */
  }
}

/**
 * The alert a budget stands at: the level the relay raised, unless the limit was raised since
 * (then what is spent now says).
 * @param {BudgetView} b
 * @returns {BudgetAlert | null}
 */
function alertOf(b) {
  if (b.alert_level !== 80 && b.alert_level !== 100) return null;
  const ratio = b.limit_usd > 0 ? b.spent_usd / b.limit_usd : 1;
  const level = ratio >= 1 ? Math.min(100, b.alert_level) : ratio >= 0.8 ? 80 : 0;
  if (!level) return null;
  return {
    budget_id: b.id,
    project_id: b.project_id || null,
    period: b.period,
    level,
    limit_usd: b.limit_usd,
    spent_usd: b.spent_usd,
  };
}

/** @type {ReturnType<typeof budgetBanner> | null} the shell's banner */
let current = null;

/** Load the alerts again (a budget was set or deleted). */
export function refreshBudgetAlerts() {
  if (current) current.load();
}

export function budgetBanner() {
  /** @type {Map<string, BudgetAlert>} budget id -> its alert */
  const alerts = new Map();
  let seq = 0;
  let namesAsked = false;
  /** @type {import("./types.js").LiveState} */
  let live = "connecting";
  const root = h("div.budget-alerts", { "data-testid": "budget-alerts", hidden: true });

  async function load() {
    const my = ++seq;
    let list;
    try {
      list = withIds(await api.budgets());
    } catch {
      return; // only the banner is missing; the budgets page says what went wrong
    }
    if (my !== seq) return;
    alerts.clear();
    for (const b of list) {
      const a = alertOf(b);
      if (a) alerts.set(a.budget_id, a);
    }
    render();
  }

  /** @param {BudgetAlert} a */
  function onAlert(a) {
    const known = alerts.get(a.budget_id);
    if (known && known.level > a.level) return;
    seq++; // a load in flight is older than this
    alerts.set(a.budget_id, a);
    render();
  }

  /** The names of projects the banner names, once (the pages usually know them already). */
  function askNames() {
    if (namesAsked) return;
    namesAsked = true;
    api.projects().then(
      (list) => {
        for (const p of withIds(list)) projectNames.set(p.id, p.name);
        render();
      },
      () => {},
    );
  }

  function render() {
    clear(root);
    const gone = dismissed();
    const shown = [...alerts.values()]
      .filter((a) => !gone.has(`${a.budget_id}:${a.level}`))
      .sort((a, b) => b.level - a.level);
    root.hidden = !shown.length;
    for (const a of shown) {
      if (a.project_id && !projectNames.has(a.project_id)) askNames();
      root.append(item(a));
    }
  }

  /** @param {BudgetAlert} a */
  function item(a) {
    const reached = a.level >= 100;
    const period = a.period === "total" ? "in total" : "this month";
    const scope = a.project_id
      ? `project ${projectNames.get(a.project_id) || a.project_id.slice(0, 8)}`
      : "all your AI calls";
    const close = h(
      "button.btn.btn-ghost.btn-small.budget-alert-close",
      { type: "button", "data-testid": "budget-alert-dismiss", "aria-label": "Dismiss", title: "Dismiss" },
      "×",
    );
    close.addEventListener("click", () => {
      dismiss(`${a.budget_id}:${a.level}`);
      render();
    });
    const figures = `${fmtUsd(a.spent_usd)} of ${fmtUsd(a.limit_usd)} ${period}`;
    return h(
      "div.budget-alert",
      {
        class: reached ? "is-over" : "is-near",
        role: reached ? "alert" : "status",
        "data-testid": "budget-alert",
        "data-level": String(a.level),
        "data-budget-id": a.budget_id,
      },
      h("span.budget-alert-mark", { "aria-hidden": "true", text: "!" }),
      reached
        ? h(
            "span.budget-alert-text",
            null,
            h("strong", { text: "Budget reached: " }),
            "AI calls through Fulcrum are refused until it is raised. ",
            h("span.budget-alert-figures", { text: `${figures} (${scope})` }),
          )
        : h("span.budget-alert-text", null, h("strong", { text: `Budget at ${a.level}%: ` }), `${figures} (${scope})`),
      h("a.budget-alert-link", { href: "#/settings/ai", "data-testid": "budget-alert-link", text: "Budgets" }),
      close,
    );
  }

  const banner = {
    root,
    load,
    onAlert,
    /** The project names changed (a page loaded them). */
    sync: render,
    /** The socket's state: back after it was down, alerts raised meanwhile were not heard. @param {import("./types.js").LiveState} s */
    onLive(s) {
      if (s === "live" && live === "reconnecting") load();
      live = s;
    },
    destroy() {
      seq++;
      if (current === banner) current = null;
    },
  };
  current = banner;
  return banner;
}
