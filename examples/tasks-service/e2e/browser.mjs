// The front end in a real browser, against two servers of one deployment: two pages logged
// in as the same user, one on each server. A task created in page one appears in page two
// through the WebSocket (page two fetches nothing), completing it updates both pages, the
// bus handler's notice and the scheduled summary arrive, and a logged-out token is refused.
//
// SERVER1_URL, SERVER2_URL: the two servers. SCREENSHOT_DIR: where the screenshots go.
// CHROMIUM: the browser (default /usr/bin/chromium).
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

const [server1, server2] = [process.env.SERVER1_URL, process.env.SERVER2_URL];
if (!server1 || !server2) {
  throw new Error("set SERVER1_URL and SERVER2_URL");
}
const shots = process.env.SCREENSHOT_DIR ?? "screenshots";
mkdirSync(shots, { recursive: true });
const WAIT = 30_000;

const checked = [];
function check(what) {
  checked.push(what);
  console.log(`checked: ${what}`);
}

const profile = mkdtempSync(join(tmpdir(), "tasks-e2e-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1100, height: 700 },
});

try {
  const [one, two] = [await context.newPage(), await context.newPage()];
  for (const page of [one, two]) {
    page.on("pageerror", (error) => console.error(`page error: ${error}`));
  }

  async function logIn(page, url) {
    await page.goto(url);
    await page.fill("input[name=username]", "alice");
    await page.fill("input[name=password]", "alice-password");
    await page.click("button[type=submit]");
    await page.waitForSelector("[data-testid=user]:text('alice')", { timeout: WAIT });
    await page.waitForSelector("[data-testid=ws-status]:text('connected')", { timeout: WAIT });
  }
  await logIn(one, server1);
  await logIn(two, server2);
  check(`two pages logged in as alice, on ${server1} and ${server2}, WebSockets connected`);
  await one.screenshot({ path: join(shots, "1-page-one-logged-in.png") });

  // Page two must learn of the task from its WebSocket alone: count what it fetches.
  const fetchedByTwo = [];
  two.on("request", (request) => {
    if (new URL(request.url()).pathname.startsWith("/tasks")) {
      fetchedByTwo.push(`${request.method()} ${request.url()}`);
    }
  });

  const title = `buy milk ${Date.now()}`;
  const task = (page) => page.locator(`[data-testid=task][data-title="${title}"]`);
  await one.fill("[data-testid=new-title]", title);
  await one.click("[data-testid=add]");
  await task(one).waitFor({ timeout: WAIT });
  await task(two).waitFor({ timeout: WAIT });
  if (fetchedByTwo.length !== 0) {
    throw new Error(`page two fetched ${fetchedByTwo.join(", ")}: the task did not come by WebSocket`);
  }
  check(`"${title}" created in page one appeared in page two through the WebSocket (page two fetched nothing)`);
  await two
    .locator(`[data-kind=notice]:has-text('handled task.created for "${title}"')`)
    .waitFor({ timeout: WAIT });
  const notice = await two.locator(`[data-kind=notice]:has-text('task.created')`).first().innerText();
  check(`page two got the bus handler's notice: ${notice}`);
  await two.screenshot({ path: join(shots, "2-page-two-task-arrived.png") });

  await task(two).locator("[data-testid=complete]").click();
  for (const [name, page] of [["one", one], ["two", two]]) {
    await page
      .locator(`[data-testid=task][data-title="${title}"][data-done=true]`)
      .waitFor({ timeout: WAIT });
    check(`the completed task shows done in page ${name}`);
  }
  await one
    .locator(`[data-kind=notice]:has-text('handled task.completed for "${title}"')`)
    .waitFor({ timeout: WAIT });
  check("page one got the task.completed notice from a worker");
  await one.screenshot({ path: join(shots, "3-page-one-completed.png") });

  await one.locator("[data-kind=summary]").first().waitFor({ timeout: 40_000 });
  const summary = await one.locator("[data-kind=summary]").first().innerText();
  check(`page one got the scheduled summary from the beat: ${summary}`);
  await one.screenshot({ path: join(shots, "4-page-one-summary.png") });

  // Log page one out; its token is refused by both servers, over HTTP and WebSocket.
  const token = await one.evaluate(
    () => JSON.parse(window.sessionStorage.getItem("tasks.credentials") ?? "null")?.accessToken,
  );
  if (!token) {
    throw new Error("page one keeps no access token");
  }
  await one.click("[data-testid=logout]");
  await one.waitForSelector("[data-testid=login-form]", { timeout: WAIT });
  // Asked from a page of each server (the same origin, as the front end asks).
  for (const [page, url] of [[one, server1], [two, server2]]) {
    const status = await page.evaluate(
      async (token) => (await fetch("/tasks", { headers: { Authorization: `Bearer ${token}` } })).status,
      token,
    );
    if (status !== 401) {
      throw new Error(`the logged-out token got ${status} from ${url}`);
    }
    const opened = await page.evaluate(
      (token) =>
        new Promise((resolve) => {
          const socket = new WebSocket(`ws://${window.location.host}/ws/tasks?access_token=${token}`);
          socket.onopen = () => {
            socket.close();
            resolve(true);
          };
          socket.onerror = () => resolve(false);
        }),
      token,
    );
    if (opened) {
      throw new Error(`the logged-out token opened a WebSocket on ${url}`);
    }
  }
  check("after logout, page one's token is refused (401) by both servers and opens no WebSocket");
  await one.screenshot({ path: join(shots, "5-page-one-logged-out.png") });

  // Page two logged in on its own: it carries on.
  const other = `${title} (after)`;
  await two.fill("[data-testid=new-title]", other);
  await two.click("[data-testid=add]");
  await two.locator(`[data-testid=task][data-title="${other}"]`).waitFor({ timeout: WAIT });
  check("page two, with its own token, still works");
  await two.screenshot({ path: join(shots, "6-page-two-still-in.png") });

  console.log(`browser test passed: ${checked.length} checks; screenshots in ${shots}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
