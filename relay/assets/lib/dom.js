// DOM helpers. Everything goes into the page as DOM nodes and text nodes, never as HTML.

/** @typedef {import("./types.js").Child} Child */
/** @typedef {import("./types.js").Attrs} Attrs */

/**
 * h("div.class1.class2", {attrs}, ...children) — children: nodes, strings, arrays, null.
 * Attributes: `class` (added), `text` (textContent), `dataset`, `on<event>` listeners,
 * `value` / `checked` / `disabled` / `hidden` (set as properties), anything else as an attribute
 * (`true` as an empty one; null, undefined and false leave it out).
 * @template {string} S
 * @param {S} spec
 * @param {Attrs | null} [attrs]
 * @param {...Child} children
 * @returns {import("./types.js").ElementOf<S>}
 */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className += (el.className ? " " : "") + v;
      else if (k === "text") el.textContent = String(v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on") && typeof v === "function")
        el.addEventListener(k.slice(2), /** @type {EventListener} */ (v));
      else if (k === "value" || k === "checked" || k === "disabled" || k === "hidden") Reflect.set(el, k, v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return /** @type {import("./types.js").ElementOf<S>} */ (el);
}

/**
 * @param {Element} el
 * @param {Child[]} children
 */
export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/**
 * A data table in its scrolling wrapper: one header cell per column (a string, or `null` to
 * leave the column out; `{ aria }` for a header with only an accessible name), then `rows`.
 * @param {string} cls extra classes of the table (`""` for none), e.g. `.tasks-table`
 * @param {(string | { aria: string } | null)[]} columns
 * @param {Child} rows
 */
export function dataTable(cls, columns, rows) {
  const heads = columns.map((c) =>
    c === null
      ? null
      : typeof c === "string"
        ? h("th", { scope: "col", text: c })
        : h("th", { scope: "col", "aria-label": c.aria }),
  );
  return h(
    "div.table-wrap",
    null,
    h(`table.data${cls}`, null, h("thead", null, h("tr", null, heads)), h("tbody", null, rows)),
  );
}

/** @param {Element} el */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** @type {Record<string, string[]>} */
const ICONS = {
  branch: ["M6 3v12", "M18 9a3 3 0 1 0 0-0.01", "M6 21a3 3 0 1 0 0-0.01", "M18 9c0 6-12 3-12 9"],
  folder: ["M3 7a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z"],
  copy: ["M9 9h10v10H9z", "M5 15V5h10"],
  external: ["M14 4h6v6", "M20 4l-9 9", "M18 14v5H5V6h5"],
  host: ["M4 5h16v10H4z", "M9 19h6", "M12 15v4"],
  search: ["M11 18a7 7 0 1 0 0-14 7 7 0 0 0 0 14z", "M16 16l5 5"],
};

/**
 * A tiny stroke icon, built as DOM (no markup strings).
 * @param {keyof typeof ICONS} name
 */
export function svgIcon(name) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  for (const d of ICONS[name] || []) {
    const p = document.createElementNS(NS, "path");
    p.setAttribute("d", d);
    svg.append(p);
  }
  return svg;
}

let uidSeq = 0;
/** A fresh element id. @param {string} prefix */
export const uid = (prefix) => `${prefix}-${++uidSeq}`;

export const enc = encodeURIComponent;

// ------------------------------------------------------------------ clipboard

/** @param {string} text */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      /* fall back */
    }
  }
  const ta = h("textarea", { readonly: true, class: "offscreen" });
  ta.value = text;
  document.body.append(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

/**
 * @param {() => string} getText
 * @param {string} [label]
 */
export function copyButton(getText, label = "Copy") {
  const span = h("span", { text: label });
  const btn = h("button.btn.btn-small.copy", { type: "button", title: "Copy to clipboard" }, svgIcon("copy"), span);
  let timer = 0;
  btn.addEventListener("click", async () => {
    const ok = await copyText(getText());
    span.textContent = ok ? "Copied" : "Press Ctrl+C";
    btn.classList.toggle("copied", ok);
    clearTimeout(timer);
    timer = setTimeout(() => {
      span.textContent = label;
      btn.classList.remove("copied");
    }, 1600);
  });
  return btn;
}

/**
 * A monospace command or secret with a copy button beside it (never over it).
 * @param {string} text
 * @param {Attrs} [attrs]
 */
export function codeBox(text, attrs = {}) {
  const code = h("code.codebox-text", attrs, text);
  return h(
    "div.codebox",
    null,
    code,
    copyButton(() => code.textContent || ""),
  );
}

// ------------------------------------------------------------------ downloads

/**
 * Saves `blob` as a file the browser downloads (through an object URL and a temporary link).
 * @param {Blob} blob
 * @param {string} filename
 */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// ------------------------------------------------------------------ page pieces

/**
 * A <label> above a control.
 * @param {string} label
 * @param {HTMLElement} control
 * @param {string} [hint]
 */
export function field(label, control, hint) {
  if (!control.id) control.id = uid("f");
  return h(
    "div.field",
    null,
    h("label.field-label", { for: control.id, text: label }),
    control,
    hint ? h("span.field-hint", { text: hint }) : null,
  );
}

/** @param {...(Node | null | undefined | false)} items */
export function crumbs(...items) {
  /** @type {Node[]} */
  const out = [];
  items
    .filter((x) => !!x)
    .forEach((it, i) => {
      if (i) out.push(h("span.crumb-sep", { "aria-hidden": "true", text: "/" }));
      out.push(/** @type {Node} */ (it));
    });
  return h("nav.crumbs", { "aria-label": "Breadcrumb" }, out);
}

/** @param {string} text */
export function loadingEl(text) {
  return h("div.loading", null, h("span.spinner"), text);
}

/**
 * @param {string} text
 * @param {() => unknown} [retry]
 */
export function errorBanner(text, retry) {
  let btn = null;
  if (retry) {
    const b = h("button.btn.btn-small", { type: "button" }, "Retry");
    b.addEventListener("click", () => {
      b.disabled = true;
      retry();
    });
    btn = b;
  }
  return h("div.banner", { role: "alert" }, h("span", { text }), btn);
}
