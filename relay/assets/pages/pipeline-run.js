// A pipeline run's page (#/pipeline-runs/{id}): its state, why it paused or failed, tokens and
// cost against its budget, Cancel and Resume; the stage graph; and tabs with the chosen stage
// (its live output, an approval gate's decision), the artifacts, and the LLM calls. Run events
// from the socket keep it current; `pipeline_text` events stream the stages' answers into it.

import { api, asApiError } from "../api.js";
import { clear, crumbs, enc, errorBanner, h, loadingEl, uid } from "../lib/dom.js";
import { fmtCount, fmtUsd, timeEl } from "../lib/format.js";
import {
  costText,
  pipelineBadge,
  reasonLabel,
  runActive,
  runDurationEl,
  tokensText,
  usageBar,
  waitingGate,
} from "../lib/pipelines.js";
import { signedIn, updateTitle } from "../lib/shell.js";
import { stageGraph } from "../lib/stagegraph.js";
import { badResponse, projectNames, state } from "../lib/state.js";
import { artifactsPanel } from "./run-artifacts.js";
import { callsPanel } from "./run-calls.js";
import { stagePanel } from "./run-stage.js";

/** @typedef {import("../lib/types.js").RunView} RunView */
/** @typedef {import("../lib/types.js").Role} Role */
/** @typedef {import("../lib/types.js").Page} Page */

/** @typedef {"stage" | "artifacts" | "calls"} Tab */

/**
 * @param {string} runId
 * @returns {Page}
 */
export function buildPipelineRunPage(runId) {
  /** @type {RunView | null} */
  let run = null;
  /** @type {string | null} */
  let error = null;
  let notFound = false;
  let loadSeq = 0;
  let events = 0; // run events so far: an HTTP answer older than the last event is dropped
  /** @type {Role | null} */
  let role = null;
  let projectAsked = false;
  /** @type {string | null} */
  let selected = null;
  let picked = false; // the user chose a stage: it stays chosen
  let gateSeen = "";
  /** @type {Tab} */
  let tab = "stage";
  let wasLive = state.live === "live";
  let refreshTimer = 0;
  let artifactsSig = "";
  let callsSig = "";
  let pendingArtifacts = false;
  let pendingCalls = false;

  const heading = h("h1", { id: uid("h"), tabindex: -1 }, "Run");
  const crumbSlot = h("div");
  const statusSlot = h("div");
  const headSlot = h("div");
  const reasonSlot = h("div");
  const factsSlot = h("div");
  const actionError = h("div.form-error", { role: "alert", "data-testid": "run-action-error", hidden: true });
  const stageCount = h("span.muted.small", { "data-testid": "stage-count" });

  const canAct = () => role !== "viewer";
  const graph = stageGraph({ onSelect: (name) => select(name, true) });
  const artifacts = artifactsPanel(runId, {
    handle: () => run?.handle || "",
    onLoad: () => {
      renderTabs();
      if (run) stage.show(run, selected);
    },
  });
  const calls = callsPanel(runId);
  const stage = stagePanel(runId, {
    canAct,
    onRun: (r, sentAt) => {
      if (sentAt === events) setRun(r);
      else load();
    },
    artifactsOf: (name) => artifacts.of(name),
    openArtifact: (path) => {
      setTab("artifacts");
      artifacts.open(path);
    },
    eventCount: () => events,
  });

  // Tabs: the chosen stage, the artifacts, the calls.
  /** @type {Record<Tab, HTMLButtonElement>} */
  const tabs = {
    stage: h("button.tab", { type: "button", role: "tab", "data-testid": "run-tab-stage" }),
    artifacts: h("button.tab", { type: "button", role: "tab", "data-testid": "run-tab-artifacts" }),
    calls: h("button.tab", { type: "button", role: "tab", "data-testid": "run-tab-calls" }),
  };
  /** @type {Record<Tab, HTMLElement>} */
  const panels = {
    stage: h("div.tab-panel", { role: "tabpanel" }, stage.root),
    artifacts: h("div.tab-panel", { role: "tabpanel" }, artifacts.root),
    calls: h("div.tab-panel", { role: "tabpanel" }, calls.root),
  };
  for (const [name, btn] of Object.entries(tabs)) {
    const t = /** @type {Tab} */ (name);
    btn.id = uid("tab");
    panels[t].id = uid("panel");
    btn.setAttribute("aria-controls", panels[t].id);
    panels[t].setAttribute("aria-labelledby", btn.id);
    btn.addEventListener("click", () => setTab(t));
    btn.addEventListener("keydown", (ev) => {
      const order = /** @type {Tab[]} */ (["stage", "artifacts", "calls"]);
      const i = order.indexOf(t);
      const next = ev.key === "ArrowRight" ? order[(i + 1) % 3] : ev.key === "ArrowLeft" ? order[(i + 2) % 3] : null;
      if (!next) return;
      ev.preventDefault();
      setTab(next);
      tabs[next].focus();
    });
  }

  const body = h(
    "div",
    { hidden: true },
    headSlot,
    reasonSlot,
    actionError,
    factsSlot,
    h(
      "section.card",
      { "aria-label": "Stages" },
      h("div.card-head", null, h("h2", { text: "Stages" }), stageCount),
      graph.root,
    ),
    h(
      "section.card.run-tabs",
      { "aria-label": "Details" },
      h("div.tab-list", { role: "tablist", "aria-label": "Run details" }, tabs.stage, tabs.artifacts, tabs.calls),
      panels.stage,
      panels.artifacts,
      panels.calls,
    ),
  );
  const root = h(
    "section.view",
    { "aria-labelledby": heading.id, "data-testid": "run-page", "data-run-id": runId },
    crumbSlot,
    statusSlot,
    body,
  );

  async function load() {
    const my = ++loadSeq;
    const at = events;
    try {
      const r = await api.pipelineRun(runId);
      if (my !== loadSeq) return;
      if (!r || r.id !== runId || !Array.isArray(r.stages)) throw badResponse("The relay returned an unexpected run.");
      error = null;
      if (at === events) setRun(r);
      else renderStatus();
    } catch (caught) {
      if (my !== loadSeq || !signedIn()) return;
      const err = asApiError(caught);
      error = err.message;
      notFound = err.status === 404;
      renderStatus();
    }
  }

  /** @param {RunView} r */
  function setRun(r) {
    const first = !run;
    run = r;
    if (!projectAsked) {
      projectAsked = true;
      api.project(r.project_id).then(
        (p) => {
          if (!p?.id) return;
          projectNames.set(p.id, p.name);
          role = p.role || null;
          if (run) render();
        },
        () => {},
      );
    }
    autoSelect();
    render();
    // The artifacts come with stages that succeed; the calls with usage.
    const aSig = JSON.stringify(r.stages.map((s) => [s.name, s.state, s.attempt]));
    const cSig = JSON.stringify([r.usage?.calls, r.usage?.cost_usd, r.state]);
    if (first || aSig !== artifactsSig) pendingArtifacts = true;
    if (first || cSig !== callsSig) pendingCalls = true;
    artifactsSig = aSig;
    callsSig = cSig;
    if (pendingArtifacts || pendingCalls) {
      // A burst of events is one reload.
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(
        () => {
          if (pendingArtifacts) artifacts.load();
          if (pendingCalls) calls.load().then(renderTabs);
          pendingArtifacts = false;
          pendingCalls = false;
        },
        first ? 0 : 250,
      );
    }
  }

  /** Follows the action: a gate that starts waiting, else the running stage, unless the user chose one. */
  function autoSelect() {
    if (!run) return;
    const gate = waitingGate(run);
    const gateKey = gate ? `${gate.name}:${gate.attempt}` : "";
    if (gate && gateKey !== gateSeen) {
      gateSeen = gateKey;
      const typing = document.activeElement instanceof HTMLTextAreaElement && root.contains(document.activeElement);
      if (!typing) {
        selected = gate.name;
        picked = false;
        tab = "stage";
      }
      return;
    }
    gateSeen = gateKey;
    if (picked && selected) return;
    const running = run.stages.find((s) => s.state === "running");
    const failed = run.stages.find((s) => s.state === "failed" || s.state === "waiting");
    const next = running || failed;
    if (next) selected = next.name;
  }

  /** @param {string} name @param {boolean} byUser */
  function select(name, byUser) {
    selected = name;
    if (byUser) picked = true;
    setTab("stage");
  }

  /** @param {Tab} t */
  function setTab(t) {
    tab = t;
    renderTabs();
    if (run) {
      graph.update(run, selected);
      stage.show(run, selected);
    }
  }

  function renderTabs() {
    const name = selected || "";
    tabs.stage.textContent = name ? `Stage · ${name}` : "Stage";
    const ac = artifacts.count();
    const cc = calls.count();
    tabs.artifacts.textContent = ac === null ? "Artifacts" : `Artifacts (${ac})`;
    tabs.calls.textContent = cc === null ? "Calls" : `Calls (${cc})`;
    for (const [k, btn] of Object.entries(tabs)) {
      const on = k === tab;
      btn.setAttribute("aria-selected", on ? "true" : "false");
      btn.tabIndex = on ? 0 : -1;
      panels[/** @type {Tab} */ (k)].hidden = !on;
    }
  }

  function renderStatus() {
    clear(statusSlot);
    if (run) {
      if (error) statusSlot.append(errorBanner(`Couldn't refresh the run: ${error}`, load));
      return;
    }
    if (notFound) {
      statusSlot.append(
        h(
          "div.empty",
          { "data-testid": "not-found" },
          h("h2", { text: "Run not found" }),
          h("p.muted", { text: "It doesn't exist, or it belongs to a project you can't see." }),
        ),
      );
    } else if (error) {
      statusSlot.append(errorBanner(`Couldn't load the run: ${error}`, load));
    } else {
      statusSlot.append(loadingEl("Loading run…"));
    }
  }

  function render() {
    renderStatus();
    const r = run;
    if (!r) {
      body.hidden = true;
      return;
    }
    body.hidden = false;
    root.dataset.state = r.state;
    const projectName = projectNames.get(r.project_id);
    clear(crumbSlot);
    crumbSlot.append(
      crumbs(
        h("a", { href: "#/projects", text: "Projects" }),
        h("a", {
          href: `#/projects/${enc(r.project_id)}`,
          "data-testid": "run-project-link",
          text: projectName || "Project",
        }),
        h("span", { text: `Run ${r.handle}` }),
      ),
    );
    clear(heading);
    heading.append("Run ", h("span.mono", { "data-testid": "run-handle", text: r.handle }));
    updateTitle();
    renderHead(r);
    renderReason(r);
    renderFacts(r);
    const done = r.stages.filter((s) => s.state === "succeeded").length;
    stageCount.textContent = `${done} of ${r.stages.length} succeeded`;
    graph.update(r, selected);
    renderTabs();
    stage.show(r, selected);
  }

  /** @param {RunView} r */
  function renderHead(r) {
    clear(headSlot);
    /** @type {HTMLButtonElement | null} */
    let cancel = null;
    /** @type {HTMLButtonElement | null} */
    let resume = null;
    const ended = !runActive(r) && r.state !== "paused";
    if (canAct() && !ended) {
      const btn = h("button.btn.btn-small.btn-danger", { type: "button", "data-testid": "run-cancel" }, "Cancel");
      cancel = btn;
      btn.addEventListener("click", () => {
        if (
          !window.confirm(`Cancel the run ${r.handle}?\n\nStages that are running stop; what they wrote so far stays.`)
        )
          return;
        act(btn, () => api.cancelPipelineRun(runId), "cancel the run");
      });
    }
    const resumable =
      r.state === "failed" || r.state === "canceled" || (r.state === "paused" && r.reason !== "approval_required");
    if (canAct() && resumable) {
      const btn = h(
        "button.btn.btn-small.btn-primary",
        { type: "button", "data-testid": "run-resume", title: "Run the stages that failed or wait again" },
        "Resume",
      );
      resume = btn;
      btn.addEventListener("click", () => act(btn, () => api.resumePipelineRun(runId, {}), "resume the run"));
    }
    headSlot.append(
      h(
        "div.view-head",
        null,
        h(
          "div.view-title",
          null,
          heading,
          h("span.tag.tag-stack", { "data-testid": "run-pipeline", text: r.pipeline }),
          pipelineBadge(r.state),
        ),
        h("div.head-actions", null, cancel, resume),
      ),
    );
  }

  /** Why it paused or failed, and the way to the gate that waits. @param {RunView} r */
  function renderReason(r) {
    clear(reasonSlot);
    if (!r.reason && !r.error) return;
    if (r.state === "succeeded") return;
    const gate = waitingGate(r);
    /** @type {HTMLButtonElement | null} */
    let review = null;
    if (gate && selected !== gate.name) {
      const btn = h(
        "button.btn.btn-small",
        { type: "button", "data-testid": "run-open-gate" },
        `Review “${gate.name}”`,
      );
      review = btn;
      btn.addEventListener("click", () => {
        select(gate.name, true);
        graph.focus(gate.name);
      });
    }
    // A budget can be raised in the AI settings (the run's own budget is fixed when it starts).
    const budgets =
      r.reason === "budget_exceeded"
        ? h("a.small", { href: "#/settings/ai", "data-testid": "run-budgets-link", text: "Budgets" })
        : null;
    const text = [reasonLabel(r.reason), r.error].filter(Boolean);
    // "waiting for approval · stage `review` waits for approval" says it twice.
    if (r.reason === "approval_required" && r.error) text.shift();
    reasonSlot.append(
      h(
        "div.exit-reason",
        {
          "data-testid": "run-reason",
          "data-reason": r.reason || "",
          class: r.state === "failed" ? "is-failed" : r.state === "paused" ? "is-warn" : "",
        },
        h("span.exit-reason-text", { text: text.join(" · ") }),
        budgets,
        review,
      ),
    );
  }

  /** @param {RunView} r */
  function renderFacts(r) {
    clear(factsSlot);
    /** @param {string} label @param {import("../lib/types.js").Child} value @param {string} [testid] */
    const fact = (label, value, testid) =>
      h("div.fact", null, h("dt", { text: label }), h("dd", { "data-testid": testid || null }, value));
    const u = r.usage;
    const budget = typeof r.budget_usd === "number" ? r.budget_usd : null;
    factsSlot.append(
      h(
        "dl.facts.run-facts.facts-2",
        null,
        fact("Created", timeEl(r.created_at)),
        fact("Started", r.started_at ? timeEl(r.started_at) : h("span.muted", { text: "not yet" })),
        fact("Duration", runDurationEl(r)),
        fact("LLM calls", fmtCount(u?.calls ?? 0), "run-calls"),
        fact("Tokens", u?.calls ? tokensText(u) : h("span.muted", { text: "—" }), "run-tokens"),
        fact(
          "Cost",
          h(
            "span.cost",
            null,
            h("span", { text: costText(u) }),
            budget !== null ? h("span.muted", { text: ` of ${fmtUsd(budget)}` }) : null,
            budget !== null ? usageBar(u?.cost_usd ?? 0, budget, "Budget used") : null,
          ),
          "run-cost",
        ),
        fact(
          "Definition",
          h("span.mono", { title: `SHA-256 ${r.definition_hash}`, text: r.definition_hash.slice(0, 12) }),
        ),
      ),
    );
  }

  /**
   * @param {HTMLButtonElement} btn
   * @param {() => Promise<RunView>} call
   * @param {string} what
   */
  async function act(btn, call, what) {
    btn.disabled = true;
    actionError.hidden = true;
    const at = events;
    try {
      const r = await call();
      if (r?.id === runId && at === events) setRun(r);
      else load();
    } catch (caught) {
      actionError.textContent = `Couldn't ${what}: ${asApiError(caught).message}`;
      actionError.hidden = false;
      if (btn.isConnected) btn.disabled = false;
    }
  }

  renderStatus();
  renderTabs();
  load();

  return {
    root,
    heading,
    nav: "projects",
    title: () => (run ? `Run ${run.handle} · ${run.state}` : "Pipeline run"),
    destroy() {
      loadSeq++;
      clearTimeout(refreshTimer);
      graph.destroy();
      artifacts.destroy();
      calls.destroy();
    },
    onPipelineRun(r) {
      if (r.id !== runId || !Array.isArray(r.stages)) return;
      events++;
      setRun(r);
    },
    onPipelineText(m) {
      if (m.run === runId) stage.onText(m);
    },
    onLive(s) {
      // Back after a drop: what changed meanwhile (the streamed text that was missed is not sent again).
      if (s === "live" && !wasLive) load();
      wasLive = s === "live";
    },
  };
}
