// The colour theme: `data-theme` on <html>. "light" / "dark" force a palette, "system" follows the OS.

/** @typedef {import("./types.js").Theme} Theme */

/** @type {Theme[]} */
export const THEMES = ["system", "light", "dark"];
/** @type {Record<Theme, string>} */
export const THEME_LABELS = { system: "Same as the system", light: "Light", dark: "Dark" };
const THEME_KEY = "fulcrum-theme"; // remembered so the login screen and the next load start in it

/** @param {unknown} t @returns {t is Theme} */
export const isTheme = (t) => THEMES.includes(/** @type {Theme} */ (t));

/**
 * @param {unknown} theme
 * @param {boolean} [remember]
 */
export function applyTheme(theme, remember = true) {
  const t = isTheme(theme) ? theme : "system";
  document.documentElement.dataset.theme = t;
  if (remember) {
    try {
      localStorage.setItem(THEME_KEY, t);
    } catch {
      /* storage may be off */
    }
  }
}

export function storedTheme() {
  try {
    return localStorage.getItem(THEME_KEY);
  } catch {
    return null;
  }
}
