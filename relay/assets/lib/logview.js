// The log viewer: follows one task's log over the events socket (or over HTTP while the socket is
// down), keeps its lines in memory in chunks and hands them to LogRenderer (logrender.js), which
// renders the lines in view with line links, colours, foldable groups (`::group::`/`::endgroup::`
// and the agent's `==> step: command` headers), search, and the first error line.

import { api, asApiError, base64ToBytes } from "../api.js";
import { fmtBytes } from "./format.js";
import { logFollowers, streamSend } from "./live.js";
import { LOG_KEEP } from "./loglines.js";
import { LogRenderer } from "./logrender.js";
import { state } from "./state.js";
import { isActive, STATE_LABELS } from "./tasks.js";

/** @typedef {import("./types.js").Task} Task */
/** @typedef {import("./types.js").LiveState} LiveState */
/** @typedef {import("./types.js").EventMessage} EventMessage */

export { LOG_KEEP };

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
export class LogView extends LogRenderer {
  /**
   * @param {string} taskId
   * @param {{ pre: HTMLElement, status: HTMLElement, bytes: HTMLElement, trimmedNote: HTMLElement, jump: HTMLElement,
   *   onEnd?: () => void, onInfo?: () => void, line?: number }} parts
   *   `onInfo`: the first error line or the failing step became known; `line`: open at this line (1-based).
   */
  constructor(taskId, { pre, status, bytes, trimmedNote, jump, onEnd, onInfo, line }) {
    super(taskId, { pre, jump, line });
    this.statusEl = status;
    this.bytesEl = bytes;
    this.bytesText = "";
    this.trimmedNote = trimmedNote;
    this.onEnd = onEnd;
    this.onInfo = onInfo;
    this.decoder = new TextDecoder("utf-8");
    this.offset = 0; // next byte offset expected
    this.pending = ""; // decoded text not yet split into lines
    this.carry = ""; // an escape sequence cut by a chunk boundary
    this.raf = 0;
    this.trimmed = false;
    this.dropPartialLine = false;
    this.ended = false;
    this.ending = false;
    this.polling = false;
    this.pollTimer = 0;
    /** @type {string} */
    this.mode = "";
    this.statusText = "Waiting…";
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
    this.stopPolling();
    cancelAnimationFrame(this.raf);
    this.raf = 0;
    if (logFollowers.get(this.taskId) === this) logFollowers.delete(this.taskId);
    if (!this.ended) streamSend({ type: "unfollow", task: this.taskId });
    this.detach();
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

  // ---- status and the per-frame update

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
}
