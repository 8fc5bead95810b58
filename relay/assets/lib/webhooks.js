// Outgoing webhooks as pages show them: event kinds, an endpoint's scope and state, a delivery's
// state and last answer, payloads as indented JSON.

import { enc, h } from "./dom.js";
import { projectNames } from "./state.js";

/** @typedef {import("./types.js").EndpointView} EndpointView */
/** @typedef {import("./types.js").Delivery} Delivery */
/** @typedef {import("./types.js").DeliveryDetail} DeliveryDetail */
/** @typedef {import("./types.js").WebhookEventKind} WebhookEventKind */

/** @type {Record<WebhookEventKind, { label: string, hint: string }>} */
export const EVENT_KINDS = {
  task_finished: {
    label: "Task finished",
    hint: "A task in a workspace ended: succeeded, failed, canceled or lost.",
  },
  budget_threshold: {
    label: "Budget threshold",
    hint: "An AI budget reached 80 % or 100 % of its limit.",
  },
  webhook_test: {
    label: "Test",
    hint: "A test event asked for with “Send test event” (sent whatever kinds the endpoint wants).",
  },
};

/** The kinds an endpoint chooses (test events come whatever it chose). @type {WebhookEventKind[]} */
export const CHOSEN_KINDS = ["task_finished", "budget_threshold"];

/** @param {string} k @returns {k is WebhookEventKind} */
export const isEventKind = (k) => Object.hasOwn(EVENT_KINDS, k);

/** "Task finished" for `task_finished`; unknown kinds as they are. @param {string} k */
export const eventLabel = (k) => (isEventKind(k) ? EVENT_KINDS[k].label : k);

/** An endpoint's event kinds as chips. @param {string[]} events */
export function eventChips(events) {
  return h(
    "span.wh-events",
    { "data-testid": "webhook-events" },
    (events || []).map((k) =>
      h("span.tag.wh-event", {
        class: `wh-event-${isEventKind(k) ? k : "other"}`,
        "data-event": k,
        title: isEventKind(k) ? `${k}: ${EVENT_KINDS[k].hint}` : k,
        text: eventLabel(k),
      }),
    ),
  );
}

/** "Personal", or the project's name. @param {EndpointView} e */
export function scopeName(e) {
  if (!e.project_id) return "Personal";
  return projectNames.get(e.project_id) || e.project_id.slice(0, 8);
}

/** The scope: personal, or a link to the project. @param {EndpointView} e */
export function scopeEl(e) {
  if (!e.project_id) {
    return h("span.wh-scope", {
      title: "Your own events: the tasks that run in your workspaces and the budgets you set",
      text: "Personal",
    });
  }
  return h(
    "span.wh-scope",
    null,
    h("span.muted", { text: "Project " }),
    h("a", { href: `#/projects/${enc(e.project_id)}`, text: scopeName(e) }),
  );
}

/** Enabled or disabled, as a badge. @param {EndpointView} e */
export function endpointBadge(e) {
  return h("span.task-state", {
    class: e.enabled ? "st-delivered" : "st-disabled",
    "data-testid": "webhook-state",
    "data-state": e.enabled ? "enabled" : "disabled",
    title: e.enabled
      ? "Events are posted to it"
      : `Nothing is posted to it${e.disabled_reason ? `: ${e.disabled_reason}` : ""}`,
    text: e.enabled ? "enabled" : "disabled",
  });
}

/**
 * A delivery's state as a badge: a pending one that was tried already is "retrying".
 * @param {Delivery | DeliveryDetail} d
 */
export function deliveryBadge(d) {
  const known = ["pending", "delivered", "failed"].includes(d.state) ? d.state : "unknown";
  const tries = d.attempts;
  const retrying = known === "pending" && tries > 0;
  return h(
    "span.task-state",
    {
      class: `st-${retrying ? "retrying" : known}`,
      "data-testid": "delivery-state",
      "data-state": d.state || "",
      title: retrying ? `${tries === 1 ? "The first attempt" : `${tries} attempts`} failed; it is tried again` : null,
    },
    known === "pending" ? h("span.state-pulse", { "aria-hidden": "true" }) : null,
    retrying ? "retrying" : known,
  );
}

/**
 * What the endpoint answered: its status (red unless 2xx), or why no answer came.
 * @param {number | null | undefined} status
 * @param {string | null | undefined} error
 */
export function answerEl(status, error) {
  if (typeof status === "number") {
    const ok = status >= 200 && status < 300;
    return h("span.wh-status", { class: ok ? "is-ok" : "is-bad", title: error || null, text: `HTTP ${status}` });
  }
  if (error) return h("span.wh-error", { title: error, text: error });
  return h("span.muted", { text: "—" });
}

/** A payload (JSON text) indented for reading; as it is when it is not JSON. @param {string} text */
export function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
