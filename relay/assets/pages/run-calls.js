// The run page's Calls tab: every LLM call of the run with its model, tokens, cost, latency, time
// to first token and outcome (the relay's OpenTelemetry GenAI facts).

import { api, asApiError } from "../api.js";
import { clear, dataTable, errorBanner, h, loadingEl } from "../lib/dom.js";
import { fmtCount, fmtDuration, fmtUsd, plural, timeEl } from "../lib/format.js";
import { signedIn } from "../lib/shell.js";

/** @typedef {import("../lib/types.js").CallView} CallView */

/** @param {string} runId */
export function callsPanel(runId) {
  /** @type {CallView[] | null} */
  let list = null;
  /** @type {string | null} */
  let error = null;
  let seq = 0;
  const root = h("div.calls", { "data-testid": "calls" });

  async function load() {
    const my = ++seq;
    try {
      const got = await api.pipelineCalls(runId);
      if (my !== seq) return;
      list = (Array.isArray(got) ? got : []).filter((c) => c && typeof c.id === "string");
      error = null;
    } catch (err) {
      if (my !== seq || !signedIn()) return;
      error = asApiError(err).message;
    }
    render();
  }

  function render() {
    clear(root);
    if (!list) {
      root.append(error ? errorBanner(`Couldn't load the calls: ${error}`, load) : loadingEl("Loading calls…"));
      return;
    }
    if (error) root.append(errorBanner(`Couldn't refresh the calls: ${error}`, load));
    if (!list.length) {
      root.append(h("p.muted.small", { text: "No LLM calls yet." }));
      return;
    }
    const sum = (/** @type {(c: CallView) => number} */ f) => list?.reduce((n, c) => n + (f(c) || 0), 0) ?? 0;
    root.append(
      h(
        "p.muted.small.calls-total",
        { "data-testid": "calls-total" },
        `${plural(list.length, "call")} · ${fmtCount(sum((c) => c.input_tokens))} in · ${fmtCount(sum((c) => c.output_tokens))} out · ${fmtUsd(sum((c) => c.cost_usd))}`,
      ),
      dataTable(
        ".calls-table",
        ["Stage", "Model", "Input", "Output", "Cached", "Cost", "Latency", "TTFT", "Outcome", "When"],
        list.map((c) => {
          const est = c.usage_estimated ? "≈ " : "";
          const outcome =
            c.state === "failed"
              ? h("span.bad", { text: `failed${c.error_code ? `: ${c.error_code}` : ""}` })
              : c.state === "reserved"
                ? h("span.muted", { text: "in flight" })
                : h("span", { text: c.finish_reasons?.length ? c.finish_reasons.join(", ") : "done" });
          return h(
            "tr",
            { "data-testid": "call-row", "data-state": c.state, "data-stage": c.stage || "" },
            h(
              "td",
              null,
              h("span.mono", { text: c.stage || "—" }),
              c.attempt && c.attempt > 1 ? h("span.muted.small", { text: ` #${c.attempt}` }) : null,
            ),
            h("td.mono.small", {
              title:
                c.response_model && c.response_model !== c.request_model ? `answered by ${c.response_model}` : null,
              text: c.request_model,
            }),
            h("td.num", { title: c.usage_estimated ? "estimated" : null, text: est + fmtCount(c.input_tokens) }),
            h("td.num", { title: c.usage_estimated ? "estimated" : null, text: est + fmtCount(c.output_tokens) }),
            h("td.num.muted", { text: c.cached_tokens ? fmtCount(c.cached_tokens) : "—" }),
            h("td.num", { text: fmtUsd(c.cost_usd) }),
            h("td.num", { text: typeof c.latency_ms === "number" ? fmtDuration(c.latency_ms) : "—" }),
            h("td.num", { text: typeof c.ttft_ms === "number" ? fmtDuration(c.ttft_ms) : "—" }),
            h("td", null, outcome),
            h("td.muted", null, timeEl(c.created_at)),
          );
        }),
      ),
    );
  }

  render();

  return {
    root,
    load,
    /** How many calls, or null before the first load. */
    count: () => (list ? list.length : null),
    destroy() {
      seq++;
    },
  };
}
