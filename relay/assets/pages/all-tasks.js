// The Tasks view (#/tasks): every task the signed-in user may see, across workspaces and projects,
// newest first and paged, with filters for state, source, workspace, project and who started it.
// The list itself is lib/tasks.js's, kept current by task events.

import { api } from "../api.js";
import { h, uid } from "../lib/dom.js";
import { projectNames, withIds } from "../lib/state.js";
import { taskList } from "../lib/tasks.js";

/** @typedef {import("../lib/types.js").Page} Page */

/** @returns {Page} */
export function buildTasksPage() {
  const heading = h("h1", { id: uid("h"), tabindex: -1, text: "Tasks" });
  const tasks = taskList({}, { showWorkspace: true, global: true });
  let alive = true;
  const root = h(
    "section.view",
    { "aria-labelledby": heading.id, "data-testid": "tasks-page" },
    h(
      "div.view-head",
      null,
      h(
        "div.view-title",
        null,
        heading,
        h("span.summary", { text: "Across your workspaces and projects, newest first" }),
      ),
    ),
    tasks.root,
  );

  // The project filter and the project names in the rows need the projects.
  api.projects().then(
    (list) => {
      if (!alive) return;
      for (const p of withIds(list)) projectNames.set(p.id, p.name);
      tasks.refreshNames();
    },
    () => {
      // Only the project filter's names are missing; the list works without them.
    },
  );
  tasks.load();

  return {
    root,
    heading,
    nav: "tasks",
    title: () => "Tasks",
    destroy() {
      alive = false;
      tasks.destroy();
    },
    onTask(t) {
      tasks.onTask(t);
    },
    onWorkspaces() {
      tasks.refreshNames();
    },
  };
}
