// ANSI SGR (colour and text style) sequences in log lines, rendered as styled spans: classes for the
// 16 colours and the text styles, CSS custom properties set through CSSOM for 256-colour and
// truecolor (the CSP allows no inline style attributes). Other escape sequences are stripped by the
// log viewer before lines get here.

import { h } from "./dom.js";

/** SGR sequences (the only escapes kept in stored log lines). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are escape sequences
export const SGR_RE = /\x1b\[([0-9;:]*)m/g;

/**
 * @typedef {{ fg: number | string | null, bg: number | string | null, bold: boolean, dim: boolean,
 *   italic: boolean, underline: boolean, inverse: boolean }} AnsiStyle
 * A colour is 0–15 (a class) or a CSS colour string (256-colour above 15, truecolor).
 */

/** @returns {AnsiStyle} */
function plainStyle() {
  return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false };
}

/** @param {AnsiStyle} s */
function isPlain(s) {
  return s.fg === null && s.bg === null && !s.bold && !s.dim && !s.italic && !s.underline && !s.inverse;
}

/** @param {string} line */
export function plainText(line) {
  return line.indexOf("\x1b") < 0 ? line : line.replace(SGR_RE, "");
}

/** @param {number} n */
function clampByte(n) {
  return Math.max(0, Math.min(255, Math.floor(n) || 0));
}

/** @param {number} n @returns {number | string} */
function color256(n) {
  n = clampByte(n);
  if (n < 16) return n;
  if (n < 232) {
    n -= 16;
    const c = [0, 95, 135, 175, 215, 255];
    return `rgb(${c[Math.floor(n / 36)]},${c[Math.floor(n / 6) % 6]},${c[n % 6]})`;
  }
  const v = 8 + (n - 232) * 10;
  return `rgb(${v},${v},${v})`;
}

/**
 * @param {AnsiStyle} st (changed in place)
 * @param {string} params
 */
function applySgr(st, params) {
  const p = params === "" ? [0] : params.split(/[;:]/).map((x) => (x === "" ? 0 : Number(x)));
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === 0) Object.assign(st, plainStyle());
    else if (c === 1) st.bold = true;
    else if (c === 2) st.dim = true;
    else if (c === 3) st.italic = true;
    else if (c === 4) st.underline = true;
    else if (c === 7) st.inverse = true;
    else if (c === 22) st.bold = st.dim = false;
    else if (c === 23) st.italic = false;
    else if (c === 24) st.underline = false;
    else if (c === 27) st.inverse = false;
    else if (c >= 30 && c <= 37) st.fg = c - 30;
    else if (c === 39) st.fg = null;
    else if (c >= 40 && c <= 47) st.bg = c - 40;
    else if (c === 49) st.bg = null;
    else if (c >= 90 && c <= 97) st.fg = c - 90 + 8;
    else if (c >= 100 && c <= 107) st.bg = c - 100 + 8;
    else if (c === 38 || c === 48) {
      /** @type {number | string | null} */
      let col = null;
      if (p[i + 1] === 5) {
        col = color256(p[i + 2]);
        i += 2;
      } else if (p[i + 1] === 2) {
        col = `rgb(${clampByte(p[i + 2])},${clampByte(p[i + 3])},${clampByte(p[i + 4])})`;
        i += 4;
      }
      if (col !== null) {
        if (c === 38) st.fg = col;
        else st.bg = col;
      }
    }
  }
}

/**
 * A line's text split at its SGR sequences.
 * @param {string} line
 * @returns {{ segs: { text: string, style: AnsiStyle | null }[], end: AnsiStyle }}
 */
export function parseAnsi(line) {
  const st = plainStyle();
  /** @type {{ text: string, style: AnsiStyle | null }[]} */
  const segs = [];
  let last = 0;
  SGR_RE.lastIndex = 0;
  for (let m = SGR_RE.exec(line); m; m = SGR_RE.exec(line)) {
    if (m.index > last) segs.push({ text: line.slice(last, m.index), style: isPlain(st) ? null : { ...st } });
    applySgr(st, m[1]);
    last = m.index + m[0].length;
  }
  if (last < line.length) segs.push({ text: line.slice(last), style: isPlain(st) ? null : { ...st } });
  return { segs, end: st };
}

/**
 * The SGR sequence that restores a style at the start of the next line ("" for the plain style).
 * @param {AnsiStyle} s
 */
export function styleSequence(s) {
  if (isPlain(s)) return "";
  /** @type {(string | number)[]} */
  const p = [0];
  if (s.bold) p.push(1);
  if (s.dim) p.push(2);
  if (s.italic) p.push(3);
  if (s.underline) p.push(4);
  if (s.inverse) p.push(7);
  /** @param {number | string | null} c @param {number} base */
  const col = (c, base) => {
    if (typeof c === "number") p.push(c < 8 ? base + c : base + 60 + c - 8);
    else if (typeof c === "string") {
      const m = /^rgb\((\d+),(\d+),(\d+)\)$/.exec(c);
      if (m) p.push(base + 8, 2, m[1], m[2], m[3]);
    }
  };
  col(s.fg, 30);
  col(s.bg, 40);
  return `\x1b[${p.join(";")}m`;
}

/**
 * A text node, or a span with the style's classes and colour properties.
 * @param {string} text
 * @param {AnsiStyle | null} s
 * @returns {Node}
 */
function styled(text, s) {
  if (!s) return document.createTextNode(text);
  const span = h("span", null, text);
  let fg = s.fg;
  let bg = s.bg;
  if (s.inverse) [fg, bg] = [bg, fg];
  const cls = [];
  if (typeof fg === "number") cls.push(`ansi-fg-${fg}`);
  else if (typeof fg === "string") {
    cls.push("ansi-fg");
    span.style.setProperty("--ansi-fg", fg);
  } else if (s.inverse) cls.push("ansi-fg-inverse");
  if (typeof bg === "number") cls.push(`ansi-bg-${bg}`);
  else if (typeof bg === "string") {
    cls.push("ansi-bg");
    span.style.setProperty("--ansi-bg", bg);
  } else if (s.inverse) cls.push("ansi-bg-inverse");
  if (s.bold) cls.push("ansi-bold");
  if (s.dim) cls.push("ansi-dim");
  if (s.italic) cls.push("ansi-italic");
  if (s.underline) cls.push("ansi-underline");
  span.className = cls.join(" ");
  return span;
}

/**
 * Renders a line into `parent`: styled spans, with `marks` ([start, end, current] in plain-text
 * characters, sorted, not overlapping) wrapped in <mark class="log-match">.
 * @param {HTMLElement} parent
 * @param {string} line
 * @param {[number, number, boolean][]} marks
 * @param {number} limit characters shown at most
 */
export function renderAnsi(parent, line, marks, limit) {
  const { segs } = parseAnsi(line);
  let pos = 0;
  let mi = 0;
  for (const seg of segs) {
    let text = seg.text;
    if (pos >= limit) break;
    if (pos + text.length > limit) text = text.slice(0, limit - pos);
    let at = 0;
    while (at < text.length) {
      const abs = pos + at;
      while (mi < marks.length && marks[mi][1] <= abs) mi++;
      const mark = marks[mi];
      if (!mark || mark[0] >= pos + text.length) {
        parent.append(styled(text.slice(at), seg.style));
        break;
      }
      if (mark[0] > abs) {
        parent.append(styled(text.slice(at, mark[0] - pos), seg.style));
        at = mark[0] - pos;
        continue;
      }
      const stop = Math.min(text.length, mark[1] - pos);
      const el = h("mark.log-match", { class: mark[2] ? "is-current" : null }, styled(text.slice(at, stop), seg.style));
      if (mark[2]) el.dataset.testid = "log-match-current";
      parent.append(el);
      at = stop;
    }
    pos += seg.text.length;
  }
}
