// A project's members and invitations (the Members card of the project page): the owner changes
// roles, removes members, invites people and withdraws invitations.

import { api, asApiError } from "../api.js";
import { clear, errorBanner, field, h, loadingEl } from "../lib/dom.js";
import { expiryEl } from "../lib/format.js";
import { signedIn } from "../lib/shell.js";
import { state, withIds } from "../lib/state.js";

/** @typedef {import("../lib/types.js").Member} Member */
/** @typedef {import("../lib/types.js").Invitation} Invitation */
/** @typedef {import("../lib/types.js").Role} Role */

/**
 * @param {string} projectId
 * @param {{ role: () => Role, showError: (text: string) => void, hideError: () => void }} page
 */
export function membersCard(projectId, { role, showError, hideError }) {
  const ps = {
    /** @type {Member[] | null} */
    members: null,
    /** @type {string | null} */
    membersError: null,
    /** @type {Invitation[] | null} */
    invites: null,
    /** @type {string | null} */
    invitesError: null,
    invitesSeq: 0,
    /** @type {boolean | null} */
    ownerShown: null,
  };
  const membersList = h("div");
  const invitesList = h("div.pending-invites", { hidden: true, "data-testid": "pending-invitations" });
  const invite = inviteForm();
  const root = h("div.card-body", null, membersList, invitesList, invite.root);

  /** The owner's "Invite" form (built once, so typing survives re-renders). */
  function inviteForm() {
    const email = h("input", {
      type: "email",
      autocomplete: "off",
      placeholder: "teammate@example.com",
      "data-testid": "invite-email",
    });
    const roleSel = h(
      "select",
      { "data-testid": "invite-role" },
      ["viewer", "maintainer"].map((r) => h("option", { value: r, text: r })),
    );
    const send = h("button.btn.btn-small", { type: "submit", "data-testid": "invite-submit" }, "Invite");
    const err = h("div.form-error", { role: "alert", hidden: true, "data-testid": "invite-error" });
    const sent = h("div.notice", { role: "status", hidden: true, "data-testid": "invite-sent" });
    const form = h(
      "form.member-form",
      { "aria-label": "Invite someone" },
      h("div.grow", null, field("Invite by email", email)),
      field("Role", roleSel),
      send,
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      sent.hidden = true;
      const addr = email.value.trim();
      if (!addr) {
        err.textContent = "Enter the email address to invite.";
        err.hidden = false;
        email.focus();
        return;
      }
      send.disabled = true;
      try {
        const inv = await api.inviteToProject(projectId, addr, roleSel.value);
        email.value = "";
        sent.textContent = `Invitation sent to ${inv?.email || addr}; they'll see it when they sign in.`;
        sent.hidden = false;
        loadInvitations();
      } catch (caught) {
        const e = asApiError(caught);
        err.textContent =
          e.code === "already_member"
            ? `${addr} is already a member. Change their role in the list above.`
            : e.code === "too_many_invitations"
              ? "This project has too many pending invitations. Withdraw some before inviting more."
              : e.message;
        err.hidden = false;
      } finally {
        send.disabled = false;
      }
    });
    return { root: h("div.invite-box", { hidden: true }, form, err, sent) };
  }

  async function loadInvitations() {
    const seq = ++ps.invitesSeq;
    try {
      const list = await api.projectInvitations(projectId);
      if (seq !== ps.invitesSeq) return;
      ps.invites = withIds(list);
      ps.invitesError = null;
    } catch (caught) {
      const err = asApiError(caught);
      if (seq !== ps.invitesSeq || !signedIn()) return;
      if (err.status === 403)
        ps.invites = []; // no longer the owner
      else ps.invitesError = err.message;
    }
    renderInvitations();
  }

  /** Owner controls appear once the project's status says the caller owns it. */
  function syncOwner() {
    const owner = role() === "owner";
    if (owner === ps.ownerShown) return;
    ps.ownerShown = owner;
    invite.root.hidden = !owner;
    if (ps.members) renderMembers();
    if (owner && !ps.invites) loadInvitations();
    else renderInvitations();
  }

  async function loadMembers() {
    try {
      const list = await api.projectMembers(projectId);
      ps.members = Array.isArray(list) ? list : [];
      ps.membersError = null;
    } catch (caught) {
      const err = asApiError(caught);
      if (!signedIn()) return;
      ps.membersError = err.message;
    }
    renderMembers();
  }

  function renderMembers() {
    clear(membersList);
    if (ps.membersError && !ps.members) {
      membersList.append(errorBanner(`Couldn't load members: ${ps.membersError}`, loadMembers));
      return;
    }
    if (!ps.members) {
      membersList.append(loadingEl("Loading members…"));
      return;
    }
    const owner = role() === "owner";
    const me = state.me?.email;
    membersList.append(
      h(
        "ul.plist",
        null,
        ps.members.map((m) => {
          let roleEl = h("span.role", { class: `role-${m.role}`, text: m.role });
          /** @type {HTMLButtonElement | null} */
          let remove = null;
          if (owner && m.role !== "owner") {
            // The owner changes an existing member's role here (PUT …/members); new people are invited.
            const sel = h(
              "select.prow-role",
              { "data-testid": "member-role", "aria-label": `Role of ${m.email}` },
              ["viewer", "maintainer"].map((r) => h("option", { value: r, text: r })),
            );
            sel.value = m.role;
            sel.addEventListener("change", async () => {
              sel.disabled = true;
              hideError();
              try {
                const list = await api.setProjectMember(projectId, m.email, sel.value);
                if (Array.isArray(list)) {
                  ps.members = list;
                  renderMembers();
                } else loadMembers();
              } catch (caught) {
                const err = asApiError(caught);
                sel.value = m.role;
                sel.disabled = false;
                showError(`Couldn't change the role of ${m.email}: ${err.message}`);
                if (err.code === "not_a_member") loadMembers();
              }
            });
            roleEl = sel;
          }
          if (owner && m.email !== me) {
            const btn = h(
              "button.btn.btn-small.btn-ghost.btn-danger",
              { type: "button", "data-testid": "member-remove", "aria-label": `Remove ${m.email}` },
              "Remove",
            );
            remove = btn;
            btn.addEventListener("click", async () => {
              if (!window.confirm(`Remove ${m.email} from this project?`)) return;
              btn.disabled = true;
              try {
                await api.removeProjectMember(projectId, m.user_id);
                loadMembers();
              } catch (caught) {
                const err = asApiError(caught);
                btn.disabled = false;
                showError(`Couldn't remove the member: ${err.message}`);
              }
            });
          }
          return h(
            "li.prow",
            { "data-testid": "member-row", "data-user-id": m.user_id || "" },
            h("span.prow-name", { text: m.email || m.user_id }),
            roleEl,
            remove,
          );
        }),
      ),
    );
  }

  /** Pending invitations, under the member list (owner only; nothing when there are none). */
  function renderInvitations() {
    clear(invitesList);
    const show = role() === "owner" && (ps.invites ? ps.invites.length > 0 : !!ps.invitesError);
    invitesList.hidden = !show;
    if (!show) return;
    if (!ps.invites) {
      invitesList.append(errorBanner(`Couldn't load the pending invitations: ${ps.invitesError}`, loadInvitations));
      return;
    }
    invitesList.append(
      h("h3.sub-title", { text: "Pending invitations" }),
      h(
        "ul.plist",
        null,
        ps.invites.map((inv) => {
          const withdraw = h(
            "button.btn.btn-small.btn-ghost.btn-danger",
            {
              type: "button",
              "data-testid": "invitation-withdraw",
              "aria-label": `Withdraw the invitation to ${inv.email}`,
            },
            "Withdraw",
          );
          withdraw.addEventListener("click", async () => {
            if (!window.confirm(`Withdraw the invitation to ${inv.email}?`)) return;
            withdraw.disabled = true;
            hideError();
            try {
              await api.withdrawInvitation(projectId, inv.id);
            } catch (caught) {
              const err = asApiError(caught);
              if (err.status !== 404) {
                // 404: it was accepted, declined or expired meanwhile
                withdraw.disabled = false;
                showError(`Couldn't withdraw the invitation: ${err.message}`);
                return;
              }
            }
            loadInvitations();
            loadMembers(); // it may have been accepted meanwhile
          });
          return h(
            "li.prow.invite-row",
            { "data-testid": "pending-invitation-row", "data-invitation-id": inv.id },
            h("span.prow-name", { text: inv.email }),
            h("span.role", { class: `role-${inv.role}`, text: inv.role }),
            expiryEl(inv.expires_at),
            withdraw,
          );
        }),
      ),
    );
  }

  return {
    root,
    load: loadMembers,
    syncOwner,
    destroy: () => {
      ps.invitesSeq++;
    },
  };
}
