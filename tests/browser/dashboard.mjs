// Drives a real headless chromium against the dashboard (run by tests/browser.rs).
// Usage: node dashboard.mjs <dashboard url> <agent name>...
// Prints "READY" once the page shows every agent, then waits for a conviction
// to appear in the detection log and prints "CONVICTED <agent>". Exits 1 with
// a one-line reason (and the page's text) on any failure.
import { chromium } from "playwright-core";

const [url, ...agents] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
const page = await browser.newPage();
const errors = [];
page.on("pageerror", (error) => errors.push(String(error)));

async function fail(reason) {
  const text = await page.locator("body").innerText().catch(() => "");
  console.log(`FAILED ${reason}\n--- page ---\n${text}\n--- errors ---\n${errors.join("\n")}`);
  await browser.close();
  process.exit(1);
}

try {
  await page.goto(url, { waitUntil: "load" });
  for (const agent of agents) {
    await page.locator(`#committee tr[data-agent="${agent}"]`).waitFor({ timeout: 20000 });
  }
  await page.locator("#stream.up").waitFor({ timeout: 20000 });
  const rows = await page.locator("#committee tbody tr").count();
  if (rows !== agents.length) await fail(`the committee shows ${rows} agents, not ${agents.length}`);
  console.log("READY");
  const conviction = page.locator("#detections tbody tr").first();
  await conviction.waitFor({ timeout: 90000 });
  const agent = await conviction.getAttribute("data-agent");
  const evidence = await conviction.locator("pre").innerText();
  if (!evidence.trim()) await fail("the conviction shows no evidence");
  console.log(`CONVICTED ${agent}`);
  if (errors.length) await fail(`script errors on the page: ${errors.join("; ")}`);
} catch (error) {
  await fail(String(error).split("\n")[0]);
}
await browser.close();
