'use strict';
// Runs the integration guide's Node.js client, unedited, through a whole payment and a refund.
//
// Reads the guide's configuration from the environment: LOOMI_PAY_BASE_URL, LOOMI_PAY_API_KEY,
// APP_ID, REDIS_URL. Exits 0 when every step did what the guide promises, 1 with a message otherwise.
//
// The guide's file declares LoomipayClient without exporting it, so it is compiled here as a
// CommonJS module with an export appended in memory; the file on disk stays the guide's.
// listenPaymentResults never returns, so the overridden handler resolves a promise and the
// process exits once the consumer group it created is removed.

const fs = require('fs');
const path = require('path');
const vm = require('vm');
const { createRequire } = require('module');
const crypto = require('crypto');
const axios = require('axios');
const Redis = require('redis');

const DEADLINE_MS = 60_000; // the whole run, whatever hangs (the guide's requests carry no timeout)
const STEP_TIMEOUT_MS = 30_000; // waiting for the cashier URL, and for the result message
const AMOUNT = 10000;
const REFUND_AMOUNT = 3000;
const STREAM = 'payment_results';

function loadGuideClient() {
    const file = path.join(__dirname, 'loomipay_client.js');
    const source = fs.readFileSync(file, 'utf8') + '\nmodule.exports = LoomipayClient;\n';
    const params = ['exports', 'require', 'module', '__filename', '__dirname'];
    const compiled = vm.compileFunction(source, params, { filename: file });
    const mod = { exports: {} };
    compiled(mod.exports, createRequire(file), mod, file, __dirname);
    return mod.exports;
}

const createdGroups = []; // removed on the way out, whatever the outcome

async function removeGroups(redisUrl) {
    if (createdGroups.length === 0) return;
    const admin = Redis.createClient({ url: redisUrl, socket: { connectTimeout: 5000, reconnectStrategy: false } });
    try {
        await admin.connect();
        for (const group of createdGroups) await admin.xGroupDestroy(STREAM, group);
    } catch (error) {
        console.log(`node guide client: could not remove consumer groups ${createdGroups}: ${error.message}`);
    } finally {
        admin.disconnect().catch(() => {});
    }
}

let redisUrlForCleanup = '';

async function fail(message) {
    console.log(`node guide client: FAIL: ${message}`);
    await removeGroups(redisUrlForCleanup);
    process.exit(1);
}

function expect(what, got, want) {
    if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

async function waitFor(what, timeoutMs, probe) {
    const end = Date.now() + timeoutMs;
    for (;;) {
        const value = await probe();
        if (value) return value;
        if (Date.now() > end) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
    }
}

async function main() {
    const names = ['LOOMI_PAY_BASE_URL', 'LOOMI_PAY_API_KEY', 'APP_ID', 'REDIS_URL'];
    const missing = names.filter((name) => !process.env[name]);
    if (missing.length) throw new Error(`missing environment: ${missing.join(', ')}`);
    const { LOOMI_PAY_BASE_URL: baseUrl, LOOMI_PAY_API_KEY: apiKey, APP_ID: appId, REDIS_URL: redisUrl } = process.env;
    redisUrlForCleanup = redisUrl;

    const LoomipayClient = loadGuideClient();
    const runId = `${Math.floor(Date.now() / 1000)}_${crypto.randomBytes(4).toString('hex')}`;
    const merchantOrderId = `GUIDE_NODE_${runId}`;
    const consumerGroup = `guide_node_${runId}`; // a fresh group: no pending entries from earlier runs

    const client = new LoomipayClient(baseUrl, apiKey, appId, redisUrl);
    const seen = [];
    let succeeded;
    const success = new Promise((resolve) => { succeeded = resolve; });
    const guideHandler = client.handlePaymentResult.bind(client);
    client.handlePaymentResult = async (messageData) => {
        // The stream is shared: earlier runs and other apps' orders are there too.
        if (messageData.merchant_order_id !== merchantOrderId) return;
        seen.push(messageData);
        await guideHandler(messageData);
        if (messageData.event_type === 'payment_status_changed' && messageData.new_status === 'succeeded') {
            succeeded(messageData);
            await new Promise(() => {}); // park the listener so it stops reading before its group is removed
        }
    };

    const order = await client.createPaymentOrder(merchantOrderId, AMOUNT, 'VIP membership', 'payment',
        { user_id: 'user_12345' });
    expect('created order status', order.status, 'pending');
    expect('created order merchant_order_id', order.merchant_order_id, merchantOrderId);
    expect('created order amount', order.amount, AMOUNT);
    console.log(`node guide client: created order ${order.id} (${merchantOrderId})`);

    expect('read order id', (await client.getPaymentOrder(merchantOrderId)).id, order.id);

    const paymentUrl = await waitFor('status processing with extra_data.payment_url', STEP_TIMEOUT_MS, async () => {
        const current = await client.getPaymentOrder(merchantOrderId);
        if (current.status === 'failed') throw new Error(`order failed before checkout: ${JSON.stringify(current)}`);
        const url = current.extra_data && current.extra_data.payment_url;
        return current.status === 'processing' && url ? url : null;
    });

    createdGroups.push(consumerGroup);
    client.listenPaymentResults(consumerGroup).catch((error) => fail(`listenPaymentResults: ${error.message}`));

    const paid = await axios.post(paymentUrl, new URLSearchParams({ action: 'pay' }), {
        headers: { Accept: 'application/json' }, maxRedirects: 0, timeout: 10_000, validateStatus: () => true,
    });
    if (paid.status !== 200) throw new Error(`paying at ${paymentUrl}: HTTP ${paid.status}: ${JSON.stringify(paid.data)}`);

    let timer;
    const message = await Promise.race([
        success,
        new Promise((resolve) => { timer = setTimeout(resolve, STEP_TIMEOUT_MS, null); }),
    ]);
    clearTimeout(timer);
    if (!message) {
        throw new Error(`no payment_status_changed message with new_status succeeded for ${merchantOrderId} ` +
            `within ${STEP_TIMEOUT_MS / 1000}s via listenPaymentResults (messages seen for it: ${JSON.stringify(seen)})`);
    }
    expect('message payment_order_id', message.payment_order_id, order.id);
    expect('message app_id', message.app_id, appId);
    expect('message old_status', message.old_status, 'processing');
    expect('message amount', message.amount, String(AMOUNT));
    expect('order status after payment', (await client.getPaymentOrder(merchantOrderId)).status, 'succeeded');

    const refund = await client.createRefundOrder(order.id, REFUND_AMOUNT, 'partial refund');
    expect('refund status', refund.status, 'pending');
    expect('refund payment_order_id', refund.payment_order_id, order.id);
    expect('refund app_id', refund.app_id, appId);
    expect('refund amount', refund.amount, REFUND_AMOUNT);
    expect('refund currency', refund.currency, 'CNY');
    expect('refund reason', refund.reason, 'partial refund');
    if (!refund.id) throw new Error(`refund has no id: ${JSON.stringify(refund)}`);
    console.log(`node guide client: paid, got the result message, refund ${refund.id} accepted`);

    await removeGroups(redisUrl);
    console.log('node guide client: ok');
    process.exit(0);
}

setTimeout(() => fail(`whole run exceeded ${DEADLINE_MS / 1000}s`), DEADLINE_MS);
main().catch((error) => fail(error.message));
