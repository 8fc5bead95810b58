// The run page's stage details: what one stage did (state, attempt, times, tokens, cost, the
// commit it made, error, a reviewer's feedback, a recovery stage's rounds), its LLM output as it
// streams in, its artifacts, the decision on an approval gate that waits, and running it again.

import { api, asApiError } from "../api.js";
import { clear, field, h } from "../lib/dom.js";
import { fmtBytes, fmtCount, fmtUsd, timeEl } from "../lib/format.js";
import { dependents, pipelineBadge, reasonLabel, runActive, runBranch, spanEl, tokensText } from "../lib/pipelines.js";
import { stageStateText } from "../lib/stagegraph.js";

/** @typedef {import("../lib/types.js").RunView} RunView */
/** @typedef {import("../lib/types.js").StageView} StageView */
/** @typedef {import("../lib/types.js").RecoveryRound} RecoveryRound */
/** @typedef {import("../lib/types.js").ArtifactMeta} ArtifactMeta */
/** @typedef {import("../lib/types.js").PipelineText} PipelineText */

/** Most of a stage's streamed output kept in the page (the tail is kept). */
export const OUTPUT_KEEP = 256 * 1024;

/** How much of a recovery round's error its line shows (all of it when opened). */
const ROUND_ERROR_CHARS = 140;

/**
 * @typedef {object} StagePanelHooks
 * @property {() => boolean} canAct whether the signed-in user may decide gates and resume (not a viewer)
 * @property {(r: RunView, sentAt: number) => void} onRun an action's answer: the run as it is now
 * @property {(stage: string) => ArtifactMeta[]} artifactsOf the artifacts a stage wrote (as far as they are loaded)
 * @property {(path: string) => void} openArtifact show an artifact in the Artifacts tab
 * @property {() => number} eventCount how many run events arrived so far (orders answers and events)
 */

/**
 * @param {string} runId
 * @param {StagePanelHooks} hooks
 */
export function stagePanel(runId, hooks) {
  const root = h("div.stage-panel", { "data-testid": "stage-panel" });
  /** @type {Map<string, { attempt: number, text: string, trimmed: boolean }>} stage -> its streamed output */
  const outputs = new Map();
  /** The output on screen: its stage, text node, box and notes. */
  /** @type {{ stage: string, text: Text, pre: HTMLElement, empty: HTMLElement, trimmed: HTMLElement } | null} */
  let shown = null;
  let sig = "";
  let rejectDraft = "";
  /** @type {Set<string>} "stage#round" of the recovery rounds opened (they stay open across re-renders) */
  const openRounds = new Set();

  /**
   * Shows `stage` of `run` (re-rendered only when what it shows changed, so a comment being typed
   * and the output's scroll position stay).
   * @param {RunView} run
   * @param {string | null} name
   * @param {boolean} [force]
   */
  function show(run, name, force = false) {
    const s = name ? run.stages.find((x) => x.name === name) : null;
    const arts = s ? hooks.artifactsOf(s.name).map((a) => `${a.path}:${a.size}`) : [];
    const next = JSON.stringify([run.state, s, arts, hooks.canAct()]);
    if (next === sig && !force) return;
    sig = next;
    // The same stage's output keeps its scroll position (or stays at its end) across re-renders.
    const keep =
      shown && shown.stage === name
        ? { top: shown.pre.scrollTop, end: shown.pre.scrollTop + shown.pre.clientHeight >= shown.pre.scrollHeight - 4 }
        : null;
    // So does a comment being typed (the draft is kept; the focus and the caret come back).
    const typing =
      document.activeElement instanceof HTMLTextAreaElement && root.contains(document.activeElement)
        ? { start: document.activeElement.selectionStart, end: document.activeElement.selectionEnd }
        : null;
    clear(root);
    shown = null;
    if (!s) {
      root.append(
        h("p.muted.stage-hint", { text: "Choose a stage above to see what it did and its output as it streams." }),
      );
      return;
    }
    root.dataset.stage = s.name;
    root.append(head(run, s), facts(run, s));
    if (s.error) {
      root.append(
        h(
          "div.exit-reason",
          { class: s.state === "failed" ? "is-failed" : "is-warn", "data-testid": "stage-error" },
          h("span", { text: [reasonLabel(s.reason), s.error].filter(Boolean).join(" · ") }),
        ),
      );
    }
    if (s.feedback) {
      root.append(
        h(
          "div.stage-feedback",
          { "data-testid": "stage-feedback" },
          h("span.field-label", { text: "Reviewer's comment, given to its next attempt" }),
          h("p", { text: s.feedback }),
        ),
      );
    }
    if (Array.isArray(s.rounds) && s.rounds.length) root.append(roundsEl(s));
    if (s.kind === "approval") {
      root.append(gate(run, s));
      const ta = root.querySelector("textarea");
      if (typing && ta && !ta.closest("[hidden]")) {
        ta.focus();
        ta.setSelectionRange(typing.start, typing.end);
      }
    } else {
      root.append(output(s));
      const pre = /** @type {{ pre: HTMLElement } | null} */ (shown)?.pre;
      if (keep && pre) pre.scrollTop = keep.end ? pre.scrollHeight : keep.top;
    }
    const arts2 = hooks.artifactsOf(s.name);
    if (arts2.length) {
      root.append(
        h(
          "div.stage-artifacts",
          null,
          h("span.field-label", { text: "Artifacts" }),
          h(
            "ul.chip-list",
            null,
            arts2.map((a) => {
              const b = h(
                "button.btn.btn-small.mono",
                { type: "button", "data-testid": "stage-artifact", title: `${a.media_type} · ${fmtBytes(a.size)}` },
                a.path,
              );
              b.addEventListener("click", () => hooks.openArtifact(a.path));
              return h("li", null, b);
            }),
          ),
        ),
      );
    }
  }

  /** @param {RunView} run @param {StageView} s */
  function head(run, s) {
    /** @type {HTMLButtonElement | null} */
    let again = null;
    if (hooks.canAct() && !runActive(run) && s.state !== "pending" && s.kind !== "approval") {
      const btn = h(
        "button.btn.btn-small",
        { type: "button", "data-testid": "stage-rerun", title: "Run this stage and every stage after it again" },
        "Run again from here",
      );
      again = btn;
      btn.addEventListener("click", () => {
        if (
          !window.confirm(
            `Run “${s.name}” and every stage after it again?\n\nTheir LLM calls are made (and paid) again.`,
          )
        )
          return;
        act(btn, () => api.resumePipelineRun(runId, { from_stage: s.name }), "run the stage again");
      });
    }
    return h(
      "div.stage-panel-head",
      null,
      h("h3", null, h("span.mono", { text: s.name }), " ", h("span.tag.tag-stack", { text: s.kind })),
      pipelineBadge(s.state, "stage-panel-state"),
      s.state === "waiting" ? h("span.muted.small", { text: stageStateText(s) }) : null,
      h("span.grow"),
      again,
    );
  }

  /** @param {RunView} run @param {StageView} s */
  function facts(run, s) {
    /** @param {string} label @param {import("../lib/types.js").Child} value @param {string} [cls] */
    const fact = (label, value, cls) =>
      h("div.fact", { class: cls || null }, h("dt", { text: label }), h("dd", null, value));
    const u = s.usage;
    return h(
      "dl.facts.facts-tight.facts-2",
      null,
      fact("Attempt", String(s.attempt || 0)),
      fact("Needs", s.needs?.length ? h("span.mono", { text: s.needs.join(", ") }) : h("span.muted", { text: "—" })),
      fact("Started", s.started_at ? timeEl(s.started_at) : h("span.muted", { text: "not yet" })),
      fact("Duration", spanEl(s.started_at, s.finished_at, s.state === "running")),
      fact("Calls", fmtCount(u?.calls ?? 0)),
      fact("Tokens", u?.calls ? tokensText(u) : h("span.muted", { text: "—" })),
      fact("Cost", u?.calls ? fmtUsd(u.cost_usd) : h("span.muted", { text: "—" })),
      ...(s.task_id
        ? [fact("Task", h("a", { href: `#/tasks/${encodeURIComponent(s.task_id)}`, text: "its task and log" }))]
        : []),
      ...(s.commit ? [fact("Commit", commitRef(run, s.commit), "fact-wide")] : []),
    );
  }

  /** The commit a stage made, on its run's branch: "abc1234 on fulcrum/run-x7k2". @param {RunView} run @param {string} sha */
  function commitRef(run, sha) {
    const branch = runBranch(run.handle);
    return h(
      "span.commit-ref.mono",
      { "data-testid": "stage-commit", "data-commit": sha },
      h("span.ref-sha", { "data-testid": "stage-commit-sha", title: sha, text: sha.slice(0, 7) }),
      branch ? h("span.ref-at", { text: " on " }) : null,
      branch ? h("span.ref-branch", { "data-testid": "stage-branch", title: "The run's branch", text: branch }) : null,
    );
  }

  /**
   * A recovery stage's rounds, in order: "Round 2 — build failed: <the error's first line, cut>";
   * a round opens on the whole error. Its attempt, reason and fingerprint are in its tooltip.
   * @param {StageView} s
   */
  function roundsEl(s) {
    const rounds = s.rounds;
    return h(
      "div.stage-rounds",
      { "data-testid": "stage-rounds" },
      h(
        "div.failures-head",
        null,
        h("span.field-label", { text: "Recovery rounds" }),
        h("span.muted.small", { text: rounds.length === 1 ? "1 failure to fix" : `${rounds.length} failures to fix` }),
      ),
      h(
        "ol.failures",
        null,
        rounds.map((r, i) => {
          const n = i + 1;
          const key = `${s.name}#${n}`;
          const error = typeof r.error === "string" ? r.error.trim() : "";
          const details = h(
            "details",
            { open: openRounds.has(key) },
            h(
              "summary",
              {
                title: [
                  `${r.stage}, attempt ${r.attempt}`,
                  reasonLabel(r.reason),
                  r.fingerprint ? `fingerprint ${r.fingerprint}` : "",
                ]
                  .filter(Boolean)
                  .join(" · "),
              },
              `Round ${n} — `,
              h("span.mono.failure-name", { text: r.stage }),
              error ? ` failed: ${shortError(error)}` : " failed",
            ),
            h("pre.failure-msg", { text: error || "No error text." }),
          );
          details.addEventListener("toggle", () => {
            if (details.open) openRounds.add(key);
            else openRounds.delete(key);
          });
          return h(
            "li.failure",
            {
              "data-testid": "stage-round",
              "data-round": n,
              "data-stage": r.stage,
              "data-attempt": r.attempt,
              "data-fingerprint": r.fingerprint || null,
            },
            details,
          );
        }),
      ),
    );
  }

  /** The decision on an approval gate. @param {RunView} run @param {StageView} s */
  function gate(run, s) {
    const after = dependents(run.stages, s.name);
    if (s.state !== "waiting") {
      const text =
        s.state === "succeeded"
          ? "Approved."
          : s.state === "pending"
            ? `Waits for ${s.needs.join(", ") || "nothing"} before asking for a decision.`
            : `This gate is ${s.state}.`;
      return h("p.muted.gate-note", { text });
    }
    const error = h("div.form-error", { role: "alert", "data-testid": "gate-error", hidden: true });
    const lead = h(
      "p.gate-lead",
      null,
      "This gate waits for a decision. ",
      after.length ? `Approving lets ${after.join(", ")} run; ` : "Approving lets the run go on; ",
      s.needs.length ? `rejecting runs ${s.needs.join(", ")} again with your comment.` : "rejecting runs it again.",
    );
    if (!hooks.canAct()) {
      return h(
        "div.gate",
        { "data-testid": "gate" },
        lead,
        h("p.muted.small", { text: "A maintainer or owner decides." }),
      );
    }
    const approve = h("button.btn.btn-primary", { type: "button", "data-testid": "stage-approve" }, "Approve");
    const openReject = h(
      "button.btn",
      { type: "button", "data-testid": "stage-reject-open", "aria-expanded": "false" },
      "Reject…",
    );
    const comment = h("textarea", {
      rows: 3,
      maxlength: 4000,
      required: true,
      "data-testid": "stage-reject-comment",
      placeholder: "e.g. Add a section on configuration, and keep it under ten items.",
    });
    comment.value = rejectDraft;
    comment.addEventListener("input", () => {
      rejectDraft = comment.value;
    });
    const cancelReject = h("button.btn.btn-ghost.btn-small", { type: "button" }, "Cancel");
    const reject = h("button.btn.btn-danger.btn-small", { type: "submit", "data-testid": "stage-reject" }, "Reject");
    const rejectForm = h(
      "form.gate-reject",
      { hidden: !rejectDraft, "aria-label": "Reject" },
      field("What should change?", comment, "Given to the stages that run again."),
      h("div.form-actions", null, cancelReject, reject),
    );
    openReject.setAttribute("aria-expanded", rejectDraft ? "true" : "false");
    openReject.addEventListener("click", () => {
      rejectForm.hidden = false;
      openReject.setAttribute("aria-expanded", "true");
      comment.focus();
    });
    cancelReject.addEventListener("click", () => {
      rejectForm.hidden = true;
      rejectDraft = "";
      comment.value = "";
      openReject.setAttribute("aria-expanded", "false");
      openReject.focus();
    });
    approve.addEventListener("click", () => act(approve, () => api.approveStage(runId, s.name), "approve", error));
    rejectForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = comment.value.trim();
      if (!text) {
        error.textContent = "Say what should change: the stages that run again get your comment.";
        error.hidden = false;
        comment.focus();
        return;
      }
      act(
        reject,
        async () => {
          const r = await api.rejectStage(runId, s.name, text);
          rejectDraft = "";
          return r;
        },
        "reject",
        error,
      );
    });
    return h(
      "div.gate",
      { "data-testid": "gate" },
      lead,
      h("div.gate-actions", null, approve, openReject),
      rejectForm,
      error,
    );
  }

  /**
   * Runs an action from a button, handing its answer on; errors go to `error` (or an alert).
   * @param {HTMLButtonElement} btn
   * @param {() => Promise<RunView>} call
   * @param {string} what
   * @param {HTMLElement} [error]
   */
  async function act(btn, call, what, error) {
    btn.disabled = true;
    if (error) error.hidden = true;
    const sentAt = hooks.eventCount();
    try {
      const r = await call();
      if (r?.id === runId) hooks.onRun(r, sentAt);
    } catch (caught) {
      const message = `Couldn't ${what}: ${asApiError(caught).message}`;
      if (error?.isConnected) {
        error.textContent = message;
        error.hidden = false;
      } else window.alert(message);
    } finally {
      if (btn.isConnected) btn.disabled = false;
    }
  }

  /** The streamed output of an LLM stage. @param {StageView} s */
  function output(s) {
    const kept = outputs.get(s.name);
    const fresh = kept && kept.attempt >= s.attempt ? kept : null;
    const text = document.createTextNode(fresh ? fresh.text : "");
    const pre = h(
      "pre.stage-output",
      { "data-testid": "stage-output", tabindex: 0, "aria-label": `Output of ${s.name}` },
      text,
    );
    const emptyText =
      s.state === "pending"
        ? "Not started yet."
        : s.state === "running"
          ? "Waiting for the first words…"
          : !s.usage?.calls
            ? "No output: it has made no LLM call."
            : "Its answer streamed while it ran, before this page was open: what it wrote is in its artifacts.";
    const empty = h("p.muted.small.stage-output-empty", { text: emptyText, hidden: !!fresh?.text });
    pre.hidden = !fresh?.text;
    const trimmed = h("p.log-note", {
      text: `Showing the last ${fmtBytes(OUTPUT_KEEP)} of the output.`,
      hidden: !fresh?.trimmed,
    });
    shown = { stage: s.name, text, pre, empty, trimmed };
    return h(
      "div.stage-output-wrap",
      null,
      h(
        "div.stage-output-head",
        null,
        h("span.field-label", { text: s.state === "running" ? "Output (live)" : "Output" }),
        s.state === "running" ? h("span.live-dot", { "aria-hidden": "true" }) : null,
      ),
      trimmed,
      empty,
      pre,
    );
  }

  /** The next piece of a stage's answer. @param {PipelineText} m */
  function onText(m) {
    const attempt = typeof m.attempt === "number" ? m.attempt : 0;
    let o = outputs.get(m.stage);
    if (o && attempt < o.attempt) return; // from an attempt that is over
    if (!o || attempt > o.attempt) {
      o = { attempt, text: "", trimmed: false };
      outputs.set(m.stage, o);
      if (shown?.stage === m.stage) shown.text.data = "";
    }
    o.text += m.text;
    let cut = false;
    if (o.text.length > OUTPUT_KEEP) {
      o.text = o.text.slice(-OUTPUT_KEEP);
      o.trimmed = true;
      cut = true;
    }
    if (shown?.stage !== m.stage) return;
    const pre = shown.pre;
    const atEnd = pre.hidden || pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    if (cut) shown.text.data = o.text;
    else shown.text.appendData(m.text);
    pre.hidden = false;
    shown.empty.hidden = true;
    shown.trimmed.hidden = !o.trimmed;
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }

  return { root, show, onText };
}

/** An error's first line, cut to ROUND_ERROR_CHARS ("…" when there is more). @param {string} text */
export function shortError(text) {
  const line = text.split("\n", 1)[0].trim();
  if (line.length > ROUND_ERROR_CHARS) return `${line.slice(0, ROUND_ERROR_CHARS - 1).trimEnd()}…`;
  return line.length < text.length ? `${line} …` : line;
}
