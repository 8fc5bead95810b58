// The assistant page (#/assistant): chats with Fulcrum's project manager agent. The user's
// conversations are listed on the left (new, delete); the chosen one on the right, its answers
// streaming in as server-sent events (text, tool calls and their results, shown as compact chips).
// A tool that changes something waits for the user: a confirmation card runs it once, allows it
// for the rest of the conversation, or declines it, and the turn goes on.

import { api, asApiError } from "../api.js";
import { clear, errorBanner, h, loadingEl, uid } from "../lib/dom.js";
import { fmtDuration, timeEl } from "../lib/format.js";
import { markdown } from "../lib/markdown.js";
import { signedIn, updateTitle } from "../lib/shell.js";
import { readEvents } from "../lib/sse.js";

/** @typedef {import("../lib/types.js").Page} Page */

// Not in the OpenAPI document yet (the relay is adding /api/v1/assistant): replace these with the
// generated schemas once it is.

/**
 * A tool call the assistant asked for; `arguments` is JSON (text, or already parsed).
 * @typedef {{ id: string, name: string, arguments: string | Record<string, unknown> }} ToolCall
 */

/**
 * @typedef {object} Conversation
 * @property {string} id
 * @property {string} title
 * @property {string[]} [allowed_tools] the tools the user allowed without asking again
 * @property {string} created_at
 * @property {string} updated_at
 */

/**
 * A message: the user's, the assistant's (text and the tool calls it asked for), or a tool's
 * result (`text`, answering `tool_call_id`).
 * @typedef {object} Message
 * @property {string} id
 * @property {"user" | "assistant" | "tool"} role
 * @property {string} text
 * @property {ToolCall[]} [tool_calls]
 * @property {string | null} [tool_call_id]
 * @property {string | null} [tool_name]
 * @property {string} created_at
 */

/**
 * A conversation with its messages and the tool call its last turn waits on.
 * @typedef {{ conversation: Conversation, messages: Message[], pending: ToolCall | null }} ConversationView
 */

/** The answer to a tool call waiting for confirmation. @typedef {{ call_id: string, approve: boolean, always?: boolean }} ConfirmBody */

/** A tool's result, as the stream announces it. @typedef {{ id: string, name: string, ok: boolean, content: unknown }} ToolResult */

/**
 * How a turn ended.
 * @typedef {{ state: "answered" | "awaiting_confirmation" | "stopped" | "streaming", reason?: string | null }} TurnEnd
 */

const CURRENT_KEY = "fulcrum-assistant-conversation";

/** Questions the empty conversation offers. */
const SUGGESTIONS = [
  "Which of my projects has failing tasks?",
  "What did AI cost this month, by project?",
  "What is running right now?",
];

/** @returns {Page} */
export function buildAssistantPage() {
  const st = {
    /** @type {Conversation[] | null} */
    convs: null,
    /** @type {string | null} */
    listError: null,
    listSeq: 0,
    /** @type {string | null} the open conversation; null: a new one, made by the first question */
    current: rememberedConversation(),
    /** @type {ConversationView | null} */
    view: null,
    /** @type {string | null} */
    viewError: null,
    viewSeq: 0,
    streaming: false,
    /** @type {AbortController | null} */
    abort: null,
    /** @type {ReturnType<typeof turnView> | null} the last answer on screen */
    turn: null,
  };

  const heading = h("h1", { id: uid("h"), tabindex: -1, text: "Assistant" });
  const newButton = h(
    "button.btn.btn-small.btn-primary",
    { type: "button", "data-testid": "assistant-new", title: "Start a new conversation" },
    "New",
  );
  const listSlot = h("nav.as-list", { "aria-label": "Conversations" });
  const side = h(
    "aside.as-side",
    null,
    h("div.as-side-head", null, h("span.as-side-title", { text: "Conversations" }), newButton),
    listSlot,
  );

  const chatTitle = h("h2.as-title", { "data-testid": "assistant-title", text: "New conversation" });
  const allowedSlot = h("div.as-allowed", { "data-testid": "assistant-allowed" });
  const statusSlot = h("div");
  const messages = h("div.as-messages", {
    "data-testid": "assistant-messages",
    role: "log",
    "aria-live": "polite",
    "aria-relevant": "additions",
  });
  const doneEl = h("div.as-done", {
    "data-testid": "assistant-done",
    "data-state": "none",
    role: "status",
    hidden: true,
  });
  const scroller = h("div.as-scroll", null, statusSlot, messages, doneEl);

  const input = h("textarea.as-input", {
    rows: 2,
    placeholder: "Ask about your projects, tasks, runs and what they cost…",
    "aria-label": "Message the assistant",
    "data-testid": "assistant-input",
  });
  const sendButton = h("button.btn.btn-primary", { type: "submit", "data-testid": "assistant-send" }, "Send");
  const stopButton = h(
    "button.btn",
    { type: "button", "data-testid": "assistant-stop", hidden: true, title: "Stop waiting for this answer" },
    "Stop",
  );
  const composeHint = h("span.muted.small", { text: "Enter to send · Shift+Enter for a new line" });
  const compose = h(
    "form.as-compose",
    { "aria-label": "Message" },
    input,
    h("div.as-compose-bar", null, composeHint, h("span.grow"), stopButton, sendButton),
  );
  const chat = h(
    "section.as-chat",
    { "aria-label": "Conversation" },
    h("div.as-chat-head", null, chatTitle, allowedSlot),
    scroller,
    compose,
  );
  const layout = h("div.as-layout", null, side, chat);
  const root = h(
    "section.view.as-view",
    { "aria-labelledby": heading.id, "data-testid": "assistant-page" },
    h(
      "div.view-head.as-head",
      null,
      h(
        "div.view-title",
        null,
        heading,
        h("span.muted.small", {
          text: "Fulcrum's project manager: it reads your projects, tasks, runs and costs, and asks before it changes anything.",
        }),
      ),
    ),
    layout,
  );

  // The chat fills the window below what is above it (a budget alert may come and go), so the
  // message box stays in view; on narrow screens the stylesheet stacks the two panes instead.
  const wide = window.matchMedia("(min-width: 761px)");
  function fit() {
    if (!layout.isConnected || !wide.matches) {
      layout.style.removeProperty("height");
      return;
    }
    const top = layout.getBoundingClientRect().top + window.scrollY;
    const height = Math.max(460, Math.floor(window.innerHeight - top - 24));
    if (layout.style.getPropertyValue("height") !== `${height}px`) layout.style.setProperty("height", `${height}px`);
  }
  const fitObserver = typeof ResizeObserver === "function" ? new ResizeObserver(() => fit()) : null;
  if (fitObserver) fitObserver.observe(document.documentElement);
  window.addEventListener("resize", fit);

  // ---------------------------------------------------------------- the conversations

  async function loadList() {
    const my = ++st.listSeq;
    try {
      const list = await api.conversations();
      if (my !== st.listSeq) return;
      st.convs = (Array.isArray(list) ? list : []).filter((c) => c && typeof c.id === "string");
      st.listError = null;
      // The open conversation's title (the first question, once answered) and allowed tools.
      const open = st.view && st.convs.find((c) => c.id === st.view?.conversation.id);
      if (open && st.view) {
        st.view.conversation = { ...st.view.conversation, ...open };
        chatTitle.textContent = open.title || "Untitled";
        renderAllowed();
        updateTitle();
      }
    } catch (err) {
      if (my !== st.listSeq || !signedIn()) return;
      st.listError = asApiError(err).message;
    }
    renderList();
  }

  function renderList() {
    clear(listSlot);
    if (!st.convs) {
      listSlot.append(
        st.listError
          ? errorBanner(`Couldn't load the conversations: ${st.listError}`, loadList)
          : loadingEl("Loading…"),
      );
      return;
    }
    if (st.listError) listSlot.append(errorBanner(`Couldn't refresh: ${st.listError}`, loadList));
    const list = [...st.convs].sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)));
    if (!list.length) {
      listSlot.append(h("p.muted.small.as-list-empty", { text: "No conversations yet." }));
      return;
    }
    listSlot.append(
      h(
        "ul.as-conv-list",
        null,
        list.map((c) => {
          const current = c.id === st.current;
          const open = h(
            "a.as-conv",
            {
              href: "#/assistant",
              "data-testid": "assistant-conversation",
              "data-conversation-id": c.id,
              "aria-current": current ? "true" : null,
            },
            h("span.as-conv-title", { text: c.title || "Untitled" }),
            h("span.as-conv-when", null, timeEl(c.updated_at)),
          );
          open.addEventListener("click", (ev) => {
            ev.preventDefault();
            if (!current) openConversation(c.id);
          });
          const del = h(
            "button.btn.btn-ghost.btn-small.as-conv-del",
            {
              type: "button",
              "data-testid": "assistant-delete",
              "aria-label": `Delete “${c.title || "Untitled"}”`,
              title: "Delete",
            },
            "×",
          );
          del.addEventListener("click", () => deleteConversation(c, del));
          return h("li.as-conv-item", { class: current ? "is-current" : null }, open, del);
        }),
      ),
    );
  }

  /** @param {Conversation} c @param {HTMLButtonElement} btn */
  async function deleteConversation(c, btn) {
    if (!window.confirm(`Delete the conversation “${c.title || "Untitled"}”?`)) return;
    btn.disabled = true;
    try {
      await api.deleteConversation(c.id);
      st.convs = (st.convs || []).filter((x) => x.id !== c.id);
      if (st.current === c.id) openConversation(null);
      else renderList();
    } catch (err) {
      btn.disabled = false;
      window.alert(`Couldn't delete the conversation: ${asApiError(err).message}`);
    }
  }

  /** Open a conversation (null: a new one). @param {string | null} id */
  function openConversation(id) {
    stopStream();
    st.current = id;
    remember(id);
    st.view = null;
    st.viewError = null;
    st.turn = null;
    renderList();
    renderChat();
    if (id) loadConversation();
    input.focus();
  }

  newButton.addEventListener("click", () => openConversation(null));

  async function loadConversation() {
    const id = st.current;
    if (!id) return;
    const my = ++st.viewSeq;
    try {
      const v = await api.conversation(id);
      if (my !== st.viewSeq || st.current !== id) return;
      if (!v?.conversation) throw new Error("The relay returned an unexpected conversation.");
      st.view = {
        conversation: v.conversation,
        messages: Array.isArray(v.messages) ? v.messages : [],
        pending: v.pending,
      };
      st.viewError = null;
    } catch (caught) {
      if (my !== st.viewSeq || !signedIn()) return;
      const err = asApiError(caught);
      if (err.status === 404) {
        // Deleted elsewhere, or another user's link: start afresh.
        remember(null);
        st.current = null;
        st.convs = (st.convs || []).filter((x) => x.id !== id);
        renderList();
      } else st.viewError = err.message;
    }
    renderChat();
  }

  // ---------------------------------------------------------------- the chat

  function renderChat() {
    clear(statusSlot);
    clear(messages);
    st.turn = null;
    setDone(null);
    const v = st.view;
    chatTitle.textContent = v ? v.conversation.title || "Untitled" : st.current ? "Conversation" : "New conversation";
    renderAllowed();
    if (st.current && !v) {
      statusSlot.append(
        st.viewError
          ? errorBanner(`Couldn't load the conversation: ${st.viewError}`, loadConversation)
          : loadingEl("Loading the conversation…"),
      );
      syncCompose();
      return;
    }
    if (!v?.messages.length) {
      messages.append(intro());
      syncCompose();
      return;
    }
    /** @type {ReturnType<typeof turnView> | null} */
    let turn = null;
    for (const m of v.messages) {
      if (m.role === "user") {
        turn = null;
        messages.append(userBubble(m.text));
        continue;
      }
      if (!turn) {
        turn = turnView();
        messages.append(turn.root);
      }
      if (m.role === "assistant") {
        if (m.text) turn.text(m.text);
        for (const c of m.tool_calls || []) turn.toolCall(c);
      } else {
        // A stored result does not say whether the call worked: its words do.
        turn.toolResult({
          id: m.tool_call_id || "",
          name: m.tool_name || "",
          ok: !/^\s*(error|failed|refused)\b/i.test(m.text) && !declined(m.text),
          content: m.text,
        });
      }
    }
    if (v.pending?.id) {
      if (!turn) {
        turn = turnView();
        messages.append(turn.root);
      }
      turn.confirm(v.pending);
      setDone({ state: "awaiting_confirmation" });
    }
    turn?.settle();
    st.turn = turn;
    syncCompose();
    requestAnimationFrame(() => {
      scroller.scrollTop = scroller.scrollHeight;
    });
  }

  function renderAllowed() {
    clear(allowedSlot);
    const tools = st.view?.conversation.allowed_tools || [];
    if (!tools.length) return;
    allowedSlot.append(
      h("span.muted.small", { text: "Runs without asking:" }),
      ...tools.map((t) => h("span.tag.tag-stack.mono", { text: t })),
    );
  }

  function intro() {
    return h(
      "div.as-intro",
      { "data-testid": "assistant-intro" },
      h("p.as-intro-lead", { text: "Ask about your projects: what failed, what it cost, what is running." }),
      h("p.muted.small", {
        text: "The assistant answers with Fulcrum's own tools and shows each call it makes. Anything that changes something, like running a task or starting a pipeline, waits for your OK.",
      }),
      h(
        "ul.chip-list.as-suggestions",
        null,
        SUGGESTIONS.map((q) => {
          const b = h("button.btn.btn-small", { type: "button" }, q);
          b.addEventListener("click", () => {
            input.value = q;
            input.focus();
            autoGrow();
          });
          return h("li", null, b);
        }),
      ),
    );
  }

  /** @param {string} text */
  function userBubble(text) {
    return h(
      "div.as-msg.as-user",
      { "data-testid": "assistant-message", "data-role": "user" },
      h("div.as-bubble", { text }),
    );
  }

  /** @param {TurnEnd | null} end @param {number} [ms] how long the turn took */
  function setDone(end, ms) {
    if (!end) {
      doneEl.hidden = true;
      doneEl.dataset.state = "none";
      doneEl.textContent = "";
      return;
    }
    doneEl.dataset.state = end.state;
    doneEl.hidden = end.state === "streaming";
    const took = typeof ms === "number" ? ` · ${fmtDuration(ms)}` : "";
    doneEl.textContent =
      end.state === "answered"
        ? `Answered${took}`
        : end.state === "awaiting_confirmation"
          ? "Waiting for your answer above"
          : end.state === "stopped"
            ? `Stopped${end.reason ? `: ${end.reason}` : ""}${took}`
            : "";
    doneEl.classList.toggle("is-stopped", end.state === "stopped");
  }

  // ---------------------------------------------------------------- an answer, as it streams

  /**
   * One answer of the assistant, as one bubble: its text and its tool calls, in the order they
   * came, and the confirmation card of a call that waits for the user.
   */
  function turnView() {
    const body = h("div.as-bubble");
    const typing = h(
      "span.as-typing",
      { "aria-label": "The assistant is writing", hidden: true },
      h("i"),
      h("i"),
      h("i"),
    );
    const root = h(
      "div.as-msg.as-assistant",
      { "data-testid": "assistant-message", "data-role": "assistant" },
      body,
      typing,
    );
    /** @type {{ el: HTMLElement, text: string } | null} the text part being written */
    let textPart = null;
    let frame = 0;
    /** @type {Map<string, ReturnType<typeof toolChip>>} call id -> its chip */
    const chips = new Map();
    /** @type {HTMLElement | null} */
    let card = null;

    const paint = () => {
      frame = 0;
      if (!textPart) return;
      clear(textPart.el);
      textPart.el.append(markdown(textPart.text));
    };

    /** @param {ToolCall} call */
    const chipFor = (call) => {
      let chip = chips.get(call.id);
      if (!chip) {
        chip = toolChip(call);
        chips.set(call.id, chip);
        body.append(chip.root);
        textPart = null;
      }
      return chip;
    };

    return {
      root,
      /** @param {string} delta */
      text(delta) {
        if (!delta) return;
        if (!textPart) {
          textPart = { el: h("div.as-text.md"), text: "" };
          body.append(textPart.el);
        }
        textPart.text += delta;
        if (!frame) frame = requestAnimationFrame(paint);
      },
      /** @param {ToolCall} call */
      toolCall(call) {
        if (!call || typeof call.id !== "string") return;
        chipFor(call);
      },
      /** @param {ToolResult} r */
      toolResult(r) {
        if (!r) return;
        const chip = chips.get(r.id) || chipFor({ id: r.id, name: r.name, arguments: "" });
        chip.result(r);
      },
      /** The call waits for the user. @param {ToolCall} call */
      confirm(call) {
        if (!call || typeof call.id !== "string") return;
        chipFor(call).waiting();
        card?.remove();
        card = confirmCard(call, (decision) => {
          chipFor(call).decided(decision);
        });
        body.append(card);
        textPart = null; // what follows the answer to it comes after it
      },
      /** @param {string} message */
      error(message) {
        body.append(h("div.form-error.as-error", { role: "alert", "data-testid": "assistant-error", text: message }));
        textPart = null;
      },
      /** @param {boolean} on */
      busy(on) {
        typing.hidden = !on;
      },
      /** Paint what is pending now (the stream ended). */
      settle() {
        if (frame) cancelAnimationFrame(frame);
        paint();
        // Calls whose result never came (a dropped stream) stop spinning.
        for (const chip of chips.values()) chip.settle();
        if (!body.childNodes.length) body.append(h("span.muted.small", { text: "(no answer)" }));
      },
    };
  }

  /**
   * A tool call as a compact chip: its name, its arguments (folded) and what its result says.
   * @param {ToolCall} call
   */
  function toolChip(call) {
    const args = argsText(call.arguments);
    const result = h("span.as-tool-result", { "data-testid": "assistant-tool-result" });
    const details = h("div.as-tool-body");
    if (args.pretty)
      details.append(h("div.as-tool-label", { text: "Arguments" }), h("pre.as-tool-pre", { text: args.pretty }));
    const root = h(
      "details.as-tool",
      {
        "data-testid": "assistant-tool-call",
        "data-tool": call.name,
        "data-call-id": call.id,
        "data-state": "running",
      },
      h(
        "summary.as-tool-head",
        null,
        h("span.as-tool-dot", { "aria-hidden": "true" }),
        h("span.as-tool-name", { text: call.name }),
        args.short ? h("span.as-tool-args", { text: args.short }) : null,
        result,
      ),
      details,
    );
    let done = false;
    return {
      root,
      /** @param {ToolResult} r */
      result(r) {
        done = true;
        const text = contentText(r.content);
        // A declined call's result only says so again.
        if (r.ok === false && declined(text)) root.dataset.state = "declined";
        if (root.dataset.state === "declined") result.textContent = "declined";
        else {
          root.dataset.state = r.ok === false ? "failed" : "ok";
          result.textContent = summary(text, r.ok !== false);
        }
        details.append(
          h("div.as-tool-label", { text: r.ok === false ? "Error" : "Result" }),
          h("pre.as-tool-pre", { text: prettyJson(text) }),
        );
      },
      waiting() {
        if (done) return;
        root.dataset.state = "pending";
        result.textContent = "waits for your OK";
      },
      /** @param {"approved" | "always" | "declined"} decision */
      decided(decision) {
        if (done) return;
        root.dataset.state = decision === "declined" ? "declined" : "running";
        result.textContent = decision === "declined" ? "declined" : "";
        if (decision === "declined") done = true;
      },
      settle() {
        if (done || root.dataset.state === "pending") return;
        root.dataset.state = "unknown";
      },
    };
  }

  /**
   * The card that asks whether a tool may run.
   * @param {ToolCall} call
   * @param {(decision: "approved" | "always" | "declined") => void} onDecided
   */
  function confirmCard(call, onDecided) {
    const args = argsText(call.arguments);
    const approve = h(
      "button.btn.btn-primary.btn-small",
      { type: "button", "data-testid": "assistant-approve" },
      "Run it",
    );
    const always = h(
      "button.btn.btn-small",
      { type: "button", "data-testid": "assistant-always", title: "Run it, and don't ask again in this conversation" },
      `Always allow ${call.name}`,
    );
    const decline = h("button.btn.btn-small", { type: "button", "data-testid": "assistant-decline" }, "Decline");
    const card = h(
      "div.as-confirm",
      { "data-testid": "assistant-confirm", "data-tool": call.name, "data-call-id": call.id, role: "group" },
      h(
        "p.as-confirm-lead",
        null,
        "The assistant wants to run ",
        h("strong.mono", { text: call.name }),
        ". It changes something, so it waits for you.",
      ),
      args.pretty ? h("pre.as-tool-pre", { text: args.pretty }) : null,
      h("div.gate-actions", null, approve, always, decline),
    );
    /** @param {"approved" | "always" | "declined"} decision */
    const answer = (decision) => {
      const id = st.current;
      if (st.streaming || !id) return;
      for (const b of [approve, always, decline]) b.disabled = true;
      onDecided(decision);
      const note =
        decision === "declined"
          ? `You declined ${call.name}.`
          : decision === "always"
            ? `You allowed ${call.name} for this conversation.`
            : `You approved ${call.name}.`;
      card.replaceWith(
        h("p.as-decision", { "data-testid": "assistant-decision", "data-decision": decision, text: note }),
      );
      if (decision === "always" && st.view) {
        const allowed = new Set(st.view.conversation.allowed_tools || []);
        allowed.add(call.name);
        st.view.conversation.allowed_tools = [...allowed];
        renderAllowed();
      }
      if (st.view) st.view.pending = null;
      /** @type {ConfirmBody} */
      const body = { call_id: call.id, approve: decision !== "declined" };
      if (decision === "always") body.always = true;
      stream((signal) => api.confirmCall(id, body, signal), { into: st.turn });
    };
    approve.addEventListener("click", () => answer("approved"));
    always.addEventListener("click", () => answer("always"));
    decline.addEventListener("click", () => answer("declined"));
    return card;
  }

  // ---------------------------------------------------------------- sending

  /**
   * Runs a turn: `start` asks the relay, and once it answers with a stream, `onStarted` runs and
   * the events go into an answer on screen (a new one, or `into`, which they continue). A refusal
   * before the turn starts (a conflict, a bad request) is shown under the conversation and
   * leaves what was typed in the box.
   * @param {(signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>} start
   * @param {{ into?: ReturnType<typeof turnView> | null, onStarted?: () => void }} [opts]
   */
  async function stream(start, opts = {}) {
    const conversation = st.current;
    const ctrl = new AbortController();
    st.abort = ctrl;
    st.streaming = true;
    const started = performance.now();
    setDone({ state: "streaming" });
    syncCompose();
    /** @type {ReadableStream<Uint8Array>} */
    let body;
    try {
      body = await start(ctrl.signal);
    } catch (caught) {
      if (st.abort === ctrl) st.abort = null;
      if (st.current !== conversation) return;
      st.streaming = false;
      const err = asApiError(caught);
      setDone(null);
      if (err.code !== "aborted") {
        messages.append(
          h("div.form-error.as-error", { role: "alert", "data-testid": "assistant-error", text: err.message }),
        );
        scrollDown(true);
      }
      syncCompose();
      // The relay says a call waits, or none does: show what it has (this page missed it).
      if (err.code === "awaiting_confirmation" || err.code === "nothing_to_confirm") loadConversation();
      return;
    }
    opts.onStarted?.();
    let turn = opts.into;
    if (!turn?.root.isConnected) {
      turn = turnView();
      messages.append(turn.root);
    }
    st.turn = turn;
    const t = turn;
    t.busy(true);
    scrollDown(true);
    /** @type {TurnEnd | null} */
    let end = null;
    let lastError = "";
    try {
      await readEvents(body, (ev) => {
        if (ctrl.signal.aborted) return false;
        const d = /** @type {Record<string, any>} */ (ev.data && typeof ev.data === "object" ? ev.data : {});
        const stick = nearBottom();
        if (ev.event === "text") t.text(typeof d.delta === "string" ? d.delta : "");
        else if (ev.event === "tool_call") t.toolCall(/** @type {ToolCall} */ (d));
        else if (ev.event === "tool_result") t.toolResult(/** @type {ToolResult} */ (d));
        else if (ev.event === "confirm") {
          t.confirm(/** @type {ToolCall} */ (d));
          if (st.view) st.view.pending = /** @type {ToolCall} */ (d);
        } else if (ev.event === "error") {
          lastError = typeof d.message === "string" ? d.message : "The assistant failed.";
          t.error(lastError);
        } else if (ev.event === "done") {
          const state = d.state === "answered" || d.state === "awaiting_confirmation" ? d.state : "stopped";
          // The reason of a failure was just shown as the error.
          end = { state, reason: typeof d.reason === "string" && d.reason !== lastError ? d.reason : null };
        }
        scrollDown(stick);
        return end ? false : undefined;
      });
      if (!end) end = { state: "stopped", reason: "the answer ended early" };
    } catch (caught) {
      const err = asApiError(caught);
      if (ctrl.signal.aborted || err.code === "aborted") {
        end = {
          state: "stopped",
          reason: "you stopped following it (the relay finishes the turn: open the conversation again to read it)",
        };
      } else {
        t.error(`The answer was cut off: ${err.message}`);
        end = { state: "stopped", reason: null };
      }
    }
    if (st.abort === ctrl) st.abort = null;
    t.busy(false);
    t.settle();
    if (st.current !== conversation) return; // another conversation was opened meanwhile
    st.streaming = false;
    setDone(end, end.state === "awaiting_confirmation" ? undefined : performance.now() - started);
    syncCompose();
    // The box was disabled while the answer came, which took the focus away: give it back.
    if (root.isConnected && (document.activeElement === document.body || document.activeElement === null)) {
      input.focus({ preventScroll: true });
    }
    scrollDown(nearBottom());
    loadList(); // its title and its place in the list
  }

  function stopStream() {
    if (st.abort) st.abort.abort();
    st.abort = null;
    st.streaming = false;
  }

  async function send() {
    const text = input.value.trim();
    if (!text || st.streaming || (st.current && !st.view) || st.view?.pending) return;
    clear(statusSlot);
    let id = st.current;
    if (!id) {
      sendButton.disabled = true;
      try {
        const c = await api.createConversation({});
        if (!c?.id) throw new Error("The relay did not return the new conversation.");
        id = c.id;
        st.current = id;
        remember(id);
        st.view = { conversation: c, messages: [], pending: null };
        st.convs = [c, ...(st.convs || []).filter((x) => x.id !== c.id)];
        chatTitle.textContent = c.title || "New conversation";
        renderList();
      } catch (err) {
        statusSlot.append(errorBanner(`Couldn't start a conversation: ${asApiError(err).message}`));
        syncCompose();
        return;
      }
    }
    const conv = id;
    stream((signal) => api.sendMessage(conv, text, signal), {
      onStarted() {
        messages.querySelector(".as-intro")?.remove();
        for (const e of messages.querySelectorAll(":scope > .as-error")) e.remove();
        messages.append(userBubble(text));
        if (input.value.trim() === text) input.value = "";
        autoGrow();
      },
    });
  }

  compose.addEventListener("submit", (ev) => {
    ev.preventDefault();
    send();
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  });
  input.addEventListener("input", () => {
    autoGrow();
    syncCompose();
  });
  stopButton.addEventListener("click", () => {
    if (st.abort) st.abort.abort();
  });

  function syncCompose() {
    const loading = !!st.current && !st.view; // what is sent must land in what is shown
    const waiting = !!st.view?.pending; // the relay takes no question while a call waits
    input.disabled = st.streaming;
    sendButton.disabled = st.streaming || loading || waiting || !input.value.trim();
    sendButton.title = waiting ? "Answer the tool call above first: run it, allow it or decline it" : "";
    composeHint.textContent = waiting
      ? "Run, allow or decline the tool call above before asking more"
      : "Enter to send · Shift+Enter for a new line";
    stopButton.hidden = !st.streaming;
    sendButton.textContent = st.streaming ? "Answering…" : "Send";
  }

  function autoGrow() {
    input.style.setProperty("height", "auto");
    input.style.setProperty("height", `${Math.min(200, Math.max(56, input.scrollHeight + 2))}px`);
  }

  const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  /** @param {boolean} stick */
  function scrollDown(stick) {
    if (!stick) return;
    requestAnimationFrame(() => {
      scroller.scrollTop = scroller.scrollHeight;
    });
  }

  renderList();
  renderChat();
  loadList();
  if (st.current) loadConversation();

  return {
    root,
    heading,
    nav: "assistant",
    title: () => (st.view?.conversation.title ? `${st.view.conversation.title} · Assistant` : "Assistant"),
    destroy() {
      st.listSeq++;
      st.viewSeq++;
      stopStream();
      fitObserver?.disconnect();
      window.removeEventListener("resize", fit);
    },
  };
}

// ------------------------------------------------------------------ text of calls and results

/** The open conversation of this tab, kept across visits to the page. */
function rememberedConversation() {
  try {
    return sessionStorage.getItem(CURRENT_KEY);
  } catch {
    return null;
  }
}

/** @param {string | null} id */
function remember(id) {
  try {
    if (id) sessionStorage.setItem(CURRENT_KEY, id);
    else sessionStorage.removeItem(CURRENT_KEY);
  } catch {
    /* storage may be off */
  }
}

/**
 * A call's arguments, pretty (for the folded part) and short (for the chip).
 * @param {unknown} args
 */
function argsText(args) {
  let value = args;
  if (typeof args === "string") {
    if (!args.trim()) return { pretty: "", short: "" };
    try {
      value = JSON.parse(args);
    } catch {
      return { pretty: args, short: clip(args.replace(/\s+/g, " "), 60) };
    }
  }
  if (value === null || value === undefined) return { pretty: "", short: "" };
  if (typeof value === "object" && !Array.isArray(value) && !Object.keys(value).length)
    return { pretty: "", short: "" };
  const compact =
    typeof value === "object" && !Array.isArray(value)
      ? Object.entries(/** @type {Record<string, unknown>} */ (value))
          .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
          .join(", ")
      : JSON.stringify(value);
  return { pretty: JSON.stringify(value, null, 2), short: clip(compact, 60) };
}

/** A result's content as text. @param {unknown} content */
function contentText(content) {
  if (typeof content === "string") return content;
  if (content === null || content === undefined) return "";
  return JSON.stringify(content);
}

/** JSON made readable; other text as it is. @param {string} text */
function prettyJson(text) {
  const t = text.trim();
  if (!t.startsWith("{") && !t.startsWith("[")) return clip(text, 20_000);
  try {
    return clip(JSON.stringify(JSON.parse(t), null, 2), 20_000);
  } catch {
    return clip(text, 20_000);
  }
}

/**
 * What a result says, in a few words: "3 items", its first line, or the error.
 * @param {string} text
 * @param {boolean} ok
 */
function summary(text, ok) {
  const t = text.trim();
  let out = "";
  if (t.startsWith("[") || t.startsWith("{")) {
    try {
      const v = JSON.parse(t);
      if (Array.isArray(v)) out = v.length === 1 ? "1 item" : `${v.length} items`;
      else if (v && typeof v === "object") {
        const o = /** @type {Record<string, unknown>} */ (v);
        const list = Object.values(o).find((x) => Array.isArray(x));
        if (typeof o.error === "string") out = o.error;
        else if (typeof o.message === "string") out = o.message;
        else if (Array.isArray(list)) out = list.length === 1 ? "1 item" : `${list.length} items`;
        else {
          // A few of its plain fields: "state: queued, cost_usd: 4.31".
          out = Object.entries(o)
            .filter(([k, x]) => ["string", "number", "boolean"].includes(typeof x) && !/(^|_)id$/.test(k))
            .slice(0, 3)
            .map(([k, x]) => `${k}: ${x}`)
            .join(", ");
          if (!out) out = "done";
        }
      }
    } catch {
      out = "";
    }
  }
  if (!out) out = t.split("\n")[0] || (ok ? "done" : "failed");
  return clip(ok ? out : `failed: ${out}`, 80);
}

/** Whether a tool's result says the user declined the call. @param {string} text */
function declined(text) {
  return /^\s*(the user )?declined\b/i.test(text);
}

/** @param {string} s @param {number} n */
function clip(s, n) {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
