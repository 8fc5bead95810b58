// The project page's AI activity card: this month's figures for the project (and its tools'
// share of the cost), its Markdown report, whether its activities keep their prompt and response
// text (owners and maintainers change it), and the commits AI activities are linked to.

import { api, asApiError } from "../api.js";
import { figuresFacts, fileSlug, PERIODS, periodText, utcToday } from "../lib/ai.js";
import { clear, enc, errorBanner, h, loadingEl, saveBlob } from "../lib/dom.js";
import { fmtUsd, plural, timeEl } from "../lib/format.js";
import { signedIn } from "../lib/shell.js";

/** @typedef {import("../lib/types.js").Report} Report */
/** @typedef {import("../lib/types.js").AiSettings} AiSettings */
/** @typedef {import("../lib/types.js").ActivityEvent} ActivityEvent */

// Not in the OpenAPI document yet (the relay is adding GET /projects/{id}/ai-commits): replace
// these with the generated schemas once it is.

/**
 * An activity a commit is linked to: it changed the commit's files shortly before it was made
 * (`window`), or the commit names it in a trailer (`trailer`).
 * @typedef {object} AiCommitActivity
 * @property {string} id
 * @property {string} tool
 * @property {string | null} [model]
 * @property {"window" | "trailer"} reason
 */

/**
 * A commit of the project's repositories that AI activities are linked to.
 * @typedef {object} AiCommit
 * @property {string} sha
 * @property {string} repo
 * @property {string} summary
 * @property {string} committed_at
 * @property {AiCommitActivity[]} activities
 */

/** Commits listed before "Show all". */
const COMMITS_SHOWN = 8;

/** @type {Record<string, { label: string, hint: string }>} */
const REASONS = {
  trailer: { label: "trailer", hint: "The commit names the tool in a trailer" },
  window: { label: "time window", hint: "The activity changed the commit's files shortly before it was made" },
};

/**
 * @param {string} projectId
 * @param {{ role: () => string, name: () => string }} hooks the user's role in the project, its name
 */
export function projectAiCard(projectId, hooks) {
  const st = {
    /** @type {Report | null} */
    report: null,
    /** @type {string | null} */
    error: null,
    seq: 0,
    /** @type {AiSettings | null} */
    settings: null,
    settingsSeq: 0,
    /** @type {AiCommit[] | null} null: not loaded, or the relay has no such list */
    commits: null,
    /** @type {string | null} */
    commitsError: null,
    commitsMissing: false,
    commitsSeq: 0,
    showAll: false,
    timer: 0,
  };

  const monthNote = h("span.muted.small", { "data-testid": "project-ai-period" });
  const report = h("button.btn.btn-small", { type: "button", "data-testid": "project-ai-report" }, "Markdown report");
  const details = h("a.small", {
    href: `#/ai?project=${enc(projectId)}`,
    "data-testid": "project-ai-details",
    text: "Details",
  });
  const figuresSlot = h("div.project-ai-figures");
  const capture = h("input", { type: "checkbox", "data-testid": "project-ai-capture", disabled: true });
  const captureError = h("div.form-error", { role: "alert", "data-testid": "project-ai-capture-error", hidden: true });
  const captureHint = h("span.field-hint", {
    text: "Off: activities keep tokens, cost and timing, not what was asked or answered.",
  });
  const commitsSlot = h("div.project-ai-commits", { "data-testid": "project-ai-commits", hidden: true });
  const reportError = h("div.form-error", { role: "alert", hidden: true });
  const root = h(
    "section.card",
    { "aria-label": "AI activity", "data-testid": "project-ai-card" },
    h("div.card-head", null, h("h2", { text: "AI activity" }), monthNote, h("span.grow"), details, report),
    h(
      "div.card-body",
      null,
      reportError,
      figuresSlot,
      h("div.project-ai-capture", null, h("label.check", null, capture, "Keep prompt and response text"), captureHint),
      captureError,
      commitsSlot,
    ),
  );

  // ---------------------------------------------------------------- the month's figures

  async function load() {
    const my = ++st.seq;
    clearTimeout(st.timer);
    const { from, to } = PERIODS.month.range();
    try {
      const r = await api.aiReport({ project: projectId, from, to, group_by: "tool" });
      if (my !== st.seq) return;
      st.report = r;
      st.error = null;
    } catch (err) {
      if (my !== st.seq || !signedIn()) return;
      st.error = asApiError(err).message;
    }
    renderFigures();
  }

  function renderFigures() {
    clear(figuresSlot);
    const { from, to } = PERIODS.month.range();
    monthNote.textContent = periodText(from, to);
    const r = st.report;
    if (!r) {
      figuresSlot.append(
        st.error ? errorBanner(`Couldn't load the AI activity: ${st.error}`, load) : loadingEl("Loading AI activity…"),
      );
      return;
    }
    if (st.error) figuresSlot.append(errorBanner(`Couldn't refresh the AI activity: ${st.error}`, load));
    figuresSlot.append(figuresFacts(r.total, "project-ai-total"));
    const tools = r.rows.filter((row) => row.cost_usd > 0 || row.activities > 0).slice(0, 6);
    if (tools.length) {
      figuresSlot.append(
        h(
          "p.small.project-ai-tools",
          null,
          h("span.muted", { text: "By tool: " }),
          tools.map((row, i) => [
            i ? h("span.muted", { text: " · " }) : null,
            h("span", { text: row.key.tool || "(none)" }),
            " ",
            h("span.num.muted", { text: fmtUsd(row.cost_usd) }),
          ]),
        ),
      );
    } else {
      figuresSlot.append(h("p.muted.small", { text: "No AI activity in this project this month." }));
    }
  }

  report.addEventListener("click", async () => {
    report.disabled = true;
    reportError.hidden = true;
    try {
      const blob = await api.projectAiReport(projectId);
      saveBlob(blob, `ai-report-${fileSlug(hooks.name())}-${utcToday().slice(0, 7)}.md`);
    } catch (err) {
      reportError.textContent = `Couldn't download the report: ${asApiError(err).message}`;
      reportError.hidden = false;
    } finally {
      report.disabled = false;
    }
  });

  // ---------------------------------------------------------------- keeping the text

  const canManage = () => hooks.role() === "owner" || hooks.role() === "maintainer";

  async function loadSettings() {
    const my = ++st.settingsSeq;
    try {
      const s = await api.aiSettings(projectId);
      if (my !== st.settingsSeq) return;
      st.settings = s;
    } catch {
      if (my !== st.settingsSeq) return;
      st.settings = null;
    }
    syncCapture();
  }

  function syncCapture() {
    capture.checked = !!st.settings?.capture_text;
    captureHint.textContent = capture.checked
      ? "On: new activities keep what was asked and what was answered."
      : "Off: activities keep tokens, cost and timing, not what was asked or answered.";
    // Viewers see the setting; owners and maintainers change it (the relay says so too: 403).
    capture.disabled = !st.settings || !canManage();
    capture.title = st.settings && !canManage() ? "Only the project's owners and maintainers change this" : "";
  }

  capture.addEventListener("change", async () => {
    const want = capture.checked;
    captureError.hidden = true;
    capture.disabled = true;
    const my = ++st.settingsSeq;
    try {
      const s = await api.setAiSettings(projectId, { capture_text: want });
      if (my !== st.settingsSeq) return;
      st.settings = s && typeof s.capture_text === "boolean" ? s : { capture_text: want };
    } catch (err) {
      if (my !== st.settingsSeq) return;
      captureError.textContent = asApiError(err).message;
      captureError.hidden = false;
    }
    syncCapture();
  });

  // ---------------------------------------------------------------- AI-assisted commits

  async function loadCommits() {
    const my = ++st.commitsSeq;
    try {
      const list = await api.aiCommits(projectId);
      if (my !== st.commitsSeq) return;
      st.commits = Array.isArray(list) ? list.filter((c) => c && typeof c.sha === "string") : [];
      st.commitsError = null;
      st.commitsMissing = false;
    } catch (caught) {
      if (my !== st.commitsSeq || !signedIn()) return;
      const err = asApiError(caught);
      // A relay without the list answers 404: then the card shows nothing of it.
      st.commitsMissing = err.status === 404;
      st.commitsError = st.commitsMissing ? null : err.message;
    }
    renderCommits();
  }

  function renderCommits() {
    clear(commitsSlot);
    commitsSlot.hidden = st.commitsMissing || (!st.commits && !st.commitsError);
    if (commitsSlot.hidden) return;
    const list = st.commits || [];
    commitsSlot.append(
      h(
        "div.project-ai-commits-head",
        null,
        h("h3.sub-title", { text: "AI-assisted commits" }),
        list.length ? h("span.muted.small", { text: plural(list.length, "commit") }) : null,
      ),
    );
    if (st.commitsError) {
      commitsSlot.append(errorBanner(`Couldn't load the commits: ${st.commitsError}`, loadCommits));
      return;
    }
    if (!list.length) {
      commitsSlot.append(
        h("p.muted.small", {
          "data-testid": "project-ai-commits-empty",
          text: "No commits are linked to AI activity yet.",
        }),
      );
      return;
    }
    const shown = st.showAll ? list : list.slice(0, COMMITS_SHOWN);
    commitsSlot.append(h("ul.ai-commit-list", null, shown.map(commitItem)));
    if (list.length > COMMITS_SHOWN) {
      const toggle = h(
        "button.btn-link",
        { type: "button", "data-testid": "project-ai-commits-all" },
        st.showAll ? "Show fewer" : `Show all ${list.length}`,
      );
      toggle.addEventListener("click", () => {
        st.showAll = !st.showAll;
        renderCommits();
      });
      commitsSlot.append(toggle);
    }
  }

  /** @param {AiCommit} c */
  function commitItem(c) {
    const acts = Array.isArray(c.activities) ? c.activities : [];
    return h(
      "li.ai-commit",
      { "data-testid": "project-ai-commit", "data-sha": c.sha },
      h(
        "div.ai-commit-line",
        null,
        h("span.mono.sha", { title: c.sha, text: c.sha.slice(0, 7) }),
        h("span.ai-commit-summary", { title: c.summary, text: c.summary || "(no message)" }),
        h("span.mono.muted.small.ai-commit-repo", { title: "Repository", text: c.repo }),
        h("span.muted.small.ai-commit-when", null, timeEl(c.committed_at)),
      ),
      acts.length
        ? h(
            "ul.ai-commit-acts",
            null,
            acts.map((a) => {
              const reason = REASONS[a.reason] || { label: a.reason, hint: "" };
              return h(
                "li.ai-commit-act",
                { "data-testid": "project-ai-commit-activity", "data-reason": a.reason, title: reason.hint || null },
                h("span", { text: a.tool }),
                a.model ? h("span.mono.muted", { text: a.model }) : null,
                h("span.ai-reason", { class: `reason-${a.reason}`, text: reason.label }),
              );
            }),
          )
        : null,
    );
  }

  renderFigures();

  return {
    root,
    load() {
      load();
      loadSettings();
      loadCommits();
    },
    /** The user's role may have changed (the project loaded). */
    sync: syncCapture,
    /** @param {ActivityEvent} a */
    onAiActivity(a) {
      if (a.project_id !== projectId) return;
      clearTimeout(st.timer);
      st.timer = setTimeout(() => {
        load();
        loadCommits();
      }, 1_500);
    },
    destroy() {
      st.seq++;
      st.settingsSeq++;
      st.commitsSeq++;
      clearTimeout(st.timer);
    },
  };
}
