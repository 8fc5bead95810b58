// The Webhooks page's delivery log: an endpoint's deliveries, newest first (50 at a time, Older
// for more), and the chosen one's attempts and payload with Replay. The relay sends no socket
// messages about deliveries: the log is asked for again every few seconds while one of them is
// on its way, and for a minute after a test event or a replay.

import { api, asApiError } from "../api.js";
import { clear, copyButton, dataTable, errorBanner, h, loadingEl } from "../lib/dom.js";
import { fmtDateTime, fmtDuration, plural, timeEl, timeUntil } from "../lib/format.js";
import { signedIn } from "../lib/shell.js";
import { withIds } from "../lib/state.js";
import { answerEl, deliveryBadge, eventLabel, prettyJson } from "../lib/webhooks.js";

/** @typedef {import("../lib/types.js").Delivery} Delivery */
/** @typedef {import("../lib/types.js").DeliveryDetail} DeliveryDetail */
/** @typedef {import("../lib/types.js").Attempt} Attempt */

/** Deliveries per page. */
const PAGE = 50;
/** How often the log is asked for again while a delivery is on its way, ms. */
const POLL_PENDING = 5_000;
/** …and in the minute after a test event or a replay (the event is fanned out within a second or two). */
const POLL_BURST = 2_000;
const BURST = 60_000;

/**
 * @param {string} endpointId
 * @param {{ href: (deliveryId: string | null) => string, enabled: () => boolean }} hooks
 *   `href`: the page's hash with a delivery chosen; `enabled`: whether the endpoint is enabled
 */
export function deliveriesCard(endpointId, hooks) {
  const st = {
    /** @type {Delivery[] | null} */
    list: null,
    /** @type {string | null} */
    error: null,
    seq: 0,
    more: false,
    /** Older pages were loaded: they stay below the newest one when it is asked for again. */
    extended: false,
    loadingMore: false,
    /** @type {string | null} the chosen delivery */
    selected: null,
    /** @type {DeliveryDetail | null} */
    detail: null,
    /** @type {string | null} */
    detailError: null,
    detailSeq: 0,
    /** what the shown detail was built from: its state and attempts */
    detailSig: "",
    /** @type {{ id: string, text: string, ok: boolean } | null} what the last Replay of a delivery came to */
    replayNote: null,
    pollTimer: 0,
    burstUntil: 0,
    destroyed: false,
  };

  const count = h("span.muted.small", { "data-testid": "delivery-count" });
  const refresh = h("button.btn.btn-small", { type: "button", "data-testid": "deliveries-refresh" }, "Refresh");
  const listSlot = h("div.wh-deliveries-list");
  const moreButton = h(
    "button.btn.btn-small",
    { type: "button", "data-testid": "deliveries-more", hidden: true },
    "Older",
  );
  const detailSlot = h("div.wh-delivery", { "data-testid": "delivery-detail", "aria-live": "polite" });
  const root = h(
    "section.card.wh-deliveries-card",
    { "aria-label": "Deliveries", "data-testid": "webhook-deliveries" },
    h(
      "div.card-head",
      null,
      h("h2", { text: "Deliveries" }),
      h("span.muted.small", { text: "Newest first. Every attempt is logged; a failed delivery can be sent again." }),
      h("span.grow"),
      count,
      refresh,
    ),
    h(
      "div.wh-deliveries-split",
      null,
      h("div.wh-deliveries-main", null, listSlot, h("div.card-foot", null, moreButton)),
      detailSlot,
    ),
  );

  refresh.addEventListener("click", () => {
    refresh.disabled = true;
    Promise.all([load(), st.selected ? loadDetail(st.selected) : null]).finally(() => {
      refresh.disabled = false;
    });
  });
  moreButton.addEventListener("click", loadMore);

  // ---------------------------------------------------------------- loading

  /** The newest page; deliveries loaded with Older stay below it. */
  async function load() {
    const my = ++st.seq;
    try {
      const first = withIds(await api.webhookDeliveries(endpointId, { limit: PAGE }));
      if (my !== st.seq || st.destroyed) return;
      if (st.extended && st.list) {
        const known = new Set(first.map((d) => d.id));
        st.list = [...first, ...st.list.filter((d) => !known.has(d.id))];
      } else {
        st.list = first;
        st.more = first.length >= PAGE;
      }
      st.error = null;
    } catch (err) {
      if (my !== st.seq || st.destroyed || !signedIn()) return;
      st.error = asApiError(err).message;
    }
    renderList();
    // The chosen delivery moved on (another attempt, or it ended): its attempts too.
    const cur = st.selected && st.list ? st.list.find((d) => d.id === st.selected) : null;
    if (cur && st.detail && sigOf(cur) !== st.detailSig) loadDetail(cur.id);
    schedule();
  }

  async function loadMore() {
    const list = st.list;
    const last = list?.[list.length - 1];
    if (!list || !last || st.loadingMore) return;
    const my = st.seq;
    st.loadingMore = true;
    moreButton.disabled = true;
    try {
      const older = withIds(await api.webhookDeliveries(endpointId, { limit: PAGE, before: last.id }));
      if (my !== st.seq || st.list !== list || st.destroyed) return;
      const known = new Set(list.map((d) => d.id));
      st.list = [...list, ...older.filter((d) => !known.has(d.id))];
      st.more = older.length >= PAGE;
      st.extended = true;
      renderList();
    } catch (err) {
      if (my === st.seq && !st.destroyed) window.alert(`Couldn't load older deliveries: ${asApiError(err).message}`);
    } finally {
      st.loadingMore = false;
      moreButton.disabled = false;
    }
  }

  /** @param {string} id */
  async function loadDetail(id) {
    const my = ++st.detailSeq;
    try {
      const d = await api.webhookDelivery(endpointId, id);
      if (my !== st.detailSeq || st.destroyed) return;
      st.detail = d && typeof d === "object" && d.id === id ? d : null;
      st.detailError = st.detail ? null : "The relay answered with something else.";
    } catch (err) {
      if (my !== st.detailSeq || st.destroyed || !signedIn()) return;
      st.detail = null;
      st.detailError = asApiError(err).message;
    }
    renderDetail();
    schedule();
  }

  // ---------------------------------------------------------------- keeping current

  /** What a delivery's row shows that changes: its state and attempts. @param {Delivery | DeliveryDetail} d */
  function sigOf(d) {
    return `${d.state}:${d.attempts}`;
  }

  function schedule() {
    clearTimeout(st.pollTimer);
    if (st.destroyed) return;
    const pending = !!st.list?.some((d) => d.state === "pending") || st.detail?.state === "pending";
    const burst = Date.now() < st.burstUntil;
    if (!pending && !burst) return;
    st.pollTimer = setTimeout(
      () => {
        if (document.visibilityState === "hidden") schedule();
        else load();
      },
      burst ? POLL_BURST : POLL_PENDING,
    );
  }

  /** Something was just sent (a test event, a replay): look often for a minute. */
  function burst() {
    st.burstUntil = Date.now() + BURST;
    load();
  }

  // ---------------------------------------------------------------- rendering

  function renderList() {
    clear(listSlot);
    moreButton.hidden = !st.list || !st.more;
    if (!st.list) {
      count.textContent = "";
      listSlot.append(
        st.error ? errorBanner(`Couldn't load the deliveries: ${st.error}`, load) : loadingEl("Loading deliveries…"),
      );
      return;
    }
    count.textContent = st.more ? `${st.list.length}+ shown` : plural(st.list.length, "delivery", "deliveries");
    if (st.error) listSlot.append(errorBanner(`Couldn't refresh the deliveries: ${st.error}`, load));
    if (!st.list.length) {
      listSlot.append(
        h("p.muted.small.card-pad", {
          "data-testid": "deliveries-empty",
          text: hooks.enabled()
            ? "No deliveries yet. Events the endpoint wants are posted as they happen; “Send test event” posts one now."
            : "No deliveries yet. The endpoint is disabled: nothing is posted to it until it is enabled.",
        }),
      );
      return;
    }
    listSlot.append(
      dataTable(".wh-delivery-table", ["State", "Kind", "Created", "Attempts", "Last answer"], st.list.map(row)),
    );
  }

  /** @param {Delivery} d */
  function row(d) {
    const href = hooks.href(d.id);
    const tr = h(
      "tr",
      {
        "data-testid": "delivery-row",
        "data-delivery-id": d.id,
        "data-state": d.state,
        class: d.id === st.selected ? "is-selected" : null,
        "aria-current": d.id === st.selected ? "true" : null,
      },
      h("td", null, deliveryBadge(d)),
      h("td", null, h("a.wh-kind", { href, title: `Show delivery ${d.id}`, text: eventLabel(d.kind) })),
      h("td.t-time", null, timeEl(d.created_at)),
      h(
        "td.num",
        null,
        String(d.attempts),
        d.state === "pending" && d.attempts > 0
          ? h("span.muted.small", {
              title: fmtDateTime(d.next_attempt_at),
              text: ` · next ${timeUntil(d.next_attempt_at)}`,
            })
          : null,
      ),
      h("td.wh-answer", null, answerEl(d.last_status, d.last_error)),
    );
    // The whole row chooses the delivery (the kind is its link, for the keyboard).
    tr.addEventListener("click", (ev) => {
      if (ev.target instanceof Element && ev.target.closest("a, button")) return;
      location.hash = href;
    });
    return tr;
  }

  function renderDetail() {
    clear(detailSlot);
    detailSlot.classList.toggle("is-empty", !st.selected);
    if (!st.selected) {
      st.detailSig = "";
      detailSlot.append(
        h("p.muted.small.wh-delivery-hint", { text: "Choose a delivery to see its attempts and what was posted." }),
      );
      return;
    }
    const d = st.detail;
    if (!d) {
      st.detailSig = "";
      detailSlot.append(
        st.detailError
          ? errorBanner(`Couldn't load the delivery: ${st.detailError}`, () => st.selected && loadDetail(st.selected))
          : loadingEl("Loading the delivery…"),
      );
      return;
    }
    st.detailSig = sigOf(d);
    const attempts = d.attempt_log;
    // What Replay came to stays while the delivery is shown again (its next attempts).
    const said = st.replayNote?.id === d.id ? st.replayNote : null;
    const note = h("div.form-error", {
      role: "alert",
      "data-testid": "delivery-replay-error",
      hidden: !said || said.ok,
      text: said && !said.ok ? said.text : "",
    });
    const ok = h("p.form-ok", {
      role: "status",
      "data-testid": "delivery-replayed",
      hidden: !said?.ok,
      text: said?.ok ? said.text : "",
    });
    const replay = h(
      "button.btn.btn-small",
      {
        type: "button",
        "data-testid": "delivery-replay",
        disabled: d.state === "pending",
        title:
          d.state === "pending"
            ? "It is still being sent"
            : "Post it again, with the same webhook-id (a receiver that has it already can tell)",
      },
      "Replay",
    );
    replay.addEventListener("click", async () => {
      replay.disabled = true;
      note.hidden = true;
      ok.hidden = true;
      try {
        await api.replayWebhookDelivery(endpointId, d.id);
        st.replayNote = {
          id: d.id,
          ok: true,
          text: hooks.enabled()
            ? "Sent again, with the same webhook-id: it is back in the endpoint's queue."
            : "Queued again. The endpoint is disabled: it is posted once the endpoint is enabled.",
        };
        ok.textContent = st.replayNote.text;
        ok.hidden = false;
        burst();
        loadDetail(d.id);
      } catch (err) {
        const e = asApiError(err);
        st.replayNote = {
          id: d.id,
          ok: false,
          text: e.code === "delivery_pending" ? `It is still being sent: ${e.message}` : e.message,
        };
        note.textContent = st.replayNote.text;
        note.hidden = false;
        replay.disabled = d.state === "pending";
      }
    });
    const close = h("a.btn.btn-small.btn-ghost", { href: hooks.href(null), title: "Close the delivery" }, "Close");
    /** @param {string} label @param {import("../lib/types.js").Child} value @param {string} [cls] */
    const fact = (label, value, cls) =>
      h("div.fact", { class: cls || null }, h("dt", { text: label }), h("dd", null, value));
    const payload = prettyJson(d.payload);
    detailSlot.append(
      h(
        "div.wh-delivery-head",
        null,
        h("h3", null, eventLabel(d.kind), " ", h("span.mono.muted.small", { title: d.id, text: d.id.slice(0, 8) })),
        deliveryBadge(d),
        h("span.grow"),
        replay,
        close,
      ),
      note,
      ok,
      h(
        "dl.facts.facts-tight.wh-delivery-facts",
        null,
        fact("Created", timeEl(d.created_at)),
        d.finished_at
          ? fact(d.state === "delivered" ? "Delivered" : "Ended", timeEl(d.finished_at))
          : fact(
              "Next attempt",
              h("span", { title: fmtDateTime(d.next_attempt_at), text: timeUntil(d.next_attempt_at) }),
            ),
        fact("Attempts", String(attempts.length)),
        fact("Kind", h("span.mono", { text: d.kind })),
        fact(
          "webhook-id",
          h(
            "span.wh-id",
            null,
            h("span.mono", { title: d.id, text: d.id }),
            copyButton(() => d.id, "Copy"),
          ),
          "fact-wide",
        ),
        fact("Event", h("span.mono", { title: d.event_id, text: d.event_id }), "fact-wide"),
      ),
      h("h4.wh-sub", { text: "Attempts" }),
      attempts.length
        ? dataTable(
            ".wh-attempt-table",
            ["#", "When", "Answer", "Took"],
            attempts.map((a) =>
              h(
                "tr",
                { "data-testid": "delivery-attempt", "data-status": a.status ?? "" },
                h("td.num", { text: String(a.attempt) }),
                h("td.t-time", null, timeEl(a.at)),
                h("td.wh-answer", null, answerEl(a.status, a.error)),
                h("td.num", { text: fmtDuration(a.duration_ms) }),
              ),
            ),
          )
        : h("p.muted.small", {
            text: hooks.enabled() ? "Not tried yet: it waits for its turn." : "Not tried: the endpoint is disabled.",
          }),
      h(
        "div.wh-payload-head",
        null,
        h("h4.wh-sub", { text: "Payload" }),
        h("span.muted.small", { text: "the body posted" }),
        h("span.grow"),
        copyButton(() => d.payload, "Copy"),
      ),
      h("pre.wh-payload", { "data-testid": "delivery-payload", tabindex: 0, text: payload }),
    );
  }

  // ---------------------------------------------------------------- the chosen delivery

  /** Choose a delivery (null: none). @param {string | null} id */
  function show(id) {
    if (id === st.selected) return;
    st.selected = id;
    st.replayNote = null;
    st.detail = null;
    st.detailError = null;
    st.detailSeq++;
    for (const tr of listSlot.querySelectorAll("tr[data-delivery-id]")) {
      const on = tr instanceof HTMLElement && tr.dataset.deliveryId === id;
      tr.classList.toggle("is-selected", on);
      if (on) tr.setAttribute("aria-current", "true");
      else tr.removeAttribute("aria-current");
    }
    renderDetail();
    if (id) loadDetail(id);
  }

  renderList();
  renderDetail();

  return {
    root,
    load,
    show,
    burst,
    /** The endpoint was enabled or disabled: the empty texts say so. */
    renderList,
    destroy() {
      st.destroyed = true;
      st.seq++;
      st.detailSeq++;
      clearTimeout(st.pollTimer);
    },
  };
}
