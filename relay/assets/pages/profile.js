// The Profile page (#/profile): name, theme, time zone, default project, and the password.

import { api, asApiError } from "../api.js";
import { field, h, uid } from "../lib/dom.js";
import { byName, plural, validTimeZone } from "../lib/format.js";
import { setMe, signedIn, whenMe } from "../lib/shell.js";
import { projectNames, state, withIds } from "../lib/state.js";
import { isTheme, THEME_LABELS, THEMES } from "../lib/theme.js";
import { RESET_MAX, RESET_MIN } from "./login.js";

/** @typedef {import("../lib/types.js").User} User */
/** @typedef {import("../lib/types.js").Project} Project */
/** @typedef {import("../lib/types.js").MeChange} MeChange */
/** @typedef {import("../lib/types.js").Page} Page */

/** @returns {Page} */
export function buildProfilePage() {
  const ps = {
    seq: 0,
    /** @type {User | null} */
    me: null,
    /** @type {Project[] | null} */
    projects: null,
  };
  const heading = h("h1", { id: uid("h"), tabindex: -1, text: "Profile" });
  const summary = h("span.summary", { "data-testid": "profile-email" });
  const browserZone = (() => {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch {
      return "";
    }
  })();

  // Profile and preferences.
  const name = h("input", {
    type: "text",
    maxlength: 200,
    autocomplete: "name",
    "data-testid": "profile-name",
    disabled: true,
  });
  const theme = h(
    "select",
    { "data-testid": "profile-theme", disabled: true },
    THEMES.map((t) => h("option", { value: t, text: THEME_LABELS[t] })),
  );
  const zoneList = h("datalist", { id: uid("zones") });
  const timeZone = h("input", {
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: browserZone || "e.g. Europe/Berlin",
    list: zoneList.id,
    "data-testid": "profile-time-zone",
    disabled: true,
  });
  const defaultProject = h(
    "select",
    { "data-testid": "profile-default-project", disabled: true },
    h("option", { value: "", text: "None — open on Workspaces" }),
  );
  const save = h("button.btn.btn-primary", { type: "submit", "data-testid": "profile-save", disabled: true }, "Save");
  const saved = h("span.form-ok", { role: "status", "data-testid": "profile-saved", hidden: true, text: "Saved." });
  const formError = h("div.form-error", { role: "alert", "data-testid": "profile-error", hidden: true });
  const form = h(
    "form.profile-form",
    { "aria-label": "Profile" },
    h(
      "div.form-grid",
      null,
      field("Full name", name, "Shown to the people you work with."),
      field("Theme", theme),
      field(
        "Time zone",
        timeZone,
        browserZone ? `Dates are shown in it. Empty: this browser's (${browserZone}).` : "Dates are shown in it.",
      ),
      field("Default project", defaultProject, "The dashboard opens on it."),
    ),
    zoneList,
    formError,
    h("div.form-actions", null, saved, save),
  );
  form.addEventListener("input", () => {
    saved.hidden = true;
  });

  // Password.
  const current = h("input", { type: "password", autocomplete: "current-password", "data-testid": "password-current" });
  const next = h("input", { type: "password", autocomplete: "new-password", "data-testid": "password-new" });
  const confirm = h("input", { type: "password", autocomplete: "new-password", "data-testid": "password-confirm" });
  const pwSave = h("button.btn.btn-primary", { type: "submit", "data-testid": "password-save" }, "Change password");
  const pwResult = h("span.form-ok", { role: "status", "data-testid": "password-result", hidden: true });
  const pwError = h("div.form-error", { role: "alert", "data-testid": "password-error", hidden: true });
  const pwForm = h(
    "form.password-form",
    { "aria-label": "Change password" },
    // A username field helps password managers file the new password under the right account.
    h("input.offscreen", {
      type: "email",
      autocomplete: "username",
      tabindex: -1,
      "aria-hidden": "true",
      readonly: true,
      value: state.me ? state.me.email : "",
    }),
    h(
      "div.form-grid.form-grid-3",
      null,
      field("Current password", current),
      field("New password", next, `At least ${RESET_MIN} characters.`),
      field("Repeat the new password", confirm),
    ),
    pwError,
    h("div.form-actions", null, pwResult, pwSave),
  );
  pwForm.addEventListener("input", () => {
    pwResult.hidden = true;
  });

  const root = h(
    "section.view.view-form",
    { "aria-labelledby": heading.id },
    h("div.view-head", null, h("div.view-title", null, heading, summary)),
    h(
      "section.card",
      { "aria-label": "Profile and preferences" },
      h("div.card-head", null, h("h2", { text: "Profile and preferences" })),
      h("div.card-body", null, form),
    ),
    h(
      "section.card",
      { "aria-label": "Password" },
      h(
        "div.card-head",
        null,
        h("h2", { text: "Password" }),
        h("span.muted.small", { text: "Changing it signs you out everywhere else." }),
      ),
      h("div.card-body", null, pwForm),
    ),
  );

  const pwUser = /** @type {HTMLInputElement} */ (pwForm.querySelector("input.offscreen"));
  /** @param {User} me */
  const fill = (me) => {
    ps.me = me;
    const prefs = me.preferences || {};
    summary.textContent = me.email || "";
    pwUser.value = me.email || "";
    name.value = me.full_name || "";
    theme.value = isTheme(prefs.theme) ? prefs.theme : "system";
    timeZone.value = prefs.time_zone || "";
    fillProjects();
    for (const el of [name, theme, timeZone, defaultProject, save]) el.disabled = false;
  };

  const fillProjects = () => {
    const want = ps.me?.preferences?.default_project || "";
    const list = (ps.projects || [])
      .filter((p) => p.status !== "archived" || p.id === want)
      .sort((a, b) => byName(a.name, b.name));
    while (defaultProject.options.length > 1) defaultProject.remove(1);
    for (const p of list) defaultProject.append(h("option", { value: p.id, text: p.name || p.id }));
    if (want && !list.some((p) => p.id === want)) {
      defaultProject.append(
        h("option", { value: want, text: projectNames.get(want) || `${want.slice(0, 8)}… (not loaded)` }),
      );
    }
    defaultProject.value = want;
  };

  async function load() {
    const seq = ++ps.seq;
    formError.hidden = true;
    try {
      const [me, projects] = await Promise.all([whenMe(), api.projects().catch(() => null)]);
      if (seq !== ps.seq) return;
      if (Array.isArray(projects)) {
        ps.projects = withIds(projects);
        for (const p of ps.projects) projectNames.set(p.id, p.name);
      }
      fill(me);
    } catch (err) {
      if (seq !== ps.seq || !signedIn()) return;
      formError.textContent = `Couldn't load your profile: ${asApiError(err).message}`;
      formError.hidden = false;
      const retry = h("button.btn.btn-small", { type: "button" }, "Retry");
      retry.addEventListener("click", load);
      formError.append(" ", retry);
    }
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!ps.me) return;
    formError.hidden = true;
    saved.hidden = true;
    const zone = timeZone.value.trim();
    if (zone && !validTimeZone(zone)) {
      formError.textContent = `“${zone}” is not a time zone this browser knows. Use a name like Europe/Berlin, or leave it empty.`;
      formError.hidden = false;
      timeZone.focus();
      return;
    }
    // The relay replaces the stored preferences whole: always send all of them.
    /** @type {MeChange} */
    const body = {
      full_name: name.value.trim(),
      preferences: {
        theme: isTheme(theme.value) ? theme.value : "system",
        time_zone: zone || null,
        default_project: defaultProject.value || null,
      },
    };
    save.disabled = true;
    save.textContent = "Saving…";
    try {
      const me = await api.updateMe(body);
      if (me && typeof me === "object") {
        setMe(me);
        fill(me);
      }
      saved.hidden = false;
    } catch (err) {
      formError.textContent = asApiError(err).message;
      formError.hidden = false;
    } finally {
      save.disabled = false;
      save.textContent = "Save";
    }
  });

  pwForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    pwError.hidden = true;
    pwResult.hidden = true;
    /** @param {string} text @param {HTMLElement | null} [focus] */
    const showError = (text, focus) => {
      pwError.textContent = text;
      pwError.hidden = false;
      if (focus) focus.focus();
    };
    const chars = [...next.value].length;
    if (!current.value) {
      showError("Enter your current password.", current);
      return;
    }
    if (chars < RESET_MIN || chars > RESET_MAX) {
      showError(
        chars < RESET_MIN
          ? `The new password needs at least ${RESET_MIN} characters.`
          : `The new password can have at most ${RESET_MAX} characters.`,
        next,
      );
      return;
    }
    if (confirm.value !== next.value) {
      showError("The two new passwords are not the same.", confirm);
      return;
    }
    pwSave.disabled = true;
    pwSave.textContent = "Changing…";
    try {
      const res = await api.changePassword(current.value, next.value);
      const n = Math.max(0, Number(res?.other_logins_ended) || 0);
      current.value = next.value = confirm.value = "";
      pwResult.textContent = `Password changed; ${plural(n, "other session")} ended.`;
      pwResult.hidden = false;
    } catch (caught) {
      const err = asApiError(caught);
      if (err.code === "wrong_password") {
        current.value = "";
        showError("The current password is wrong.", current);
      } else {
        showError(err.message || "Changing the password failed.", err.status === 422 ? next : null);
      }
    } finally {
      pwSave.disabled = false;
      pwSave.textContent = "Change password";
    }
  });

  // The time zone suggestions (the browser's list; typing any IANA name works too).
  if (typeof Intl.supportedValuesOf === "function") {
    try {
      zoneList.append(...Intl.supportedValuesOf("timeZone").map((z) => h("option", { value: z })));
    } catch {
      /* none */
    }
  }
  load();
  return {
    root,
    heading,
    nav: "profile",
    title: () => "Profile",
    destroy: () => {
      ps.seq++;
    },
  };
}
