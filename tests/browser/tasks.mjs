// Headless-browser test of the dashboard's projects and tasks, against a running relay with one
// online agent whose workspace root is a git repository (repo path ".").
//
//   FULCRUM_URL=http://127.0.0.1:34567 FULCRUM_EMAIL=... FULCRUM_PASSWORD=... \
//   FULCRUM_TEST_TASK_WITH_FAILURES=<task id> node tests/browser/tasks.mjs
//
// Required: FULCRUM_URL, FULCRUM_EMAIL, FULCRUM_PASSWORD (the same as dashboard.mjs; the user
// must own the online workspace), and one of:
//   FULCRUM_TEST_TASK_WITH_FAILURES  id of a finished task whose test_summary has failures
//                                    (e.g. a small cargo/pytest QA step the Rust test ran);
//   FULCRUM_TEST_QA_STEP             a QA step name whose run reports failing tests: the test
//                                    then runs it itself from the project page.
// Optional:
//   FULCRUM_TEST_FAILING_TEST        (part of) a failing test's name that must be listed
//   FULCRUM_WORKSPACE_ID             use this workspace (default: the first online one)
//   FULCRUM_QA_TIMEOUT_MS            bound for the QA step / failing task to finish (default 180000)
//   CHROMIUM_PATH (default /usr/bin/chromium), SCREENSHOT_DIR,
//   FULCRUM_BROWSER_TIMEOUT_MS       per-wait bound (default 15000).
// Runs shell commands in the workspace: a 2000-line loop ending in `exit 3`, `sleep 30`
// (canceled), a 608-line output with ANSI colours, a ::group:: and an error line (the log viewer:
// colours, folding, search, jump to the first error, line links), `seq 1 200000` (virtual
// scrolling keeps few line elements in the page), and an echo started from a project the test
// creates (and archives at the end).
// Exit code 0 when every step passed, 1 otherwise. Last line: "browser: N passed, M failed".
// Every wait is on a condition; there are no fixed sleeps.

import crypto from "node:crypto";
import { chromium } from "playwright-core";
import { CHROMIUM, StepError, WAIT, fail, logIn, requireSetup, screenshot, tid, until, waitFor } from "./harness.mjs";

const env = process.env;
const BASE = (env.FULCRUM_URL || "").replace(/\/+$/, "");
const EMAIL = env.FULCRUM_EMAIL;
const PASSWORD = env.FULCRUM_PASSWORD;
const FAILING_TASK = env.FULCRUM_TEST_TASK_WITH_FAILURES || "";
const QA_STEP = env.FULCRUM_TEST_QA_STEP || "";
const FAILING_NAME = env.FULCRUM_TEST_FAILING_TEST || "";
const WORKSPACE_ID = env.FULCRUM_WORKSPACE_ID || "";
const LONG = Math.max(WAIT, 45_000);                       // a task's whole run
const QA_WAIT = Number(env.FULCRUM_QA_TIMEOUT_MS || 180_000);
const OVERALL_MS = Math.max(240_000, WAIT * 16) + QA_WAIT;

const LOOP = "for i in $(seq 1 2000); do echo line $i; done; exit 3";

const missing = ["FULCRUM_URL", "FULCRUM_EMAIL", "FULCRUM_PASSWORD"].filter((k) => !env[k]);
if (!FAILING_TASK && !QA_STEP) missing.push("FULCRUM_TEST_TASK_WITH_FAILURES or FULCRUM_TEST_QA_STEP");
requireSetup(missing);

const results = [];
const pageErrors = [];
const consoleErrors = [];

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 401/.test(m.text())) consoleErrors.push(m.text());
  });
  // Archiving asks for confirmation: accept confirm() dialogs, dismiss anything else.
  const dialogs = [];
  page.on("dialog", async (d) => {
    dialogs.push({ type: d.type(), message: d.message() });
    if (d.type() === "confirm") await d.accept(); else await d.dismiss();
  });

  const taskState = (state) => page.locator(`${tid("task-page")} ${tid("task-state")}[data-state="${state}"]`);
  const text = async (sel) => ((await page.locator(sel).first().textContent()) || "").trim();
  const hashOf = () => decodeURIComponent(new URL(page.url()).hash);
  let workspaceId = WORKSPACE_ID;
  let loopTask = null;
  let sleepTask = null;
  let projectId = null;
  let projectName = null;
  let projectTask = null;

  /** Submit the run form shown on the page and return the id of the task page it opens. */
  async function runFromForm(fill, previous) {
    await waitFor(page.locator(tid("run-form")), "the run form (run-form)");
    await fill();
    const before = hashOf();
    await page.click(tid("run-submit"));
    const id = await until(async () => {
      const err = page.locator(tid("run-error"));
      if (await err.isVisible()) fail(`the run form reported: ${((await err.textContent()) || "").trim()}`);
      const m = hashOf().match(/^#\/tasks\/([^/]+)$/);
      return m && hashOf() !== before && m[1] !== previous ? m[1] : null;
    }, "the new task's page (#/tasks/{id}) after pressing Run");
    await waitFor(page.locator(`${tid("task-page")}[data-task-id="${id}"]`), `the task page for ${id}`);
    return id;
  }

  /** Scrolls a virtual log view from top to bottom and returns every line's text, in order. */
  async function readWholeLog(log) {
    return log.evaluate(async (el) => {
      const seen = new Map();
      const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      el.scrollTop = 0;
      for (let guard = 0; guard < 5000; guard++) {
        await frame();
        for (const row of el.querySelectorAll('[data-testid="log-line"]'))
          seen.set(Number(row.dataset.line), row.querySelector(".log-text")?.textContent ?? "");
        if (el.scrollTop + el.clientHeight >= el.scrollHeight - 1) break;
        el.scrollTop += Math.max(18, el.clientHeight - 36);
      }
      return [...seen.entries()].sort((a, b) => a[0] - b[0]).map(([, t]) => t);
    });
  }

  /** Whether line n of the task log is rendered inside the log's visible box. */
  async function lineInView(n) {
    return page.locator(tid("task-log")).evaluate((el, n) => {
      const row = el.querySelector(`[data-testid="log-line"][data-line="${n}"]`);
      if (!row) return false;
      const a = el.getBoundingClientRect();
      const b = row.getBoundingClientRect();
      return b.top >= a.top - 1 && b.bottom <= a.bottom + 1;
    }, n);
  }

  const steps = [
    ["login", async () => {
      await logIn(page, BASE, EMAIL, PASSWORD);
    }],

    ["open the online workspace's tasks", async () => {
      const card = workspaceId
        ? page.locator(`${tid("workspace")}[data-workspace-id="${workspaceId}"][data-online="true"]`)
        : page.locator(`${tid("workspace")}[data-online="true"]`);
      await waitFor(card, workspaceId ? `the online workspace ${workspaceId}` : 'a workspace card with data-online="true"');
      workspaceId = await card.first().getAttribute("data-workspace-id");
      await card.first().locator(tid("workspace-tasks-link")).click();
      await until(async () => hashOf() === `#/workspaces/${workspaceId}/tasks`, `the URL #/workspaces/${workspaceId}/tasks`);
      await waitFor(page.locator(`${tid("run-repo")} option[value="."]`), 'the repository select offering "."', "attached");
      await waitFor(page.locator(tid("task-list")), "the task list (task-list)");
    }],

    ["fast output streams live: 2000 lines, then failed with exit code 3", async () => {
      loopTask = await runFromForm(async () => {
        await page.selectOption(tid("run-repo"), ".");
        await page.fill(tid("run-command"), LOOP);
      });
      const log = page.locator(`${tid("task-page")} ${tid("task-log")}`);
      await until(async () => ((await log.textContent()) || "").includes("line 2000"), 'the live log to reach "line 2000"', LONG);
      await waitFor(taskState("failed"), 'the task state badge to become data-state="failed"', "visible", LONG);
      await until(async () => (await text(tid("task-exit-code"))) === "3",
        `exit code 3 in task-exit-code (shows "${await text(tid("task-exit-code")).catch(() => "?")}")`);
      await waitFor(page.locator(`${tid("log-status")}[data-state="ended"]`), 'log-status data-state="ended" after the follow ends');
      // Every line exactly once and in order: nothing lost or doubled between chunks. Only the lines
      // in view are in the page (virtual scrolling): scroll through the log and collect them.
      const collected = await readWholeLog(log);
      const all = collected.join("\n");
      const lines = collected.filter((l) => /^line \d+$/.test(l));
      const bad = lines.findIndex((l, i) => l !== `line ${i + 1}`);
      if (lines.length !== 2000 || bad >= 0) {
        fail(`the log has ${lines.length} "line N" lines${bad >= 0 ? `; line #${bad + 1} is "${lines[bad]}"` : ""} (want line 1…line 2000 in order)`);
      }
      if (/\x1b/.test(all)) fail("the log view shows raw escape characters");
      if (await page.locator(tid("task-cancel")).count()) fail("a finished task still offers Cancel");
      await waitFor(page.locator(tid("task-rerun")), "the Re-run button");
      const rows = await log.locator(tid("log-line")).count();
      await screenshot(page, "task-failed.png");
      return `${rows} of ${collected.length} lines in the page at once`;
    }],

    ["cancel a running task", async () => {
      await page.click(tid("task-workspace-link"));
      await until(async () => hashOf() === `#/workspaces/${workspaceId}/tasks`, "the workspace tasks page via the task's workspace link");
      sleepTask = await runFromForm(async () => {
        await page.selectOption(tid("run-repo"), ".");
        await page.fill(tid("run-command"), "sleep 30");
      }, loopTask);
      await waitFor(taskState("running"), 'the task to become data-state="running"', "visible", LONG);
      await waitFor(page.locator(tid("task-cancel")), "the Cancel button while running");
      await page.click(tid("task-cancel"));
      await waitFor(taskState("canceled"), 'the task state badge to become data-state="canceled"');
      await waitFor(page.locator(tid("task-cancel")), "the Cancel button to go away", "detached");
      await waitFor(page.locator(`${tid("log-status")}[data-state="ended"]`), 'log-status data-state="ended" after canceling');
    }],

    ["the workspace's task list: states, exit code, filter", async () => {
      await page.click(tid("task-workspace-link"));
      await until(async () => hashOf() === `#/workspaces/${workspaceId}/tasks`, "the workspace tasks page");
      const row = (id) => page.locator(`${tid("task-row")}[data-task-id="${id}"]`);
      await waitFor(page.locator(`${tid("task-row")}[data-task-id="${loopTask}"][data-state="failed"]`), "the failed task's row");
      await waitFor(page.locator(`${tid("task-row")}[data-task-id="${sleepTask}"][data-state="canceled"]`), "the canceled task's row");
      const exit = ((await row(loopTask).locator(tid("task-row-exit")).textContent()) || "").trim();
      if (exit !== "3") fail(`the failed task's row shows exit "${exit}", want "3"`);
      const who = (await row(loopTask).textContent()) || "";
      if (!who.includes(EMAIL)) fail(`the row does not say who triggered it (${EMAIL})`);
      await page.selectOption(tid("task-filter"), "failed");
      await waitFor(row(sleepTask), "the canceled task to disappear under the failed filter", "detached");
      await waitFor(row(loopTask), "the failed task to stay under the failed filter");
      const states = await page.locator(tid("task-row")).evaluateAll((rs) => rs.map((r) => r.dataset.state));
      if (states.some((s) => s !== "failed")) fail(`the failed filter shows states ${states.join(", ")}`);
      await page.selectOption(tid("task-filter"), "");
      await waitFor(row(sleepTask), "the canceled task back with the filter cleared");
      await screenshot(page, "workspace-tasks.png");
    }],

    ["the log viewer: ANSI colours, a ::group::, search, jump to the first error, line links", async () => {
      await page.evaluate((h) => { location.hash = h; }, `#/workspaces/${workspaceId}/tasks`);
      const cmd = [
        "printf '\\033[31mred text\\033[0m plain\\n'",
        "echo '::group::Setup things'",
        "for i in 1 2 3; do echo \"inside $i\"; done",
        "echo '::endgroup::'",
        "for i in $(seq 1 300); do echo \"filler $i\"; done",
        "echo 'error: something broke here'",
        "for i in $(seq 1 300); do echo \"after $i\"; done",
        "printf '\\033[1;38;5;208morange\\033[0m \\033[48;2;10;200;30mtruecolor\\033[0m\\n'",
      ].join("; ");
      const id = await runFromForm(async () => {
        await page.selectOption(tid("run-repo"), ".");
        await page.fill(tid("run-command"), cmd);
      }, projectTask || sleepTask);
      const log = page.locator(`${tid("task-page")} ${tid("task-log")}`);
      await waitFor(page.locator(`${tid("log-status")}[data-state="ended"]`), "the log to end", "visible", LONG);
      await until(async () => (await log.getAttribute("data-lines")) === "608", "608 lines in the log (data-lines)");
      // Colours: the 16 as classes, 256-colour and truecolor through custom properties.
      const line = (n) => log.locator(`${tid("log-line")}[data-line="${n}"]`);
      await waitFor(line(608), "the last line in view while following");
      const last = await line(608).evaluate((row) => [...row.querySelectorAll(".log-text span")].map((s) =>
        [s.textContent, s.className, getComputedStyle(s).color, getComputedStyle(s).backgroundColor, getComputedStyle(s).fontWeight]));
      const orange = last.find((s) => s[0] === "orange");
      const tc = last.find((s) => s[0] === "truecolor");
      if (!orange || orange[2] !== "rgb(255, 135, 0)" || Number(orange[4]) < 600)
        fail(`256-colour bold "orange" renders as ${JSON.stringify(orange)}`);
      if (!tc || tc[3] !== "rgb(10, 200, 30)") fail(`the truecolor background renders as ${JSON.stringify(tc)}`);
      await log.evaluate((el) => { el.scrollTop = 0; });
      await waitFor(line(1), "line 1 after scrolling to the top");
      const red = line(1).locator("span.ansi-fg-1");
      await waitFor(red, "the red text as a span with class ansi-fg-1");
      if ((await red.textContent()) !== "red text") fail(`the red span says "${await red.textContent()}"`);
      const redColor = await red.evaluate((s) => getComputedStyle(s).color);
      const plainColor = await log.evaluate((el) => getComputedStyle(el).color);
      if (redColor === plainColor) fail(`the red span has the log's own colour ${redColor}`);
      if (/\x1b|\[31m/.test((await log.textContent()) || "")) fail("the log shows raw escape sequences");
      // The group folds and unfolds.
      const toggle = line(2).locator(tid("log-group-toggle"));
      await waitFor(toggle, "the fold toggle on the ::group:: line");
      if (((await line(2).textContent()) || "").includes("::group::")) fail("the group line shows its ::group:: marker");
      await waitFor(line(4), "a line inside the group");
      await toggle.click();
      await waitFor(line(4), "the group's lines to fold away", "detached");
      if ((await toggle.getAttribute("aria-expanded")) !== "false") fail("the folded toggle is not aria-expanded=false");
      await waitFor(line(7), "the line after the group right below it");
      await toggle.click();
      await waitFor(line(4), "the group's lines back after unfolding");
      // Search: count, highlight, next.
      await page.fill(tid("log-search"), "after 29");
      await until(async () => (await page.locator(tid("log-search-count")).getAttribute("data-count")) === "11",
        `11 matches for "after 29" (count says "${await text(tid("log-search-count")).catch(() => "?")}")`);
      const current = page.locator(tid("log-match-current"));
      await waitFor(current, "the current match highlighted");
      if ((await current.textContent()) !== "after 29") fail(`the current match says "${await current.textContent()}"`);
      await page.click(tid("log-search-next"));
      await until(async () => (await text(tid("log-search-count"))).startsWith("2 of 11"), "the count to say 2 of 11 after next");
      await waitFor(page.locator(`${tid("log-line")}[data-line="${7 + 300 + 1 + 290 - 1}"] ${tid("log-match-current")}`),
        'the second match (on "after 290") highlighted');
      await page.fill(tid("log-search"), "");
      // Jump to the first error, from the top.
      await log.evaluate((el) => { el.scrollTop = 0; });
      await waitFor(page.locator(tid("log-jump-error")), "the jump-to-error button");
      await waitFor(page.locator(tid("task-jump-error")), "the first error offered at the top of the task page");
      await page.click(tid("log-jump-error"));
      await waitFor(page.locator(`${tid("log-line")}.is-selected[data-line="307"]`), "the error line (307) selected");
      await until(() => lineInView(307), "the error line scrolled into the log's view");
      // Line links: clicking a number selects the line and puts it in the URL; the URL opens at it.
      await log.evaluate((el) => { el.scrollTop = 0; });
      await line(5).locator(tid("log-line-number")).click();
      await until(async () => hashOf() === `#/tasks/${id}?line=5`, `the URL #/tasks/${id}?line=5 after clicking line 5`);
      await waitFor(page.locator(`${tid("log-line")}.is-selected[data-line="5"]`), "line 5 selected");
      await page.evaluate((h) => { location.hash = h; }, `#/workspaces/${workspaceId}/tasks`);
      await waitFor(page.locator(tid("task-list")), "the workspace tasks page");
      await page.evaluate((h) => { location.hash = h; }, `#/tasks/${id}?line=450`);
      await waitFor(page.locator(`${tid("log-line")}.is-selected[data-line="450"]`), "line 450 selected when opened from a link");
      await until(() => lineInView(450), "line 450 scrolled into view when opened from a link");
      await screenshot(page, "task-log-viewer.png");
    }],

    ["a large log (seq 1 200000) stays responsive with few lines in the page", async () => {
      await page.evaluate((h) => { location.hash = h; }, `#/workspaces/${workspaceId}/tasks`);
      const id = await runFromForm(async () => {
        await page.selectOption(tid("run-repo"), ".");
        await page.fill(tid("run-command"), "seq 1 200000");
      });
      const log = page.locator(`${tid("task-page")} ${tid("task-log")}`);
      await waitFor(page.locator(`${tid("log-status")}[data-state="ended"]`), "the log to end", "visible", LONG);
      await until(async () => (await log.getAttribute("data-lines")) === "200000", "200000 lines in the log (data-lines)", LONG);
      const rows = await log.locator(tid("log-line")).count();
      if (rows > 300) fail(`${rows} line elements in the page for 200000 lines`);
      await waitFor(log.locator(`${tid("log-line")}[data-line="200000"]`), "the last line in view");
      // Scroll to the middle and time the frame that renders it.
      const ms = await log.evaluate(async (el) => {
        const t0 = performance.now();
        el.scrollTop = el.scrollHeight / 2;
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        return performance.now() - t0;
      });
      const mid = await log.locator(tid("log-line")).evaluateAll((rs) => rs.map((r) => Number(r.dataset.line)));
      if (!mid.some((n) => n > 90000 && n < 110000)) fail(`the middle of the log shows lines ${mid[0]}…${mid[mid.length - 1]}`);
      if (ms > 1000) fail(`scrolling to the middle took ${Math.round(ms)} ms`);
      await page.fill(tid("log-search"), "123456");
      await until(async () => (await page.locator(tid("log-search-count")).getAttribute("data-count")) === "1", 'one match for "123456"');
      await until(() => lineInView(123456), "the match's line (123456) scrolled into view");
      const text123 = await log.locator(`${tid("log-line")}[data-line="123456"] .log-text`).textContent();
      if (text123 !== "123456") fail(`line 123456 says "${text123}"`);
      await page.fill(tid("log-search"), "");
      await page.evaluate((h) => { location.hash = h; }, `#/tasks/${id}?line=654`);
      await waitFor(log.locator(`${tid("log-line")}.is-selected[data-line="654"]`), "line 654 selected from a link");
      const after = await log.locator(tid("log-line")).count();
      return `${rows} line elements for 200000 lines; middle rendered in ${Math.round(ms)} ms; ${after} after jumping`;
    }],

    ["create a project and attach the workspace", async () => {
      await page.click(tid("nav-projects"));
      await until(async () => hashOf() === "#/projects", "the URL #/projects");
      projectName = `browser-${crypto.randomBytes(4).toString("hex")}`;
      await page.click(tid("new-project"));
      await waitFor(page.locator(tid("project-name")), "the project name input (project-name)");
      await page.fill(tid("project-name"), projectName);
      await page.fill(tid("project-description"), "Made by tests/browser/tasks.mjs");
      await page.fill(tid("project-repo-url"), "https://git.example.com/team/repo.git");
      await page.fill(tid("project-tech-stack"), "rust, javascript");
      await page.click(tid("project-create"));
      projectId = await until(async () => {
        const err = page.locator(tid("project-error"));
        if (await err.isVisible()) fail(`creating the project failed: ${((await err.textContent()) || "").trim()}`);
        const m = hashOf().match(/^#\/projects\/([^/]+)$/);
        return m ? m[1] : null;
      }, "the new project's page (#/projects/{id})");
      await until(async () => (await text(`${tid("project-page")} h1`)) === projectName, `the page heading to say ${projectName}`);
      await until(async () => (await text(`${tid("project-page")} ${tid("project-role")}`)) === "owner", 'the role "owner"');
      await waitFor(page.locator(`${tid("project-status")}[data-status="active"]`), 'project-status data-status="active"');
      await waitFor(page.locator(`${tid("attach-workspace-select")} option[value="${workspaceId}"]`), "the workspace offered for attaching", "attached");
      await page.selectOption(tid("attach-workspace-select"), workspaceId);
      await page.click(tid("attach-workspace"));
      await waitFor(page.locator(`${tid("project-workspace")}[data-workspace-id="${workspaceId}"][data-online="true"]`),
        "the attached workspace listed as online on the project page");
      await waitFor(page.locator(`${tid("project-health")}:not([data-health=""])`), "the project's health");

      await page.click(tid("nav-projects"));
      const row = page.locator(`${tid("project-row")}[data-project-id="${projectId}"]`);
      await waitFor(row, "the project's row in the list");
      await until(async () => ((await row.locator(tid("project-workspace-count")).textContent()) || "").trim() === "1",
        "the project row to count 1 workspace");
      const role = ((await row.locator(tid("project-role")).textContent()) || "").trim();
      if (role !== "owner") fail(`the project row shows role "${role}", want "owner"`);
      await row.locator(tid("project-link")).click();
      await until(async () => hashOf() === `#/projects/${projectId}`, "the project page from the list");
    }],

    ["run a command on the project (the relay picks the workspace)", async () => {
      const id = await runFromForm(async () => {
        await page.check(tid("run-kind-command"));
        await page.fill(tid("run-command"), "echo hello from the project page");
      }, sleepTask);
      await waitFor(taskState("succeeded"), 'the project task to become data-state="succeeded"', "visible", LONG);
      await until(async () => ((await text(tid("task-log"))) || "").includes("hello from the project page"), "the echo in the log");
      await waitFor(page.locator(`${tid("task-project-link")}[href="#/projects/${projectId}"]`), "the task's link back to its project");
      await page.click(tid("task-project-link"));
      await waitFor(page.locator(`${tid("task-row")}[data-task-id="${id}"][data-state="succeeded"]`), "the task in the project's task list");
      await waitFor(page.locator(`${tid("recent-task")}[href="#/tasks/${id}"]`), "the task among the project's last tasks");
      projectTask = id;
      return `health: ${await page.locator(tid("project-health")).getAttribute("data-health")}`;
    }],

    ["the Tasks view filters by project", async () => {
      if (!projectTask || !loopTask) fail("no tasks from the earlier steps");
      await page.click(tid("nav-tasks"));
      await waitFor(page.locator(tid("tasks-page")), "the Tasks view (tasks-page)");
      const row = (id) => page.locator(`${tid("tasks-page")} ${tid("task-row")}[data-task-id="${id}"]`);
      await waitFor(row(loopTask), "the workspace's task in the Tasks view");
      await waitFor(row(projectTask), "the project's task in the Tasks view");
      await waitFor(page.locator(`${tid("task-project-filter")} option[value="${projectId}"]`), "the project offered in the project filter", "attached");
      await page.selectOption(tid("task-project-filter"), projectId);
      await waitFor(row(loopTask), "a task outside the project to leave under the project filter", "detached");
      await waitFor(row(projectTask), "the project's task under the project filter");
      await page.selectOption(tid("task-project-filter"), "");
      await waitFor(row(loopTask), "the other tasks back with the filter cleared");
      await page.evaluate((h) => { location.hash = h; }, `#/projects/${projectId}`);
      await waitFor(page.locator(tid("run-form")), "the project page's run form again");
    }],

    ["failing tests are listed on the task page", async () => {
      let id = FAILING_TASK;
      if (!id) {
        id = await runFromForm(async () => {
          await page.check(tid("run-kind-step"));
          await page.fill(tid("run-step"), QA_STEP);
        });
      } else {
        await page.evaluate((h) => { location.hash = h; }, `#/tasks/${encodeURIComponent(id)}`);
        await waitFor(page.locator(`${tid("task-page")}[data-task-id="${id}"]`), `the task page for ${id}`);
      }
      const summary = page.locator(tid("test-summary"));
      await waitFor(summary, "the test results (test-summary)", "visible", QA_WAIT);
      const failed = Number(await summary.getAttribute("data-failed"));
      if (!(failed > 0)) fail(`test-summary says ${failed} failed; want at least 1`);
      const items = page.locator(tid("test-failure"));
      await waitFor(items, "a failing test item (test-failure)");
      const names = (await page.locator(tid("test-failure-name")).allTextContents()).map((s) => s.trim());
      if (!names.length || names.some((n) => !n)) fail(`failing test names: ${JSON.stringify(names)}`);
      if (FAILING_NAME && !names.some((n) => n.includes(FAILING_NAME))) {
        fail(`no failing test named like "${FAILING_NAME}" (listed: ${names.join(", ")})`);
      }
      // The top says which step failed; the QA step's "==> name: command" header folds in the log.
      const reason = page.locator(tid("task-exit-reason"));
      await waitFor(reason, "the exit reason at the top of the task page (task-exit-reason)");
      const why = ((await reason.textContent()) || "").trim();
      if (!/step \S+/.test(why)) fail(`the exit reason does not name the failing step: "${why}"`);
      await page.locator(tid("task-log")).evaluate((el) => { el.scrollTop = 0; });
      await waitFor(page.locator(`${tid("task-log")} ${tid("log-line")}[data-group="step"] ${tid("log-group-toggle")}`),
        "the QA step's header as a foldable group in the log");
      // Collapsible: opening an item shows its message.
      const first = items.first().locator("details");
      if (!(await first.evaluate((d) => d.open))) await first.locator("summary").click();
      await until(async () => first.evaluate((d) => d.open), "the first failing test to expand");
      await screenshot(page, "task-test-failures.png");
      return `${failed} failed: ${names.slice(0, 3).join(", ")}${names.length > 3 ? ", …" : ""}`;
    }],

    ["archive the project (owner)", async () => {
      await page.evaluate((h) => { location.hash = h; }, `#/projects/${encodeURIComponent(projectId)}`);
      await waitFor(page.locator(tid("project-archive")), "the Archive button (project-archive)");
      const before = dialogs.length;
      await page.click(tid("project-archive"));
      await until(async () => dialogs.length > before, "a confirm dialog before archiving");
      await waitFor(page.locator(`${tid("project-page")} ${tid("project-status")}[data-status="archived"]`), 'project-status data-status="archived"');
      await waitFor(page.locator(tid("project-archive")), "the Archive button to go away", "detached");
      await waitFor(page.locator(tid("run-form")), "the run form to be hidden on an archived project", "hidden");
      await screenshot(page, "project-archived.png");
    }],

    ["no uncaught JavaScript errors in the page", async () => {
      if (pageErrors.length) fail(`uncaught errors: ${pageErrors.join(" | ")}`);
    }],
  ];

  let aborted = false;
  for (const [i, [name, fn]] of steps.entries()) {
    const label = `${i + 1}. ${name}`;
    if (aborted) {
      results.push({ name: label, ok: false, skipped: true });
      console.log(`SKIP ${label}`);
      continue;
    }
    const t0 = Date.now();
    try {
      const note = await fn();
      results.push({ name: label, ok: true });
      console.log(`ok   ${label} (${Date.now() - t0} ms)${note ? ` — ${note}` : ""}`);
    } catch (e) {
      results.push({ name: label, ok: false });
      console.log(`FAIL ${label}: ${e instanceof StepError ? e.message : e.stack || e}`);
      const shot = await screenshot(page, `tasks-failure-step${i + 1}.png`).catch(() => null);
      if (shot) console.log(`     screenshot: ${shot}`);
      if (consoleErrors.length) console.log(`     console errors: ${consoleErrors.slice(-5).join(" | ")}`);
      // Without a session or a workspace nothing after it can work.
      if (i <= 1) aborted = true;
    }
  }
  await browser.close();
}

function finish(code) {
  const passed = results.filter((r) => r.ok).length;
  const failed = results.filter((r) => !r.ok && !r.skipped).length;
  const skipped = results.filter((r) => r.skipped).length;
  console.log(`browser: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exit(code ?? (failed || skipped ? 1 : 0));
}

const watchdog = setTimeout(() => {
  console.log(`FAIL the whole run took longer than ${OVERALL_MS} ms`);
  results.push({ name: "overall time limit", ok: false });
  finish(1);
}, OVERALL_MS);
watchdog.unref();

main().then(() => finish(), (e) => {
  console.log(`FAIL could not run the browser: ${e.stack || e}`);
  results.push({ name: "browser launch", ok: false });
  finish(1);
});
