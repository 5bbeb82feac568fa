// Drives Debian's firefox-esr for the browser tests over WebDriver BiDi (puppeteer-core).
//
// pytest talks to this process with one JSON object per line (tests/browser/firefox.py):
//   request  {"id": 1, "op": "open", "url": "http://127.0.0.1:.../?room=r"}
//   reply    {"id": 1, "ok": true, "value": "p1"}   or   {"id": 1, "ok": false, "error": "..."}
//   event    {"event": "console", "page": "p1", "text": "log: ..."}   (no id; any time)
// Ops: open {url} -> page id; evaluate {page, expression, arg}; waitForFunction {page,
// expression, arg, timeoutMs}; fill {page, selector, value}; press {page, selector, key};
// screenshot {page, path}; close {page}. `expression` follows Playwright's rule: when it
// evaluates to a function, that function is called with `arg`; otherwise it is the value.
// Firefox starts once, on the first request; each page gets its own browser context
// (own permissions and storage). Stdin closing ends Firefox and this process.
//
// The browser is the installed binary (FIREFOX, default /usr/bin/firefox-esr): puppeteer-core
// never downloads one.

import { createInterface } from "node:readline";
import puppeteer from "puppeteer-core";

const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";

// Fake camera and microphone, granted without a prompt. Everything else is Firefox's default:
// autoplay (allowed for a page that captures camera or microphone), and ICE, with host
// addresses hidden behind mDNS names and no loopback candidates.
const PREFS = {
  "media.navigator.streams.fake": true,
  "media.navigator.permission.disabled": true,
};

let launching = null; // the one Firefox, as a promise: concurrent opens share its launch
const pages = new Map();
let nextPage = 1;

function send(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function getBrowser() {
  launching ??= puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: PREFS,
    protocolTimeout: 60_000,
    timeout: 90_000,
  });
  return launching;
}

// Playwright's evaluate rule, as one expression: a function is called with arg. It goes to
// the page as a WebDriver script, not through the page's own eval(), which the hub's
// Content-Security-Policy (no 'unsafe-eval') rightly blocks.
function expressionOf(source, arg) {
  return `(() => { const v = (${source}); return typeof v === "function" ? v(${JSON.stringify(
    arg,
  )}) : v; })()`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function pageOf(request) {
  const entry = pages.get(request.page);
  if (!entry) throw new Error(`no open page ${JSON.stringify(request.page)}`);
  return entry.page;
}

const ops = {
  async open({ url }) {
    const context = await (await getBrowser()).createBrowserContext();
    const page = await context.newPage();
    const id = `p${nextPage++}`;
    pages.set(id, { context, page });
    page.on("console", (m) => send({ event: "console", page: id, text: `${m.type()}: ${m.text()}` }));
    page.on("pageerror", (e) => send({ event: "console", page: id, text: `pageerror: ${e}` }));
    await page.setViewport({ width: 1280, height: 800 });
    await page.goto(url);
    return id;
  },
  async evaluate(request) {
    return await pageOf(request).evaluate(expressionOf(request.expression, request.arg ?? null));
  },
  async waitForFunction(request) {
    // polled from here: puppeteer's own waitForFunction builds its predicate with eval()
    const page = pageOf(request);
    const expression = expressionOf(request.expression, request.arg ?? null);
    const deadline = Date.now() + request.timeoutMs;
    for (;;) {
      const value = await page.evaluate(expression);
      if (value) return value;
      if (Date.now() >= deadline) {
        throw new Error(`Waiting failed: ${request.timeoutMs}ms exceeded`);
      }
      await sleep(100);
    }
  },
  async fill(request) {
    await pageOf(request).locator(request.selector).fill(request.value);
    return null;
  },
  async press(request) {
    const page = pageOf(request);
    await page.focus(request.selector);
    await page.keyboard.press(request.key);
    return null;
  },
  async screenshot(request) {
    await pageOf(request).screenshot({ path: request.path });
    return null;
  },
  async close(request) {
    const entry = pages.get(request.page);
    pages.delete(request.page);
    if (entry) await entry.context.close();
    return null;
  },
};

async function handle(line) {
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    send({ event: "error", text: `not a JSON line: ${line.slice(0, 200)}` });
    return;
  }
  const op = ops[request.op];
  try {
    if (!op) throw new Error(`unknown op ${JSON.stringify(request.op)}; known: ${Object.keys(ops)}`);
    send({ id: request.id, ok: true, value: (await op(request)) ?? null });
  } catch (error) {
    send({ id: request.id, ok: false, error: String(error && error.message ? error.message : error) });
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (line.trim()) handle(line);
});
lines.on("close", async () => {
  if (launching !== null) await launching.then((b) => b.close()).catch(() => {});
  process.exit(0);
});
