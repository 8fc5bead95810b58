// The project page's Deployments card: what was deployed where, from which commit, by which run,
// and whether it came up, newest first. Loaded again when a stage of one of the project's runs
// ends (a deploy stage records a deployment as it ends).

import { api, asApiError } from "../api.js";
import { clear, dataTable, enc, errorBanner, h, loadingEl, svgIcon } from "../lib/dom.js";
import { safeHttpUrl, timeEl } from "../lib/format.js";
import { pipelineBadge } from "../lib/pipelines.js";
import { signedIn } from "../lib/shell.js";
import { withIds } from "../lib/state.js";

/** @typedef {import("../lib/types.js").Deployment} Deployment */
/** @typedef {import("../lib/types.js").RunView} RunView */

/** @type {Record<string, string>} who made a deployment that no run made */
const SOURCES = { pipeline: "pipeline", github: "GitHub", coder: "Coder" };

/**
 * @param {string} projectId
 * @param {{ runHandle: (runId: string) => string | null }} hooks the handle of a run, when the page knows it
 */
export function deploymentsCard(projectId, hooks) {
  /** @type {Deployment[] | null} */
  let list = null;
  /** @type {string | null} */
  let error = null;
  let seq = 0;
  let timer = 0;
  /** @type {Map<string, string>} run id -> what its stages' states were */
  const runSigs = new Map();

  const count = h("span.muted.small", { "data-testid": "deployment-count" });
  const listSlot = h("div.deployments");
  const root = h(
    "section.card",
    { "aria-label": "Deployments", "data-testid": "deployments-card" },
    h(
      "div.card-head",
      null,
      h("h2", { text: "Deployments" }),
      h("span.muted.small", { text: "What was deployed where, from which commit." }),
      h("span.grow"),
      count,
    ),
    listSlot,
  );

  async function load() {
    const my = ++seq;
    clearTimeout(timer);
    try {
      const data = await api.deployments(projectId);
      if (my !== seq) return;
      list = withIds(data);
      error = null;
    } catch (err) {
      if (my !== seq || !signedIn()) return;
      error = asApiError(err).message;
    }
    render();
  }

  function render() {
    clear(listSlot);
    count.textContent = list?.length ? String(list.length) : "";
    if (!list) {
      listSlot.append(
        error ? errorBanner(`Couldn't load the deployments: ${error}`, load) : loadingEl("Loading deployments…"),
      );
      return;
    }
    if (error) listSlot.append(errorBanner(`Couldn't refresh the deployments: ${error}`, load));
    if (!list.length) {
      listSlot.append(
        h("p.muted.small.card-pad", {
          "data-testid": "deployments-empty",
          text: "No deployments yet. A run's deploy stage records each one here, with its URL and commit.",
        }),
      );
      return;
    }
    listSlot.append(
      dataTable(".deployments-table", ["State", "Environment", "URL", "Commit", "Run", "When"], list.map(row)),
    );
  }

  /** @param {Deployment} d */
  function row(d) {
    const url = safeHttpUrl(d.url);
    const sha = typeof d.commit_sha === "string" && d.commit_sha ? d.commit_sha : null;
    return h(
      "tr",
      { "data-testid": "deployment-row", "data-deployment-id": d.id, "data-state": d.state, "data-source": d.source },
      h("td", null, pipelineBadge(d.state, "deployment-state")),
      h("td.mono", { text: d.environment || "—" }),
      h(
        "td",
        null,
        !d.url
          ? h("span.muted", { text: "—" })
          : url
            ? h(
                "a.ext.mono.deploy-url",
                {
                  href: url,
                  target: "_blank",
                  rel: "noopener noreferrer",
                  title: d.url,
                  "data-testid": "deployment-url",
                },
                h("span", { text: d.url }),
                svgIcon("external"),
              )
            : h("span.mono", { text: d.url }),
      ),
      h(
        "td",
        null,
        sha
          ? h("span.mono.ref-sha", { "data-testid": "deployment-commit", title: sha, text: sha.slice(0, 7) })
          : h("span.muted", { text: "—" }),
      ),
      h("td", null, origin(d)),
      h("td.t-time", null, timeEl(d.created_at)),
    );
  }

  /** The run that made it; else its task, or at least who made it. @param {Deployment} d */
  function origin(d) {
    if (d.run_id) {
      return h("a.mono", {
        href: `#/pipeline-runs/${enc(d.run_id)}`,
        "data-testid": "deployment-run",
        text: hooks.runHandle(d.run_id) || d.run_id.slice(0, 8),
      });
    }
    const who = SOURCES[d.source] || d.source;
    if (d.task_id) return h("a", { href: `#/tasks/${enc(d.task_id)}`, title: "The task that deployed it", text: who });
    return h("span.muted", { text: who });
  }

  /** A run of the project changed: a stage that ended may have deployed. @param {RunView} r */
  function onRun(r) {
    if (r.project_id !== projectId || !Array.isArray(r.stages)) return;
    const sig = r.stages.map((s) => `${s.name}:${s.state}:${s.attempt}`).join(",");
    const known = runSigs.get(r.id);
    runSigs.set(r.id, sig);
    if (known === sig) return;
    clearTimeout(timer);
    timer = setTimeout(load, 1_000);
  }

  render();

  return {
    root,
    load,
    onRun,
    /** The runs' handles came (the Run column names them). */
    sync: render,
    destroy() {
      seq++;
      clearTimeout(timer);
    },
  };
}
