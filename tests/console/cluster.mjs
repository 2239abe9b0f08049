// cluster.mjs - the console's Sources page in cluster mode, in Debian's
// chromium through playwright-core. Run by
// tests/integration/test_cluster_status.c:
//
//   BASE=http://127.0.0.1:PORT ADMIN=<admin token> node tests/console/cluster.mjs
//
// Prints one JSON object: the cluster part the page shows (jobs with their
// lease cell, slots with their bytes behind, the state line) beside what
// GET /v1/admin/status answered, so the C test asserts on both.
import { chromium } from "playwright-core";

const { BASE, ADMIN } = process.env;
const out = {};

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(BASE + "/console");
  await page.fill("#token", ADMIN);
  await page.click("#connect");
  await page.waitForFunction(() => document.body.dataset.loaded === "sources", null,
                             { timeout: 15000 });
  const r = await fetch(BASE + "/v1/admin/status", {
    headers: { Authorization: "Bearer " + ADMIN } });
  const c = (await r.json()).cluster;
  out.api_jobs = c.jobs.map((j) => j.source + "/" + j.kind);
  out.api_leased = c.jobs.filter((j) => j.leased).map((j) => j.lease_owner);
  out.api_slots = c.replicas.map((s) => s.slot);
  out.cluster_visible = await page.isVisible("#cluster");
  out.page_state = await page.textContent("#cluster-state");
  const cells = (table, k) => page.$$eval(`#${table} tbody tr`, (trs, key) =>
    trs.map((tr) => tr.querySelector(`[data-k="${key}"]`).textContent), k);
  out.page_jobs = await page.$$eval("#cluster-jobs tbody tr",
                                    (trs) => trs.map((tr) => tr.dataset.job));
  out.page_leases = await cells("cluster-jobs", "lease");
  out.page_slots = await page.$$eval("#cluster-slots tbody tr",
                                     (trs) => trs.map((tr) => tr.dataset.slot));
  out.page_behind = await cells("cluster-slots", "behind");
  out.page_errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
