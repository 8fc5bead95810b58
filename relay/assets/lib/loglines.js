// The text of a task's log as the log viewer keeps it: complete lines in chunks (colour sequences
// kept, restated at the start of a line when a colour runs on), absolute line numbers, the groups
// (`::group::`/`::endgroup::`, and the agent's `==> step: command` headers) and which are folded,
// the first error line and the failing step, and search matches.

import { parseAnsi, plainText, styleSequence } from "./ansi.js";

export const LOG_KEEP = 64 * 1024 * 1024; // characters of log text kept (the relay's log cap)
const CHUNK = 4096; // lines per chunk of the stored text
const MAX_MATCHES = 100_000;
const ERROR_CI_RE = /\berror\b|\bpanicked\b|^fulcrum: the step failed/i;
const ERROR_CS_RE = /FAILED|Traceback|\u2717|\b[A-Z][A-Za-z]*Error\b/;
const GROUP_RE = /^\s*::group::(.*)$/;
export const ENDGROUP_RE = /^\s*::endgroup::\s*$/;
const STEP_RE = /^==> ([^:]+): /;
const STEP_FAILED_RE = /^fulcrum: the step failed/;

/** First-error patterns: `error`, `panicked`, `FAILED`, `Traceback`, `✗`, `SomethingError`, a failed QA step. */
/** @param {string} plain */
export function isErrorLine(plain) {
  return ERROR_CI_RE.test(plain) || ERROR_CS_RE.test(plain);
}

/** @typedef {{ kind: "group" | "step", start: number, end: number | null, title: string, collapsed: boolean }} LogGroup */

export class LogLines {
  constructor() {
    /** @type {string[][]} */
    this.chunks = [[]];
    this.base = 0; // number (0-based) of the first line still kept
    this.lineCount = 0; // complete lines so far (kept or not)
    this.partial = ""; // the unfinished last line
    this.sgrCarry = ""; // the colour state at the end of the last line, restated on the next
    this.chars = 0;
    this.trimmed = false; // lines were dropped from the front
    this.epoch = 0; // bumped when kept lines or their numbering change
    /** @type {LogGroup[]} */
    this.groups = [];
    /** @type {Map<number, LogGroup>} */
    this.groupAt = new Map();
    /** @type {LogGroup | null} */
    this.openGroup = null;
    /** @type {LogGroup | null} */
    this.openStep = null;
    /** @type {[number, number][]} sorted, merged [start, end) ranges of folded lines */
    this.hiddenRanges = [];
    this.firstError = -1;
    /** @type {string | null} */
    this.failedStep = null;
  }

  /**
   * @param {string} text cleaned text (colours kept)
   * @param {boolean} ended the log ended: its last line is complete
   */
  addText(text, ended) {
    const parts = text.split("\n");
    parts[0] = this.partial + parts[0];
    this.partial = /** @type {string} */ (parts.pop());
    for (const line of parts) this.pushLine(line);
    if (ended && this.partial) {
      this.pushLine(this.partial);
      this.partial = "";
    }
    this.trimFront();
  }

  /** @param {string} raw */
  pushLine(raw) {
    let line = this.sgrCarry ? this.sgrCarry + raw : raw;
    if (line.indexOf("\x1b") >= 0) {
      this.sgrCarry = styleSequence(parseAnsi(line).end);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: a line of colour sequences only
      if (!this.sgrCarry && /^(?:\x1b\[[0-9;:]*m)+$/.test(line)) line = "";
    }
    let chunk = this.chunks[this.chunks.length - 1];
    if (chunk.length >= CHUNK) {
      chunk = [];
      this.chunks.push(chunk);
    }
    chunk.push(line);
    this.chars += line.length + 1;
    const n = this.lineCount++;
    const plain = plainText(line);
    const step = STEP_RE.exec(plain);
    if (step) {
      this.endGroup(n, true);
      this.addGroup({ kind: "step", start: n, end: null, title: step[1], collapsed: false });
    } else {
      const g = GROUP_RE.exec(plain);
      if (g) {
        this.endGroup(n, false);
        this.addGroup({ kind: "group", start: n, end: null, title: g[1].trim(), collapsed: false });
      } else if (ENDGROUP_RE.test(plain) && this.openGroup) {
        this.openGroup.end = n + 1;
        this.openGroup = null;
      }
    }
    if (this.firstError < 0 && isErrorLine(plain)) this.firstError = n;
    if (this.openStep && !this.failedStep && STEP_FAILED_RE.test(plain)) this.failedStep = this.openStep.title;
  }

  /** @param {LogGroup} g */
  addGroup(g) {
    this.groups.push(g);
    this.groupAt.set(g.start, g);
    if (g.kind === "step") this.openStep = g;
    else this.openGroup = g;
  }

  /**
   * @param {number} n the line that ends them
   * @param {boolean} step end the open step too
   */
  endGroup(n, step) {
    if (this.openGroup) this.openGroup.end = n;
    this.openGroup = null;
    if (step && this.openStep) {
      this.openStep.end = n;
      this.openStep = null;
    }
  }

  closeGroups() {
    const end = this.lineCount + (this.partial ? 1 : 0);
    if (this.openGroup || this.openStep) {
      this.endGroup(end, true);
      this.updateHidden();
    }
  }

  /** Drops the oldest chunks while more than LOG_KEEP characters are kept. */
  trimFront() {
    let dropped = false;
    while (this.chunks.length > 1 && this.chars > LOG_KEEP) {
      const c = /** @type {string[]} */ (this.chunks.shift());
      for (const l of c) this.chars -= l.length + 1;
      this.base += c.length;
      this.trimmed = true;
      dropped = true;
    }
    if (dropped) {
      this.groups = this.groups.filter((g) => g.end === null || g.end > this.base);
      this.groupAt = new Map(this.groups.map((g) => [g.start, g]));
      this.updateHidden();
      this.epoch++;
    }
  }

  /** Forgets the kept text (line numbers go on from where they were). */
  clear() {
    this.chunks = [[]];
    this.base = this.lineCount;
    this.chars = 0;
    this.partial = "";
    this.groups = [];
    this.groupAt = new Map();
    this.openGroup = this.openStep = null;
    this.hiddenRanges = [];
    this.epoch++;
  }

  /** Line `n` (0-based, absolute) as stored, the unfinished last line included; null if not kept. */
  /** @param {number} n */
  lineAt(n) {
    if (n === this.lineCount) return this.sgrCarry + this.partial;
    if (n < this.base || n > this.lineCount) return null;
    const i = n - this.base;
    return this.chunks[Math.floor(i / CHUNK)]?.[i % CHUNK] ?? null;
  }

  /** One past the last line shown. */
  get endLine() {
    return this.lineCount + (this.partial ? 1 : 0);
  }

  /** The log's text as kept (without colours): for tests and copying. */
  text() {
    const out = [];
    for (let n = this.base; n < this.endLine; n++) out.push(plainText(this.lineAt(n) || ""));
    return out.join("\n");
  }

  // ---- folding: the rows shown are the lines minus those in folded groups

  updateHidden() {
    /** @type {[number, number][]} */
    const r = [];
    const endAll = this.endLine;
    for (const g of this.groups) {
      if (!g.collapsed) continue;
      const s = Math.max(g.start + 1, this.base);
      const e = g.end === null ? endAll : g.end;
      if (e > s) r.push([s, e]);
    }
    r.sort((x, y) => x[0] - y[0]);
    /** @type {[number, number][]} */
    const merged = [];
    for (const x of r) {
      const last = merged[merged.length - 1];
      if (last && x[0] <= last[1]) last[1] = Math.max(last[1], x[1]);
      else merged.push([x[0], x[1]]);
    }
    this.hiddenRanges = merged;
  }

  rowCount() {
    let rows = this.endLine - this.base;
    const open = this.groups.some((g) => g.collapsed && g.end === null);
    if (open) this.updateHidden();
    for (const [s, e] of this.hiddenRanges) rows -= e - s;
    return Math.max(0, rows);
  }

  /** @param {number} row */
  rowToLine(row) {
    let n = this.base + row;
    for (const [s, e] of this.hiddenRanges) {
      if (s <= n) n += e - s;
      else break;
    }
    return n;
  }

  /** The row showing line n, or -1 if it is folded away. */
  /** @param {number} n */
  lineToRow(n) {
    if (n < this.base) return -1;
    let row = n - this.base;
    for (const [s, e] of this.hiddenRanges) {
      if (e <= n) row -= e - s;
      else if (s <= n) return -1;
      else break;
    }
    return row;
  }

  /** Unfolds the groups that hide line n; whether any was folded. */
  /** @param {number} n */
  unfoldAround(n) {
    let unfolded = false;
    for (const g of this.groups) {
      if (g.collapsed && g.start < n && (g.end === null || n < g.end)) {
        g.collapsed = false;
        unfolded = true;
      }
    }
    if (unfolded) this.updateHidden();
    return unfolded;
  }
}

/** Case-insensitive matches of a query in the complete lines, found as lines arrive. */
export class LogSearch {
  constructor() {
    this.query = "";
    /** @type {number[]} */
    this.line = [];
    /** @type {number[]} */
    this.start = [];
    this.cur = -1;
    this.scanned = 0;
  }

  get capped() {
    return this.line.length >= MAX_MATCHES;
  }

  /** @param {string} q @param {LogLines} lines */
  set(q, lines) {
    this.query = q;
    this.line = [];
    this.start = [];
    this.cur = -1;
    this.scanned = lines.base;
    this.more(lines);
  }

  /** Searches the complete lines not searched yet; whether matches were added. */
  /** @param {LogLines} lines */
  more(lines) {
    const q = this.query.toLowerCase();
    if (!q) return false;
    const before = this.line.length;
    for (let n = Math.max(this.scanned, lines.base); n < lines.lineCount; n++) {
      if (this.line.length >= MAX_MATCHES) break;
      const p = plainText(lines.lineAt(n) || "").toLowerCase();
      for (let i = p.indexOf(q); i >= 0 && this.line.length < MAX_MATCHES; i = p.indexOf(q, i + q.length)) {
        this.line.push(n);
        this.start.push(i);
      }
    }
    this.scanned = lines.lineCount;
    return this.line.length !== before;
  }

  /**
   * Where the query occurs in line n, in plain-text characters, and whether it is the current match.
   * @param {number} n
   * @param {string} raw
   * @returns {[number, number, boolean][]}
   */
  marksFor(n, raw) {
    if (!this.query) return [];
    const q = this.query.toLowerCase();
    const p = plainText(raw).toLowerCase();
    /** @type {[number, number, boolean][]} */
    const out = [];
    const curLine = this.cur >= 0 ? this.line[this.cur] : -1;
    const curStart = this.cur >= 0 ? this.start[this.cur] : -1;
    for (let i = p.indexOf(q); i >= 0; i = p.indexOf(q, i + q.length))
      out.push([i, i + q.length, n === curLine && i === curStart]);
    return out;
  }
}
