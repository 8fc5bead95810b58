// The log viewer: follows one task's log over the events socket (or over HTTP while the socket is
// down), keeps its lines in memory in chunks and renders only the lines in view into a <pre>
// (virtual scrolling at a fixed line height): line numbers that link to their line, ANSI colours,
// foldable groups (`::group::`/`::endgroup::` and the agent's `==> step: command` headers), search,
// and the first error line.

import { api, asApiError, base64ToBytes } from "../api.js";
import { plainText, renderAnsi } from "./ansi.js";
import { h } from "./dom.js";
import { fmtBytes } from "./format.js";
import { logFollowers, streamSend } from "./live.js";
import { ENDGROUP_RE, LOG_KEEP, LogLines, LogSearch } from "./loglines.js";
import { state } from "./state.js";
import { isActive, STATE_LABELS } from "./tasks.js";

/** @typedef {import("./types.js").Task} Task */
/** @typedef {import("./types.js").LiveState} LiveState */
/** @typedef {import("./types.js").EventMessage} EventMessage */

export { LOG_KEEP };

const LINE_PX = 18; // height of one line (style.css: .log-line)
const MAX_SCROLL_PX = 8_000_000; // above this the scroll range is scaled (browsers cap element heights)
const OVERSCAN = 12; // lines rendered above and below the view
const LINE_SHOW = 10_000; // characters of one line rendered at most

/** @typedef {import("./loglines.js").LogGroup} LogGroup */

// ANSI/VT escape sequences: CSI, OSC (to BEL or ST), DCS/SOS/PM/APC (to ST), and 2-byte escapes.
// (A lone ESC followed by [ ] P X ^ _ opens a longer sequence, so those are not 2-byte escapes.)
const ESC_RE =
  /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b\n]*(?:\x1b\\)?|\x1b[ -/]+[0-~]|\x1b[0-OQ-WYZ\\`-~]|\u009b[0-?]*[ -/]*[@-~]/g;
const ESC_DONE_RE =
  /^(?:\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b\n]*\x1b\\|\x1b[ -/]+[0-~]|\x1b[0-OQ-WYZ\\`-~])/;
const CTRL_RE = /[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]/g;

/** Index where an unfinished escape sequence (or a CR that may be half of CRLF) starts; s.length if none. */
/** @param {string} s */
function unfinishedTail(s) {
  const i = s.lastIndexOf("\x1b");
  if (i >= 0 && s.length - i <= 512 && s.indexOf("\n", i) < 0 && !ESC_DONE_RE.test(s.slice(i))) return i;
  return s.endsWith("\r") ? s.length - 1 : s.length;
}

const SGR_ONLY_RE = /^\x1b\[[0-9;:]*m$/;

/** Strips escape sequences other than SGR (colours), and control characters. */
/** @param {string} s */
function cleanLogText(s) {
  if (s.indexOf("\x1b") >= 0 || s.indexOf("\u009b") >= 0) s = s.replace(ESC_RE, (m) => (SGR_ONLY_RE.test(m) ? m : ""));
  if (s.indexOf("\r") >= 0) s = s.replace(/\r\n?/g, "\n");
  return s.replace(CTRL_RE, "").replace(/\x1b(?!\[[0-9;:]*m)/g, "");
}

/**
 * Follows one task's log over the events socket and renders it into a <pre>:
 * bytes are decoded by one streaming TextDecoder, text accumulates between animation frames
 * and is split into lines once per frame (escape sequences other than colours stripped), the
 * lines are kept in chunks (up to LOG_KEEP characters), only the lines in view are in the page,
 * and the view sticks to the bottom only while the reader is there.
 * While the socket is down it reads GET /tasks/{id}/logs instead, and re-follows from the
 * offset reached when the socket is back.
 */
export class LogView {
  /**
   * @param {string} taskId
   * @param {{ pre: HTMLElement, status: HTMLElement, bytes: HTMLElement, trimmedNote: HTMLElement, jump: HTMLElement,
   *   onEnd?: () => void, onInfo?: () => void, line?: number }} parts
   *   `onInfo`: the first error line or the failing step became known; `line`: open at this line (1-based).
   */
  constructor(taskId, { pre, status, bytes, trimmedNote, jump, onEnd, onInfo, line }) {
    this.taskId = taskId;
    this.pre = pre;
    this.statusEl = status;
    this.bytesEl = bytes;
    this.bytesText = "";
    this.trimmedNote = trimmedNote;
    this.jump = jump;
    this.onEnd = onEnd;
    this.onInfo = onInfo;
    this.decoder = new TextDecoder("utf-8");
    this.offset = 0; // next byte offset expected
    this.pending = ""; // decoded text not yet split into lines
    this.carry = ""; // an escape sequence cut by a chunk boundary
    this.raf = 0;
    this.renderRaf = 0;
    this.lines = new LogLines();
    this.selected = line && line > 0 ? Math.floor(line) : 0; // 1-based
    this.wantLine = this.selected;
    this.search = new LogSearch();
    // ---- rendering
    this.version = 0; // bumped when every rendered line must be rebuilt
    this.renderedVersion = "";
    /** @type {Map<number, HTMLElement>} */
    this.rowEls = new Map();
    this.window = h("span.log-window");
    this.canvas = h("span.log-canvas", null, this.window);
    pre.append(this.canvas);
    pre.dataset.empty = "true";
    this.trimmed = false;
    this.dropPartialLine = false;
    this.ended = false;
    this.ending = false;
    this.stopped = false;
    this.stick = !this.wantLine;
    this.polling = false;
    this.pollTimer = 0;
    /** @type {string} */
    this.mode = "";
    this.statusText = "Waiting…";
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

  /** Start at `offset` (> 0 skips the head of a big log: only the tail would be kept anyway). */
  /** @param {number} offset */
  start(offset) {
    this.offset = Math.max(0, Math.floor(offset) || 0);
    if (this.offset > 0) {
      this.trimmed = true;
      this.dropPartialLine = true;
      this.trimmedNote.hidden = false;
    }
    logFollowers.set(this.taskId, this);
    this.onLive(state.live);
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    this.stopPolling();
    cancelAnimationFrame(this.raf);
    this.raf = 0;
    if (logFollowers.get(this.taskId) === this) logFollowers.delete(this.taskId);
    if (!this.ended) streamSend({ type: "unfollow", task: this.taskId });
    cancelAnimationFrame(this.renderRaf);
    this.renderRaf = 0;
    this.pre.removeEventListener("scroll", this._onScroll);
    this.pre.removeEventListener("click", this._onClick);
    this.jump.removeEventListener("click", this._onJump);
    window.removeEventListener("resize", this._onResize);
  }

  /** Socket state changed: (re-)follow from where we are, or read over HTTP while it is down. */
  /** @param {LiveState} s */
  onLive(s) {
    if (this.ended || this.ending || this.stopped) return;
    if (s === "live" && streamSend({ type: "follow", task: this.taskId, offset: this.offset })) {
      this.stopPolling();
      this.setMode("following");
    } else if (s !== "live") {
      this.setMode(s === "connecting" ? "waiting" : "polling");
      this.startPolling(s === "connecting" ? 2000 : 500);
    }
  }

  /** @param {EventMessage} msg */
  onMessage(msg) {
    if (this.ended || this.ending || this.stopped) return;
    if (msg.type === "log") {
      const offset = Number(msg.offset);
      this.ingest(Number.isFinite(offset) ? offset : this.offset, base64ToBytes(msg.data));
    } else if (msg.type === "log_end") {
      const end = Number(msg.offset);
      this.endAt(Number.isFinite(end) ? end : this.offset);
    } else if (msg.type === "error") {
      this.fail(msg.message || "The relay can't stream this log.");
    }
  }

  /** Bytes [offset, offset + bytes.length) of the log. Overlaps are skipped, gaps are marked. */
  /**
   * @param {number} offset
   * @param {Uint8Array} bytes
   */
  ingest(offset, bytes) {
    if (this.ended || this.stopped) return;
    if (offset > this.offset) {
      this.pending += this.decoder.decode();
      this.pending += `\n[… ${fmtBytes(offset - this.offset)} of output not received …]\n`;
      this.offset = offset;
    }
    if (offset < this.offset) {
      const skip = this.offset - offset;
      if (skip >= bytes.length) return;
      bytes = bytes.subarray(skip);
    }
    if (!bytes.length) return;
    this.offset += bytes.length;
    this.pending += this.decoder.decode(bytes, { stream: true });
    // A hidden tab gets no animation frames: don't hoard more text than the page will keep.
    if (this.pending.length > 2 * LOG_KEEP) {
      this.pending = this.pending.slice(this.pending.length - LOG_KEEP);
      this.trimmed = true;
      this.dropPartialLine = true;
      this.lines.clear();
    }
    this.schedule();
  }

  /** @param {number} end */
  async endAt(end) {
    this.ending = true;
    if (end > this.offset) {
      // The socket said the log ends further on than what arrived: read the rest over HTTP.
      try {
        await this.readHttpUntil(end);
      } catch {
        /* show what we have */
      }
    }
    this.finish();
  }

  /** @param {number} end */
  async readHttpUntil(end) {
    while (!this.stopped && this.offset < end) {
      const page = await api.taskLogs(this.taskId, this.offset, Math.min(4 * 1024 * 1024, end - this.offset));
      const bytes = base64ToBytes(page?.data);
      if (!bytes.length) break;
      this.ingest(Number.isFinite(page.offset) ? page.offset : this.offset, bytes);
      if (page.end) break;
    }
  }

  finish() {
    if (this.ended || this.stopped) return;
    this.ended = true;
    this.stopPolling();
    if (logFollowers.get(this.taskId) === this) logFollowers.delete(this.taskId);
    this.pending += this.decoder.decode(); // flush a dangling partial character
    this.setMode("ended");
    this.schedule();
    if (this.onEnd) this.onEnd();
  }

  /** @param {string} message */
  fail(message) {
    this.ending = true;
    this.stopPolling();
    if (logFollowers.get(this.taskId) === this) logFollowers.delete(this.taskId);
    this.setMode("error", message);
  }

  /** The follow ended: say how the task finished. */
  /** @param {Task | null} t */
  describeEnd(t) {
    if (!this.ended || !t) return;
    const how = isActive(t)
      ? "task still finishing"
      : `${STATE_LABELS[t.state] || t.state}${Number.isFinite(t.exit_code) ? `, exit code ${t.exit_code}` : ""}`;
    this.setMode("ended", `End of log · ${how}`);
  }

  // ---- HTTP fallback while the socket is down

  /** @param {number} delay */
  startPolling(delay) {
    if (this.polling || this.ended || this.ending || this.stopped) return;
    this.polling = true;
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => this.pollOnce(), delay);
  }

  stopPolling() {
    this.polling = false;
    clearTimeout(this.pollTimer);
    this.pollTimer = 0;
  }

  async pollOnce() {
    if (!this.polling) return;
    if (this.mode === "waiting") this.setMode("polling");
    let wait = 2000;
    try {
      const page = await api.taskLogs(this.taskId, this.offset, 1024 * 1024);
      if (!this.polling) return; // the socket came back meanwhile
      const bytes = base64ToBytes(page?.data);
      this.ingest(Number.isFinite(page.offset) ? page.offset : this.offset, bytes);
      if (page.end) {
        this.finish();
        return;
      }
      if (bytes.length) wait = 0;
    } catch (caught) {
      if (!this.polling) return;
      const err = asApiError(caught);
      if (err.status === 404 || err.status === 403) {
        this.fail(err.message);
        return;
      }
      wait = 5000;
    }
    if (this.polling) this.pollTimer = setTimeout(() => this.pollOnce(), wait);
  }

  // ---- rendering

  /**
   * @param {string} mode
   * @param {string} [text]
   */
  setMode(mode, text) {
    this.mode = mode;
    const label =
      text ||
      {
        waiting: "Connecting…",
        following: "Following live",
        polling: "Live connection down — polling",
        ended: "End of log",
        error: "Can't follow this log",
      }[mode] ||
      mode;
    this.statusEl.dataset.state = mode;
    if (label !== this.statusText) {
      this.statusText = label;
      this.statusEl.textContent = label;
    }
    this.showBytes();
  }

  showBytes() {
    const text = this.offset ? fmtBytes(this.offset) : "";
    if (text === this.bytesText) return;
    this.bytesText = text;
    this.bytesEl.textContent = text;
  }

  schedule() {
    if (this.raf || this.stopped) return;
    this.raf = requestAnimationFrame(() => this.flush());
  }

  /** One update per frame with everything that arrived since the last one. */
  flush() {
    this.raf = 0;
    if (this.stopped) return;
    let text = this.carry + this.pending;
    this.pending = "";
    this.carry = "";
    if (!this.ended) {
      const cut = unfinishedTail(text);
      if (cut < text.length) {
        this.carry = text.slice(cut);
        text = text.slice(0, cut);
      }
    }
    text = cleanLogText(text);
    if (this.dropPartialLine && text) {
      // We started mid-log: skip to the first full line (unless there is no line break near).
      const nl = text.indexOf("\n");
      if (nl >= 0 && nl < 4096) text = text.slice(nl + 1);
      if (nl >= 0 || text.length >= 4096 || this.ended) this.dropPartialLine = false;
      else text = "";
    }
    const infoBefore = `${this.firstError}/${this.failedStep}`;
    if (text) {
      if (text.length > LOG_KEEP) {
        text = text.slice(text.length - LOG_KEEP);
        this.lines.clear();
        this.trimmed = true;
      }
      this.lines.addText(text, this.ended);
      if (this.trimmed || this.lines.trimmed) this.trimmedNote.hidden = false;
    }
    if (this.ended) this.lines.closeGroups();
    if (this.search.more(this.lines)) this.showSearch();
    this.render();
    if (this.stick) {
      this.pre.scrollTop = this.pre.scrollHeight;
      this.render();
    }
    if (this.wantLine && (this.wantLine <= this.lines.lineCount || this.ended)) {
      const n = this.wantLine;
      this.wantLine = 0;
      this.goToLine(n, { select: true, reveal: true });
    }
    if (this.errorButton) this.errorButton.hidden = this.firstError < 0;
    if (this.onInfo && `${this.firstError}/${this.failedStep}` !== infoBefore) this.onInfo();
    this.showBytes();
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

  // ---- search

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
