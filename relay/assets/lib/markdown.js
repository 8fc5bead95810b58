// A small Markdown subset for the assistant's answers, built as DOM nodes (never HTML): paragraphs
// with line breaks, headings, bullet and numbered lists, quotes, fenced code, pipe tables, rules,
// and inline code, bold, italics and links (http(s) links open in a new tab; `#/…` links stay in
// the dashboard). Anything else is shown as the text it is.

import { h } from "./dom.js";
import { safeHttpUrl } from "./format.js";

/** @typedef {Node | string} Piece */

const INLINE =
  /(`+)([\s\S]*?[^`])\1(?!`)|\*\*(?=\S)([\s\S]*?\S)\*\*|(?<![\w*])\*(?=[^\s*])([^*]*?[^\s*])\*(?![\w*])|\[([^\]\n]+)\]\(([^)\s]+)\)/g;

/**
 * Inline Markdown as nodes.
 * @param {string} text
 * @returns {Piece[]}
 */
export function inline(text) {
  /** @type {Piece[]} */
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    const at = m.index ?? 0;
    if (at > last) out.push(text.slice(last, at));
    if (m[1]) out.push(h("code.md-inline", { text: m[2].trim() || m[2] }));
    else if (m[3] !== undefined) out.push(h("strong", null, inline(m[3])));
    else if (m[4] !== undefined) out.push(h("em", null, inline(m[4])));
    else out.push(link(m[5], m[6]));
    last = at + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** @param {string} label @param {string} target */
function link(label, target) {
  if (/^#\/[^\s]*$/.test(target)) return h("a", { href: target }, inline(label));
  const url = safeHttpUrl(target);
  if (!url || !/^https?:/i.test(target)) return `[${label}](${target})`;
  return h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, inline(label));
}

/** Text with its line breaks kept. @param {string[]} list */
function lines(list) {
  /** @type {Piece[]} */
  const out = [];
  list.forEach((l, i) => {
    if (i) out.push(h("br"));
    out.push(...inline(l));
  });
  return out;
}

/** @param {string} row */
const cells = (row) =>
  row
    .trim()
    .replace(/^\|/, "")
    .replace(/\|$/, "")
    .split(/(?<!\\)\|/)
    .map((c) => c.trim().replace(/\\\|/g, "|"));

const FENCE = /^\s{0,3}(```+|~~~+)\s*([\w+-]*)\s*$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
const TABLE_SEP = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;

/**
 * Markdown text as a fragment of block elements.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function markdown(text) {
  const frag = document.createDocumentFragment();
  const src = text.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  /** @type {string[]} */
  let para = [];
  const flush = () => {
    if (para.length) frag.append(h("p", null, lines(para)));
    para = [];
  };
  while (i < src.length) {
    const line = src[i];
    const fence = line.match(FENCE);
    if (fence) {
      flush();
      const close = fence[1];
      const body = [];
      i++;
      while (i < src.length && !src[i].trim().startsWith(close)) body.push(src[i++]);
      i++; // the closing fence (or the end, while the answer is still streaming)
      frag.append(h("pre.md-code", { "data-lang": fence[2] || null }, h("code", { text: body.join("\n") })));
      continue;
    }
    if (!line.trim()) {
      flush();
      i++;
      continue;
    }
    const heading = line.match(HEADING);
    if (heading) {
      flush();
      frag.append(h("p.md-heading", { class: `md-h${heading[1].length}` }, inline(heading[2])));
      i++;
      continue;
    }
    if (RULE.test(line) && !para.length) {
      frag.append(h("hr.md-rule"));
      i++;
      continue;
    }
    if (line.includes("|") && i + 1 < src.length && TABLE_SEP.test(src[i + 1]) && src[i + 1].includes("-")) {
      flush();
      const head = cells(line);
      i += 2;
      /** @type {string[][]} */
      const rows = [];
      while (i < src.length && src[i].includes("|") && src[i].trim()) rows.push(cells(src[i++]));
      frag.append(
        h(
          "div.md-table",
          null,
          h(
            "table",
            null,
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                head.map((c) => h("th", null, inline(c))),
              ),
            ),
            h(
              "tbody",
              null,
              rows.map((r) =>
                h(
                  "tr",
                  null,
                  head.map((_, k) => h("td", null, inline(r[k] || ""))),
                ),
              ),
            ),
          ),
        ),
      );
      continue;
    }
    const bullet = line.match(BULLET);
    const numbered = bullet ? null : line.match(NUMBERED);
    if (bullet || numbered) {
      flush();
      const ordered = !!numbered;
      const re = ordered ? NUMBERED : BULLET;
      /** @type {string[][]} */
      const items = [];
      while (i < src.length) {
        const m = src[i].match(re);
        if (m) items.push([ordered ? m[2] : m[1]]);
        else if (src[i].trim() && /^\s{2,}\S/.test(src[i]) && items.length) items[items.length - 1].push(src[i].trim());
        else break;
        i++;
      }
      const start = numbered ? Number(numbered[1]) : 1;
      frag.append(
        h(
          ordered ? "ol" : "ul",
          { class: "md-list", start: ordered && start !== 1 ? start : null },
          items.map((it) => h("li", null, lines(it))),
        ),
      );
      continue;
    }
    const quote = line.match(QUOTE);
    if (quote) {
      flush();
      const body = [];
      while (i < src.length) {
        const m = src[i].match(QUOTE);
        if (!m) break;
        body.push(m[1]);
        i++;
      }
      frag.append(h("blockquote.md-quote", null, markdown(body.join("\n"))));
      continue;
    }
    para.push(line);
    i++;
  }
  flush();
  return frag;
}
