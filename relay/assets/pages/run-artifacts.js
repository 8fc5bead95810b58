// The run page's Artifacts tab: the files the stages wrote, one shown as text (monospace, wrapped;
// fetched with the bearer token), each downloadable, and all of them as a zip.

import { api, asApiError } from "../api.js";
import { append, clear, copyButton, errorBanner, h, loadingEl, saveBlob } from "../lib/dom.js";
import { fmtBytes, timeEl } from "../lib/format.js";
import { signedIn } from "../lib/shell.js";

/** @typedef {import("../lib/types.js").ArtifactMeta} ArtifactMeta */

/** Most of an artifact shown in the page (the rest is in the download). */
const SHOW_MAX = 2 * 1024 * 1024;

/**
 * @param {string} runId
 * @param {{ handle: () => string, onLoad: () => void }} hooks `onLoad`: the list changed
 */
export function artifactsPanel(runId, hooks) {
  /** @type {ArtifactMeta[] | null} */
  let list = null;
  /** @type {string | null} */
  let error = null;
  /** @type {string | null} */
  let selected = null;
  let seq = 0;
  let viewSeq = 0;
  /** The content shown: the SHA-256 of the file in the viewer. */
  let shownSha = "";

  const zip = h(
    "button.btn.btn-small",
    { type: "button", "data-testid": "artifacts-zip", disabled: true },
    "Download all (.zip)",
  );
  const zipError = h("div.form-error", { role: "alert", hidden: true });
  const listSlot = h("div.artifact-list");
  const viewer = h("div.artifact-viewer", { "data-testid": "artifact-viewer" });
  const root = h(
    "div.artifacts",
    { "data-testid": "artifacts" },
    h("div.artifacts-bar", null, h("span.muted.small", { "data-testid": "artifact-count" }), h("span.grow"), zip),
    zipError,
    h("div.artifacts-split", null, listSlot, viewer),
  );

  zip.addEventListener("click", async () => {
    zip.disabled = true;
    zipError.hidden = true;
    const label = zip.textContent;
    zip.textContent = "Preparing…";
    try {
      saveBlob(await api.pipelineArtifactsZip(runId), `fulcrum-run-${hooks.handle() || runId}.zip`);
    } catch (err) {
      zipError.textContent = `Couldn't download the artifacts: ${asApiError(err).message}`;
      zipError.hidden = false;
    } finally {
      zip.textContent = label;
      zip.disabled = !list?.length;
    }
  });

  async function load() {
    const my = ++seq;
    try {
      const got = await api.pipelineArtifacts(runId);
      if (my !== seq) return;
      list = (Array.isArray(got) ? got : [])
        .filter((a) => a && typeof a.path === "string")
        .sort((a, b) => a.path.localeCompare(b.path));
      error = null;
      if (selected && !list.some((a) => a.path === selected)) selected = null;
      renderList();
      // A file written again (by a new attempt) is shown again.
      const cur = list.find((a) => a.path === selected);
      if (cur && cur.sha256 !== shownSha) view(cur);
      hooks.onLoad();
    } catch (err) {
      if (my !== seq || !signedIn()) return;
      error = asApiError(err).message;
      renderList();
    }
  }

  function renderList() {
    clear(listSlot);
    const count = /** @type {HTMLElement} */ (root.querySelector('[data-testid="artifact-count"]'));
    zip.disabled = !list?.length;
    if (!list) {
      count.textContent = "";
      listSlot.append(
        error ? errorBanner(`Couldn't load the artifacts: ${error}`, load) : loadingEl("Loading artifacts…"),
      );
      return;
    }
    count.textContent = list.length === 1 ? "1 file" : `${list.length} files`;
    if (error) listSlot.append(errorBanner(`Couldn't refresh the artifacts: ${error}`, load));
    if (!list.length) {
      listSlot.append(
        h("p.muted.small.artifact-none", { text: "No artifacts yet: stages write them as they succeed." }),
      );
      return;
    }
    listSlot.append(
      h(
        "ul.artifact-items",
        null,
        list.map((a) => {
          const b = h(
            "button.artifact-item",
            {
              type: "button",
              "data-testid": "artifact",
              "data-path": a.path,
              "aria-pressed": a.path === selected ? "true" : "false",
            },
            h("span.artifact-path.mono", { text: a.path }),
            h("span.artifact-sub", { text: `${a.stage} · ${fmtBytes(a.size)}` }),
          );
          b.addEventListener("click", () => open(a.path));
          return h("li", null, b);
        }),
      ),
    );
    if (!selected) renderViewer();
  }

  function renderViewer() {
    clear(viewer);
    viewer.append(h("p.muted.small.artifact-none", { text: list?.length ? "Choose a file to read it here." : "" }));
  }

  /** Shows an artifact (loading the list first when it is not there yet). @param {string} path */
  function open(path) {
    selected = path;
    for (const b of listSlot.querySelectorAll("button.artifact-item")) {
      if (b instanceof HTMLElement) b.setAttribute("aria-pressed", b.dataset.path === path ? "true" : "false");
    }
    const a = list?.find((x) => x.path === path);
    if (a) view(a);
    else load();
  }

  /** @param {ArtifactMeta} a */
  async function view(a) {
    const my = ++viewSeq;
    shownSha = "";
    clear(viewer);
    viewer.append(loadingEl(`Loading ${a.path}…`));
    try {
      const blob = await api.pipelineArtifact(runId, a.path);
      const text = await blob.slice(0, SHOW_MAX).text();
      if (my !== viewSeq) return;
      shownSha = a.sha256;
      const download = h("button.btn.btn-small", { type: "button" }, "Download");
      download.addEventListener("click", () => saveBlob(blob, a.path.split("/").pop() || "artifact"));
      clear(viewer);
      append(viewer, [
        h(
          "div.artifact-head",
          null,
          h("span.artifact-path.mono", { "data-testid": "artifact-open-path", text: a.path }),
          h(
            "span.muted.small",
            null,
            `${a.media_type} · ${fmtBytes(a.size)} · ${a.stage}${a.attempt > 1 ? ` (attempt ${a.attempt})` : ""} · `,
            timeEl(a.created_at),
          ),
          h("span.grow"),
          copyButton(() => text),
          download,
        ),
        blob.size > SHOW_MAX
          ? h("p.log-note", { text: `Showing the first ${fmtBytes(SHOW_MAX)}; download it for the rest.` })
          : null,
        h("pre.artifact-content", { "data-testid": "artifact-content", tabindex: 0 }, text),
      ]);
    } catch (err) {
      if (my !== viewSeq) return;
      clear(viewer);
      viewer.append(errorBanner(`Couldn't load ${a.path}: ${asApiError(err).message}`, () => view(a)));
    }
  }

  renderList();

  return {
    root,
    load,
    open,
    /** How many files, or null before the first load. */
    count: () => (list ? list.length : null),
    /** The files a stage wrote. @param {string} stage */
    of: (stage) => (list || []).filter((a) => a.stage === stage),
    destroy() {
      seq++;
      viewSeq++;
    },
  };
}
