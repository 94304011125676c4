// The operator console end to end in a real browser: headless Chromium driven by playwright-core.
// browser_test.go starts the stack (real PostgreSQL, Redis, Lakala sandbox, API, console), seeds
// the states a person must settle, and runs this file with their ids in the environment; it checks
// the database and the result streams afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through browser_test.go)`);
  return v;
};
const base = env('CONSOLE_URL');
const shots = process.env.SCREENSHOT_DIR || '';
const laptop = { width: 1280, height: 860 };
const phone = { width: 390, height: 844 };

async function shot(page, name) {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

async function login(browser, token, viewport = laptop) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  await page.goto(`${base}/console`);
  assert.match(page.url(), /\/console\/login/, 'an anonymous visit is sent to the login page');
  await page.fill('#token', token);
  await Promise.all([page.waitForNavigation(), page.click('#login')]);
  return { context, page };
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

  await t.test('log in: the overview shows the numbers', async () => {
    assert.equal(new URL(page.url()).pathname, '/console');
    assert.match(await page.textContent('#whoami'), /admin · admin/);
    assert.equal((await page.textContent('#open-reviews')).trim(), '1');
    assert.equal((await page.textContent('#dead-letters')).trim(), '1');
    await shot(page, 'overview');
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'loomipay_console');
    assert.ok(session && session.httpOnly && session.sameSite === 'Strict', 'session cookie is HttpOnly and SameSite=Strict');
  });

  await t.test('find an order and read its timeline', async () => {
    await page.click('nav >> text=Orders');
    await page.fill('#q', env('ORDER_MERCHANT_ID'));
    await Promise.all([page.waitForNavigation(), page.click('#search')]);
    const rows = await page.$$('#orders tr');
    assert.equal(rows.length, 2, 'header and one order');
    assert.match(await page.textContent('#orders'), /¥123\.45/);
    await shot(page, 'orders');
    await Promise.all([page.waitForNavigation(), page.click(`#orders a:has-text("${env('ORDER_MERCHANT_ID')}")`)]);
    const timeline = await page.textContent('#timeline');
    assert.match(timeline, /order created/);
    assert.match(timeline, /payment pending → processing \(seq \d+, published/);
    assert.match(timeline, /payment processing → succeeded \(seq \d+, published/);
    assert.match(timeline, /notification verified, applied/);
    assert.match(timeline, /Lakala create/);
    assert.equal((await page.textContent('#order-status')).trim(), 'succeeded');
    await shot(page, 'order');
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
    // The order page shows the refund's result message, published.
    await page.goto(`${base}/console/orders/${env('ORDER_MERCHANT_ID')}`);
    const results = await page.textContent('#results');
    assert.match(results, /refund_results\s*processing → succeeded/);
    assert.doesNotMatch(results, /not yet/);
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
    for (const a of ['review.resolve', 'dlq.redrive', 'key.revoke']) assert.match(audit, new RegExp(a));
    await shot(page, 'audit');
  });

  await t.test('Beijing time on request, and a phone-sized screen', async () => {
    const phoneCtx = await browser.newContext({ viewport: phone, storageState: await context.storageState() });
    const p = await phoneCtx.newPage();
    await p.goto(`${base}/console`);
    await Promise.all([p.waitForNavigation(), p.click('button[value=Beijing]')]);
    assert.match(await p.textContent('main'), / CST/);
    await shot(p, 'overview-phone');
    await p.goto(`${base}/console/orders/${env('ORDER_MERCHANT_ID')}`);
    await shot(p, 'order-phone');
    await phoneCtx.close();
  });

  await t.test('a viewer cannot change anything', async () => {
    const v = await login(browser, env('VIEWER_TOKEN'));
    await v.page.goto(`${base}/console/dlq`);
    assert.equal(await v.page.$('form.redrive, form.discard'), null, 'no action forms for a viewer');
    await v.page.goto(`${base}/console/apps`);
    assert.equal(await v.page.$('form.revoke'), null);
    // Forge the admin's form in the viewer's page, with the viewer's own CSRF token: the server refuses.
    const [resp] = await Promise.all([
      v.page.waitForNavigation(),
      v.page.evaluate((keyId) => {
        const csrf = document.querySelector('input[name=csrf]').value;
        const f = document.createElement('form');
        f.method = 'post';
        f.action = `/console/apps/keys/${keyId}/revoke`;
        for (const [k, val] of [['csrf', csrf], ['note', 'viewer tries']]) {
          const i = document.createElement('input');
          i.type = 'hidden'; i.name = k; i.value = val; f.append(i);
        }
        document.body.append(f);
        f.submit();
      }, env('OTHER_KEY_ID')),
    ]);
    assert.equal(resp.status(), 403);
    assert.match(await v.page.textContent('#error'), /needs the admin role/);
    await v.context.close();
  });

  await t.test('log out ends the session', async () => {
    await page.goto(`${base}/console`);
    await Promise.all([page.waitForNavigation(), page.click('#logout')]);
    await page.goto(`${base}/console/orders`);
    assert.match(page.url(), /\/console\/login/);
  });
});
