// The Users page (#/admin, administrators only): every account, deactivate or activate it, and
// make a one-time password reset link.

import { api, asApiError } from "../api.js";
import { clear, copyButton, dataTable, errorBanner, h, loadingEl, uid } from "../lib/dom.js";
import { fmtDateTime, plural, timeEl, timeUntil } from "../lib/format.js";
import { signedIn, whenMe } from "../lib/shell.js";
import { badResponse, state, withIds } from "../lib/state.js";

/** @typedef {import("../lib/types.js").UserView} UserView */
/** @typedef {import("../lib/types.js").Page} Page */

const ADMIN_PAGE = 100;

/** @returns {Page} */
export function buildAdminPage() {
  const as = {
    /** @type {UserView[] | null} */
    users: null,
    /** @type {string | null} */
    error: null,
    seq: 0,
    more: false,
    loadingMore: false,
    forbidden: false,
    /** @type {{ email: string, link: string, expires_at: string } | null} */
    reset: null,
    /** @type {{ error: boolean, text: string } | null} */
    notice: null,
  };
  const heading = h("h1", { id: uid("h"), tabindex: -1, text: "Users" });
  const summary = h("span.summary");
  const noticeSlot = h("div");
  const resetSlot = h("div");
  const listSlot = h("div");
  const root = h(
    "section.view.view-narrow",
    { "aria-labelledby": heading.id },
    h("div.view-head", null, h("div.view-title", null, heading, summary)),
    h("p.lead.muted", {
      text: "Everyone with an account on this relay. Deactivating ends their logins and stops their tokens at once; a reset link lets them set a new password (hand it over yourself).",
    }),
    noticeSlot,
    resetSlot,
    listSlot,
  );

  /** @param {boolean} more */
  async function load(more) {
    const seq = ++as.seq;
    const after = more && as.users?.length ? as.users[as.users.length - 1].email : undefined;
    if (more) {
      as.loadingMore = true;
      render();
    }
    try {
      const me = await whenMe();
      if (seq !== as.seq) return;
      if (me.role !== "admin") {
        as.forbidden = true;
        render();
        return;
      }
      const list = await api.adminUsers({ limit: ADMIN_PAGE, after });
      if (seq !== as.seq) return;
      const page = withIds(list);
      const known = as.users || [];
      as.users = more ? [...known, ...page.filter((u) => !known.some((x) => x.id === u.id))] : page;
      as.more = page.length >= ADMIN_PAGE;
      as.error = null;
    } catch (caught) {
      if (seq !== as.seq || !signedIn()) return;
      const err = asApiError(caught);
      if (err.status === 403) as.forbidden = true;
      else if (more) as.notice = { error: true, text: `Couldn't load more users: ${err.message}` };
      else as.error = err.message;
    } finally {
      if (seq === as.seq) as.loadingMore = false;
    }
    render();
  }

  /** @param {Partial<UserView> & { id: string }} u */
  const replaceUser = (u) => {
    if (!u || typeof u.id !== "string" || !as.users) return;
    as.users = as.users.map((x) => (x.id === u.id ? { ...x, ...u } : x));
  };

  function renderNotice() {
    clear(noticeSlot);
    if (!as.notice) return;
    noticeSlot.append(
      h(as.notice.error ? "div.form-error.page-notice" : "div.notice.page-notice", {
        role: as.notice.error ? "alert" : "status",
        "data-testid": as.notice.error ? "admin-error" : "admin-notice",
        text: as.notice.text,
      }),
    );
  }

  function renderReset() {
    clear(resetSlot);
    const r = as.reset;
    if (!r) return;
    const done = h("button.btn.btn-small", { type: "button" }, "Done");
    done.addEventListener("click", () => {
      as.reset = null;
      renderReset();
    });
    const input = h("input.mono", {
      type: "text",
      readonly: true,
      value: r.link,
      "data-testid": "admin-reset-link",
      "aria-label": `Reset link for ${r.email}`,
      spellcheck: "false",
    });
    input.addEventListener("focus", () => input.select());
    resetSlot.append(
      h(
        "div.secret-panel",
        { role: "region", "aria-label": "Reset link", "data-email": r.email },
        h("div.secret-head", null, h("h2", null, "Reset link for ", h("span.mono", { text: r.email })), done),
        h(
          "p.warn",
          null,
          h("strong", { text: "Copy it now — it is shown only this once." }),
          " Hand it over yourself. It works once, ",
          h("span", { title: fmtDateTime(r.expires_at) }, `until it expires ${timeUntil(r.expires_at)}`),
          "; using it ends all their logins.",
        ),
        h(
          "div.reset-link",
          null,
          input,
          copyButton(() => input.value),
        ),
      ),
    );
    input.focus();
  }

  /** @param {UserView} u */
  function userRow(u) {
    const self = !!(state.me && state.me.id === u.id);
    const active = u.active !== false;
    const reset = h(
      "button.btn.btn-small",
      { type: "button", "data-testid": "admin-reset", title: "Make a one-time link to set a new password" },
      "Reset link",
    );
    const toggle = active
      ? h(
          "button.btn.btn-small.btn-danger",
          {
            type: "button",
            "data-testid": "admin-deactivate",
            disabled: self,
            title: self ? "You cannot deactivate your own account." : "End their logins and stop their tokens",
          },
          "Deactivate",
        )
      : h("button.btn.btn-small", { type: "button", "data-testid": "admin-activate" }, "Activate");
    reset.addEventListener("click", async () => {
      reset.disabled = true;
      as.notice = null;
      try {
        const res = await api.adminResetLink(u.id, 60);
        if (!res || typeof res.link !== "string") throw badResponse("The relay returned no link.");
        as.reset = { email: u.email, link: res.link, expires_at: res.expires_at };
        renderNotice();
        renderReset();
      } catch (caught) {
        const err = asApiError(caught);
        as.notice = { error: true, text: `Couldn't make a reset link for ${u.email}: ${asApiError(err).message}` };
        renderNotice();
      } finally {
        reset.disabled = false;
      }
    });
    toggle.addEventListener("click", async () => {
      if (
        active &&
        !window.confirm(
          `Deactivate ${u.email}?\n\nTheir logins end and their tokens stop working at once. You can activate the account again later.`,
        )
      )
        return;
      toggle.disabled = true;
      toggle.textContent = active ? "Deactivating…" : "Activating…";
      as.notice = null;
      try {
        const changed = await (active ? api.adminDeactivate(u.id) : api.adminActivate(u.id));
        replaceUser(changed && typeof changed === "object" ? changed : { id: u.id, active: !active });
        as.notice = { error: false, text: `${u.email} is ${active ? "deactivated" : "active again"}.` };
      } catch (caught) {
        const err = asApiError(caught);
        as.notice = {
          error: true,
          text:
            err.code === "self"
              ? "You cannot deactivate your own account."
              : `Couldn't ${active ? "deactivate" : "activate"} ${u.email}: ${err.message}`,
        };
      }
      render();
    });
    return h(
      "tr",
      {
        "data-testid": "admin-user-row",
        "data-email": u.email,
        "data-user-id": u.id,
        "data-active": active ? "true" : "false",
        class: active ? "" : "is-archived",
      },
      h(
        "td.t-name",
        null,
        h("div.clip", { text: u.email, title: u.email }),
        u.full_name ? h("div.muted.small.clip", { text: u.full_name }) : null,
      ),
      h(
        "td",
        null,
        h("span.role", { class: `role-${u.role}`, text: u.role || "member" }),
        self ? h("span.muted.small", { text: " (you)" }) : null,
      ),
      h(
        "td",
        null,
        h(
          "span.pstatus",
          {
            class: active ? "pstatus-active" : "pstatus-archived",
            "data-testid": "admin-user-state",
            "data-state": active ? "active" : "deactivated",
          },
          active ? "active" : "deactivated",
        ),
      ),
      h("td.t-time", null, timeEl(u.created_at)),
      h("td.t-actions", null, h("div.row-actions", null, reset, toggle)),
    );
  }

  function render() {
    renderNotice();
    clear(listSlot);
    if (as.forbidden) {
      summary.textContent = "";
      listSlot.append(
        h(
          "div.empty.empty-small",
          { "data-testid": "admin-forbidden" },
          h("h2", { text: "Administrators only" }),
          h("p.muted", { text: "Only an administrator of this relay can see and manage its users." }),
        ),
      );
      return;
    }
    const list = as.users;
    if (as.error && !list) {
      listSlot.append(errorBanner(`Couldn't load users: ${as.error}`, () => load(false)));
      return;
    }
    if (!list) {
      listSlot.append(loadingEl("Loading users…"));
      return;
    }
    const off = list.filter((u) => u.active === false).length;
    summary.textContent = `${plural(list.length, "user")}${as.more ? "+" : ""}${off ? ` · ${off} deactivated` : ""}`;
    listSlot.append(dataTable("", ["User", "Role", "State", "Joined", { aria: "Actions" }], list.map(userRow)));
    if (as.more) {
      const more = h(
        "button.btn.btn-small",
        { type: "button", "data-testid": "admin-more", disabled: as.loadingMore },
        as.loadingMore ? "Loading…" : "Load more",
      );
      more.addEventListener("click", () => load(true));
      listSlot.append(h("div.pager", null, more));
    }
  }

  render();
  load(false);
  return {
    root,
    heading,
    nav: "admin",
    title: () => "Users",
    destroy: () => {
      as.seq++;
    },
  };
}
