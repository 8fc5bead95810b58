// The AI activity page (#/ai): what AI calls cost over a period (UTC days; this month unless
// chosen), for all of the user's projects or one: the totals, the cost per day stacked by model
// or by tool, the figures by model, tool and category, the usage counters tools report as OTLP
// metrics, a CSV export, and the most recent activities (kept current by the socket's
// `ai_activity` messages). The period, the project and the stacking live in the hash's query
// (#/ai?from=2026-03-01&to=2026-03-31&project=ID&by=tool), so a view can be linked to.

import { api, asApiError } from "../api.js";
import {
  codeChangesEl,
  dayCount,
  dayLabel,
  daysBetween,
  dayTitle,
  figuresFacts,
  fileSlug,
  fmtLatency,
  fmtMicros,
  isDay,
  isPeriod,
  PERIODS,
  periodName,
  periodText,
  sourceTag,
  tokensText,
  tokensTitle,
  utcToday,
} from "../lib/ai.js";
import { stackData, stackedBarChart } from "../lib/charts.js";
import { clear, dataTable, enc, errorBanner, field, h, loadingEl, saveBlob, uid } from "../lib/dom.js";
import { byName, fmtCount, fmtUsd, timeEl } from "../lib/format.js";
import { signedIn } from "../lib/shell.js";
import { projectNames, withIds } from "../lib/state.js";

/** @typedef {import("../lib/types.js").Activity} Activity */
/** @typedef {import("../lib/types.js").ActivityEvent} ActivityEvent */
/** @typedef {import("../lib/types.js").Report} Report */
/** @typedef {import("../lib/types.js").ReportRow} ReportRow */
/** @typedef {import("../lib/types.js").ReportQuery} ReportQuery */
/** @typedef {import("../lib/types.js").UsageCounter} UsageCounter */
/** @typedef {import("../lib/types.js").Project} Project */
/** @typedef {import("../lib/types.js").LiveState} LiveState */
/** @typedef {import("../lib/types.js").Page} Page */

/** Longest period the relay reports on, days. */
const MAX_DAYS = 366;
/** Activities per page of the recent list. */
const PAGE = 50;

/** What the chart can stack by. @type {Record<"model" | "tool", string>} */
const STACKS = { model: "By model", tool: "By tool" };

/** The filters in the hash's query, where valid. */
function hashFilters() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  const from = q.get("from");
  const to = q.get("to");
  const range = isDay(from) && isDay(to) && from <= to ? { from, to } : PERIODS.month.range();
  return { ...range, project: q.get("project") || "", stack: q.get("by") === "tool" ? "tool" : "model" };
}

/** @returns {Page} */
export function buildAiActivityPage() {
  const initial = hashFilters();
  const st = {
    from: initial.from,
    to: initial.to,
    project: initial.project,
    /** @type {"model" | "tool"} */
    stack: initial.stack === "tool" ? "tool" : "model",
    /** @type {{ model: Report, tool: Report, category: Report } | null} */
    reports: null,
    /** @type {Report | null} cost per day and model or tool */
    days: null,
    /** @type {string | null} */
    reportError: null,
    reportSeq: 0,
    daySeq: 0,
    /** @type {Activity[] | null} */
    list: null,
    /** @type {string | null} */
    listError: null,
    listSeq: 0,
    more: false,
    loadingMore: false,
    /** @type {Set<string>} ids known only from a socket message so far */
    partial: new Set(),
    /** @type {Set<string>} ids that arrived live, highlighted once */
    fresh: new Set(),
    /** @type {UsageCounter[] | null} */
    usage: null,
    /** @type {string | null} */
    usageError: null,
    usageSeq: 0,
    refreshTimer: 0,
    /** @type {LiveState} */
    live: "connecting",
  };

  const heading = h("h1", { id: uid("h"), tabindex: -1, text: "AI activity" });

  // ---------------------------------------------------------------- the filters
  const period = h(
    "select",
    { "data-testid": "ai-period" },
    Object.entries(PERIODS).map(([value, p]) => h("option", { value, text: p.label })),
    h("option", { value: "custom", text: "Custom" }),
  );
  const from = h("input", { type: "date", "data-testid": "ai-from", max: utcToday() });
  const to = h("input", { type: "date", "data-testid": "ai-to", max: utcToday() });
  const project = h("select", { "data-testid": "ai-project" }, h("option", { value: "", text: "All projects" }));
  const csv = h("button.btn.btn-small", { type: "button", "data-testid": "ai-csv" }, "Download CSV");
  const filterError = h("div.form-error", { role: "alert", "data-testid": "ai-filter-error", hidden: true });
  const controls = h(
    "form.list-toolbar.ai-controls",
    { "aria-label": "Period and project" },
    withClass(field("Period", period), "ai-f-period"),
    field("From", from),
    field("To", to),
    withClass(field("Project", project), "ai-f-project"),
    h("span.grow"),
    csv,
  );

  // ---------------------------------------------------------------- the sections
  const totalsSlot = h("div.ai-totals");
  const chart = stackedBarChart({
    label: "Cost per day",
    format: fmtUsd,
    axisFormat: axisUsd,
    testid: "ai-cost-chart",
    barTestid: "ai-cost-bar",
    empty: "No cost in this period",
  });
  const stackButtons = Object.entries(STACKS).map(([key, label]) => {
    const b = h(
      "button.seg-btn",
      { type: "button", "data-testid": `ai-stack-${key}`, "aria-pressed": String(key === st.stack) },
      label,
    );
    b.addEventListener("click", () => {
      if (st.stack === key) return;
      st.stack = key === "tool" ? "tool" : "model";
      for (const x of stackButtons) x.setAttribute("aria-pressed", String(x === b));
      writeHash();
      loadDays();
    });
    return b;
  });
  const chartNote = h("span.muted.small", { "data-testid": "ai-chart-period" });
  const chartStatus = h("div");
  const chartCard = h(
    "section.card",
    { "aria-label": "Cost per day", "data-testid": "ai-chart-card" },
    h(
      "div.card-head",
      null,
      h("h2", { text: "Cost per day" }),
      chartNote,
      h("span.grow"),
      h("div.seg", { role: "group", "aria-label": "Stack the bars" }, stackButtons),
    ),
    h("div.card-body.ai-chart-body", null, chartStatus, chart.root),
  );

  const byModel = groupCard("By model", "ai-by-model", "Model");
  const byTool = groupCard("By tool", "ai-by-tool", "Tool");
  const byCategory = groupCard("By category", "ai-by-category", "Category");
  const usageSlot = h("div");
  const usageCard = h(
    "section.card",
    { "aria-label": "Usage counters", "data-testid": "ai-usage", hidden: true },
    h(
      "div.card-head",
      null,
      h("h2", { text: "Usage counters" }),
      h("span.muted.small", { text: "Totals tools report as OTLP metrics, summed over their series (not by day)." }),
    ),
    usageSlot,
  );

  const listSlot = h("div.ai-recent");
  const moreButton = h("button.btn.btn-small", { type: "button", "data-testid": "ai-more", hidden: true }, "Older");
  const listCard = h(
    "section.card",
    { "aria-label": "Recent activity", "data-testid": "ai-recent" },
    h(
      "div.card-head",
      null,
      h("h2", { text: "Recent activity" }),
      h("span.muted.small", { text: "The latest, whatever the period; calls through Fulcrum appear as they happen." }),
    ),
    listSlot,
    h("div.card-foot", null, moreButton),
  );

  const root = h(
    "section.view",
    { "aria-labelledby": heading.id, "data-testid": "ai-activity-page" },
    h("div.view-head", null, h("div.view-title", null, heading)),
    controls,
    filterError,
    totalsSlot,
    chartCard,
    h("div.ai-grid", null, byModel.root, byTool.root, byCategory.root, usageCard),
    listCard,
  );

  // ---------------------------------------------------------------- filters: events

  function syncControls() {
    period.value = periodName(st.from, st.to);
    from.value = st.from;
    to.value = st.to;
    if ([...project.options].some((o) => o.value === st.project)) project.value = st.project;
    const today = utcToday();
    from.max = today;
    to.max = today;
  }

  function writeHash() {
    if (!location.hash.startsWith("#/ai")) return;
    const q = new URLSearchParams();
    if (periodName(st.from, st.to) !== "month") {
      q.set("from", st.from);
      q.set("to", st.to);
    }
    if (st.project) q.set("project", st.project);
    if (st.stack === "tool") q.set("by", "tool");
    const s = q.toString();
    history.replaceState(null, "", s ? `#/ai?${s}` : "#/ai");
  }

  /** @param {string} text */
  function showFilterError(text) {
    filterError.textContent = text;
    filterError.hidden = false;
  }

  /** Apply new days, once they make a period the relay reports on. @param {string} f @param {string} t */
  function setPeriod(f, t) {
    filterError.hidden = true;
    if (!isDay(f) || !isDay(t)) return showFilterError("Choose both days of the period.");
    if (f > t) return showFilterError("The period ends before it starts.");
    if (dayCount(f, t) > MAX_DAYS) return showFilterError(`A period covers at most ${MAX_DAYS} days.`);
    st.from = f;
    st.to = t;
    syncControls();
    writeHash();
    loadFigures();
  }

  period.addEventListener("change", () => {
    if (isPeriod(period.value)) {
      const r = PERIODS[period.value].range();
      setPeriod(r.from, r.to);
    } else from.focus();
  });
  from.addEventListener("change", () => setPeriod(from.value, to.value));
  to.addEventListener("change", () => setPeriod(from.value, to.value));
  project.addEventListener("change", () => {
    st.project = project.value;
    writeHash();
    loadAll();
  });
  controls.addEventListener("submit", (ev) => ev.preventDefault());

  csv.addEventListener("click", async () => {
    csv.disabled = true;
    filterError.hidden = true;
    try {
      const blob = await api.aiReportCsv(query("day,tool,model"));
      const scope = st.project ? `-${fileSlug(projectNames.get(st.project) || st.project.slice(0, 8))}` : "";
      saveBlob(blob, `ai-activity${scope}-${st.from}-to-${st.to}.csv`);
    } catch (err) {
      showFilterError(`Couldn't download the CSV: ${asApiError(err).message}`);
    } finally {
      csv.disabled = false;
    }
  });
  csv.title = "One row per day, tool and model over the period";

  /** The report query for the current filters. @param {string} groupBy @returns {ReportQuery} */
  function query(groupBy) {
    /** @type {ReportQuery} */
    const q = { from: st.from, to: st.to, group_by: groupBy };
    if (st.project) q.project = st.project;
    return q;
  }

  // ---------------------------------------------------------------- loading

  /** The figures of the period: the reports and the cost per day. */
  function loadFigures() {
    loadReports();
    loadDays();
  }

  function loadAll() {
    loadFigures();
    loadList();
    loadUsage();
  }

  async function loadReports() {
    const my = ++st.reportSeq;
    try {
      const [model, tool, category] = await Promise.all([
        api.aiReport(query("model")),
        api.aiReport(query("tool")),
        api.aiReport(query("category")),
      ]);
      if (my !== st.reportSeq) return;
      st.reports = { model, tool, category };
      st.reportError = null;
    } catch (err) {
      if (my !== st.reportSeq || !signedIn()) return;
      st.reportError = asApiError(err).message;
    }
    renderReports();
  }

  async function loadDays() {
    const my = ++st.daySeq;
    const stack = st.stack;
    try {
      const days = await api.aiReport(query(`day,${stack}`));
      if (my !== st.daySeq) return;
      st.days = days;
    } catch (err) {
      if (my !== st.daySeq || !signedIn()) return;
      st.days = null;
      clear(chartStatus);
      chartStatus.append(errorBanner(`Couldn't load the cost per day: ${asApiError(err).message}`, loadDays));
      return;
    }
    renderChart();
  }

  async function loadList() {
    const my = ++st.listSeq;
    st.more = false;
    try {
      const list = withIds(await api.aiActivities({ project: st.project || undefined, limit: PAGE }));
      if (my !== st.listSeq) return;
      st.list = list;
      st.partial.clear();
      st.more = list.length >= PAGE;
      st.listError = null;
    } catch (err) {
      if (my !== st.listSeq || !signedIn()) return;
      st.listError = asApiError(err).message;
    }
    renderList();
  }

  async function loadMore() {
    const list = st.list;
    const last = list?.[list.length - 1];
    if (!list || !last || st.loadingMore) return;
    const my = st.listSeq;
    st.loadingMore = true;
    moreButton.disabled = true;
    try {
      const older = withIds(
        await api.aiActivities({ project: st.project || undefined, limit: PAGE, before: last.occurred_at }),
      );
      if (my !== st.listSeq || st.list !== list) return;
      const known = new Set(list.map((a) => a.id));
      st.list = [...list, ...older.filter((a) => !known.has(a.id))];
      st.more = older.length >= PAGE;
      renderList();
    } catch (err) {
      if (my === st.listSeq) window.alert(`Couldn't load older activities: ${asApiError(err).message}`);
    } finally {
      st.loadingMore = false;
      moreButton.disabled = false;
    }
  }
  moreButton.addEventListener("click", loadMore);

  async function loadUsage() {
    const my = ++st.usageSeq;
    try {
      const list = await api.aiUsage({ project: st.project || undefined });
      if (my !== st.usageSeq) return;
      st.usage = Array.isArray(list) ? list.filter((u) => u && typeof u.metric === "string") : [];
      st.usageError = null;
    } catch (err) {
      if (my !== st.usageSeq || !signedIn()) return;
      st.usageError = asApiError(err).message;
    }
    renderUsage();
  }

  function loadProjects() {
    api.projects().then(
      (list) => {
        const all = withIds(list).sort((a, b) => byName(a.name, b.name));
        for (const p of all) projectNames.set(p.id, p.name);
        const current = st.project;
        clear(project);
        project.append(h("option", { value: "", text: "All projects" }));
        for (const p of all) {
          project.append(
            h("option", { value: p.id, text: `${p.name || p.id}${p.status === "archived" ? " (archived)" : ""}` }),
          );
        }
        // A project from a link that is not (or no longer) the user's stays chosen by its id.
        if (current && !all.some((p) => p.id === current)) {
          project.append(h("option", { value: current, text: current.slice(0, 8) }));
        }
        project.value = current;
        renderList();
      },
      () => {},
    );
  }

  // ---------------------------------------------------------------- rendering

  function renderReports() {
    clear(totalsSlot);
    const r = st.reports;
    if (!r) {
      totalsSlot.append(
        st.reportError
          ? errorBanner(`Couldn't load the report: ${st.reportError}`, loadReports)
          : loadingEl("Loading the report…"),
      );
      for (const card of [byModel, byTool, byCategory]) card.set(null, "model");
      return;
    }
    if (st.reportError) totalsSlot.append(errorBanner(`Couldn't refresh the report: ${st.reportError}`, loadReports));
    totalsSlot.append(figuresFacts(r.model.total, "ai-total"));
    if (!r.model.total.activities) {
      totalsSlot.append(
        h(
          "p.notice.ai-empty",
          { "data-testid": "ai-empty" },
          "No AI activity in this period. Calls through Fulcrum (pipelines, the assistant, the LLM gateway) are recorded as they are made; tools such as Claude Code or Cursor report theirs with an ",
          h("a", { href: "#/tokens", text: "ingest token" }),
          " or over OpenTelemetry.",
        ),
      );
    }
    byModel.set(r.model, "model");
    byTool.set(r.tool, "tool");
    byCategory.set(r.category, "category");
  }

  function renderChart() {
    clear(chartStatus);
    const d = st.days;
    chartNote.textContent = `${periodText(st.from, st.to)} (UTC days) · ${STACKS[st.stack].toLowerCase()}`;
    if (!d) {
      chart.set(null);
      return;
    }
    const dim = st.stack;
    const rows = d.rows
      .filter((r) => typeof r.key.day === "string")
      .map((r) => ({ column: r.key.day || "", series: r.key[dim] || "", value: r.cost_usd }));
    const unnamed = dim === "model" ? "(not reported)" : "(none)";
    chart.set(
      stackData(
        rows,
        daysBetween(d.from, d.to),
        (day) => ({ label: dayLabel(day), title: dayTitle(day) }),
        (k) => k || unnamed,
      ),
    );
  }

  function renderList() {
    clear(listSlot);
    moreButton.hidden = !st.list || !st.more;
    if (!st.list) {
      listSlot.append(
        st.listError
          ? errorBanner(`Couldn't load the activities: ${st.listError}`, loadList)
          : loadingEl("Loading activities…"),
      );
      return;
    }
    if (st.listError) listSlot.append(errorBanner(`Couldn't refresh the activities: ${st.listError}`, loadList));
    if (!st.list.length) {
      listSlot.append(
        h("p.muted.small.card-pad", {
          "data-testid": "ai-recent-empty",
          text: st.project ? "No AI activity in this project yet." : "No AI activity yet.",
        }),
      );
      return;
    }
    listSlot.append(
      dataTable(
        ".ai-activity-table",
        [
          "When",
          st.project ? null : "Project",
          "Tool",
          "Model",
          "Tokens",
          "Cost",
          "Latency",
          "Source",
          "Category",
          "Code",
        ],
        st.list.map(activityRow),
      ),
    );
    st.fresh.clear();
  }

  /** @param {Activity} a */
  function activityRow(a) {
    const partial = st.partial.has(a.id);
    const pid = a.project_id || null;
    return h(
      "tr",
      {
        "data-testid": "ai-activity-row",
        "data-activity-id": a.id,
        "data-tool": a.tool,
        "data-source": a.source,
        class: st.fresh.has(a.id) ? "is-fresh" : null,
      },
      h("td.t-time", null, timeEl(a.occurred_at)),
      st.project
        ? null
        : h(
            "td.ai-project",
            null,
            pid
              ? h("a", { href: `#/projects/${enc(pid)}`, text: projectNames.get(pid) || pid.slice(0, 8) })
              : h("span.muted", { text: "—" }),
          ),
      h("td.ai-tool", { text: a.tool }),
      h("td.mono.small", { text: a.model || "—", class: a.model ? null : "muted" }),
      partial ? h("td.num.muted", { text: "…" }) : h("td.num", { title: tokensTitle(a), text: tokensText(a) }),
      h("td.num", { "data-testid": "ai-activity-cost", text: fmtMicros(a.cost_micros) }),
      h("td.num", { text: partial ? "…" : fmtLatency(a.latency_ms), class: partial ? "muted" : null }),
      h("td", null, sourceTag(a.source)),
      h("td", null, a.category ? h("span.tag.tag-stack", { text: a.category }) : h("span.muted", { text: "—" })),
      h("td.ai-code", null, codeChangesEl(a.code_changes)),
    );
  }

  function renderUsage() {
    clear(usageSlot);
    if (st.usageError) {
      usageCard.hidden = false;
      usageSlot.append(errorBanner(`Couldn't load the usage counters: ${st.usageError}`, loadUsage));
      return;
    }
    const list = st.usage || [];
    usageCard.hidden = !list.length;
    if (!list.length) return;
    const sorted = [...list].sort(
      (a, b) => byName(a.tool, b.tool) || byName(a.model, b.model) || byName(a.metric, b.metric),
    );
    usageSlot.append(
      dataTable(
        ".ai-usage-table",
        ["Tool", "Model", "Metric", "Kind", "Value", "Series"],
        sorted.map((u) =>
          h(
            "tr",
            { "data-testid": "ai-usage-row", "data-metric": u.metric },
            h("td", { text: u.tool }),
            h("td.mono.small", { text: u.model || "—" }),
            h("td.mono.small", { text: u.metric }),
            h("td", { text: u.kind || "—", class: u.kind ? null : "muted" }),
            h("td.num", { text: /cost|usd|dollar/i.test(u.metric) ? fmtUsd(u.value) : fmtCount(Math.round(u.value)) }),
            h("td.num.muted", { text: fmtCount(u.series) }),
          ),
        ),
      ),
    );
  }

  // ---------------------------------------------------------------- live

  /** @param {number} [ms] */
  function refreshSoon(ms = 1_500) {
    clearTimeout(st.refreshTimer);
    st.refreshTimer = setTimeout(() => {
      if (st.to >= utcToday()) loadFigures();
      loadList();
    }, ms);
  }

  /** @param {ActivityEvent} a */
  function onAiActivity(a) {
    if (st.project && a.project_id !== st.project) return;
    if (st.list && !st.list.some((x) => x.id === a.id)) {
      st.partial.add(a.id);
      st.fresh.add(a.id);
      st.list = [
        {
          id: a.id,
          user_id: "",
          project_id: a.project_id || null,
          source: a.source,
          tool: a.tool,
          model: a.model || null,
          input_tokens: 0,
          output_tokens: 0,
          cached_tokens: 0,
          cost_micros: a.cost_micros,
          code_changes: [],
          occurred_at: a.occurred_at,
          created_at: a.occurred_at,
        },
        ...st.list,
      ];
      renderList();
    }
    refreshSoon();
  }

  // ---------------------------------------------------------------- the by-group tables

  /**
   * A card with the figures of a report's groups, highest cost first.
   * @param {string} title
   * @param {string} testid
   * @param {string} column
   */
  function groupCard(title, testid, column) {
    const slot = h("div");
    const root = h(
      "section.card",
      { "aria-label": title, "data-testid": testid },
      h("div.card-head", null, h("h2", { text: title })),
      slot,
    );
    return {
      root,
      /** @param {Report | null} r @param {"model" | "tool" | "category"} dim */
      set(r, dim) {
        clear(slot);
        if (!r) {
          slot.append(loadingEl("Loading…"));
          return;
        }
        if (!r.rows.length) {
          slot.append(h("p.muted.small.card-pad", { text: "Nothing in this period." }));
          return;
        }
        const total = r.total.cost_usd;
        const none = dim === "model" ? "(not reported)" : "(none)";
        slot.append(
          dataTable(
            ".ai-table",
            [column, "Activities", "Tokens", "Cost", "p50", "p95"],
            r.rows.map((row) => {
              const name = row.key[dim] || "";
              const share = total > 0 ? row.cost_usd / total : 0;
              const fill = h("span.ai-share-fill");
              fill.style.setProperty("width", `${(share * 100).toFixed(1)}%`);
              return h(
                "tr",
                { "data-testid": "ai-group-row", "data-key": name },
                h("td.ai-group-name", { title: name || none }, name ? name : h("span.muted", { text: none })),
                h("td.num", { text: fmtCount(row.activities) }),
                h("td.num", { title: tokensTitle(row), text: tokensText(row) }),
                h(
                  "td.num",
                  null,
                  h(
                    "span.ai-cost",
                    null,
                    h("span", { text: fmtUsd(row.cost_usd) }),
                    h(
                      "span.ai-share",
                      {
                        role: "img",
                        "aria-label": `${Math.round(share * 100)} % of the cost`,
                        title: `${Math.round(share * 100)} % of the cost`,
                      },
                      fill,
                    ),
                  ),
                ),
                h("td.num", { text: fmtLatency(row.latency_p50_ms) }),
                h("td.num", { text: fmtLatency(row.latency_p95_ms) }),
              );
            }),
          ),
        );
      },
    };
  }

  /** A link to the page with other filters, followed while it is open. */
  function onHash() {
    if (!location.hash.startsWith("#/ai")) return;
    const f = hashFilters();
    const stack = f.stack === "tool" ? "tool" : "model";
    if (f.from === st.from && f.to === st.to && f.project === st.project && stack === st.stack) return;
    const projectChanged = f.project !== st.project;
    Object.assign(st, { from: f.from, to: f.to, project: f.project, stack });
    for (const b of stackButtons) b.setAttribute("aria-pressed", String(b.dataset.testid === `ai-stack-${stack}`));
    syncControls();
    if (projectChanged) loadAll();
    else loadFigures();
  }
  window.addEventListener("hashchange", onHash);

  syncControls();
  renderReports();
  renderChart();
  renderList();
  loadProjects();
  loadAll();

  return {
    root,
    heading,
    nav: "ai",
    title: () => "AI activity",
    destroy() {
      st.reportSeq++;
      st.daySeq++;
      st.listSeq++;
      st.usageSeq++;
      clearTimeout(st.refreshTimer);
      chart.destroy();
      window.removeEventListener("hashchange", onHash);
    },
    onAiActivity,
    onLive(s) {
      // Back after the feed was down: what happened meanwhile was not heard.
      if (s === "live" && st.live === "reconnecting") refreshSoon(0);
      st.live = s;
    },
  };
}

/** "$0", "$0.05", "$1.5", "$1.2K": short values for the chart's axis. @param {number} n */
function axisUsd(n) {
  if (n === 0) return "$0";
  if (n >= 1000) return `$${(n / 1000).toLocaleString(undefined, { maximumFractionDigits: 1 })}K`;
  return `$${n.toLocaleString(undefined, { maximumSignificantDigits: 3 })}`;
}

/** @template {HTMLElement} E @param {E} el @param {string} cls @returns {E} */
function withClass(el, cls) {
  el.classList.add(cls);
  return el;
}
