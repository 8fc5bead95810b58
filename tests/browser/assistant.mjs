// Headless-browser test of the dashboard's assistant page and AI activity page, against a running
// relay whose assistant talks to a stand-in LLM with canned answers.
//
//   FULCRUM_URL=http://127.0.0.1:34567 FULCRUM_EMAIL=... FULCRUM_PASSWORD=... \
//   FULCRUM_PROJECT_NAME=shop node tests/browser/assistant.mjs
//
// Required: FULCRUM_URL, FULCRUM_EMAIL, FULCRUM_PASSWORD (a user with a project named
// FULCRUM_PROJECT_NAME that has a failing task), FULCRUM_PROJECT_NAME. The stand-in answers
// "Which of my projects has failing tasks, and what did they cost?" with at least two tool calls
// and then a final answer holding "FAILING-TASK-ANSWER"; and "Run the tests of NAME" with a
// run_task call (which waits for confirmation) and, once it ran, an answer holding
// "RUN-STARTED-ANSWER". The assistant's own LLM calls are recorded as AI activities of the tool
// "fulcrum-assistant", at a price above zero.
// Optional: CHROMIUM_PATH (default /usr/bin/chromium), SCREENSHOT_DIR (the assistant and the AI
// activity page at 1440 px and at 390 px), FULCRUM_BROWSER_TIMEOUT_MS (per-wait bound, default 15000).
// Exit code 0 when every step passed, 1 otherwise. Last line: "browser: N passed, M failed".
// Every wait is on a condition; there are no fixed sleeps.

import { chromium } from "playwright-core";
import { CHROMIUM, StepError, WAIT, fail, logIn, requireSetup, screenshot, tid, until, waitFor } from "./harness.mjs";

const env = process.env;
const BASE = (env.FULCRUM_URL || "").replace(/\/+$/, "");
const EMAIL = env.FULCRUM_EMAIL;
const PASSWORD = env.FULCRUM_PASSWORD;
const PROJECT_NAME = env.FULCRUM_PROJECT_NAME;
const LONG = Math.max(WAIT, 45_000); // a turn: several LLM calls and tool calls
const OVERALL_MS = Math.max(150_000, WAIT * 12);
const FIRST_QUESTION = "Which of my projects has failing tasks, and what did they cost?";
const SECOND_QUESTION = `Run the tests of ${PROJECT_NAME}`;

const missing = ["FULCRUM_URL", "FULCRUM_EMAIL", "FULCRUM_PASSWORD", "FULCRUM_PROJECT_NAME"].filter((k) => !env[k]);
requireSetup(missing);

/** Two animation frames: the layout caught up with a resize. */
async function settled(page) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

/** What overflows the page horizontally at the current width, and whether the navigation fits. */
async function layoutProblems(page) {
  return page.evaluate(() => {
    const problems = [];
    const doc = document.documentElement;
    if (doc.scrollWidth > window.innerWidth) {
      const wide = [...document.querySelectorAll("body *")]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1
          && el.closest(".table-wrap, .md-table, pre") === null)
        .slice(0, 3).map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join(".")}`);
      problems.push(`the page is ${doc.scrollWidth} px wide in a ${window.innerWidth} px window (${wide.join(", ")})`);
    }
    const nav = document.querySelector("nav.nav");
    if (nav) {
      if (nav.scrollWidth > nav.clientWidth + 1) problems.push(`the navigation needs ${nav.scrollWidth} px and has ${nav.clientWidth}`);
      for (const a of nav.querySelectorAll("a.nav-link")) {
        if (a.hidden || a.offsetParent === null) continue;
        const r = a.getBoundingClientRect();
        if (r.left < 0 || r.right > window.innerWidth) problems.push(`"${a.textContent.trim()}" is cut off (${Math.round(r.left)}–${Math.round(r.right)} px)`);
      }
    }
    return problems;
  });
}

const results = [];
const pageErrors = [];
const consoleErrors = [];

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of (401|404|409|422)/.test(m.text())) consoleErrors.push(m.text());
  });
  page.on("dialog", async (d) => {
    if (d.type() === "confirm") await d.accept(); else await d.dismiss();
  });

  const hashOf = () => decodeURIComponent(new URL(page.url()).hash);
  const chips = page.locator(tid("assistant-tool-call"));
  const answer = (text) => page.locator(`${tid("assistant-message")}[data-role="assistant"]`).filter({ hasText: text });
  const done = (state) => page.locator(`${tid("assistant-done")}[data-state="${state}"]`);
  /** Waits for the turn to end; fails at once on an error shown in the chat or a turn that stopped. */
  const turnEnds = (state, what) => until(async () => {
    if (await done(state).isVisible()) return true;
    const err = page.locator(tid("assistant-error"));
    if (await err.count()) fail(`the assistant reported: ${((await err.last().textContent()) || "").trim()}`);
    if (state !== "stopped" && await done("stopped").count()) {
      fail(`the turn stopped: ${((await page.locator(tid("assistant-done")).textContent()) || "").trim()}`);
    }
    return null;
  }, what, LONG);
  let conversationId = null;

  const steps = [
    ["login", async () => {
      await logIn(page, BASE, EMAIL, PASSWORD);
    }],

    ["open the assistant and start a conversation", async () => {
      await page.click(tid("nav-assistant"));
      await until(async () => hashOf() === "#/assistant", "the URL #/assistant");
      if ((await page.locator(tid("nav-assistant")).getAttribute("aria-current")) !== "page") fail("the Assistant link in the navigation is not marked current");
      await waitFor(page.locator(tid("assistant-page")), "the assistant page (assistant-page)");
      await page.click(tid("assistant-new"));
      await waitFor(page.locator(tid("assistant-intro")), "an empty conversation (assistant-intro)");
      const input = page.locator(tid("assistant-input"));
      await waitFor(page.locator(`${tid("assistant-input")}:enabled`), "the message box (assistant-input)");
      if (!(await page.locator(`${tid("assistant-send")}:disabled`).count())) fail("Send is enabled with nothing typed");
      // Shift+Enter is a new line, not a message.
      await input.fill("first line");
      await input.press("Shift+Enter");
      const typed = await input.inputValue();
      if (!typed.includes("\n")) fail(`Shift+Enter did not add a line (the box holds ${JSON.stringify(typed)})`);
      if (await page.locator(tid("assistant-message")).count()) fail("Shift+Enter sent the message");
      await input.fill("");
    }],

    ["ask about failing tasks: tool calls, then the answer", async () => {
      const input = page.locator(tid("assistant-input"));
      await input.fill(FIRST_QUESTION);
      await input.press("Enter");
      await waitFor(page.locator(`${tid("assistant-message")}[data-role="user"]`).filter({ hasText: "failing tasks" }),
        "the question in the conversation (assistant-message, data-role=user)");
      await turnEnds("answered", 'the turn to end answered (assistant-done data-state="answered")');
      await waitFor(answer("FAILING-TASK-ANSWER"), 'an assistant message holding "FAILING-TASK-ANSWER"');
      const n = await chips.count();
      if (n < 2) fail(`the answer shows ${n} tool call chip(s) (assistant-tool-call), want at least 2`);
      const states = await chips.evaluateAll((els) => els.map((e) => `${e.dataset.tool}:${e.dataset.state}`));
      const unfinished = states.filter((s) => !s.endsWith(":ok"));
      if (unfinished.length) fail(`tool calls without a good result: ${unfinished.join(", ")}`);
      if (!(await page.locator(`${tid("assistant-input")}:enabled`).count())) fail("the message box stays disabled after the answer");
      // The new conversation is listed and open.
      const current = page.locator(`${tid("assistant-conversation")}[aria-current="true"]`);
      await waitFor(current, "the conversation in the list, marked current");
      conversationId = await current.getAttribute("data-conversation-id");
      // A chip unfolds into its arguments and result.
      await chips.first().locator("summary").click();
      await waitFor(chips.first().locator(".as-tool-pre").first(), "the first tool call's details");
      await chips.first().locator("summary").click();
      await screenshot(page, "assistant-answer.png");
      return states.join(", ");
    }],

    ["ask to run the tests: confirm run_task, see it run", async () => {
      const before = await chips.count();
      await page.fill(tid("assistant-input"), SECOND_QUESTION);
      await page.click(tid("assistant-send"));
      const card = page.locator(`${tid("assistant-confirm")}[data-tool="run_task"]`);
      await until(async () => {
        if (await card.isVisible()) return true;
        if (await done("answered").isVisible()) fail("the turn ended answered without asking to confirm run_task");
        const err = page.locator(tid("assistant-error"));
        if (await err.count()) fail(`the assistant reported: ${((await err.last().textContent()) || "").trim()}`);
        return null;
      }, 'the confirmation card for run_task (assistant-confirm data-tool="run_task")', LONG);
      await waitFor(done("awaiting_confirmation"), 'the turn waiting (assistant-done data-state="awaiting_confirmation")');
      for (const id of ["assistant-approve", "assistant-always", "assistant-decline"]) {
        await waitFor(card.locator(tid(id)), `the card's ${id} button`);
      }
      const always = ((await card.locator(tid("assistant-always")).textContent()) || "").trim();
      if (!always.includes("run_task")) fail(`the "always" button says "${always}", want it to name run_task`);
      await screenshot(page, "assistant-confirm.png");
      await card.locator(tid("assistant-approve")).click();
      const ran = page.locator(`${tid("assistant-tool-call")}[data-tool="run_task"][data-state="ok"]`);
      await until(async () => {
        if (await ran.count()) return true;
        const failed = page.locator(`${tid("assistant-tool-call")}[data-tool="run_task"][data-state="failed"]`);
        if (await failed.count()) fail(`run_task failed: ${((await failed.first().textContent()) || "").trim()}`);
        return null;
      }, 'a result for run_task (assistant-tool-call data-tool="run_task" data-state="ok")', LONG);
      await turnEnds("answered", 'the turn to end answered after the approval (assistant-done data-state="answered")');
      await waitFor(answer("RUN-STARTED-ANSWER"), 'an assistant message holding "RUN-STARTED-ANSWER"');
      if (await page.locator(tid("assistant-confirm")).count()) fail("the confirmation card is still shown after approving");
      const result = ((await ran.first().locator(tid("assistant-tool-result")).textContent()) || "").trim();
      if ((await chips.count()) <= before) fail("no new tool call chip for run_task");
      await screenshot(page, "assistant.png");
      return `run_task → ${result}`;
    }],

    ["the conversation is kept: after a reload it reopens as it was", async () => {
      await page.reload({ waitUntil: "domcontentloaded" });
      await waitFor(page.locator(tid("assistant-page")), "the assistant page after a reload");
      await waitFor(answer("RUN-STARTED-ANSWER"), 'the answer holding "RUN-STARTED-ANSWER" after a reload');
      await waitFor(answer("FAILING-TASK-ANSWER"), 'the answer holding "FAILING-TASK-ANSWER" after a reload');
      const run = page.locator(`${tid("assistant-tool-call")}[data-tool="run_task"]`);
      await waitFor(run, "the run_task chip after a reload");
      if ((await chips.count()) < 3) fail(`${await chips.count()} tool call chips after a reload, want at least 3`);
      if (await page.locator(tid("assistant-confirm")).count()) fail("a confirmation card is shown again after a reload");
      const current = await page.locator(`${tid("assistant-conversation")}[aria-current="true"]`).getAttribute("data-conversation-id");
      if (conversationId && current !== conversationId) fail(`the list marks ${current} current, want ${conversationId}`);
    }],

    ["the AI activity page counts the assistant's calls", async () => {
      await page.click(tid("nav-ai-activity"));
      await until(async () => hashOf().startsWith("#/ai"), "the URL #/ai");
      await waitFor(page.locator(tid("ai-activity-page")), "the AI activity page (ai-activity-page)");
      const total = page.locator(tid("ai-total-activities"));
      await waitFor(total, "the totals (ai-total-activities)");
      const n = Number(await total.getAttribute("data-value"));
      if (!(n >= 1)) fail(`the totals show ${n} activities, want at least 1`);
      const bars = page.locator(`${tid("ai-cost-chart")} ${tid("ai-cost-bar")}`);
      await until(async () => (await bars.count()) >= 1, "at least one bar in the cost chart (ai-cost-bar)");
      await waitFor(page.locator(`${tid("ai-activity-row")}[data-tool="fulcrum-assistant"]`),
        'a recent activity of the tool "fulcrum-assistant" (ai-activity-row)');
      // By tool, the chart has the assistant in its legend.
      await page.click(tid("ai-stack-tool"));
      await until(async () => ((await page.locator(`${tid("ai-cost-chart")} .chart-legend`).textContent()) || "").includes("fulcrum-assistant"),
        "the chart's legend to name fulcrum-assistant once stacked by tool");
      await screenshot(page, "ai-activity.png");
      return `${n} activities, ${await bars.count()} bar(s)`;
    }],

    ["the assistant and AI activity pages at 390 px", async () => {
      const problems = [];
      try {
        await page.setViewportSize({ width: 390, height: 844 });
        for (const [route, ready, name] of [
          ["ai", tid("ai-total-activities"), "mobile-ai-activity.png"],
          ["assistant", tid("assistant-input"), "mobile-assistant.png"],
        ]) {
          await page.evaluate((h) => { location.hash = h; }, `#/${route}`);
          await waitFor(page.locator(ready), `#/${route} at 390 px`);
          await settled(page);
          for (const p of await layoutProblems(page)) problems.push(`#/${route}: ${p}`);
          await screenshot(page, name);
        }
      } finally {
        await page.setViewportSize({ width: 1440, height: 900 });
      }
      if (problems.length) fail(problems.join("; "));
    }],

    ["no uncaught JavaScript errors in the page", async () => {
      if (pageErrors.length) fail(`uncaught errors: ${pageErrors.join(" | ")}`);
      if (consoleErrors.length) fail(`console errors: ${consoleErrors.slice(-5).join(" | ")}`);
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
      const shot = await screenshot(page, `assistant-failure-step${i + 1}.png`).catch(() => null);
      if (shot) console.log(`     screenshot: ${shot}`);
      if (consoleErrors.length) console.log(`     console errors: ${consoleErrors.slice(-5).join(" | ")}`);
      // Without a session or the assistant page nothing after it can work.
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
