// tests/e2e/e2e.mjs: the search page and the reports in a real browser (headless system
// Chromium driven by playwright-core). Starts `causeway serve` on a loopback port over a
// small synthetic index, searches by typing, clicks results with the mouse and the
// keyboard, pages, and checks in the log (causeway logs export) that every click landed
// with the impression id and position the page showed; then checks GET /report and a
// `causeway report` file: plots present, plotted numbers equal to the JSON inputs.
// Usage: node e2e.mjs [--screenshots DIR]   (env CW_BIN, CW_CHROMIUM; run.sh wraps it)
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const bin = process.env.CW_BIN;
const chrome = process.env.CW_CHROMIUM;
const shotsAt = process.argv.indexOf('--screenshots');
const shots = shotsAt > 0 ? path.resolve(process.argv[shotsAt + 1]) : null;
let passed = 0;
let failed = 0;

function check(cond, what) {
  if (cond) {
    passed++;
    console.log(`ok - ${what}`);
  } else {
    failed++;
    console.log(`not ok - ${what}`);
  }
}

function near(a, b, tol = 1e-9) {
  return Math.abs(Number(a) - Number(b)) <= tol * Math.max(1, Math.abs(Number(b)));
}

async function until(what, fn, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function cw(...args) {
  return execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function loggedClicks(db) {
  const out = cw('logs', 'export', '--db', db);
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l))
    .filter((o) => o.kind === 'event' && o.type === 'click');
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cw-e2e-'));
  const db = path.join(tmp, 'log.db');
  let server = null;
  let context = null;
  try {
    cw('synth', '--out', path.join(tmp, 'data'), '--docs', '400', '--queries', '5', '--doc-len', '60',
       '--seed', '7');
    cw('index', 'build', '--corpus', path.join(tmp, 'data', 'corpus.jsonl'), '--out', path.join(tmp, 'index'));
    const query = fs.readFileSync(path.join(tmp, 'data', 'queries.tsv'), 'utf8').split('\n')[0].split('\t')[1];

    const portFile = path.join(tmp, 'port');
    server = spawn(bin, ['serve', '--index', path.join(tmp, 'index'), '--db', db, '--port', '0',
                         '--port-file', portFile, '--sync', 'normal'], { stdio: ['ignore', 'inherit', 'inherit'] });
    const port = await until('the port file', () => fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').trim());
    const base = `http://127.0.0.1:${port}`;
    await until('/healthz', async () => {
      try {
        return (await fetch(`${base}/healthz`)).ok;
      } catch {
        return false;
      }
    });

    context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
      executablePath: chrome,
      headless: true,
      viewport: { width: 1000, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = context.pages()[0] || (await context.newPage());
    const external = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith('file:') && !r.url().startsWith('data:')) {
        external.push(r.url());
      }
    });

    // 1. Search by typing into the labelled box.
    await page.goto(`${base}/`);
    check((await page.getAttribute('label[for=q]', 'for')) === 'q', 'the query box has a label');
    check(await page.evaluate(() => document.activeElement.id === 'q'), 'the query box has focus on load');
    const firstSearch = page.waitForResponse((r) => r.url().includes('/search?'));
    await page.keyboard.type(query);
    await page.keyboard.press('Enter');
    const res1 = await (await firstSearch).json();
    await page.waitForSelector('#results li');
    const shown1 = await page.$$eval('#results a[data-impression]', (as) =>
      as.map((a) => ({ imp: a.dataset.impression, pos: Number(a.dataset.position), doc: a.dataset.doc })));
    check(shown1.length === Math.min(10, res1.results.length) && shown1.length >= 3,
          `results rendered (${shown1.length})`);
    check(shown1.every((s) => s.imp === String(res1.impression_id)),
          'every result carries the impression id of the response');
    check(shown1.map((s) => s.pos).join() === res1.results.map((r) => r.position).join(),
          'positions on the page are the served positions');
    check((await page.$$eval('#results mark', (m) => m.length)) > 0, 'snippets show <mark> highlights');
    check((await page.$$eval('#results .snippet *:not(mark)', (m) => m.length)) === 0,
          'snippets contain no markup but <mark>');
    check(new URL(page.url()).searchParams.get('q') === query, 'the URL keeps the query');
    if (shots) {
      fs.mkdirSync(shots, { recursive: true });
      await page.keyboard.press('ArrowDown');
      await page.screenshot({ path: path.join(shots, 'search.png') });
    }

    // 2. A mouse click on the second result: the beacon must survive the navigation.
    const target1 = shown1[1];
    await Promise.all([page.waitForURL(/\/docs\//), page.click(`#results a[data-position="${target1.pos}"]`)]);
    check(page.url().endsWith(`/docs/${encodeURIComponent(target1.doc)}`), 'the click opened the document');
    let clicks = await until('the mouse click in the log', () => {
      const c = loggedClicks(db);
      return c.length >= 1 ? c : null;
    });
    check(clicks.length === 1, 'exactly one click logged');
    check(String(clicks[0].impression_id) === target1.imp, `logged impression id ${clicks[0].impression_id} is the page's ${target1.imp}`);
    check(clicks[0].position === target1.pos && clicks[0].doc_id === target1.doc,
          `logged position ${clicks[0].position} and doc ${clicks[0].doc_id} are the clicked ones`);

    // 3. Back to the results (a new impression), keyboard only: ArrowDown, j, Enter.
    const secondSearch = page.waitForResponse((r) => r.url().includes('/search?'));
    await page.goBack();
    const res2 = await (await secondSearch).json();
    await page.waitForSelector(`#results a[data-impression="${res2.impression_id}"]`);
    check(String(res2.impression_id) !== target1.imp, 'returning to the results is a new impression');
    await page.focus('#q');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('j');
    await page.keyboard.press('j');
    await page.keyboard.press('k');
    await page.keyboard.press('j');
    const focused = await page.evaluate(() => ({ pos: Number(document.activeElement.dataset.position),
                                                doc: document.activeElement.dataset.doc }));
    check(focused.pos === 3, `ArrowDown, j, j, k, j lands on position 3 (got ${focused.pos})`);
    await Promise.all([page.waitForURL(/\/docs\//), page.keyboard.press('Enter')]);
    clicks = await until('the keyboard click in the log', () => {
      const c = loggedClicks(db);
      return c.length >= 2 ? c : null;
    });
    check(String(clicks[1].impression_id) === String(res2.impression_id) && clicks[1].position === 3 &&
          clicks[1].doc_id === focused.doc, 'Enter on a focused result logs its click with impression and position');

    // 4. Paging: page 2 shows positions 11.. and a click there logs position >= 11.
    await page.goto(`${base}/?q=${encodeURIComponent(query)}`);
    await page.waitForSelector('#results li');
    if (!(await page.isDisabled('#next'))) {
      const thirdSearch = page.waitForResponse((r) => r.url().includes('offset=10'));
      await page.click('#next');
      const res3 = await (await thirdSearch).json();
      await page.waitForSelector(`#results a[data-impression="${res3.impression_id}"]`);
      const p2 = await page.$$eval('#results a[data-impression]', (as) => as.map((a) => Number(a.dataset.position)));
      check(p2[0] === 11, `page 2 starts at position 11 (got ${p2[0]})`);
      await Promise.all([page.waitForURL(/\/docs\//), page.click('#results a[data-position="12"]')]);
      clicks = await until('the page-2 click in the log', () => {
        const c = loggedClicks(db);
        return c.length >= 3 ? c : null;
      });
      check(String(clicks[2].impression_id) === String(res3.impression_id) && clicks[2].position === 12,
            'a click on page 2 logs position 12 with its impression');
    } else {
      check(false, 'the demo query has a second page');
    }

    // 5. The live report shows the clicks.
    await page.goto(`${base}/report`);
    const rows = await page.$$eval('#recent-clicks tbody tr', (trs) =>
      trs.map((t) => ({ imp: t.dataset.impression, pos: Number(t.dataset.position) })));
    check(rows.some((r) => r.imp === target1.imp && r.pos === target1.pos), 'GET /report lists the mouse click');
    check(rows.length === clicks.length, `GET /report lists all ${clicks.length} clicks`);
    check((await page.textContent('#n-clicks')).trim() === String(clicks.length), 'the report counts the clicks');
    const ctrPts = await page.$$eval('#plot-ctr circle.pt', (c) => c.length);
    check(ctrPts >= 10, `the CTR plot has a point per position (${ctrPts})`);
    if (shots) {
      await page.screenshot({ path: path.join(shots, 'live-report.png'), fullPage: true });
    }

    // 6. A rendered report file: plots present and their numbers equal the JSON.
    const prop = {
      method: 'randomization',
      n_ranks: 5,
      ranks: [1, 0.62, 0.41, 0.33, 0.24].map((r, i) => ({
        rank: i + 1, ratio: r, ci_lo: i ? r - 0.05 : 1, ci_hi: i ? r + 0.06 : 1, clicks: 100, impressions: 1000,
      })),
    };
    const ope = {
      log: { impressions: 20000 },
      metric: 'clicks@10',
      policies: [
        { policy: 'logged', estimates: [{ estimator: 'snips', valid: true, value: 0.412, ci95: [0.4, 0.424], n_eff: 19800 }] },
        { policy: 'model-b.json', estimates: [
          { estimator: 'ips', valid: true, value: 0.47, ci95: [0.42, 0.52], n_eff: 1530.5 },
          { estimator: 'dr', valid: true, value: 0.455, ci95: [0.43, 0.48], n_eff: 1530.5 }] },
      ],
    };
    const ultr = {
      metric: 'nDCG@10',
      curves: [
        { method: 'naive', points: [{ sessions: 1e4, value: 0.61 }, { sessions: 1e5, value: 0.63 }, { sessions: 1e6, value: 0.64 }] },
        { method: 'ips', points: [{ sessions: 1e4, value: 0.6 }, { sessions: 1e5, value: 0.66 }, { sessions: 1e6, value: 0.7 }] },
      ],
    };
    for (const [n, v] of Object.entries({ prop, ope, ultr })) {
      fs.writeFileSync(path.join(tmp, `${n}.json`), JSON.stringify(v));
    }
    const out = path.join(tmp, 'report.html');
    cw('report', '--db', db, '--propensity', path.join(tmp, 'prop.json'), '--ope', path.join(tmp, 'ope.json'),
       '--ultr', path.join(tmp, 'ultr.json'), '--true-eta', '1', '--title', 'causeway report (demo)', '--out', out);
    await page.goto(`file://${out}`);
    for (const id of ['plot-propensity', 'plot-ctr', 'plot-ope', 'plot-ultr']) {
      const box = await page.$eval(`#${id} svg`, (s) => s.getBoundingClientRect().width);
      check(box > 200, `${id} is drawn (${Math.round(box)} px wide)`);
    }
    const pp = await page.$$eval('#plot-propensity circle.pt', (c) =>
      c.map((e) => ({ x: Number(e.dataset.x), v: Number(e.dataset.value), lo: e.dataset.lo, hi: e.dataset.hi })));
    check(pp.length === prop.ranks.length &&
          pp.every((p, i) => p.x === i + 1 && near(p.v, prop.ranks[i].ratio) && near(p.lo, prop.ranks[i].ci_lo) &&
                   near(p.hi, prop.ranks[i].ci_hi)), 'propensity points and intervals equal the JSON');
    check((await page.$$eval('#plot-propensity path.band', (b) => b.length)) === 1, 'the propensity plot has a CI band');
    const truth = await page.$$eval('#plot-propensity circle.ref', (c) => c.map((e) => Number(e.dataset.value)));
    check(truth.length === 5 && truth.every((v, i) => near(v, 1 / (i + 1))), 'the true curve k^-1 is drawn');
    const est = await page.$$eval('#plot-ope circle.est', (c) =>
      c.map((e) => ({ p: e.dataset.policy, e: e.dataset.estimator, v: e.dataset.value, lo: e.dataset.lo,
                      hi: e.dataset.hi, n: e.dataset.neff })));
    const want = ope.policies.flatMap((p) => p.estimates.map((e) => ({ p: p.policy, ...e })));
    check(est.length === want.length &&
          est.every((e, i) => e.p === want[i].p && e.e === want[i].estimator && near(e.v, want[i].value) &&
                    near(e.lo, want[i].ci95[0]) && near(e.hi, want[i].ci95[1]) && near(e.n, want[i].n_eff)),
          'OPE estimates, intervals and n_eff equal the JSON');
    const up = await page.$$eval('#plot-ultr circle.pt', (c) =>
      c.map((e) => ({ s: e.dataset.series, x: Number(e.dataset.x), v: Number(e.dataset.value) })));
    const wantU = ultr.curves.flatMap((c) => c.points.map((p) => ({ s: c.method, x: p.sessions, v: p.value })));
    check(up.length === wantU.length && up.every((u, i) => u.s === wantU[i].s && u.x === wantU[i].x && near(u.v, wantU[i].v)),
          'ULTR curve points equal the JSON');
    check((await page.$$eval('script', (s) => s.length)) === 0, 'the report has no scripts');
    check(external.length === 0, `no request left the server or the file (${external.join(' ')})`);
  } finally {
    if (context) {
      await context.close();
    }
    if (server) {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main()
  .catch((e) => {
    failed++;
    console.log(`not ok - ${e.stack || e}`);
  })
  .finally(() => {
    console.log(`e2e: ${passed} passed, ${failed} failed`);
    process.exitCode = failed ? 1 : 0;
  });
