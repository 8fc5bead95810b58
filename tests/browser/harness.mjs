// What the browser scripts (dashboard.mjs, tasks.mjs, pipelines.mjs) share: their settings from
// the environment, the refusal to start without what they need, and the helpers their steps
// wait and look with. A step fails with a StepError and a readable message.

import fs from "node:fs";
import path from "node:path";

const env = process.env;
export const CHROMIUM = env.CHROMIUM_PATH || "/usr/bin/chromium";
export const SHOTS = env.SCREENSHOT_DIR || "";
export const WAIT = Number(env.FULCRUM_BROWSER_TIMEOUT_MS || 15_000);

/** Exits (reporting one failure) unless `missing` is empty and Chromium is there. */
export function requireSetup(missing) {
  if (missing.length) {
    console.error(`browser: missing environment: ${missing.join(", ")}`);
    console.log("browser: 0 passed, 1 failed");
    process.exit(1);
  }
  if (!fs.existsSync(CHROMIUM)) {
    console.error(`browser: no Chromium at ${CHROMIUM} (set CHROMIUM_PATH, or apt-get install chromium)`);
    console.log("browser: 0 passed, 1 failed");
    process.exit(1);
  }
}

export const tid = (id) => `[data-testid="${id}"]`;

export class StepError extends Error {}
export function fail(msg) { throw new StepError(msg); }

/** Wait for a locator to reach a state, failing with a readable message. */
export async function waitFor(locator, what, state = "visible", timeout = WAIT) {
  try {
    await locator.first().waitFor({ state, timeout });
  } catch {
    fail(`timed out after ${timeout} ms waiting for ${what}`);
  }
}

/** Poll an async predicate until truthy. */
export async function until(pred, what, timeout = WAIT) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await pred();
      if (last) return last;
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 150));
  }
  fail(`timed out after ${timeout} ms waiting for ${what}${last instanceof Error ? ` (${last.message.split("\n")[0]})` : ""}`);
}

export async function screenshot(page, name) {
  if (!SHOTS) return null;
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Opens the dashboard at `base`, logs in, and waits until the live feed is connected. */
export async function logIn(page, base, email, password) {
  try {
    await page.goto(base + "/", { waitUntil: "domcontentloaded", timeout: WAIT });
  } catch (e) {
    fail(`cannot open ${base}/: ${e.message.split("\n")[0]}`);
  }
  await waitFor(page.locator(tid("login-email")), "the login form (login-email)");
  await page.fill(tid("login-email"), email);
  await page.fill(tid("login-password"), password);
  await page.click(tid("login-submit"));
  const outcome = await until(async () => {
    if (await page.locator(tid("nav-projects")).isVisible()) return "in";
    const err = page.locator(tid("login-error"));
    if (await err.isVisible()) return `error: ${((await err.textContent()) || "").trim()}`;
    return null;
  }, "the dashboard after logging in (nav-projects)");
  if (outcome !== "in") fail(`logging in failed (${outcome})`);
  await waitFor(page.locator(`${tid("live-indicator")}[data-state="live"]`), 'live-indicator with data-state="live"');
}
