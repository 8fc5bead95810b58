// Charts drawn as SVG elements (no markup strings, no library): a stacked bar chart with a y axis,
// day labels, a legend, and value tooltips as <title> elements. Colours come from the stylesheet
// (`.series-0` … `.series-7`, `.series-other`), so both themes read them.

import { clear, h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
/** How many series get a colour of their own; the rest are summed as "Other". */
export const SERIES_COLOURS = 8;

/**
 * An SVG element with attributes and children.
 * @param {string} tag
 * @param {Record<string, string | number | null | undefined>} [attrs]
 * @param {...(Node | string | null | undefined)} children
 * @returns {SVGElement}
 */
export function svg(tag, attrs = {}, ...children) {
  const el = /** @type {SVGElement} */ (document.createElementNS(NS, tag));
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    el.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    el.append(c);
  }
  return el;
}

/** A tooltip for an SVG element. @param {string} text */
const title = (text) => svg("title", {}, text);

/**
 * A step for about `parts` gridlines up to `max`: 1, 2, 2.5 or 5 times a power of ten.
 * @param {number} max
 * @param {number} parts
 */
export function niceStep(max, parts) {
  if (!(max > 0)) return 1;
  const raw = max / parts;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

/**
 * @typedef {object} BarSeries
 * @property {string} key
 * @property {string} label
 * @property {number} total over every column
 * @property {string} cls its colour class (`series-3`, `series-other`)
 */

/**
 * @typedef {object} BarColumn
 * @property {string} key e.g. the day, `2026-03-04`
 * @property {string} label under the axis (`Mar 4`)
 * @property {string} title in tooltips (`Wed, 4 Mar 2026`)
 * @property {Map<string, number>} values series key -> value
 */

/**
 * The series of `rows` by their totals, highest first: the first `SERIES_COLOURS - 1` get their
 * own colour and the rest are summed into "Other" (all of them get a colour when they fit).
 * @param {{ column: string, series: string, value: number }[]} rows
 * @param {string[]} columnKeys in order
 * @param {(column: string) => { label: string, title: string }} describe
 * @param {(series: string) => string} seriesLabel
 * @returns {{ series: BarSeries[], columns: BarColumn[] }}
 */
export function stackData(rows, columnKeys, describe, seriesLabel) {
  /** @type {Map<string, number>} */
  const totals = new Map();
  for (const r of rows) totals.set(r.series, (totals.get(r.series) || 0) + r.value);
  const order = [...totals.entries()].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const own = order.length > SERIES_COLOURS ? order.slice(0, SERIES_COLOURS - 1) : order;
  const kept = new Set(own.map(([k]) => k));
  const OTHER = "\u0000other";
  /** @type {BarSeries[]} */
  const series = own.map(([key, total], i) => ({ key, label: seriesLabel(key), total, cls: `series-${i}` }));
  if (own.length < order.length) {
    const rest = order.slice(own.length);
    series.push({
      key: OTHER,
      label: `Other (${rest.length})`,
      total: rest.reduce((n, [, v]) => n + v, 0),
      cls: "series-other",
    });
  }
  /** @type {Map<string, BarColumn>} */
  const columns = new Map(columnKeys.map((k) => [k, { key: k, ...describe(k), values: new Map() }]));
  for (const r of rows) {
    const col = columns.get(r.column);
    if (!col || !(r.value > 0)) continue;
    const key = kept.has(r.series) ? r.series : OTHER;
    col.values.set(key, (col.values.get(key) || 0) + r.value);
  }
  return { series, columns: [...columns.values()] };
}

/**
 * A stacked bar chart that redraws itself to its width.
 * @param {{ label: string, format: (n: number) => string, axisFormat?: (n: number) => string, height?: number, testid?: string, barTestid?: string, empty?: string }} opts
 */
export function stackedBarChart(opts) {
  const height = opts.height || 200;
  const axisFormat = opts.axisFormat || opts.format;
  /** @type {{ series: BarSeries[], columns: BarColumn[] } | null} */
  let data = null;
  let lastWidth = 0;
  let frame = 0;
  const plot = h("div.chart-plot");
  const legend = h("ul.chart-legend", { "aria-label": "Legend" });
  const root = h("figure.chart", { "data-testid": opts.testid || null }, plot, legend);
  const observer = typeof ResizeObserver === "function" ? new ResizeObserver(() => schedule()) : null;
  if (observer) observer.observe(plot);

  function schedule() {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => {
      const w = plot.clientWidth;
      if (w && w !== lastWidth) draw();
    });
  }

  function draw() {
    clear(plot);
    const width = plot.clientWidth || 720;
    lastWidth = width;
    if (!data) return;
    const { series, columns } = data;
    const left = 56;
    const right = 6;
    const top = 8;
    const bottom = 22;
    const plotW = Math.max(40, width - left - right);
    const plotH = height - top - bottom;
    const max = Math.max(0, ...columns.map((c) => sum(c.values)));
    const step = niceStep(max, 4);
    const ceil = max > 0 ? Math.ceil(max / step) * step : step * 4;
    const y = (/** @type {number} */ v) => top + plotH - (v / ceil) * plotH;
    const chart = svg("svg", {
      class: "chart-svg",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": opts.label,
    });
    // Gridlines and their values.
    for (let v = 0; v <= ceil + step / 2; v += step) {
      const gy = Math.round(y(v)) + 0.5;
      chart.append(
        svg("line", { class: v === 0 ? "chart-axis" : "chart-grid", x1: left, x2: width - right, y1: gy, y2: gy }),
        svg(
          "text",
          { class: "chart-tick", x: left - 6, y: gy, "text-anchor": "end", "dominant-baseline": "middle" },
          axisFormat(v),
        ),
      );
    }
    const n = Math.max(1, columns.length);
    const band = plotW / n;
    const barW = Math.max(1, Math.min(28, band * 0.72));
    // Day labels: as many as fit, at least 48 px apart.
    const every = Math.max(1, Math.ceil(48 / band));
    const byKey = new Map(series.map((s) => [s.key, s]));
    columns.forEach((c, i) => {
      const x0 = left + i * band;
      const total = sum(c.values);
      const g = svg("g", { class: "chart-col" });
      const lines = [
        `${c.title}: ${opts.format(total)}`,
        ...series.filter((s) => c.values.get(s.key)).map((s) => `${s.label}: ${opts.format(c.values.get(s.key) || 0)}`),
      ];
      g.append(svg("rect", { class: "chart-hit", x: x0, y: top, width: band, height: plotH }, title(lines.join("\n"))));
      let acc = 0;
      for (const s of series) {
        const v = c.values.get(s.key) || 0;
        if (!(v > 0)) continue;
        const y1 = y(acc + v);
        const y0 = y(acc);
        acc += v;
        g.append(
          svg(
            "rect",
            {
              class: `chart-bar ${byKey.get(s.key)?.cls || ""}`,
              x: (x0 + (band - barW) / 2).toFixed(2),
              y: y1.toFixed(2),
              width: barW.toFixed(2),
              height: Math.max(1, y0 - y1).toFixed(2),
              "data-testid": opts.barTestid || null,
              "data-column": c.key,
              "data-series": s.key,
            },
            title(`${c.title} · ${s.label}: ${opts.format(v)}`),
          ),
        );
      }
      if (i % every === 0) {
        g.append(
          svg("text", { class: "chart-label", x: x0 + band / 2, y: height - 6, "text-anchor": "middle" }, c.label),
        );
      }
      chart.append(g);
    });
    if (!(max > 0)) {
      chart.append(
        svg(
          "text",
          { class: "chart-empty", x: left + plotW / 2, y: top + plotH / 2, "text-anchor": "middle" },
          opts.empty || "Nothing in this period",
        ),
      );
    }
    plot.append(chart);
  }

  function renderLegend() {
    clear(legend);
    if (!data) return;
    for (const s of data.series) {
      legend.append(
        h(
          "li",
          { title: `${s.label}: ${opts.format(s.total)} in the period` },
          h("span.chart-swatch", { class: s.cls, "aria-hidden": "true" }),
          h("span.chart-legend-name", { text: s.label }),
          h("span.chart-legend-value", { text: opts.format(s.total) }),
        ),
      );
    }
  }

  return {
    root,
    /** @param {{ series: BarSeries[], columns: BarColumn[] } | null} d */
    set(d) {
      data = d;
      draw();
      renderLegend();
    },
    destroy() {
      cancelAnimationFrame(frame);
      if (observer) observer.disconnect();
    },
  };
}

/** @param {Map<string, number>} m */
function sum(m) {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}
