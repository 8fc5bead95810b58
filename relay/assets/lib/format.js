// Times, durations, sizes and counts for people, in the user's time zone.

import { h } from "./dom.js";

let dateFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
let dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
let clockFmt = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

/** Whether `tz` is an IANA time zone this browser knows. @param {string} tz */
export function validTimeZone(tz) {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Dates are shown in the user's time zone (the browser's when none is set). @param {string | null | undefined} tz */
export function applyTimeZone(tz) {
  const zone = tz && validTimeZone(tz) ? { timeZone: tz } : {};
  dateFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", ...zone });
  dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium", ...zone });
  clockFmt = new Intl.DateTimeFormat(undefined, { timeStyle: "medium", ...zone });
}

/** @param {string | null | undefined} iso */
export function parseTime(iso) {
  if (!iso) return Number.NaN;
  return Date.parse(iso);
}

/** "5 Dec 2026, 10:42:13" for a time in ms (or an ISO string). @param {number | string | null | undefined} t */
export function fmtDateTime(t) {
  const ms = typeof t === "number" ? t : parseTime(t);
  return Number.isNaN(ms) ? "an unknown time" : dateTimeFmt.format(new Date(ms));
}

/** "10:42:13", or the date too when it is not today. @param {number} ms */
export function fmtClock(ms) {
  const d = new Date(ms);
  return new Date().toDateString() === d.toDateString() ? clockFmt.format(d) : dateTimeFmt.format(d);
}

/** "just now", "3 min ago", "2 h ago", "4 days ago", or a date. @param {string | null | undefined} iso */
export function relTime(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return "never";
  const s = Math.floor((Date.now() - t) / 1000);
  if (s < 60) return "just now"; // also covers small clock skew into the future
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `${hr} h ago`;
  const d = Math.floor(hr / 24);
  if (d < 30) return d === 1 ? "yesterday" : `${d} days ago`;
  return dateFmt.format(new Date(t));
}

/** "under a minute", "12 min", "3 h", "4 days" — how long since `iso`. @param {string | null | undefined} iso */
export function durationSince(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return "unknown";
  const m = Math.floor((Date.now() - t) / 60_000);
  if (m < 1) return "under a minute";
  if (m < 60) return `${m} min`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `${hr} h`;
  return plural(Math.floor(hr / 24), "day");
}

/** "in 6 days", "in 5 h", "in 12 min", "soon" — how long until `iso`. @param {string | null | undefined} iso */
export function timeUntil(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return "at an unknown time";
  const m = Math.floor((t - Date.now()) / 60_000);
  if (m < 1) return "soon";
  if (m < 60) return `in ${m} min`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `in ${hr} h`;
  return `in ${plural(Math.round(hr / 24), "day")}`;
}

/** "expires in 6 days", with the exact time as a tooltip. @param {string} iso */
export function expiryEl(iso) {
  const t = parseTime(iso);
  return h(
    "time.expiry.muted.small",
    {
      datetime: iso || null,
      "data-testid": "invitation-expiry",
      title: Number.isNaN(t) ? null : `Expires ${fmtDateTime(t)}`,
    },
    `expires ${timeUntil(iso)}`,
  );
}

/** @typedef {"ago" | "duration" | "elapsed"} TimeMode */

/**
 * @param {string | undefined} iso
 * @param {string | undefined} mode
 */
function formatTime(iso, mode) {
  if (mode === "elapsed") {
    const t = parseTime(iso);
    return Number.isNaN(t) ? "—" : fmtDuration(Math.max(0, Date.now() - t));
  }
  return mode === "duration" ? durationSince(iso) : relTime(iso);
}

/**
 * A <time> element whose text the ticker keeps current.
 * @param {string | null | undefined} iso
 * @param {TimeMode} [mode]
 * @param {import("./types.js").Attrs} [attrs]
 */
export function timeEl(iso, mode = "ago", attrs = {}) {
  const t = parseTime(iso);
  const el = h("time.rel", { ...attrs, datetime: iso || null, dataset: { rel: iso || "", mode } });
  el.textContent = formatTime(iso || undefined, mode);
  if (!Number.isNaN(t)) el.title = dateTimeFmt.format(new Date(t));
  return el;
}

/** Brings every <time> made by timeEl() up to date (only running durations when `onlyElapsed`). @param {boolean} [onlyElapsed] */
export function tickTimes(onlyElapsed) {
  const all = onlyElapsed !== true;
  for (const el of document.querySelectorAll(all ? "time[data-rel]" : "time[data-mode=elapsed]")) {
    if (!(el instanceof HTMLElement)) continue;
    const txt = formatTime(el.dataset.rel, el.dataset.mode);
    if (el.textContent !== txt) el.textContent = txt;
  }
}

/**
 * @param {number} n
 * @param {string} word
 * @param {string} [pluralWord]
 */
export function plural(n, word, pluralWord) {
  return `${n} ${n === 1 ? word : pluralWord || `${word}s`}`;
}

/** "850 ms", "4.2 s", "12 s", "3 min 4 s", "2 h 5 min". @param {number | null | undefined} ms */
export function fmtDuration(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const total = Math.floor(s);
  const m = Math.floor(total / 60);
  if (m < 60) return `${m} min ${total % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** "30 s", "10 min", "1 h 30 min", "2 days" — a time limit given in seconds. @param {number} s */
export function fmtSeconds(s) {
  if (!Number.isFinite(s) || s < 0) return "—";
  if (s < 60) return `${s} s`;
  if (s % 86_400 === 0) return plural(s / 86_400, "day");
  if (s < 3600) return s % 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s / 60} min`;
  const m = Math.round(s / 60);
  return m % 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m / 60} h`;
}

/** "512 B", "3.4 KiB", "12.0 MiB". @param {number} n */
export function fmtBytes(n) {
  if (!Number.isFinite(n) || n < 0) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** The URL when it is http(s), else null (never a script URL in an href). @param {unknown} s */
export function safeHttpUrl(s) {
  if (typeof s !== "string") return null;
  try {
    const u = new URL(s, location.href);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

/** Names sorted as people expect ("ws2" before "ws10", case-blind). @param {unknown} a @param {unknown} b */
export function byName(a, b) {
  return String(a || "").localeCompare(String(b || ""), undefined, { sensitivity: "base", numeric: true });
}

const usdFmt = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD" });
const usdSmallFmt = new Intl.NumberFormat(undefined, {
  style: "currency",
  currency: "USD",
  maximumSignificantDigits: 2,
});
const countFmt = new Intl.NumberFormat(undefined);
const compactFmt = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

/** "$0.00", "$0.00026" (two significant digits under a cent), "$1.23". @param {number | null | undefined} usd */
export function fmtUsd(usd) {
  if (typeof usd !== "number" || !Number.isFinite(usd)) return "—";
  return usd !== 0 && Math.abs(usd) < 0.01 ? usdSmallFmt.format(usd) : usdFmt.format(usd);
}

/** "12,345" — or "12.3K" when `compact`. @param {number | null | undefined} n @param {boolean} [compact] */
export function fmtCount(n, compact = false) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "—";
  return compact && Math.abs(n) >= 10_000 ? compactFmt.format(n) : countFmt.format(n);
}
