// Headless-browser test of the Fulcrum dashboard served by a running relay.
//
//   FULCRUM_URL=http://127.0.0.1:34567 FULCRUM_EMAIL=... FULCRUM_PASSWORD=... \
//   FULCRUM_REPO_DIR=/path/to/watched/repo node tests/browser/dashboard.mjs
//
// Optional: CHROMIUM_PATH (default /usr/bin/chromium), SCREENSHOT_DIR (a screenshot of each page,
// at 1440 px and at 390 px, and of the stale state),
// FULCRUM_BROWSER_TIMEOUT_MS (per-wait bound, default 15000),
// FULCRUM_USER_IS_ADMIN=1 when the test user is an administrator (default: a member).
// Exit code 0 when every step passed, 1 otherwise. Last line: "browser: N passed, M failed".

import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { chromium } from "playwright-core";
import { CHROMIUM, SHOTS, StepError, WAIT, fail, requireSetup, screenshot, tid, until, waitFor } from "./harness.mjs";

const env = process.env;
const BASE = (env.FULCRUM_URL || "").replace(/\/+$/, "");
const EMAIL = env.FULCRUM_EMAIL;
const PASSWORD = env.FULCRUM_PASSWORD;
const REPO_DIR = env.FULCRUM_REPO_DIR;
const IS_ADMIN = env.FULCRUM_USER_IS_ADMIN === "1";
const OVERALL_MS = Math.max(120_000, WAIT * 12);

const missing = ["FULCRUM_URL", "FULCRUM_EMAIL", "FULCRUM_PASSWORD", "FULCRUM_REPO_DIR"].filter((k) => !env[k]);
requireSetup(missing);

/** Every console error since `from` (an index into consoleAll), 401s included. */
const consoleSince = (from) => consoleAll.slice(from).map((m) => m.text);

/**
 * Runs a command in a workspace through the relay's MCP endpoint with an MCP token, as an MCP
 * client would (Streamable HTTP: initialize, initialized, tools/call run_task). Returns the task id.
 */
async function runThroughMcp(token, workspace, command) {
  const headers = {
    Authorization: `Bearer ${token}`,
    "Content-Type": "application/json",
    Accept: "application/json, text/event-stream",
  };
  const rpc = async (body, session) => {
    const res = await fetch(`${BASE}/mcp`, {
      method: "POST",
      headers: session ? { ...headers, "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-06-18" } : headers,
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) fail(`MCP ${body.method} answered ${res.status}: ${text.slice(0, 200)}`);
    // JSON, or server-sent events whose data lines carry the JSON-RPC answer.
    const json = text.trimStart().startsWith("{")
      ? [text]
      : text.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).filter((l) => l.startsWith("{"));
    const answer = json.map((j) => JSON.parse(j)).find((m) => m.id === body.id);
    return { answer, session: res.headers.get("mcp-session-id") };
  };
  const init = await rpc({
    jsonrpc: "2.0", id: 1, method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "dashboard-browser-test", version: "1" } },
  });
  if (!init.session) fail("the MCP endpoint gave no Mcp-Session-Id");
  await rpc({ jsonrpc: "2.0", method: "notifications/initialized" }, init.session);
  const call = await rpc({
    jsonrpc: "2.0", id: 2, method: "tools/call",
    params: { name: "run_task", arguments: { workspace, command } },
  }, init.session);
  const result = call.answer && call.answer.result;
  if (!result || result.isError) fail(`run_task through MCP failed: ${JSON.stringify(call.answer).slice(0, 300)}`);
  const structured = result.structuredContent || JSON.parse(result.content[0].text);
  if (!structured.id) fail(`run_task through MCP returned no task id: ${JSON.stringify(result).slice(0, 300)}`);
  return structured.id;
}

/** What overflows the page horizontally at the current width, and whether the navigation fits. */
async function layoutProblems(page) {
  return page.evaluate(() => {
    const problems = [];
    const doc = document.documentElement;
    if (doc.scrollWidth > window.innerWidth) {
      const wide = [...document.querySelectorAll("body *")]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && el.closest(".table-wrap, .log, .codebox-pre") === null)
        .slice(0, 3).map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join(".")}`);
      problems.push(`the page is ${doc.scrollWidth} px wide in a ${window.innerWidth} px window (${wide.join(", ")})`);
    }
    const nav = document.querySelector("nav.nav");
    if (nav) {
      if (nav.scrollWidth > nav.clientWidth + 1) problems.push(`the navigation needs ${nav.scrollWidth} px and has ${nav.clientWidth}`);
      const live = document.querySelector("[data-testid=live-indicator]")?.getBoundingClientRect();
      for (const a of nav.querySelectorAll("a.nav-link")) {
        if (a.hidden || a.offsetParent === null) continue;
        const r = a.getBoundingClientRect();
        if (r.left < 0 || r.right > window.innerWidth) problems.push(`"${a.textContent.trim()}" is cut off (${Math.round(r.left)}–${Math.round(r.right)} px)`);
        const label = a.querySelector(".nav-label");
        if (label && label.scrollWidth > label.clientWidth + 1) problems.push(`"${a.textContent.trim()}" is clipped`);
        if (live && r.left < live.right && live.left < r.right && r.top < live.bottom && live.top < r.bottom) {
          problems.push(`the live indicator covers "${a.textContent.trim()}"`);
        }
      }
    }
    return problems;
  });
}

const results = [];
const pageErrors = [];
const consoleErrors = [];
const consoleAll = [];
/** @type {string[] | null} console errors logged while the login page loaded */
let loginPageErrors = null;
let editFile = null;

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
    if (m.type() !== "error") return;
    consoleAll.push({ text: m.text(), url: page.url() });
    // 401s are expected from the wrong-password attempt; the login page itself must log none.
    if (!/status of 401/.test(m.text())) consoleErrors.push(m.text());
  });

  // The events socket goes through this route, so a step can cut the live feed as a stopped
  // relay would, and bring it back.
  let feedDown = false;
  let feedSockets = [];
  await page.routeWebSocket(/\/api\/v1\/events/, (ws) => {
    if (feedDown) {
      ws.close({ code: 1011, reason: "feed down (test)" });
      return;
    }
    ws.connectToServer();
    feedSockets.push(ws);
  });
  const ticketDown = (route) => route.abort("connectionrefused");

  // Revoking a token asks for confirmation; accept confirm() dialogs, record anything else.
  const dialogs = [];
  page.on("dialog", async (d) => {
    dialogs.push({ type: d.type(), message: d.message() });
    if (d.type() === "confirm") await d.accept(); else await d.dismiss();
  });

  const onlineCard = page.locator(`${tid("workspace")}[data-online="true"]`);
  let workspaceId = null;
  // From the task-source step, for the activity and Tasks-view steps after it.
  let mcpRunSecret = null;
  let mcpTaskId = null;
  let apiTaskId = null;
  let failingTaskId = null;

  const steps = [
    ["login (wrong password is rejected, then the right one works)", async () => {
      try {
        await page.goto(BASE + "/", { waitUntil: "domcontentloaded", timeout: WAIT });
      } catch (e) {
        fail(`cannot open ${BASE}/: ${e.message.split("\n")[0]}`);
      }
      await waitFor(page.locator(tid("login-email")), "the login form (login-email)");
      // Signed out, the login page asks for no refresh it would be refused: no 401, no error.
      await page.waitForLoadState("networkidle").catch(() => {});
      loginPageErrors = consoleSince(0);
      await screenshot(page, "login.png");
      await page.fill(tid("login-email"), EMAIL);
      await page.fill(tid("login-password"), PASSWORD + "-wrong");
      await page.click(tid("login-submit"));
      await waitFor(page.locator(tid("login-error")), "login-error after a wrong password");
      const msg = (await page.textContent(tid("login-error")) || "").trim();
      if (!msg) fail("login-error is shown but empty");
      await screenshot(page, "login-error.png");

      await page.fill(tid("login-password"), PASSWORD);
      await page.click(tid("login-submit"));
      const outcome = await until(async () => {
        if (await page.locator(tid("nav-workspaces")).isVisible()) return "in";
        const err = page.locator(tid("login-error"));
        if (await err.isVisible()) return `error: ${((await err.textContent()) || "").trim()}`;
        return null;
      }, "the dashboard after logging in (nav-workspaces)");
      if (outcome !== "in") fail(`logging in with FULCRUM_EMAIL / FULCRUM_PASSWORD failed (${outcome})`);
      await waitFor(page.locator(tid("login-email")), "the login form to go away", "detached");
      const shown = await page.locator(".user-email").textContent().catch(() => "");
      await until(async () => (await page.locator(".user-email").textContent()) === EMAIL,
        `the top bar to show ${EMAIL} (shows "${shown}")`);
    }],

    ["the login page logged no console error (no refresh probe without a session)", async () => {
      if (loginPageErrors === null) fail("the login page was not reached");
      if (loginPageErrors.length) fail(`the login page logged console errors: ${loginPageErrors.join(" | ")}`);
    }],

    ["an online workspace with a repo appears", async () => {
      await waitFor(onlineCard.filter({ has: page.locator(tid("repo")) }),
        'a workspace card with data-online="true" containing a repo block');
      await waitFor(page.locator(`${tid("live-indicator")}[data-state="live"]`), 'live-indicator with data-state="live"');
      workspaceId = await onlineCard.first().getAttribute("data-workspace-id");
      if (!workspaceId) fail("workspace card has no data-workspace-id");
    }],

    ["a file written in the repo shows up live, without a reload", async () => {
      await page.evaluate(() => { window.__fulcrumNoReload = 1; });
      const name = `browser-edit-${crypto.randomBytes(5).toString("hex")}.txt`;
      editFile = path.join(REPO_DIR, name);
      fs.writeFileSync(editFile, `written by tests/browser/dashboard.mjs at ${new Date().toISOString()}\n`);
      const row = page.locator(tid("changed-path"), { hasText: name });
      await waitFor(row, `a changed-path row containing ${name}`, "attached");
      if (!(await row.first().isVisible())) {
        // Long change lists are collapsed: expand the repo that holds the row.
        const repo = page.locator(tid("repo"), { has: row });
        await repo.first().locator("button.toggle").click();
        await waitFor(row, `${name} to become visible after expanding the change list`);
      }
      const flag = await page.evaluate(() => window.__fulcrumNoReload);
      if (flag !== 1) fail(`the page reloaded (window.__fulcrumNoReload is ${flag}); updates must arrive over the event socket`);
    }],

    ["create and revoke an agent token", async () => {
      await page.click(tid("nav-tokens"));
      await until(async () => page.url().endsWith("#/tokens"), "the URL to change to #/tokens");
      // The create form is behind "New token", not always open.
      await waitFor(page.locator(tid("new-token")), "the New token button (new-token)");
      if (await page.locator(tid("token-name")).isVisible()) fail("the token form is open before pressing New token");
      await page.click(tid("new-token"));
      await waitFor(page.locator(tid("token-name")), "the token name input (token-name)");
      if (await page.locator(tid("token-limit")).isEnabled()) fail("token-limit is enabled while the kind is agent");
      await page.fill(tid("token-name"), "browser-test");
      await page.click(tid("token-create"));
      const secretEl = page.locator(tid("token-secret"));
      await waitFor(secretEl, "the shown-once secret (token-secret)");
      const secret = ((await secretEl.textContent()) || "").trim();
      if (!secret.startsWith("fca_")) fail(`token-secret should start with "fca_", got "${secret.slice(0, 12)}…"`);
      const tokenId = await secretEl.getAttribute("data-token-id");
      if (!tokenId) fail("token-secret has no data-token-id");

      const row = page.locator(`${tid("token-row")}[data-token-id="${tokenId}"]`);
      await waitFor(row, `the token row for the new token (${tokenId})`);
      const rowText = (await row.textContent()) || "";
      if (!rowText.includes("browser-test")) fail(`the token row does not show its name: "${rowText}"`);
      await screenshot(page, "tokens-created.png");

      const before = dialogs.length;
      await row.locator(tid("token-revoke")).click();
      await until(async () => dialogs.length > before, "a confirm dialog before revoking");
      if (dialogs[before].type !== "confirm") fail(`expected a confirm dialog, got ${dialogs[before].type}`);
      await waitFor(page.locator(`${tid("token-row")}[data-token-id="${tokenId}"][data-revoked="true"]`),
        'the token row to be marked revoked (data-revoked="true")');
      await until(async () => /revoked/i.test((await row.textContent()) || ""), 'the token row to say "Revoked"');
      if (await row.locator(tid("token-revoke")).count()) fail("a revoked token still offers a revoke button");
      const kindText = ((await row.locator(tid("token-kind-badge")).textContent()) || "").trim();
      if (kindText !== "Agent · read, run") fail(`the agent token's kind badge should say "Agent · read, run", got "${kindText}"`);
      const scopes = await row.getAttribute("data-scopes");
      if (scopes !== "read run") fail(`the agent token row should have data-scopes="read run", got "${scopes}"`);
    }],

    ["create an MCP token that may only read", async () => {
      await waitFor(page.locator(tid("token-kind")), "the token kind choice (token-kind)");
      // Revoking the agent token above dismissed its shown-once panel.
      await waitFor(page.locator(tid("token-secret")), "the previous shown-once secret to go away", "detached");
      if (await page.locator(tid("token-scope-write")).isEnabled()) fail("token-scope-write is enabled while the kind is agent");
      await page.fill(tid("token-name"), "browser-test-mcp");
      await page.selectOption(tid("token-kind"), "mcp");
      for (const s of ["read", "write", "run"]) {
        const box = page.locator(tid(`token-scope-${s}`));
        if (!(await box.isEnabled()) || !(await box.isChecked())) fail(`token-scope-${s} should be enabled and checked by default for an MCP token`);
      }
      if (await page.locator(tid("token-scope-ingest")).isEnabled()) fail("token-scope-ingest is enabled for an MCP token");
      if (!(await page.locator(tid("token-limit")).isEnabled())) fail("token-limit is disabled for an MCP token");
      await page.uncheck(tid("token-scope-write"));
      await page.uncheck(tid("token-scope-run"));
      await page.click(tid("token-create"));
      const secretEl = page.locator(tid("token-secret"));
      await waitFor(secretEl, "the shown-once MCP secret (token-secret)");
      const secret = ((await secretEl.textContent()) || "").trim();
      if (!secret.startsWith("fcm_")) fail(`the MCP token-secret should start with "fcm_", got "${secret.slice(0, 12)}…"`);
      const tokenId = await secretEl.getAttribute("data-token-id");
      if (!tokenId) fail("token-secret has no data-token-id");

      await waitFor(page.locator(tid("mcp-endpoint")), "the MCP endpoint (mcp-endpoint)");
      const endpoint = ((await page.locator(tid("mcp-endpoint")).textContent()) || "").trim();
      if (!endpoint.includes("/mcp")) fail(`mcp-endpoint should contain "/mcp", got "${endpoint}"`);

      const row = page.locator(`${tid("token-row")}[data-token-id="${tokenId}"]`);
      await waitFor(row, `the token row for the new MCP token (${tokenId})`);
      const badge = row.locator(tid("token-kind-badge"));
      await until(async () => ((await badge.textContent()) || "").trim() === "MCP · read",
        'the MCP token row to show the kind badge "MCP · read" (token-kind-badge)');
      const scopes = await row.getAttribute("data-scopes");
      if (scopes !== "read") fail(`the MCP token row should have data-scopes="read", got "${scopes}"`);
      await screenshot(page, "tokens-mcp-created.png");
    }],

    ["a reload keeps the session (refresh cookie)", async () => {
      await page.reload({ waitUntil: "domcontentloaded" });
      await waitFor(page.locator(tid("nav-workspaces")), "the dashboard after a reload (was the session lost?)");
      if (await page.locator(tid("login-email")).count()) fail("the login form is shown after a reload");
      const flag = await page.evaluate(() => window.__fulcrumNoReload);
      if (flag !== undefined) fail("the page did not actually reload");
      // We reloaded on #/tokens: the view is restored, then go back to workspaces.
      await waitFor(page.locator(`${tid("token-row")}[data-revoked="true"]`), "the tokens view with the revoked token after the reload");
      await page.click(tid("nav-workspaces"));
      const card = workspaceId
        ? page.locator(`${tid("workspace")}[data-workspace-id="${workspaceId}"][data-online="true"]`)
        : onlineCard;
      await waitFor(card, "the online workspace after the reload");
    }],

    ["profile: a saved name and theme survive a reload", async () => {
      const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
      const nameInput = page.locator(tid("profile-name"));
      await page.click(tid("nav-profile"));
      await until(async () => page.url().endsWith("#/profile"), "the URL to change to #/profile");
      await until(async () => nameInput.isEnabled(), "the profile form to load (profile-name enabled)");
      const fullName = `Browser Test ${crypto.randomBytes(3).toString("hex")}`;
      await page.fill(tid("profile-name"), fullName);
      await page.selectOption(tid("profile-theme"), "dark");
      await page.click(tid("profile-save"));
      await waitFor(page.locator(tid("profile-saved")), "the saved message (profile-saved)");
      if ((await theme()) !== "dark") fail(`<html data-theme> should be "dark" after saving, got "${await theme()}"`);

      // The password form catches a mismatch before sending anything.
      await page.fill(tid("password-current"), PASSWORD);
      await page.fill(tid("password-new"), "browser-new-password-1");
      await page.fill(tid("password-confirm"), "browser-new-password-2");
      await page.click(tid("password-save"));
      await waitFor(page.locator(tid("password-error")), "password-error for new passwords that differ");
      if (await page.locator(tid("password-result")).isVisible()) fail("password-result is shown for new passwords that differ");

      await page.reload({ waitUntil: "domcontentloaded" });
      await waitFor(page.locator(tid("nav-profile")), "the dashboard after a reload");
      await until(async () => (await nameInput.isEnabled()) && (await nameInput.inputValue()) === fullName,
        `profile-name to read "${fullName}" after a reload`);
      const chosen = await page.locator(tid("profile-theme")).inputValue();
      if (chosen !== "dark") fail(`profile-theme should be "dark" after a reload, got "${chosen}"`);
      if ((await theme()) !== "dark") fail(`<html data-theme> should be "dark" after a reload, got "${await theme()}"`);
      await screenshot(page, "profile-dark.png");

      // Back to the system's theme for the rest of the run.
      await page.selectOption(tid("profile-theme"), "system");
      await page.click(tid("profile-save"));
      await waitFor(page.locator(tid("profile-saved")), "the saved message after going back to the system theme");
      await until(async () => (await theme()) === "system", '<html data-theme> to be "system" again');
    }],

    [IS_ADMIN ? "the admin page lists users for an administrator" : "the admin page is hidden for a member", async () => {
      // The Users link depends on GET /me: wait until the top bar shows who is signed in.
      await until(async () => (await page.locator(".user-email").textContent()) === EMAIL, "the signed-in user to be known");
      if (IS_ADMIN) {
        await waitFor(page.locator(tid("nav-admin")), "the Users link (nav-admin) for an administrator");
        await page.click(tid("nav-admin"));
        const own = page.locator(`${tid("admin-user-row")}[data-email="${EMAIL}"]`);
        await waitFor(own, `the signed-in administrator's own row (admin-user-row, data-email="${EMAIL}")`);
        if (await own.locator(tid("admin-deactivate")).isEnabled()) fail("an administrator is offered to deactivate themself");
      } else {
        if (await page.locator(tid("nav-admin")).isVisible()) fail("the Users link (nav-admin) is shown to a member");
        await page.evaluate(() => { location.hash = "#/admin"; });
        await waitFor(page.locator(tid("admin-forbidden")), "the administrators-only notice (admin-forbidden) on #/admin");
        if (await page.locator(tid("admin-user-row")).count()) fail("a member is shown the user list");
      }
      await page.click(tid("nav-workspaces"));
    }],

    ["every task source has its badge, and the task list filters by source", async () => {
      if (!workspaceId) fail("no workspace id from the earlier steps");
      // An MCP token that may run tasks, created in the dashboard; an MCP client starts a task with it.
      await page.click(tid("nav-tokens"));
      await page.click(tid("new-token"));
      await waitFor(page.locator(tid("token-name")), "the token form");
      await page.fill(tid("token-name"), "browser-test-mcp-run");
      await page.selectOption(tid("token-kind"), "mcp");
      await page.click(tid("token-create"));
      const secretEl = page.locator(tid("token-secret"));
      await until(async () => ((await secretEl.textContent()) || "").trim().startsWith("fcm_") &&
        (await page.locator(tid("mcp-command")).textContent() || "").includes(((await secretEl.textContent()) || "").trim()),
        "the new MCP token's secret and its claude mcp add line");
      const secret = ((await secretEl.textContent()) || "").trim();
      mcpRunSecret = secret;
      // The claude mcp add line wraps beside its Copy button, never under it.
      const overlap = await page.locator(tid("mcp-command")).evaluate((code) => {
        const btn = code.parentElement.querySelector("button");
        const a = code.getBoundingClientRect();
        const b = btn.getBoundingClientRect();
        return a.right > b.left + 1 || code.scrollWidth > code.clientWidth + 1;
      });
      if (overlap) fail("the claude mcp add line runs under its Copy button");
      const mcpTask = await runThroughMcp(secret, workspaceId, "echo started-through-mcp");

      await page.evaluate((h) => { location.hash = h; }, `#/workspaces/${workspaceId}/tasks`);
      await waitFor(page.locator(tid("run-form")), "the workspace's run form");
      await page.fill(tid("run-command"), "echo started-in-the-dashboard");
      await page.click(tid("run-submit"));
      const apiTask = await until(async () => {
        const m = decodeURIComponent(new URL(page.url()).hash).match(/^#\/tasks\/([^/]+)$/);
        return m ? m[1] : null;
      }, "the new task's page after pressing Run");
      await waitFor(page.locator(`${tid("task-page")} ${tid("task-source")}[data-source="api"]`), 'the "api" badge on the task page');
      await page.click(tid("task-workspace-link"));

      const row = (id) => page.locator(`${tid("task-row")}[data-task-id="${id}"]`);
      await waitFor(row(mcpTask).locator(`${tid("task-source")}[data-source="mcp"]`), 'the MCP-started task\'s row with an "mcp" badge');
      await waitFor(row(apiTask).locator(`${tid("task-source")}[data-source="api"]`), 'the dashboard-started task\'s row with an "api" badge');
      const badge = ((await row(mcpTask).locator(tid("task-source")).textContent()) || "").trim();
      if (badge !== "mcp") fail(`the MCP-started task's badge says "${badge}", want "mcp"`);

      await page.selectOption(tid("task-source-filter"), "mcp");
      await waitFor(row(apiTask), "the api task to leave the list under the mcp filter", "detached");
      await waitFor(row(mcpTask), "the mcp task to stay under the mcp filter");
      const sources = await page.locator(tid("task-row")).evaluateAll((rs) => rs.map((r) => r.dataset.source));
      if (sources.some((s) => s !== "mcp")) fail(`the mcp filter shows sources ${sources.join(", ")}`);
      await page.selectOption(tid("task-source-filter"), "api");
      await waitFor(row(mcpTask), "the mcp task to leave the list under the api filter", "detached");
      await waitFor(row(apiTask), "the api task under the api filter");
      await page.selectOption(tid("task-source-filter"), "");
      await waitFor(row(mcpTask), "the mcp task back with the filter cleared");
      await screenshot(page, "workspace-tasks-sources.png");
      mcpTaskId = mcpTask;
      apiTaskId = apiTask;
      await page.click(tid("nav-workspaces"));
    }],

    ["the workspace card shows its last tasks, and a failing one live", async () => {
      if (!workspaceId || !apiTaskId || !mcpRunSecret) fail("no workspace, task or MCP token from the earlier steps");
      const card = page.locator(`${tid("workspace")}[data-workspace-id="${workspaceId}"]`);
      const line = (id) => card.locator(`${tid("workspace-task")}[data-task-id="${id}"]`);
      await waitFor(line(apiTaskId), "the dashboard-started task among the card's last tasks (workspace-task)");
      await waitFor(line(apiTaskId).locator(`${tid("workspace-task-state")}[data-state="succeeded"]`), "its succeeded badge on the card");
      const num = ((await line(apiTaskId).locator(tid("workspace-task-number")).textContent()) || "").trim();
      if (!/^#\d+$/.test(num)) fail(`the card shows the task's number as "${num}", want "#N"`);
      const cmd = ((await line(apiTaskId).textContent()) || "");
      if (!cmd.includes("echo started-in-the-dashboard")) fail(`the card's task line does not show its command: "${cmd.trim()}"`);
      const shown = await card.locator(tid("workspace-task")).count();
      if (shown > 6) fail(`the card shows ${shown} tasks, want at most the last 5 (and older running ones)`);
      // A failing task started elsewhere shows up on the open page without a reload.
      failingTaskId = await runThroughMcp(mcpRunSecret, workspaceId, "echo failing-on-the-card; exit 4");
      await waitFor(line(failingTaskId).locator(`${tid("workspace-task-state")}[data-state="failed"]`),
        'the MCP-started failing task on the card, live, with data-state="failed"', "visible", Math.max(WAIT, 45_000));
      await until(async () => (await card.getAttribute("data-last-task-state")) === "failed", 'the card\'s data-last-task-state="failed"');
      const first = await card.locator(tid("workspace-task")).first().getAttribute("data-task-id");
      if (first !== failingTaskId) fail("the newest task is not first on the card");
      await screenshot(page, "workspaces-activity.png");
      await line(failingTaskId).locator(tid("workspace-task-link")).click();
      await until(async () => decodeURIComponent(new URL(page.url()).hash) === `#/tasks/${failingTaskId}`, "the task page from the card");
      await page.click(tid("nav-workspaces"));
    }],

    ["the Tasks view lists tasks across workspaces, and its filters narrow it", async () => {
      if (!failingTaskId || !apiTaskId || !mcpTaskId) fail("no tasks from the earlier steps");
      await page.click(tid("nav-tasks"));
      await until(async () => new URL(page.url()).hash === "#/tasks", "the URL #/tasks");
      await waitFor(page.locator(tid("tasks-page")), "the Tasks view (tasks-page)");
      if ((await page.locator(tid("nav-tasks")).getAttribute("aria-current")) !== "page") fail("nav-tasks is not marked current");
      const row = (id) => page.locator(`${tid("tasks-page")} ${tid("task-row")}[data-task-id="${id}"]`);
      for (const id of [failingTaskId, apiTaskId, mcpTaskId]) await waitFor(row(id), `task ${id} in the Tasks view`);
      const ids = await page.locator(tid("task-row")).evaluateAll((rs) => rs.map((r) => r.dataset.taskId));
      if (ids.indexOf(failingTaskId) > ids.indexOf(apiTaskId)) fail("the Tasks view is not newest first");
      const num = ((await row(failingTaskId).locator(tid("task-row-number")).textContent()) || "").trim();
      if (!/^#\d+$/.test(num)) fail(`the row shows the number "${num}", want "#N"`);
      // State (asked of the relay).
      await page.selectOption(tid("task-filter"), "failed");
      await waitFor(row(apiTaskId), "the succeeded task to leave under the failed filter", "detached");
      await waitFor(row(failingTaskId), "the failed task under the failed filter");
      await page.selectOption(tid("task-filter"), "");
      // Source.
      await page.selectOption(tid("task-source-filter"), "api");
      await waitFor(row(failingTaskId), "the mcp task to leave under the api filter", "detached");
      await waitFor(row(apiTaskId), "the api task under the api filter");
      await page.selectOption(tid("task-source-filter"), "");
      // Workspace.
      await waitFor(page.locator(`${tid("task-workspace-filter")} option[value="${workspaceId}"]`), "the workspace offered in the filter", "attached");
      await page.selectOption(tid("task-workspace-filter"), workspaceId);
      await waitFor(row(failingTaskId), "the workspace's task under its workspace filter");
      await page.selectOption(tid("task-workspace-filter"), "");
      // Who (on the page in the browser).
      await waitFor(row(apiTaskId), "the api task back with the filters cleared");
      await page.fill(tid("task-who-filter"), EMAIL);
      await waitFor(row(apiTaskId), "the signed-in user's task under the who filter");
      await page.fill(tid("task-who-filter"), "nobody-at-all@");
      await waitFor(page.locator(`${tid("tasks-page")} ${tid("task-empty")}`), "no rows for a who that started nothing");
      await page.fill(tid("task-who-filter"), "");
      await waitFor(row(apiTaskId), "the rows back with the who filter cleared");
      await screenshot(page, "tasks.png");
      await row(failingTaskId).locator(tid("task-link")).click();
      await until(async () => decodeURIComponent(new URL(page.url()).hash) === `#/tasks/${failingTaskId}`, "the task page from the Tasks view");
      await page.click(tid("nav-workspaces"));
    }],

    ["with the live feed down, what is live on screen is marked stale, until it is back", async () => {
      await page.click(tid("nav-workspaces"));
      const card = page.locator(`${tid("workspace")}[data-workspace-id="${workspaceId}"]`);
      await waitFor(card.and(page.locator('[data-online="true"]')), "the online workspace card");
      await waitFor(page.locator(`${tid("live-indicator")}[data-state="live"]`), "the live feed to be up first");
      if (await page.locator('[data-stale="true"]').count()) fail("something is marked stale while the feed is live");

      // Cut the feed the way a stopped relay does: the socket closes and no new one opens.
      feedDown = true;
      await page.route("**/api/v1/events/ticket", ticketDown);
      for (const ws of feedSockets.splice(0)) await ws.close({ code: 1001, reason: "relay gone (test)" }).catch(() => {});
      await waitFor(page.locator(`${tid("live-indicator")}[data-state="reconnecting"]`), "the header to say Reconnecting…");
      const label = ((await page.locator(`${tid("live-indicator")} .live-label`).textContent()) || "").trim();
      if (label !== "Reconnecting…") fail(`the live indicator says "${label}", want "Reconnecting…"`);
      await waitFor(card.and(page.locator('[data-stale="true"]')), 'the workspace card marked stale (data-stale="true")');
      const note = ((await card.locator(tid("stale-note")).first().textContent()) || "").trim();
      if (!/^last known \S/.test(note)) fail(`the card's stale note says "${note}", want "last known <time>"`);
      const banner = page.locator(tid("stale-banner"));
      await waitFor(banner, "the stale banner under the header");
      if (!/last known/.test((await banner.textContent()) || "")) fail("the stale banner does not say what is shown is the last known state");
      const dot = await card.locator(".dot").first().evaluate((el) => getComputedStyle(el).backgroundColor);
      const green = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--green").trim());
      if (dot.replace(/\s/g, "") === green) fail("the stale card's dot is still green");
      await screenshot(page, "workspaces-stale.png");

      // Back: the marks go away by themselves.
      feedDown = false;
      await page.unroute("**/api/v1/events/ticket", ticketDown);
      await page.evaluate(() => window.dispatchEvent(new Event("online")));
      await waitFor(page.locator(`${tid("live-indicator")}[data-state="live"]`), "the live feed to come back", "visible", Math.max(WAIT, 30_000));
      await until(async () => (await page.locator('[data-stale="true"]').count()) === 0, "the stale marks to clear");
      await waitFor(banner, "the stale banner to go away", "hidden");
      if (await page.locator(tid("stale-note")).count()) fail("a stale note is left after the feed came back");
    }],

    ["the workspace page shows the agent's facts, its repositories and recent tasks", async () => {
      if (!workspaceId) fail("no workspace id from the earlier steps");
      await page.click(tid("nav-workspaces"));
      const card = page.locator(`${tid("workspace")}[data-workspace-id="${workspaceId}"]`);
      await card.locator(tid("workspace-link")).click();
      await until(async () => page.url().endsWith(`#/workspaces/${workspaceId}`), `the URL to change to #/workspaces/${workspaceId}`);
      const wp = page.locator(`${tid("workspace-page")}[data-workspace-id="${workspaceId}"]`);
      await waitFor(wp, "the workspace page (workspace-page)");
      await waitFor(wp.locator(tid("workspace-facts")), "the agent facts (workspace-facts)");
      const transport = wp.locator(tid("workspace-transport"));
      await until(async () => /^(WebSocket|QUIC)$/.test(((await transport.textContent()) || "").trim()),
        "workspace-transport to say WebSocket or QUIC");
      const policy = ((await wp.locator(tid("workspace-policy")).textContent()) || "").trim();
      if (!policy || /not connected|not reported/.test(policy)) fail(`workspace-policy says "${policy}", want the agent's policy`);
      const policyTags = await wp.locator(`${tid("workspace-policy")} .tag`).allTextContents();
      if (policyTags.some((p) => !["read", "write", "run", "ingest", "admin"].includes(p.trim())))
        fail(`workspace-policy shows unknown words: ${policyTags.join(", ")}`);
      await waitFor(wp.locator(`${tid("workspace-repos")} ${tid("repo")}`), "a repository on the workspace page (workspace-repos)");
      if (editFile) {
        const name = path.basename(editFile);
        await waitFor(wp.locator(tid("changed-path"), { hasText: name }), `the changed file ${name} on the workspace page`, "attached");
      }
      await waitFor(wp.locator(tid("task-row")), "the workspace's recent tasks on its page");
      const version = ((await wp.locator(tid("workspace-facts")).textContent()) || "");
      if (!/Agent version/.test(version)) fail("workspace-facts does not show the agent version");
      await screenshot(page, "workspace.png");
      await page.click(tid("workspace-page-tasks-link"));
      await waitFor(page.locator(`${tid("workspace-tasks")}[data-workspace-id="${workspaceId}"]`), "the workspace's tasks page from its page");
    }],

    ["projects: the create form is behind New project, and each project shows its health", async () => {
      await page.click(tid("nav-projects"));
      await waitFor(page.locator(tid("new-project")), "the New project button (new-project)");
      if (await page.locator(tid("project-create-panel")).isVisible()) fail("the project form is open before pressing New project");
      await page.click(tid("new-project"));
      await waitFor(page.locator(tid("project-name")), "the project name input after pressing New project");
      const name = `browser-health-${crypto.randomBytes(3).toString("hex")}`;
      await page.fill(tid("project-name"), name);
      await page.click(tid("project-create"));
      await until(async () => /#\/projects\/[^/]+$/.test(page.url()), "the new project's page");
      const projectId = decodeURIComponent(page.url().split("#/projects/")[1]);
      await page.click(tid("nav-projects"));
      const row = page.locator(`${tid("project-row")}[data-project-id="${projectId}"]`);
      await waitFor(row, "the new project's row");
      const health = row.locator(tid("project-health"));
      await waitFor(health, "the project's health in its row (project-health)");
      const hv = await health.getAttribute("data-health");
      if (!["running", "failing", "healthy", "offline", "idle"].includes(hv || "")) fail(`project-health has data-health="${hv}"`);
      const word = ((await health.textContent()) || "").trim().toLowerCase();
      if (word !== hv) fail(`project-health says "${word}", want "${hv}"`);
      await page.click(tid("nav-workspaces"));
    }],

    ["at 390 px the navigation fits and no page overflows", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      const pages = [
        ["workspaces", tid("workspace"), "workspaces"],
        ["projects", tid("new-project"), "projects"],
        ["tokens", tid("token-row"), "tokens"],
        ["tasks", tid("task-row"), "tasks"],
        ["profile", `${tid("profile-name")}:enabled`, "profile"],
        ["webhooks", `${tid("webhooks-page")}[data-loaded="true"]`, "webhooks"],
        ...(IS_ADMIN ? [["admin", tid("admin-user-row"), "users"]] : []),
        [`workspaces/${workspaceId}/tasks`, tid("task-row"), "workspace-tasks"],
        [`workspaces/${workspaceId}`, `${tid("workspace-page")} ${tid("task-row")}`, "workspace"],
      ];
      const problems = [];
      try {
        for (const [route, ready, name] of pages) {
          await page.evaluate((h) => { location.hash = h; }, `#/${route}`);
          await waitFor(page.locator(ready), `#/${route} at 390 px`);
          await page.waitForTimeout(100);
          for (const p of await layoutProblems(page)) problems.push(`#/${route}: ${p}`);
          await screenshot(page, `mobile-${name}.png`);
        }
        // The task page of the task from the run form.
        await page.locator(tid("task-link")).first().click();
        await waitFor(page.locator(tid("task-log")), "a task page at 390 px");
        for (const p of await layoutProblems(page)) problems.push(`task page: ${p}`);
        await screenshot(page, "mobile-task.png");
      } finally {
        await page.setViewportSize({ width: 1440, height: 900 });
      }
      if (problems.length) fail(problems.join("; "));
      await page.click(tid("nav-workspaces"));
    }],

    ["screenshots", async () => {
      if (!SHOTS) return "skipped (no SCREENSHOT_DIR)";
      await waitFor(page.locator(`${tid("live-indicator")}[data-state="live"]`), "the live indicator before the screenshot");
      const shots = [await screenshot(page, "workspaces.png")];
      for (const [nav, ready, name] of [
        ["nav-tokens", tid("token-row"), "tokens.png"],
        ["nav-projects", tid("project-row"), "projects.png"],
        ["nav-tasks", `${tid("tasks-page")} ${tid("task-row")}`, "tasks.png"],
        ["nav-profile", `${tid("profile-name")}:enabled`, "profile.png"],
        ["nav-webhooks", `${tid("webhooks-page")}[data-loaded="true"]`, "webhooks.png"],
        ...(IS_ADMIN ? [["nav-admin", tid("admin-user-row"), "users.png"]] : []),
      ]) {
        await page.click(tid(nav));
        await waitFor(page.locator(ready), `${name} before the screenshot`);
        shots.push(await screenshot(page, name));
      }
      await page.click(tid("nav-workspaces"));
      return shots.join(", ");
    }],

    ["log out; the login page then loads without an error", async () => {
      await page.click(tid("logout"));
      await waitFor(page.locator(tid("login-email")), "the login form after logging out");
      const from = consoleAll.length;
      await page.reload({ waitUntil: "domcontentloaded" });
      await waitFor(page.locator(tid("login-email")), "the login form after a reload");
      await page.waitForLoadState("networkidle").catch(() => {});
      if (consoleAll.length > from) fail(`the login page logged console errors after a reload: ${consoleSince(from).join(" | ")}`);
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
      const shot = await screenshot(page, `failure-step${i + 1}.png`).catch(() => null);
      if (shot) console.log(`     screenshot: ${shot}`);
      if (consoleErrors.length) console.log(`     console errors: ${consoleErrors.slice(-5).join(" | ")}`);
      // Without a session nothing after it can work.
      if (i === 0) aborted = true;
    }
  }
  await browser.close();
}

function finish(code) {
  if (editFile) { try { fs.unlinkSync(editFile); } catch { /* already gone */ } }
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
