// The operator console end to end in a real browser: headless Chromium driven by playwright-core.
// browser_test.go starts the stack (real PostgreSQL, Redis, Lakala sandbox, API, processor,
// console), seeds the states a person must settle, and runs this file with their ids in the
// environment; it checks the database and the result streams afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through browser_test.go)`);
  return v;
};
const base = env('CONSOLE_URL');
const shots = process.env.SCREENSHOT_DIR || '';
const downloads = env('DOWNLOAD_DIR');
const today = env('TODAY_FROM'); // today's Beijing midnight, in the console's UTC
const paidToday = Number(env('PAID_TODAY')); // orders paid today before the test's own actions
const historyRefundsToday = Number(env('HISTORY_REFUNDS_TODAY'));
const historyReviewsToday = Number(env('HISTORY_REVIEWS_TODAY'));
const laptop = { width: 1280, height: 860 };
const phone = { width: 390, height: 844 };

async function shot(page, name) {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

async function login(browser, token, viewport = laptop) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  await page.goto(`${base}/console`);
  assert.match(page.url(), /\/console\/login/, 'an anonymous visit is sent to the login page');
  await page.fill('#token', token);
  await Promise.all([page.waitForNavigation(), page.click('#login')]);
  return { context, page };
}

// fen reads an amount as the console shows it ("¥1,234.56", "−¥20.00") in fen.
function fen(text) {
  const m = text.replace(/[\s,]/g, '').match(/^([−-]?)¥(\d+)\.(\d\d)/);
  assert.ok(m, `not an amount: ${JSON.stringify(text)}`);
  return (m[1] ? -1 : 1) * (Number(m[2]) * 100 + Number(m[3]));
}

// sumList pages through a list from its first page and sums one column (by index), returning
// the sum, the row count and the pages seen.
async function sumList(page, url, column) {
  await page.goto(url);
  let sum = 0;
  let rows = 0;
  let pages = 0;
  for (;;) {
    pages++;
    for (const cell of await page.$$(`table.stack tr td:nth-child(${column})`)) {
      sum += fen(await cell.textContent());
      rows++;
    }
    const older = await page.$('a.older');
    if (!older) return { sum, rows, pages };
    await Promise.all([page.waitForNavigation(), older.click()]);
  }
}

// forgePost submits, from a viewer's page, a form the page does not offer, with the viewer's own
// CSRF token (what a viewer who knows the URL could do by hand).
async function forgePost(page, action, fields) {
  return Promise.all([
    page.waitForNavigation(),
    page.evaluate(([action, fields]) => {
      const csrf = document.querySelector('input[name=csrf]').value;
      const f = document.createElement('form');
      f.method = 'post';
      f.action = action;
      for (const [k, val] of [['csrf', csrf], ...Object.entries(fields)]) {
        const i = document.createElement('input');
        i.type = 'hidden'; i.name = k; i.value = val; f.append(i);
      }
      document.body.append(f);
      f.submit();
    }, [action, fields]),
  ]);
}

test('operator console', async (t) => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  t.after(() => browser.close());

  await t.test('a wrong token is refused at login', async () => {
    const context = await browser.newContext({ viewport: laptop });
    const page = await context.newPage();
    await page.goto(`${base}/console/login`);
    await shot(page, 'login');
    await page.fill('#token', 'lpo_000000000000_wrong');
    const [resp] = await Promise.all([page.waitForNavigation(), page.click('#login')]);
    assert.equal(resp.status(), 401);
    assert.match(await page.textContent('#error'), /unknown or disabled/);
    await context.close();
  });

  const { context, page } = await login(browser, env('ADMIN_TOKEN'));
  t.after(() => context.close());

  await t.test('log in: the overview shows the numbers and draws its charts', async () => {
    assert.equal(new URL(page.url()).pathname, '/console');
    assert.match(await page.textContent('#whoami'), /admin · admin/);
    assert.equal((await page.textContent('#open-reviews')).trim(), '1');
    assert.equal((await page.textContent('#dead-letters')).trim(), '1');
    assert.match(await page.textContent('.stat:has(#success-rate)'), /closed on purpose/);
    // A refund has waited at Lakala for 15 minutes: listed as stuck, linked to its order.
    assert.match(await page.textContent('#stuck-refunds'), /1 refund\(s\) at Lakala for more than 10 minutes/);
    assert.ok(await page.$(`#stuck-refunds a[href="/console/orders/${env('STUCK_ORDER_ID')}"]`));
    await shot(page, 'overview');
    // The chart of orders by outcome has bars for this hour's orders, drawn as SVG.
    const bars = await page.$$('#chart-orders svg rect');
    assert.ok(bars.length > 0, 'no bar in the orders chart');
    const box = await page.$eval('#chart-orders svg', (svg) => svg.getBoundingClientRect().width);
    assert.ok(box > 200, `the chart is ${box}px wide`);
    assert.ok((await page.$$('#chart-paid svg rect')).length > 0, 'no bar in the amount paid chart');
    // The last 30 days, by Beijing day.
    await Promise.all([page.waitForNavigation(), page.click('a:has-text("Last 30 days")')]);
    assert.equal((await page.$$('#chart-paid svg g')).length, 30, 'a bar for each of 30 days');
    assert.ok((await page.$$('#chart-paid svg rect')).length > 1);
    await shot(page, 'overview-30-days');
    await page.goto(`${base}/console`);
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'loomipay_console');
    assert.ok(session && session.httpOnly && session.sameSite === 'Strict', 'session cookie is HttpOnly and SameSite=Strict');
  });

  await t.test('find an order and read its page', async () => {
    await Promise.all([page.waitForNavigation(), page.click('nav >> text=Orders')]);
    await page.fill('#q', env('ORDER_MERCHANT_ID'));
    await Promise.all([page.waitForNavigation(), page.click('#search')]);
    const rows = await page.$$('#orders tr');
    assert.equal(rows.length, 2, 'header and one order');
    assert.match(await page.textContent('#orders'), /¥123\.45/);
    await Promise.all([page.waitForNavigation(), page.click(`#orders a:has-text("${env('ORDER_MERCHANT_ID')}")`)]);
    const timeline = await page.textContent('#timeline');
    assert.match(timeline, /order created/);
    assert.match(timeline, /payment pending → processing \(message \d+ to the main app, published/);
    assert.match(timeline, /payment processing → succeeded \(message \d+ to the main app, published/);
    assert.match(timeline, /notification verified, applied/);
    assert.match(timeline, /Lakala create/);
    assert.equal((await page.textContent('#order-status')).trim(), 'succeeded');
    assert.equal((await page.textContent('#order-words')).trim(), 'Paid');
    assert.match(await page.textContent('#cashier-url'), /^http/);
    assert.match(await page.textContent('main'), /Log no\. \(statement\)\s*\d+/);
  });

  await t.test('paging reaches the orders beyond the first 50, with the filter kept', async () => {
    await page.goto(`${base}/console/orders?status=succeeded`);
    const first = await page.textContent('#orders');
    assert.doesNotMatch(first, /PAGE-00/, 'the oldest order is not on the first page');
    assert.equal((await page.$$('#orders tr')).length, 51, 'a page is 50 orders');
    await shot(page, 'orders');
    await Promise.all([page.waitForNavigation(), page.click('a.older')]);
    assert.match(page.url(), /status=succeeded/);
    assert.match(page.url(), /after=/);
    const second = await page.textContent('#orders');
    assert.match(second, /PAGE-00/);
    assert.doesNotMatch(second, /CONSOLE-OPEN/, 'the filter holds on the second page');
    await Promise.all([page.waitForNavigation(), page.click('a.newer')]);
    assert.equal(await page.textContent('#orders'), first, 'back to the first page');
  });

  await t.test('a CSV export downloads what the filters select', async () => {
    await page.goto(`${base}/console/orders?status=succeeded&from=${today}`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('a.export')]);
    assert.match(download.suggestedFilename(), /^loomipay-orders-\d{8}-\d{6}\.csv$/);
    const path = `${downloads}/orders.csv`;
    await download.saveAs(path);
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    assert.match(lines[0], /^created_at,payment_order_id,app_id,merchant_order_id,status,/);
    assert.equal(lines.length, 1 + paidToday, 'the header and every order paid today');
    assert.ok(lines.slice(1).every((l) => l.split(',')[4] === 'succeeded'));
  });

  await t.test('resolve a review case; the main app gets its result message', async () => {
    await page.goto(`${base}/console/reviews`);
    await shot(page, 'reviews');
    const form = `#resolve-${env('CASE_ID')}`;
    await page.selectOption(`${form} select[name=outcome]`, 'refund_succeeded');
    await page.fill(`${form} textarea[name=note]`, 'Lakala merchant portal shows the refund succeeded');
    await Promise.all([page.waitForNavigation(), page.click(`${form} button`)]);
    const flash = await page.textContent('#flash');
    assert.match(flash, /refund processing → succeeded; result message [0-9a-f-]{36} sent to the main app/);
    assert.equal(await page.$(form), null, 'the case left the open queue');
    await page.goto(`${base}/console/orders/${env('ORDER_MERCHANT_ID')}`);
    const results = await page.textContent('#results');
    assert.match(results, /refund_results\s*processing → succeeded/);
    assert.doesNotMatch(results, /not yet/);
  });

  await t.test('an operator refunds part of an order from its page', async () => {
    const op = await login(browser, env('OPERATOR_TOKEN'));
    const p = op.page;
    await p.goto(`${base}/console/orders/${env('ORDER_ID')}`);
    assert.equal(fen(await p.textContent('#refundable')), 10000, '123.45 paid, 23.45 refunded');
    await p.fill('#refund-amount', '20.00');
    await p.fill('#refund-reason', 'customer called: one seat unused');
    await Promise.all([p.waitForNavigation(), p.click('#refund-part')]);
    assert.match(await p.textContent('#flash'), /Refund of ¥20\.00 asked for \(merchant_refund_id ops-[0-9a-f]{32}\)/);
    // The processor sends it to Lakala; the page shows it refunded, with Lakala's numbers.
    let row = '';
    for (let i = 0; i < 60 && !/Refunded/.test(row); i++) {
      await p.waitForTimeout(250);
      await p.reload();
      row = await p.textContent('#order-refunds tr:has-text("ops-")');
    }
    assert.match(row, /ops-[0-9a-f]{32}\s*¥20\.00\s*succeeded Refunded\s*customer called: one seat unused/);
    assert.match(row, /trade no\. \d+\s*log no\. \d+/);
    assert.equal(fen(await p.textContent('#refunded')), 4345);
    assert.equal(fen(await p.textContent('#refundable')), 8000);
    await shot(p, 'order');
    await op.context.close();
  });

  await t.test('an operator closes an order still at the cashier', async () => {
    const op = await login(browser, env('OPERATOR_TOKEN'));
    const p = op.page;
    await p.goto(`${base}/console/orders/${env('OPEN_MERCHANT_ID')}`);
    assert.equal((await p.textContent('#order-words')).trim(), "Waiting for the payer at Lakala's cashier");
    await shot(p, 'order-open');
    await p.fill('#close-note', 'payer asked to cancel on the phone');
    await Promise.all([p.waitForNavigation(), p.click('#close')]);
    assert.match(await p.textContent('#flash'), /Order closed: Not paid: closed on purpose/);
    assert.equal((await p.textContent('#order-status')).trim(), 'failed');
    assert.equal(await p.$('form.close'), null, 'no close form on a failed order');
    await op.context.close();
  });

  await t.test("the overview's money equals the day's orders and refunds", async () => {
    await page.goto(`${base}/console`);
    const paidYuan = fen(await page.textContent('#paid-today-total'));
    const refundedYuan = fen(await page.textContent('#refunded-today-total'));
    const orders = await sumList(page, `${base}/console/orders?status=succeeded&from=${today}`, 5);
    const refunds = await sumList(page, `${base}/console/refunds?status=succeeded&from=${today}`, 6);
    assert.equal(orders.rows, paidToday);
    assert.equal(paidYuan, orders.sum, `paid today ${paidYuan}, the succeeded orders sum to ${orders.sum}`);
    assert.equal(refundedYuan, refunds.sum, `refunded today ${refundedYuan}, the succeeded refunds sum to ${refunds.sum}`);
    assert.equal(refunds.rows, historyRefundsToday + 2, 'with the resolved refund and the operator\'s');
    await page.goto(`${base}/console/refunds`);
    await shot(page, 'refunds');
  });

  await t.test('the daily statement shows the day, and downloads', async () => {
    await Promise.all([page.waitForNavigation(), page.click('nav >> text=Statement')]);
    const paid = fen(await page.textContent('#total-paid'));
    const refunded = fen(await page.textContent('#total-refunded'));
    await page.goto(`${base}/console`);
    assert.equal(paid, fen(await page.textContent('#paid-today-total')));
    assert.equal(refunded, fen(await page.textContent('#refunded-today-total')));
    await Promise.all([page.waitForNavigation(), page.click('nav >> text=Statement')]);
    assert.equal((await page.$$('#statement-lines tr')).length, 1 + paidToday + historyRefundsToday + 2 + historyReviewsToday,
      'a line per payment and refund of the day, and per payment in review');
    await shot(page, 'statement');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#statement-csv')]);
    assert.match(download.suggestedFilename(), /^loomipay-statement-\d{4}-\d{2}-\d{2}\.csv$/);
    await download.saveAs(`${downloads}/statement.csv`);
  });

  await t.test('redrive a dead letter', async () => {
    await page.goto(`${base}/console/dlq`);
    await shot(page, 'dlq');
    const card = `#task-${env('DEAD_TASK_ID')}`;
    await page.fill(`${card} form.redrive textarea`, 'Lakala is back up');
    await Promise.all([page.waitForNavigation(), page.click(`${card} form.redrive button`)]);
    assert.match(await page.textContent('#flash'), new RegExp(`Task ${env('DEAD_TASK_ID')} queued again`));
    assert.ok(await page.$('#no-dead'), 'no dead task left');
  });

  await t.test('revoke a key', async () => {
    await page.goto(`${base}/console/apps`);
    await shot(page, 'apps');
    const row = `#key-${env('KEY_ID')}`;
    await page.fill(`${row} input[name=note]`, 'leaked in a CI log');
    await Promise.all([page.waitForNavigation(), page.click(`${row} button`)]);
    assert.match(await page.textContent('#flash'), /revoked/);
    assert.match(await page.textContent(row), /revoked/);
  });

  await t.test('a form without the CSRF token is refused', async () => {
    await page.goto(`${base}/console/apps`);
    const form = 'form.revoke';
    await page.$eval(`${form} input[name=csrf]`, (el) => el.remove());
    await page.fill(`${form} input[name=note]`, 'no csrf');
    const [resp] = await Promise.all([page.waitForNavigation(), page.click(`${form} button`)]);
    assert.equal(resp.status(), 403);
    assert.match(await page.textContent('#error'), /no valid CSRF token/);
  });

  await t.test('the audit log shows every action', async () => {
    await page.goto(`${base}/console/audit`);
    const audit = await page.textContent('#audit');
    for (const a of ['review.resolve', 'dlq.redrive', 'key.revoke', 'order.refund', 'order.close', 'orders.export']) assert.match(audit, new RegExp(a));
    await shot(page, 'audit');
  });

  await t.test('Beijing time on request, and a phone-sized screen', async () => {
    const phoneCtx = await browser.newContext({ viewport: phone, storageState: await context.storageState() });
    const p = await phoneCtx.newPage();
    await p.goto(`${base}/console`);
    await Promise.all([p.waitForNavigation(), p.click('button[value=Beijing]')]);
    assert.equal(new URL(p.url()).pathname, '/console', 'the switch comes back to the page');
    assert.match(await p.textContent('main'), / CST/);
    // The charts fit the phone's width.
    const width = await p.$eval('#chart-orders svg', (svg) => svg.getBoundingClientRect().width);
    assert.ok(width > 250 && width <= phone.width, `the chart is ${width}px wide on a ${phone.width}px screen`);
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the overview is ${overflow}px wider than the phone`);
    await shot(p, 'overview-phone');
    await p.goto(`${base}/console/orders/${env('ORDER_MERCHANT_ID')}`);
    await shot(p, 'order-phone');
    await p.goto(`${base}/console/orders`);
    await shot(p, 'orders-phone');
    await p.goto(`${base}/console/statement`);
    await shot(p, 'statement-phone');
    await phoneCtx.close();
  });

  await t.test('a viewer cannot change anything', async () => {
    const v = await login(browser, env('VIEWER_TOKEN'));
    await v.page.goto(`${base}/console/dlq`);
    assert.equal(await v.page.$('form.redrive, form.discard'), null, 'no action forms for a viewer');
    await v.page.goto(`${base}/console/apps`);
    assert.equal(await v.page.$('form.revoke'), null);
    // Forge the admin's form in the viewer's page, with the viewer's own CSRF token: the server refuses.
    let [resp] = await forgePost(v.page, `/console/apps/keys/${env('OTHER_KEY_ID')}/revoke`, { note: 'viewer tries' });
    assert.equal(resp.status(), 403);
    assert.match(await v.page.textContent('#error'), /needs the admin role/);
    // The order page has neither the refund nor the close form, and a refund posted anyway is refused.
    await v.page.goto(`${base}/console/orders/${env('ORDER_ID')}`);
    assert.equal(await v.page.$('form.refund, form.close'), null, 'no refund or close form for a viewer');
    assert.match(await v.page.textContent('#order-words'), /Paid, and refunded in part/);
    [resp] = await forgePost(v.page, `/console/orders/${env('ORDER_ID')}/refund`,
      { token: 'viewer-token-0001', amount: '1.00', reason: 'viewer tries' });
    assert.equal(resp.status(), 403);
    assert.match(await v.page.textContent('#error'), /needs the operator role/);
    await v.context.close();
  });

  await t.test('log out ends the session', async () => {
    await page.goto(`${base}/console`);
    await Promise.all([page.waitForNavigation(), page.click('#logout')]);
    await page.goto(`${base}/console/orders`);
    assert.match(page.url(), /\/console\/login/);
  });
});
