-- The sandbox's state, in a schema of its own beside the service's tables (the token lkl. is
-- replaced by that schema's quoted name). Every statement may run again: each start applies it.

-- The platform key the sandbox signs responses and notifications with, and its certificate (what
-- the service is configured to trust), made on the first start and kept, so that restarts and
-- every Lambda instance sign as one platform.
CREATE TABLE IF NOT EXISTS lkl.platform (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    key_pem  text NOT NULL,
    cert_pem text NOT NULL
);

-- The merchants the sandbox plays: Lakala knows each merchant_no under an appid, and verifies an
-- appid's requests with the certificate its serial_no names (a key rotation adds one; revoking
-- the old one is Lakala's side of the rotation).
CREATE TABLE IF NOT EXISTS lkl.credentials (
    appid          text NOT NULL,
    serial_no      text NOT NULL,
    public_key_pem text NOT NULL,
    added_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    PRIMARY KEY (appid, serial_no)
);
CREATE TABLE IF NOT EXISTS lkl.merchants (
    merchant_no text PRIMARY KEY,
    appid       text NOT NULL,
    term_no     text NOT NULL,
    -- when set, every special_create of the merchant must carry it ("C 非合单场景必输")
    vpos_id     text NOT NULL DEFAULT ''
);

-- The fault knobs, shared by every process that plays this sandbox.
CREATE TABLE IF NOT EXISTS lkl.faults (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    faults jsonb NOT NULL
);

-- Every number the sandbox hands out (pay_order_no, trade_no, log_no …) comes from here: none
-- repeats, across restarts too.
CREATE SEQUENCE IF NOT EXISTS lkl.ids;

-- Cashier orders, unique per merchant as at Lakala; state is the order as sandbox.order encodes it.
CREATE TABLE IF NOT EXISTS lkl.orders (
    merchant_no  text NOT NULL,
    out_order_no text NOT NULL,
    pay_order_no text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    state        jsonb NOT NULL,
    PRIMARY KEY (merchant_no, out_order_no)
);
CREATE INDEX IF NOT EXISTS orders_out_order_no_idx ON lkl.orders (out_order_no);

-- Other merchants' paid cashier orders with our numbers (Faults.ForeignNotifyRate): apart from
-- ours, so that no query ever sees them.
CREATE TABLE IF NOT EXISTS lkl.foreign_orders (
    pay_order_no text PRIMARY KEY,
    state        jsonb NOT NULL
);

-- Every PAY trade, to find the payment a refund's origin ids name.
CREATE TABLE IF NOT EXISTS lkl.trades (
    trade_no     text PRIMARY KEY,
    log_no       text NOT NULL UNIQUE,
    merchant_no  text NOT NULL,
    out_order_no text NOT NULL
);

-- Refund requests, one per merchant and out_trade_no.
CREATE TABLE IF NOT EXISTS lkl.refunds (
    merchant_no  text NOT NULL,
    out_trade_no text NOT NULL,
    out_order_no text NOT NULL,
    trade_no     text NOT NULL,
    created_at   timestamptz NOT NULL,
    state        jsonb NOT NULL,
    PRIMARY KEY (merchant_no, out_trade_no)
);
CREATE INDEX IF NOT EXISTS refunds_trade_no_idx ON lkl.refunds (trade_no);

-- How many times each out_trade_no was queried (Faults.RefundQueryRefusals).
CREATE TABLE IF NOT EXISTS lkl.refund_queries (
    merchant_no  text NOT NULL,
    out_trade_no text NOT NULL,
    queries      int NOT NULL,
    PRIMARY KEY (merchant_no, out_trade_no)
);

-- Notifications on their way: each is attempted when due (next_at), by whichever process is
-- delivering, and retried on Lakala's schedule until acknowledged or given up; copies counts the
-- copies DuplicateNotify sends, one after the other. A delivery being attempted is leased.
CREATE TABLE IF NOT EXISTS lkl.deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_no  text NOT NULL,
    out_order_no text NOT NULL,
    pay_order_no text NOT NULL,
    foreign_twin boolean NOT NULL DEFAULT false,
    trade_no     text NOT NULL,
    notify_url   text NOT NULL,
    body         bytea NOT NULL,
    forge        boolean NOT NULL DEFAULT false,
    resign       boolean NOT NULL DEFAULT false,
    auth         text NOT NULL DEFAULT '',
    copies       int NOT NULL DEFAULT 1,
    copy         int NOT NULL DEFAULT 1,
    attempts     int NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL,
    leased_until timestamptz,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'acked', 'given_up')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deliveries_due_idx ON lkl.deliveries (next_at) WHERE state = 'pending';

-- Every verified API call: who signed it (appid, the serial of the certificate that verified it),
-- for which merchant and number, and what it was answered. Tests hold the service to signing each
-- call as the order's merchant; people read it at /sandbox/calls.
CREATE TABLE IF NOT EXISTS lkl.calls (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    path        text NOT NULL,
    appid       text NOT NULL,
    serial_no   text NOT NULL,
    merchant_no text NOT NULL,
    out_no      text NOT NULL,
    code        text NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_at_idx ON lkl.calls (at);
CREATE INDEX IF NOT EXISTS deliveries_done_idx ON lkl.deliveries (created_at) WHERE state <> 'pending';
