// Headless-browser test of the dashboard's AI pipeline pages, against a running relay and a
// stand-in LLM that speaks OpenAI's API.
//
//   FULCRUM_URL=http://127.0.0.1:34567 FULCRUM_EMAIL=... FULCRUM_PASSWORD=... \
//   FULCRUM_PROJECT_ID=<project id> FULCRUM_LLM_URL=http://127.0.0.1:45678/v1 FULCRUM_LLM_KEY=sk-... \
//   FULCRUM_PIPELINE="$(cat docs.toml)" node tests/browser/pipelines.mjs
//
// Required: FULCRUM_URL, FULCRUM_EMAIL, FULCRUM_PASSWORD (a user who owns FULCRUM_PROJECT_ID and
// has no LLM provider yet), FULCRUM_PROJECT_ID, FULCRUM_LLM_URL and FULCRUM_LLM_KEY (the stand-in:
// its models are named "stand-in-1"), FULCRUM_PIPELINE (a TOML definition: outline (llm) → review
// (approval) → intro and usage (llm, in parallel), writing outline.json, outline.md,
// docs/intro.md and docs/usage.md; the outline lists "Install").
// Optional: CHROMIUM_PATH (default /usr/bin/chromium), SCREENSHOT_DIR (the run page and the AI
// settings at 1440 px and at 390 px), FULCRUM_BROWSER_TIMEOUT_MS (per-wait bound, default 15000).
// Sees the new project as a draft with no deployments, finds that Generate (in the project's head
// and in the Pipelines card) needs a provider (the errors link to the AI settings), sets one up and a
// monthly budget there, starts the pipeline from the project page (after a broken definition is
// refused, naming its line), watches the run pause at the approval gate, approves it, and reads
// the streamed output, an artifact, the zip and the calls.
// Exit code 0 when every step passed, 1 otherwise. Last line: "browser: N passed, M failed".
// Every wait is on a condition; there are no fixed sleeps.

import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, StepError, WAIT, fail, logIn, requireSetup, screenshot, tid, until, waitFor } from "./harness.mjs";

const env = process.env;
const BASE = (env.FULCRUM_URL || "").replace(/\/+$/, "");
const EMAIL = env.FULCRUM_EMAIL;
const PASSWORD = env.FULCRUM_PASSWORD;
const PROJECT = env.FULCRUM_PROJECT_ID;
const LLM_URL = env.FULCRUM_LLM_URL;
const LLM_KEY = env.FULCRUM_LLM_KEY || "";
const PIPELINE = env.FULCRUM_PIPELINE || "";
const MODEL = "stand-in-1";
const LONG = Math.max(WAIT, 45_000); // a run's stages
const OVERALL_MS = Math.max(150_000, WAIT * 12);
const STAGES = ["outline", "review", "intro", "usage"];
const ARTIFACTS = ["docs/intro.md", "docs/usage.md", "outline.json", "outline.md"];

const missing = [
  "FULCRUM_URL",
  "FULCRUM_EMAIL",
  "FULCRUM_PASSWORD",
  "FULCRUM_PROJECT_ID",
  "FULCRUM_LLM_URL",
  "FULCRUM_LLM_KEY",
  "FULCRUM_PIPELINE",
].filter((k) => !env[k]);
requireSetup(missing);

/** Two animation frames: the layout (and the stage graph's curves) caught up with a resize. */
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
          && el.closest(".table-wrap, .stage-graph, pre, .tab-list") === null)
        .slice(0, 3).map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join(".")}`);
      problems.push(`the page is ${doc.scrollWidth} px wide in a ${window.innerWidth} px window (${wide.join(", ")})`);
    }
    const nav = document.querySelector("nav.nav");
    if (nav && nav.scrollWidth > nav.clientWidth + 1) problems.push(`the navigation needs ${nav.scrollWidth} px and has ${nav.clientWidth}`);
    for (const el of document.querySelectorAll('[data-testid="stage"]')) {
      const r = el.getBoundingClientRect();
      if (r.width && r.width < 120) problems.push(`stage box "${el.dataset.stage}" is only ${Math.round(r.width)} px wide`);
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
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of (401|409|422)/.test(m.text())) consoleErrors.push(m.text());
  });
  const dialogs = [];
  page.on("dialog", async (d) => {
    dialogs.push({ type: d.type(), message: d.message() });
    if (d.type() === "confirm") await d.accept(); else await d.dismiss();
  });

  const text = async (sel) => ((await page.locator(sel).first().textContent()) || "").trim();
  const hashOf = () => decodeURIComponent(new URL(page.url()).hash);
  const stage = (name) => page.locator(`${tid("stage")}[data-stage="${name}"]`);
  /** Everything the page shows or holds that a key could leak into: text, attributes, input values. */
  const pageHolds = (secret) => page.evaluate((s) => {
    if (document.body.innerText.includes(s) || document.documentElement.outerHTML.includes(s)) return true;
    return [...document.querySelectorAll("input, textarea")].some((el) => el.value.includes(s));
  }, secret);
  let runId = null;

  const steps = [
    ["login", async () => {
      await logIn(page, BASE, EMAIL, PASSWORD);
    }],

    ["without a provider, Generate says where to set one up", async () => {
      await page.evaluate((h) => { location.hash = h; }, `#/projects/${encodeURIComponent(PROJECT)}`);
      // The new project is a draft: its head offers Generate (SystemCrafter at once).
      const generation = page.locator(tid("project-generation"));
      await waitFor(generation, "the project's generation badge (project-generation)");
      const g = await generation.getAttribute("data-generation");
      if (g !== "draft") fail(`the new project's generation is "${g}", want draft`);
      await waitFor(page.locator(`${tid("project-generate")}:enabled`),
        "an enabled Generate button in the project's head (project-generate)");
      await page.click(tid("project-generate"));
      await waitFor(page.locator(`${tid("project-action-error")} ${tid("project-generate-provider-link")}`),
        "the no_provider error under the project's head, linking to the AI settings (project-generate-provider-link)");
      if (hashOf() !== `#/projects/${PROJECT}`) fail(`Generate without a provider navigated to ${hashOf()}`);
      await waitFor(page.locator(tid("deployments-empty")), "the empty Deployments card (deployments-empty)");
      await waitFor(page.locator(tid("pipeline-generate")), "the Generate button on the project page (pipeline-generate)");
      await page.click(tid("pipeline-generate"));
      await waitFor(page.locator(tid("generate-form")), "the Generate form (generate-form)");
      await waitFor(page.locator(tid("generate-no-provider")), "the note that there is no provider yet (generate-no-provider)");
      await page.selectOption(tid("generate-pipeline"), "custom");
      await page.fill(tid("generate-definition"), PIPELINE);
      await page.click(tid("generate-submit"));
      await waitFor(page.locator(`${tid("generate-error")} ${tid("generate-provider-link")}`),
        "the no_provider error with a link to the AI settings (generate-provider-link)");
      if (!hashOf().startsWith("#/projects/")) fail(`starting without a provider navigated to ${hashOf()}`);
      await page.click(tid("generate-provider-link"));
      await until(async () => hashOf() === "#/settings/ai", "the AI settings (#/settings/ai) from the error's link");
    }],

    ["add an AI provider: the key hint shows, the key never does", async () => {
      if (hashOf() !== "#/settings/ai") await page.click(tid("nav-ai"));
      await until(async () => hashOf() === "#/settings/ai", "the URL #/settings/ai");
      if ((await page.locator(tid("nav-ai")).getAttribute("aria-current")) !== "page") fail("the AI link in the navigation is not marked current");
      await waitFor(page.locator(tid("providers-empty")), "the empty provider list (providers-empty)");
      // With no provider yet the form is open; otherwise "Add provider" opens it.
      if (!(await page.locator(tid("provider-form")).isVisible())) await page.click(tid("provider-new"));
      await waitFor(page.locator(tid("provider-form")), "the provider form (provider-form)");
      await page.fill(tid("provider-name"), "Stand-in");
      await page.selectOption(tid("provider-kind"), "openai");
      const placeholder = await page.locator(tid("provider-base-url-input")).getAttribute("placeholder");
      if (!/^https:\/\//.test(placeholder || "")) fail(`the base URL's placeholder is "${placeholder}", want a URL`);
      await page.fill(tid("provider-base-url-input"), LLM_URL);
      await page.fill(tid("provider-model-input"), MODEL);
      if ((await page.locator(tid("provider-key")).getAttribute("type")) !== "password") fail("the API key field is not a password field");
      await page.fill(tid("provider-key"), LLM_KEY);
      await page.click(tid("provider-save"));
      const row = page.locator(tid("provider-row"));
      await until(async () => {
        const err = page.locator(tid("provider-error"));
        if (await err.isVisible()) fail(`the provider form reported: ${((await err.textContent()) || "").trim()}`);
        return (await row.count()) === 1;
      }, "the new provider's row (provider-row)");
      const hint = await text(`${tid("provider-row")} ${tid("provider-key-hint")}`);
      if (!hint.endsWith(LLM_KEY.slice(-4))) fail(`the key hint is "${hint}", want the key's last 4 characters (${LLM_KEY.slice(-4)})`);
      const model = await text(`${tid("provider-row")} ${tid("provider-model")}`);
      if (model !== MODEL) fail(`the row shows model "${model}", want "${MODEL}"`);
      if (!(await page.locator(tid("provider-form")).isHidden())) fail("the provider form stays open after adding");
      if (await pageHolds(LLM_KEY)) fail("the API key is somewhere in the page after saving it");
      // A reload shows what the relay kept: the hint, not the key.
      await page.reload({ waitUntil: "domcontentloaded" });
      await waitFor(page.locator(`${tid("provider-row")} ${tid("provider-key-hint")}`), "the provider's row after a reload");
      if (await pageHolds(LLM_KEY)) fail("the API key is in the page after a reload");
      return `key hint ${hint}`;
    }],

    ["set a monthly budget", async () => {
      await waitFor(page.locator(tid("budgets")), "the budgets section (budgets)");
      await page.selectOption(tid("budget-scope"), "");
      await page.selectOption(tid("budget-period"), "month");
      await page.fill(tid("budget-limit"), "5");
      await page.click(tid("budget-save"));
      const row = page.locator(tid("budget-row"));
      await until(async () => {
        const err = page.locator(tid("budget-error"));
        if (await err.isVisible()) fail(`the budget form reported: ${((await err.textContent()) || "").trim()}`);
        return (await row.count()) === 1;
      }, "the budget's row (budget-row)");
      const limit = await text(`${tid("budget-row")} ${tid("budget-limit-value")}`);
      if (!limit.includes("5.00")) fail(`the budget shows limit "${limit}", want $5.00`);
    }],

    ["a broken definition is refused, naming its line", async () => {
      await page.evaluate((h) => { location.hash = h; }, `#/projects/${encodeURIComponent(PROJECT)}`);
      await waitFor(page.locator(tid("pipeline-generate")), "the Generate button on the project page (pipeline-generate)");
      await page.click(tid("pipeline-generate"));
      await waitFor(page.locator(tid("generate-form")), "the Generate form (generate-form)");
      await page.selectOption(tid("generate-pipeline"), "custom");
      await waitFor(page.locator(tid("generate-definition")), "the definition text area after choosing Custom definition");
      await page.fill(tid("generate-definition"), 'name = "broken"\n\n[[stages]]\nname = "a"\nkind = "nonsense"\n');
      await page.click(tid("generate-submit"));
      await waitFor(page.locator(tid("generate-error")), "the form's error (generate-error)");
      const err = await text(tid("generate-error"));
      if (!/line \d+/.test(err)) fail(`the definition error does not name a line: "${err}"`);
      if (!hashOf().startsWith("#/projects/")) fail(`a refused definition navigated to ${hashOf()}`);
      await page.evaluate(() => window.scrollTo(0, 0));
      await screenshot(page, "project-generate.png");
      return err.slice(0, 100);
    }],

    ["start the pipeline from the project page and land on the run", async () => {
      await page.fill(tid("generate-definition"), PIPELINE);
      await page.click(tid("generate-submit"));
      runId = await until(async () => {
        const m = hashOf().match(/^#\/pipeline-runs\/([^/?]+)$/);
        if (m) return m[1];
        // The form goes away with the navigation: read its error only while it is there.
        const err = page.locator(tid("generate-error"));
        if (!(await err.isVisible())) return null;
        const shown = ((await err.textContent({ timeout: 1_000 }).catch(() => "")) || "").trim();
        if (shown) fail(`the Generate form reported: ${shown}`);
        return null;
      }, "the run page (#/pipeline-runs/{id}) after starting the run");
      await waitFor(page.locator(`${tid("run-page")}[data-run-id="${runId}"]`), `the run page for ${runId}`);
      for (const name of STAGES) await waitFor(stage(name), `the stage "${name}" in the graph`);
      const handle = await text(tid("run-handle"));
      if (!handle) fail("the run page shows no handle");
      return `run ${handle}`;
    }],

    ["outline succeeds; the run pauses at the review gate", async () => {
      await waitFor(page.locator(`${tid("stage")}[data-stage="outline"][data-state="succeeded"]`),
        'the outline stage to turn data-state="succeeded"', "visible", LONG);
      await waitFor(page.locator(`${tid("run-page")} ${tid("run-state")}[data-state="paused"]`), 'the run state badge data-state="paused"', "visible", LONG);
      await waitFor(page.locator(`${tid("stage")}[data-stage="review"][data-state="waiting"]`), 'the review gate data-state="waiting"');
      await waitFor(page.locator(`${tid("run-reason")}[data-reason="approval_required"]`), "the run's reason (waiting for approval)");
      await waitFor(page.locator(tid("stage-approve")), "the Approve button (stage-approve)");
      await waitFor(page.locator(tid("stage-reject-open")), "the Reject button (stage-reject-open)");
      const green = await page.evaluate(() => {
        const probe = document.createElement("span");
        probe.style.setProperty("color", "var(--green)");
        document.body.append(probe);
        const c = getComputedStyle(probe).color;
        probe.remove();
        return c;
      });
      // The box's colour eases in: wait for it to arrive.
      let colour = "";
      await until(async () => {
        colour = await stage("outline").evaluate((el) => getComputedStyle(el).borderLeftColor);
        return colour === green;
      }, "the succeeded outline box to be edged green").catch(() => fail(`the succeeded outline box is edged ${colour}, want green (${green})`));
      const calls = await text(tid("run-calls"));
      if (calls !== "1") fail(`the run shows ${calls} LLM calls before approval, want 1`);
      await screenshot(page, "pipeline-run-waiting.png");
    }],

    ["approve; intro and usage stream their answers; every stage succeeds", async () => {
      await page.click(tid("stage-approve"));
      await waitFor(page.locator(`${tid("run-page")} ${tid("run-state")}[data-state="succeeded"]`),
        'the run state badge data-state="succeeded"', "visible", LONG);
      for (const name of STAGES) {
        await waitFor(page.locator(`${tid("stage")}[data-stage="${name}"][data-state="succeeded"]`), `the stage "${name}" to be succeeded`);
      }
      if (await page.locator(tid("run-cancel")).count()) fail("a succeeded run still offers Cancel");
      if (await page.locator(tid("stage-approve")).count()) fail("Approve is still offered after approving");
      // The intro's answer streamed in while the page was open (pipeline_text events).
      await stage("intro").click();
      await waitFor(page.locator(`${tid("stage-panel")}[data-stage="intro"]`), "the intro stage's details");
      await until(async () => (await text(tid("stage-output"))).includes("to-do list"),
        "the intro's streamed output (stage-output) to contain its answer");
      const pressed = await stage("intro").getAttribute("aria-pressed");
      if (pressed !== "true") fail(`the chosen stage box has aria-pressed="${pressed}"`);
    }],

    ["the artifacts: outline.md holds the outline", async () => {
      await page.click(tid("run-tab-artifacts"));
      const items = page.locator(tid("artifact"));
      await until(async () => (await items.count()) === ARTIFACTS.length, `${ARTIFACTS.length} artifacts in the list`);
      const paths = (await items.evaluateAll((els) => els.map((e) => e.dataset.path))).sort();
      if (JSON.stringify(paths) !== JSON.stringify(ARTIFACTS)) fail(`the artifacts are ${paths.join(", ")}, want ${ARTIFACTS.join(", ")}`);
      await page.click(`${tid("artifact")}[data-path="outline.md"]`);
      await waitFor(page.locator(tid("artifact-content")), "the artifact's content (artifact-content)");
      await until(async () => (await text(tid("artifact-open-path"))) === "outline.md", "outline.md to be the open artifact");
      await until(async () => (await text(tid("artifact-content"))).includes("- Install"), 'outline.md to show "- Install"');
      const style = await page.locator(tid("artifact-content")).evaluate((el) => {
        const s = getComputedStyle(el);
        return { ws: s.whiteSpace, font: s.fontFamily, html: el.children.length };
      });
      if (style.ws !== "pre-wrap") fail(`the artifact is shown with white-space ${style.ws}, want pre-wrap`);
      if (!/mono|menlo|consolas|courier/i.test(style.font)) fail(`the artifact is not in a monospace font (${style.font})`);
      if (style.html) fail("the artifact's content was put into the page as elements, not text");
      await screenshot(page, "pipeline-run-artifacts.png");
    }],

    ["download all artifacts as a zip", async () => {
      const zip = page.locator(tid("artifacts-zip"));
      await waitFor(page.locator(`${tid("artifacts-zip")}:enabled`), 'an enabled "Download all (.zip)" button (artifacts-zip)');
      if (!/zip/i.test((await zip.textContent()) || "")) fail("the zip button does not say zip");
      const [download] = await Promise.all([page.waitForEvent("download", { timeout: WAIT }), zip.click()]);
      const name = download.suggestedFilename();
      if (!name.endsWith(".zip")) fail(`the download is named "${name}", want a .zip`);
      const file = await download.path();
      const head = file ? fs.readFileSync(file).subarray(0, 2).toString("latin1") : "";
      if (head !== "PK") fail(`the download is not a zip (starts with ${JSON.stringify(head)})`);
      return name;
    }],

    ["the calls table lists the three LLM calls", async () => {
      await page.click(tid("run-tab-calls"));
      const rows = page.locator(tid("call-row"));
      await until(async () => (await rows.count()) === 3, "3 rows in the calls table (call-row)");
      const stages = (await rows.evaluateAll((els) => els.map((e) => `${e.dataset.stage}:${e.dataset.state}`))).sort();
      const want = ["intro:succeeded", "outline:succeeded", "usage:succeeded"];
      if (JSON.stringify(stages) !== JSON.stringify(want)) fail(`the calls are ${stages.join(", ")}, want ${want.join(", ")}`);
      const model = await text(`${tid("call-row")} td:nth-child(2)`);
      if (model !== MODEL) fail(`the first call's model is "${model}", want ${MODEL}`);
      await screenshot(page, "pipeline-run-calls.png");
    }],

    ["the run page at 1440 and 390 px", async () => {
      await page.click(tid("run-tab-stage"));
      await settled(page);
      const problems = (await layoutProblems(page)).map((p) => `1440 px: ${p}`);
      const curves = await page.locator(`${tid("stage-graph")} path.edge`).count();
      if (curves !== 3) problems.push(`the graph draws ${curves} curves for its 3 needs`);
      await screenshot(page, "pipeline-run.png");
      try {
        await page.setViewportSize({ width: 390, height: 844 });
        await settled(page);
        for (const p of await layoutProblems(page)) problems.push(`390 px: ${p}`);
        await screenshot(page, "mobile-pipeline-run.png");
      } finally {
        await page.setViewportSize({ width: 1440, height: 900 });
      }
      if (problems.length) fail(problems.join("; "));
    }],

    ["the project lists the run", async () => {
      await page.click(tid("run-project-link"));
      await until(async () => hashOf() === `#/projects/${PROJECT}`, "the project page from the run's breadcrumb");
      const row = page.locator(`${tid("pipeline-run-row")}[data-run-id="${runId}"]`);
      await waitFor(row, "the run's row in the project's Pipelines card");
      const st = await row.getAttribute("data-state");
      if (st !== "succeeded") fail(`the run's row says ${st}, want succeeded`);
      await screenshot(page, "project-pipelines.png");
    }],

    ["the AI settings at 1440 and 390 px: the budget counts the run", async () => {
      await page.click(tid("nav-ai"));
      await waitFor(page.locator(tid("budget-row")), "the budget's row");
      const spent = await text(`${tid("budget-row")} ${tid("budget-spent")}`);
      if (!(Number(spent.replace(/[^0-9.]/g, "")) > 0)) fail(`the budget shows ${spent} spent after a run with 3 calls`);
      const problems = (await layoutProblems(page)).map((p) => `1440 px: ${p}`);
      await screenshot(page, "ai-settings.png");
      try {
        await page.setViewportSize({ width: 390, height: 844 });
        await settled(page);
        for (const p of await layoutProblems(page)) problems.push(`390 px: ${p}`);
        await screenshot(page, "mobile-ai-settings.png");
      } finally {
        await page.setViewportSize({ width: 1440, height: 900 });
      }
      if (problems.length) fail(problems.join("; "));
      if (await pageHolds(LLM_KEY)) fail("the API key is in the settings page");
      return `spent ${spent}`;
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
      const shot = await screenshot(page, `pipelines-failure-step${i + 1}.png`).catch(() => null);
      if (shot) console.log(`     screenshot: ${shot}`);
      if (consoleErrors.length) console.log(`     console errors: ${consoleErrors.slice(-5).join(" | ")}`);
      // Without a session, a provider or a run nothing after it can work.
      if (i === 0 || i === 2 || (i >= 5 && !runId)) aborted = true;
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
