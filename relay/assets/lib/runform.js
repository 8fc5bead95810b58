// The "Run" form of a workspace or a project: a command or a QA step, with options.

import { api, asApiError } from "../api.js";
import { clear, enc, field, h, uid } from "./dom.js";

/** @typedef {import("./types.js").RunBody} RunBody */

/**
 * "KEY=value" lines (blank lines and # comments skipped) -> {KEY: "value"}.
 * @param {string} text
 */
export function parseEnv(text) {
  /** @type {Record<string, string>} */
  const env = {};
  const lines = String(text || "").split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    const key = eq > 0 ? line.slice(0, eq).trim() : "";
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new Error(`Environment line ${i + 1}: expected KEY=value.`);
    }
    env[key] = line.slice(eq + 1);
  }
  return env;
}

/**
 * "Run" form. On a workspace: a repository select and a command. On a project: a command or a
 * QA step, and a repository path; the relay picks an online workspace. Opens the new task.
 */
/** @param {{ workspaceId?: string, projectId?: string }} target */
export function runForm({ workspaceId, projectId }) {
  const forProject = !!projectId;
  const repoInput = h("input.mono", {
    type: "text",
    value: ".",
    spellcheck: "false",
    autocomplete: "off",
    "data-testid": "run-repo",
  });
  const repoSelect = h("select.mono", { "data-testid": "run-repo" });
  const repoControl = forProject ? repoInput : repoSelect;
  const command = h("input.mono", {
    type: "text",
    placeholder: "e.g. cargo test",
    spellcheck: "false",
    autocomplete: "off",
    "data-testid": "run-command",
  });
  const step = h("input.mono", {
    type: "text",
    placeholder: "e.g. test",
    spellcheck: "false",
    autocomplete: "off",
    "data-testid": "run-step",
  });
  const env = h("textarea.mono", {
    rows: 3,
    spellcheck: "false",
    placeholder: "RUST_LOG=debug",
    "data-testid": "run-env",
  });
  const timeout = h("input", {
    type: "number",
    min: 1,
    step: 1,
    placeholder: "relay default",
    "data-testid": "run-timeout",
  });
  const submit = h("button.btn.btn-primary", { type: "submit", "data-testid": "run-submit" }, "Run");
  const error = h("div.form-error", { role: "alert", "data-testid": "run-error", hidden: true });
  const note = h("p.muted.small.run-note", { hidden: true });

  const commandField = field("Command", command);
  const stepField = field("QA step", step, "A step defined for the project, e.g. test or lint");
  let kind = "command";
  let kindSwitch = null;
  if (forProject) {
    const name = uid("kind");
    /** @param {string} value @param {string} label */
    const radio = (value, label) => {
      const input = h("input", {
        type: "radio",
        name,
        value,
        checked: value === kind,
        "data-testid": `run-kind-${value}`,
      });
      input.addEventListener("change", () => {
        if (input.checked) setKind(value);
      });
      return h("label.radio", null, input, h("span", { text: label }));
    };
    kindSwitch = h(
      "fieldset.kind",
      null,
      h("legend.field-label", { text: "Run" }),
      radio("command", "Command"),
      radio("step", "QA step"),
    );
  }
  /** @param {string} k */
  function setKind(k) {
    kind = k;
    commandField.hidden = k !== "command";
    stepField.hidden = k !== "step";
  }
  setKind("command");

  const options = h(
    "details.run-options",
    null,
    h("summary", { text: "Options" }),
    h(
      "div.run-options-body",
      null,
      field("Environment", env, "KEY=value, one per line"),
      h("div.run-timeout", null, field("Timeout (seconds)", timeout)),
    ),
  );
  const form = h(
    "form.run-form",
    { "data-testid": "run-form", "aria-label": forProject ? "Run on this project" : "Run on this workspace" },
    kindSwitch,
    h(
      "div.run-row",
      null,
      h("div.run-repo", null, field(forProject ? "Repository path" : "Repository", repoControl)),
      h("div.grow", null, commandField, stepField),
      submit,
    ),
    options,
    note,
    error,
  );

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    /** @type {RunBody} */
    const body = forProject ? { project_id: projectId } : { workspace_id: workspaceId };
    body.repo = (repoControl.value || ".").trim() || ".";
    /** @type {HTMLInputElement | HTMLTextAreaElement | null} */
    let focusOnError = null;
    try {
      if (kind === "step") {
        const v = step.value.trim();
        if (!v) {
          focusOnError = step;
          throw new Error("Enter the name of a QA step.");
        }
        body.step = v;
      } else {
        const v = command.value.trim();
        if (!v) {
          focusOnError = command;
          throw new Error("Enter a command to run.");
        }
        body.command = v;
      }
      focusOnError = env;
      const e = parseEnv(env.value);
      if (Object.keys(e).length) body.env = e;
      if (timeout.value !== "") {
        const n = Number(timeout.value);
        focusOnError = timeout;
        if (!Number.isInteger(n) || n <= 0) throw new Error("The timeout must be a whole number of seconds.");
        body.timeout_s = n;
      }
    } catch (err) {
      error.textContent = err instanceof Error ? err.message : String(err);
      error.hidden = false;
      if (focusOnError) {
        if (focusOnError === env || focusOnError === timeout) options.open = true;
        focusOnError.focus();
      }
      return;
    }
    submit.disabled = true;
    submit.textContent = "Starting…";
    try {
      const task = await api.createTask(body);
      if (task && typeof task.id === "string") {
        location.hash = `#/tasks/${enc(task.id)}`;
        return;
      }
      throw new Error("The relay did not return the new task.");
    } catch (caught) {
      const err = asApiError(caught);
      error.textContent =
        err.code === "workspace_offline"
          ? err.message || "The workspace is offline. Start its agent and try again."
          : err.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
      submit.textContent = "Run";
    }
  });

  /** Workspace forms: refresh the repository choices, keeping the selection. */
  /** @param {(string | null | undefined)[]} paths */
  function setRepos(paths) {
    if (forProject) return;
    /** @type {string[]} */
    const list = [
      ...new Set(
        [".", ...(paths || [])].filter(/** @returns {p is string} */ (p) => typeof p === "string" && p !== ""),
      ),
    ];
    list.sort((a, b) => (a === "." ? -1 : b === "." ? 1 : a.localeCompare(b)));
    const current = repoSelect.value || ".";
    const have = [...repoSelect.options].map((o) => o.value);
    if (have.join("\n") === list.join("\n")) return;
    clear(repoSelect);
    for (const p of list) repoSelect.append(h("option", { value: p, text: p }));
    repoSelect.value = list.includes(current) ? current : ".";
  }
  if (!forProject) setRepos([]);

  /** @param {string} text */
  function setNote(text) {
    note.textContent = text || "";
    note.hidden = !text;
  }

  return { root: form, setRepos, setNote };
}
