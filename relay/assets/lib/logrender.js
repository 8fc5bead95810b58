// The log renderer: keeps a task's log lines (LogLines) and renders only the lines in view into a
// <pre> (virtual scrolling at a fixed line height): line numbers that link to their line, ANSI
// colours, foldable groups, the selected line, and the toolbar (search, jump to the first error).
// LogView (logview.js) extends it with following the log and feeding it lines.

import { plainText, renderAnsi } from "./ansi.js";
import { h } from "./dom.js";
import { ENDGROUP_RE, LogLines, LogSearch } from "./loglines.js";

/** @typedef {import("./loglines.js").LogGroup} LogGroup */

const LINE_PX = 18; // height of one line (style.css: .log-line)
const MAX_SCROLL_PX = 8_000_000; // above this the scroll range is scaled (browsers cap element heights)
const OVERSCAN = 12; // lines rendered above and below the view
const LINE_SHOW = 10_000; // characters of one line rendered at most

/**
 * Renders a task's log lines into a <pre>, a window of rows over a canvas as tall as all of them:
 * only the rows in view (and a few around) are in the page, rebuilt when the lines, the folds or
 * the search change. Sticks to the bottom only while the reader is there.
 */
export class LogRenderer {
  /**
   * @param {string} taskId
   * @param {{ pre: HTMLElement, jump: HTMLElement, line?: number }} parts
   *   `jump`: the "jump to the bottom" button; `line`: open at this line (1-based).
   */
  constructor(taskId, { pre, jump, line }) {
    this.taskId = taskId;
    this.pre = pre;
    this.jump = jump;
    this.lines = new LogLines();
    this.selected = line && line > 0 ? Math.floor(line) : 0; // 1-based
    this.wantLine = this.selected;
    this.search = new LogSearch();
    this.renderRaf = 0;
    this.version = 0; // bumped when every rendered line must be rebuilt
    this.renderedVersion = "";
    /** @type {Map<number, HTMLElement>} */
    this.rowEls = new Map();
    this.window = h("span.log-window");
    this.canvas = h("span.log-canvas", null, this.window);
    pre.append(this.canvas);
    pre.dataset.empty = "true";
    this.stopped = false;
    this.stick = !this.wantLine;
    this.toolbar = this.buildToolbar();
    this._onScroll = () => {
      const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight <= 24;
      this.stick = atBottom;
      jump.hidden = atBottom;
      this.scheduleRender();
    };
    this._onJump = () => {
      this.stick = true;
      jump.hidden = true;
      pre.scrollTop = pre.scrollHeight;
      this.scheduleRender();
    };
    this._onClick = (/** @type {MouseEvent} */ e) => this.onClick(e);
    this._onResize = () => this.scheduleRender();
    pre.addEventListener("scroll", this._onScroll, { passive: true });
    pre.addEventListener("click", this._onClick);
    jump.addEventListener("click", this._onJump);
    window.addEventListener("resize", this._onResize);
  }

  /** Stops rendering and drops the listeners. */
  detach() {
    this.stopped = true;
    cancelAnimationFrame(this.renderRaf);
    this.renderRaf = 0;
    this.pre.removeEventListener("scroll", this._onScroll);
    this.pre.removeEventListener("click", this._onClick);
    this.jump.removeEventListener("click", this._onJump);
    window.removeEventListener("resize", this._onResize);
  }

  /** @param {LogGroup} g @param {boolean} collapsed */
  setCollapsed(g, collapsed) {
    if (g.collapsed === collapsed) return;
    g.collapsed = collapsed;
    this.lines.updateHidden();
    this.version++;
    this.render();
  }

  // ---- rendering the lines in view

  scheduleRender() {
    if (this.renderRaf || this.stopped) return;
    this.renderRaf = requestAnimationFrame(() => {
      this.renderRaf = 0;
      this.render();
    });
  }

  /** Geometry: the total height, the first row in view and where its element goes. */
  layout() {
    const rows = this.lines.rowCount();
    const full = rows * LINE_PX;
    const height = Math.min(full, MAX_SCROLL_PX);
    const view = this.pre.clientHeight || 600;
    const top = this.pre.scrollTop;
    const inView = Math.ceil(view / LINE_PX) + 1;
    let first;
    let firstTop;
    if (full <= MAX_SCROLL_PX) {
      first = Math.floor(top / LINE_PX);
      firstTop = first * LINE_PX;
    } else {
      const ratio = height > view ? Math.min(1, top / (height - view)) : 0;
      first = Math.floor(ratio * Math.max(0, rows - inView + 1));
      firstTop = top;
    }
    return { rows, height, view, first, firstTop, inView };
  }

  render() {
    if (this.stopped) return;
    const { rows, height, first, firstTop, inView } = this.layout();
    this.canvas.style.setProperty("height", `${height}px`);
    if (rows) delete this.pre.dataset.empty;
    else this.pre.dataset.empty = "true";
    this.pre.dataset.lines = String(this.lines.endLine);
    const from = Math.max(0, first - OVERSCAN);
    const to = Math.min(rows, first + inView + OVERSCAN);
    this.window.style.setProperty("transform", `translateY(${firstTop - (first - from) * LINE_PX}px)`);
    const stamp = `${this.version}/${this.lines.epoch}`;
    const reuse = this.renderedVersion === stamp;
    /** @type {Map<number, HTMLElement>} */
    const els = new Map();
    const list = [];
    const hidden = this.lines.hiddenRanges;
    let n = from < to ? this.lines.rowToLine(from) : 0;
    let hi = 0;
    while (hi < hidden.length && hidden[hi][1] <= n) hi++;
    for (let r = from; r < to; r++) {
      while (hi < hidden.length && hidden[hi][0] <= n) {
        n = Math.max(n, hidden[hi][1]);
        hi++;
      }
      let el = reuse && n < this.lines.lineCount ? this.rowEls.get(n) : undefined;
      if (!el) el = this.buildRow(n);
      els.set(n, el);
      list.push(el);
      n++;
    }
    this.rowEls = els;
    this.renderedVersion = stamp;
    const kids = this.window.children;
    let same = kids.length === list.length;
    for (let i = 0; same && i < list.length; i++) same = kids[i] === list[i];
    if (!same) this.window.replaceChildren(...list);
  }

  /** @param {number} n */
  lineHref(n) {
    return `#/tasks/${encodeURIComponent(this.taskId)}?line=${n}`;
  }

  /** @param {number} n 0-based */
  buildRow(n) {
    const raw = this.lines.lineAt(n) ?? "";
    const num = n + 1;
    const row = h("span.log-line", { "data-testid": "log-line", "data-line": num });
    if (num === this.selected) row.classList.add("is-selected");
    if (n === this.lines.firstError) row.classList.add("is-error");
    const link = h("a.log-ln", {
      href: this.lineHref(num),
      "data-n": num,
      "data-testid": "log-line-number",
      tabindex: -1,
    });
    row.append(link);
    const g = this.lines.groupAt.get(n);
    const body = h("span.log-text");
    if (g) {
      row.classList.add(g.kind === "step" ? "log-step" : "log-group");
      row.dataset.group = g.kind;
      const btn = h("button.log-fold", {
        type: "button",
        "data-testid": "log-group-toggle",
        "aria-expanded": g.collapsed ? "false" : "true",
        "aria-label": `${g.collapsed ? "Expand" : "Collapse"} ${g.title || "group"}`,
      });
      if (g.collapsed) row.classList.add("is-collapsed");
      row.append(btn);
      if (g.kind === "group") {
        body.append(h("span.log-group-title", { text: g.title || "Group" }));
        if (g.collapsed && g.end !== null)
          body.append(h("span.log-fold-count", { text: ` (${g.end - g.start - 1} lines)` }));
        row.append(body, "\n");
        return row;
      }
    } else if (ENDGROUP_RE.test(plainText(raw))) {
      row.classList.add("log-endgroup");
      row.append(body, "\n");
      return row;
    }
    renderAnsi(body, raw, this.search.marksFor(n, raw), LINE_SHOW);
    const shown = plainText(raw).length;
    if (shown > LINE_SHOW) body.append(h("span.log-more", { text: ` … ${shown - LINE_SHOW} more characters` }));
    row.append(body, "\n");
    return row;
  }

  /** @param {MouseEvent} e */
  onClick(e) {
    const target = /** @type {Element | null} */ (e.target instanceof Element ? e.target : null);
    const row = target?.closest(".log-line");
    if (!row || !(row instanceof HTMLElement)) return;
    const num = Number(row.dataset.line);
    if (target?.closest(".log-fold")) {
      const g = this.lines.groupAt.get(num - 1);
      if (g) this.setCollapsed(g, !g.collapsed);
      return;
    }
    if (target?.closest(".log-ln")) {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      this.select(num);
      history.replaceState(history.state, "", this.lineHref(num));
    }
  }

  /** @param {number} num 1-based */
  select(num) {
    this.selected = num;
    for (const el of this.window.querySelectorAll(".log-line.is-selected")) el.classList.remove("is-selected");
    this.rowEls.get(num - 1)?.classList.add("is-selected");
  }

  /**
   * Scrolls to line `num` (1-based), unfolding what hides it.
   * @param {number} num
   * @param {{ select?: boolean, reveal?: boolean }} [opts] select it; bring the log into the window's view
   */
  goToLine(num, opts = {}) {
    const L = this.lines;
    const n = Math.max(L.base, Math.min(num - 1, L.endLine - 1));
    if (n < 0 || n >= L.endLine) return;
    if (L.unfoldAround(n)) this.version++;
    if (opts.select) this.select(n + 1);
    this.stick = false;
    const { rows, height, view, inView } = this.layout();
    const row = L.lineToRow(n);
    if (rows * LINE_PX <= MAX_SCROLL_PX) this.pre.scrollTop = Math.max(0, row * LINE_PX - view / 3);
    else {
      const span = Math.max(1, rows - inView + 1);
      this.pre.scrollTop = Math.max(0, ((row - inView / 3) / span) * (height - view));
    }
    this.jump.hidden = this.pre.scrollHeight - this.pre.scrollTop - this.pre.clientHeight <= 24;
    this.render();
    const el = this.rowEls.get(n);
    if (opts.reveal && el) el.scrollIntoView({ block: "nearest" });
  }

  goToFirstError() {
    if (this.lines.firstError >= 0) this.goToLine(this.lines.firstError + 1, { select: true, reveal: true });
  }

  // ---- the toolbar: search, jump to the first error

  buildToolbar() {
    const input = h("input.log-search-input", {
      type: "search",
      placeholder: "Search log",
      "aria-label": "Search the log",
      "data-testid": "log-search",
    });
    const count = h("span.log-search-count", { "data-testid": "log-search-count", "aria-live": "polite" });
    const prev = h(
      "button.btn.btn-small",
      { type: "button", "data-testid": "log-search-prev", "aria-label": "Previous match", disabled: true },
      "↑",
    );
    const next = h(
      "button.btn.btn-small",
      { type: "button", "data-testid": "log-search-next", "aria-label": "Next match", disabled: true },
      "↓",
    );
    const errBtn = h(
      "button.btn.btn-small",
      { type: "button", "data-testid": "log-jump-error", hidden: true },
      "Jump to first error",
    );
    this.searchCount = count;
    this.searchPrev = prev;
    this.searchNext = next;
    this.errorButton = errBtn;
    let timer = 0;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.setQuery(input.value), 150);
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        clearTimeout(timer);
        if (input.value !== this.search.query) this.setQuery(input.value);
        else this.stepMatch(e.shiftKey ? -1 : 1);
      } else if (e.key === "Escape") {
        input.value = "";
        this.setQuery("");
      }
    });
    prev.addEventListener("click", () => this.stepMatch(-1));
    next.addEventListener("click", () => this.stepMatch(1));
    errBtn.addEventListener("click", () => this.goToFirstError());
    return h("div.log-tools", { "data-testid": "log-tools" }, input, count, prev, next, h("span.grow"), errBtn);
  }

  /** @param {string} q */
  setQuery(q) {
    this.search.set(q, this.lines);
    if (this.search.line.length) this.stepMatch(1);
    this.version++;
    this.render();
    this.showSearch();
  }

  showSearch() {
    const m = this.search;
    const total = m.line.length;
    if (!this.searchCount || !this.searchPrev || !this.searchNext) return;
    this.searchCount.textContent = m.query
      ? total
        ? `${m.cur + 1} of ${total}${m.capped ? "+" : ""}`
        : "No matches"
      : "";
    this.searchCount.dataset.count = String(total);
    this.searchPrev.disabled = this.searchNext.disabled = total === 0;
  }

  /** @param {number} dir */
  stepMatch(dir) {
    const m = this.search;
    const total = m.line.length;
    if (!total) return;
    m.cur = m.cur < 0 ? 0 : (m.cur + dir + total) % total;
    this.version++;
    this.goToLine(m.line[m.cur] + 1, { reveal: true });
    this.showSearch();
  }

  /** The first error line (0-based; -1 if none yet). */
  get firstError() {
    return this.lines.firstError;
  }

  /** The QA step that failed, if the log says so. */
  get failedStep() {
    return this.lines.failedStep;
  }
}
