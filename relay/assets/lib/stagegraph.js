// A pipeline run's stage graph: the stages in columns by their depth in the DAG (`needs`), each a
// button with its state, attempt, duration, tokens, cost and the commit it made, and SVG curves for
// the needs (drawn from where the boxes ended up, so the same code serves the columns on a wide
// screen and the rows on a phone). Updates keep the boxes and only change what they show.

import { append, clear, h, uid } from "./dom.js";
import { fmtUsd } from "./format.js";
import { reasonLabel, runBranch, spanEl, stageDepths, tokensText } from "./pipelines.js";

/** @typedef {import("./types.js").RunView} RunView */
/** @typedef {import("./types.js").StageView} StageView */

const SVG = "http://www.w3.org/2000/svg";

/** @param {string} tag @param {Record<string, string | number>} attrs */
function svgEl(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * What a stage's state says on its box: "waiting for approval", "waiting for recovery" (a recovery
 * stage works on its failure), "waiting: budget reached".
 * @param {StageView} s
 */
export function stageStateText(s) {
  if (s.state !== "waiting") return s.state;
  const why = reasonLabel(s.reason);
  return !why ? "waiting" : why.startsWith("waiting") ? why : `waiting: ${why}`;
}

/**
 * @param {{ onSelect: (name: string) => void }} options
 */
export function stageGraph({ onSelect }) {
  const markerId = uid("arrow");
  const marker = svgEl("marker", {
    id: markerId,
    viewBox: "0 0 8 8",
    refX: 7,
    refY: 4,
    markerWidth: 7,
    markerHeight: 7,
    orient: "auto-start-reverse",
  });
  marker.append(svgEl("path", { d: "M0 0 L8 4 L0 8 z", class: "edge-arrow" }));
  const defs = svgEl("defs", {});
  defs.append(marker);
  const svg = svgEl("svg", { class: "stage-edges", "aria-hidden": "true" });
  svg.append(defs);
  const cols = h("div.stage-cols");
  const root = h("div.stage-graph", { "data-testid": "stage-graph", role: "group", "aria-label": "Stages" }, cols);

  /** @type {Map<string, HTMLButtonElement>} */
  const nodes = new Map();
  let shape = "";
  /** @type {StageView[]} */
  let stages = [];
  let branch = ""; // the run's branch, where its stages commit
  let frame = 0;

  /** Rebuilds the columns when the stages or their needs changed. */
  function layout() {
    const sig = JSON.stringify(stages.map((s) => [s.name, s.needs || []]));
    if (sig === shape) return;
    shape = sig;
    clear(cols);
    nodes.clear();
    const depth = stageDepths(stages);
    /** @type {StageView[][]} */
    const columns = [];
    for (const s of stages) {
      const d = Math.max(0, depth.get(s.name) ?? 0);
      if (!columns[d]) columns[d] = [];
      columns[d].push(s);
    }
    cols.append(svg);
    for (const [i, col] of columns.entries()) {
      if (!col) continue;
      cols.append(
        h(
          "div.stage-col",
          { "data-depth": i },
          col.map((s) => {
            const node = h("button.stage-node", { type: "button", "data-testid": "stage", "data-stage": s.name });
            node.addEventListener("click", () => onSelect(s.name));
            nodes.set(s.name, node);
            return node;
          }),
        ),
      );
    }
  }

  /** @param {HTMLButtonElement} node @param {StageView} s @param {boolean} selected */
  function fill(node, s, selected) {
    node.className = `stage-node st-${s.state}${selected ? " is-selected" : ""}`;
    node.dataset.state = s.state;
    node.dataset.kind = s.kind;
    node.setAttribute("aria-pressed", selected ? "true" : "false");
    const u = s.usage;
    clear(node);
    append(node, [
      h("span.stage-top", null, h("span.stage-name", { text: s.name }), h("span.stage-kind", { text: s.kind })),
      h(
        "span.stage-status",
        { "data-live": s.state === "running" ? "" : null },
        h("span.stage-dot", { "aria-hidden": "true" }),
        h("span", { "data-testid": "stage-state", text: stageStateText(s) }),
        s.attempt > 1 ? h("span.muted", { text: ` · attempt ${s.attempt}` }) : null,
      ),
      !s.started_at && !u?.calls && !s.commit
        ? null
        : h(
            "span.stage-meta",
            null,
            spanEl(s.started_at, s.finished_at, s.state === "running"),
            u?.calls
              ? h("span", { title: tokensText(u), text: tokensText(u, true).split(" · ").slice(0, 2).join(" / ") })
              : null,
            u?.calls ? h("span", { text: fmtUsd(u.cost_usd) }) : null,
            s.commit
              ? h("span.mono.ref-sha", {
                  "data-testid": "stage-node-commit",
                  title: `Committed ${s.commit}${branch ? ` on ${branch}` : ""}`,
                  text: s.commit.slice(0, 7),
                })
              : null,
          ),
    ]);
  }

  /** The curves from each stage to those that need it. */
  function draw() {
    frame = 0;
    const box = cols.getBoundingClientRect();
    for (const p of [...svg.querySelectorAll("path.edge")]) p.remove();
    if (!box.width) return;
    svg.setAttribute("width", String(cols.scrollWidth));
    svg.setAttribute("height", String(cols.scrollHeight));
    const byName = new Map(stages.map((s) => [s.name, s]));
    for (const s of stages) {
      const to = nodes.get(s.name);
      if (!to) continue;
      for (const need of s.needs || []) {
        const from = nodes.get(need);
        if (!from) continue;
        const a = from.getBoundingClientRect();
        const b = to.getBoundingClientRect();
        let d;
        if (b.left >= a.right - 1) {
          const [x1, y1, x2, y2] = [
            a.right - box.left,
            a.top + a.height / 2 - box.top,
            b.left - box.left,
            b.top + b.height / 2 - box.top,
          ];
          const dx = Math.max(12, (x2 - x1) / 2);
          d = `M${x1} ${y1} C${x1 + dx} ${y1} ${x2 - dx} ${y2} ${x2 - 1} ${y2}`;
        } else {
          const [x1, y1, x2, y2] = [
            a.left + a.width / 2 - box.left,
            a.bottom - box.top,
            b.left + b.width / 2 - box.left,
            b.top - box.top,
          ];
          const dy = Math.max(10, (y2 - y1) / 2);
          d = `M${x1} ${y1} C${x1} ${y1 + dy} ${x2} ${y2 - dy} ${x2} ${y2 - 1}`;
        }
        const done = byName.get(need)?.state === "succeeded";
        svg.append(
          svgEl("path", {
            d,
            class: `edge${done ? " edge-done" : ""}${s.state === "running" ? " edge-active" : ""}`,
            "marker-end": `url(#${markerId})`,
          }),
        );
      }
    }
  }

  const redraw = () => {
    if (!frame) frame = requestAnimationFrame(draw);
  };
  const resize = new ResizeObserver(redraw);
  resize.observe(cols);

  return {
    root,
    /**
     * @param {RunView} run
     * @param {string | null} selected
     */
    update(run, selected) {
      stages = Array.isArray(run.stages) ? run.stages : [];
      branch = runBranch(run.handle);
      layout();
      for (const s of stages) {
        const node = nodes.get(s.name);
        if (node) fill(node, s, s.name === selected);
      }
      redraw();
    },
    /** Focus a stage's box. @param {string} name */
    focus(name) {
      nodes.get(name)?.focus();
    },
    destroy() {
      resize.disconnect();
      cancelAnimationFrame(frame);
    },
  };
}
