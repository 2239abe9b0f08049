// console.mjs - the admin console in a real browser: Debian's chromium driven
// by playwright-core (no browser download). Run by tests/integration/test_console.c:
//
//   BASE=http://127.0.0.1:PORT ADMIN=<admin token> WRONG=<a user's JWT> \
//   [SHOTS=dir] node tests/console/console.mjs
//
// Prints one JSON object: what each page showed beside what the admin API
// answered for the same question, so the C test asserts on both. With
// SHOTS, a screenshot of each page goes there (docs/console/ holds them).
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const { BASE, ADMIN, WRONG, SHOTS, EXPLAIN_USER, EXPLAIN_DOC } = process.env;
const out = {};
if (SHOTS) mkdirSync(SHOTS, { recursive: true });

async function api(path, token) {
  const r = await fetch(BASE + path, { headers: { Authorization: "Bearer " + token } });
  return { status: r.status, body: await r.json() };
}
async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}
async function tab(page, name) {
  await page.click(`nav button[data-tab="${name}"]`);
  try {
    await page.waitForFunction((n) => document.body.dataset.loaded === n, name,
                               { timeout: 15000 });
  } catch (e) {
    throw new Error(`the ${name} page did not load: ${await page.textContent("#state")}`);
  }
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  // A user's token is not the admin token: refused, nothing shown.
  await page.goto(BASE + "/console");
  out.title = await page.title();
  await page.fill("#token", WRONG);
  await page.click("#connect");
  await page.waitForSelector("#refused", { state: "visible", timeout: 15000 });
  out.refused = await page.textContent("#refused");
  out.refused_rows = await page.locator("#sources tbody tr").count();
  await shot(page, "refused");

  // The admin token: every page, each beside the API's answer.
  await page.fill("#token", ADMIN);
  await page.click("#connect");
  await page.waitForFunction(() => document.body.dataset.loaded === "sources", null,
                             { timeout: 15000 });
  const status = await api("/v1/admin/status", ADMIN);
  out.api_sources = status.body.sources.map((s) => ({ source: s.source, documents: s.documents,
                                                      chunks: s.chunks }));
  out.page_sources = await page.$$eval("#sources tbody tr", (trs) => trs.map((tr) => ({
    source: tr.dataset.source,
    documents: Number(tr.querySelector('[data-k="documents"]').textContent),
    chunks: Number(tr.querySelector('[data-k="chunks"]').textContent),
  })));
  out.page_runs = await page.locator("#runs tbody tr").count();
  out.api_runs = (await api("/v1/admin/runs?limit=10", ADMIN)).body.length;
  await shot(page, "sources");

  await tab(page, "jobs");
  out.page_jobs = await page.locator("#jobs tbody tr").count();
  out.api_jobs = (await api("/v1/admin/jobs?limit=50", ADMIN)).body.jobs.length;
  await shot(page, "jobs");

  await tab(page, "audit");
  out.page_audit_all = await page.locator("#audit tbody tr").count();
  await page.fill('#audit-form input[name="user"]', EXPLAIN_USER);
  await page.evaluate(() => { document.body.dataset.loaded = ""; });
  await page.click('#audit-form button[type="submit"]');
  await page.waitForFunction(() => document.body.dataset.loaded === "audit", null,
                             { timeout: 15000 });
  out.page_audit_users = await page.$$eval("#audit tbody tr",
                                            (trs) => trs.map((tr) => tr.cells[2].textContent));
  const since = Date.now() - 24 * 3600000;
  out.api_audit_user = (await api(`/v1/admin/audit?user=${encodeURIComponent(EXPLAIN_USER)}` +
                                  `&since=${since}`, ADMIN)).body.length;
  await shot(page, "audit");

  await tab(page, "usage");
  const usage = (await api("/v1/admin/usage", ADMIN)).body;
  out.api_usage_users = Object.fromEntries(Object.entries(usage.users)
                                           .map(([k, v]) => [k, v.tokens]));
  out.page_usage_users = Object.fromEntries(await page.$$eval("#usage-users tbody tr",
    (trs) => trs.map((tr) => [tr.dataset.name, Number(tr.cells[1].textContent)])));
  out.plot_users = Object.fromEntries(await page.$$eval("#plot-users path[data-name]",
    (ps) => ps.map((p) => [p.dataset.name, Number(p.dataset.total)])));
  out.plot_agents = await page.locator("#plot-agents path[data-name]").count();
  out.api_agents = Object.keys(usage.agents).length;
  const budgets = (await api("/v1/admin/budgets", ADMIN)).body.budgets;
  out.api_budget_remaining = budgets.find((x) => x.name === "hr-bot").remaining;
  out.page_budget_remaining = Number(await page.textContent(
    '#budgets tr[data-name="hr-bot"] [data-k="remaining"]'));
  await shot(page, "usage");

  await tab(page, "explain");
  await page.fill('#explain-form input[name="user"]', EXPLAIN_USER);
  await page.fill('#explain-form input[name="doc"]', EXPLAIN_DOC);
  await page.click('#explain-form button[type="submit"]');
  await page.waitForFunction(() => document.querySelector("#explain-verdict").textContent !== "",
                             null, { timeout: 15000 });
  out.page_explain = await page.textContent("#explain-verdict");
  out.api_explain = (await api(`/v1/admin/explain?user=${encodeURIComponent(EXPLAIN_USER)}` +
                               `&doc=${encodeURIComponent(EXPLAIN_DOC)}`, ADMIN)).body.readable;
  await shot(page, "explain");
  out.page_errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
