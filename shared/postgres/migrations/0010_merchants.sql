-- Merchants as data (issue 22): a merchant is Lakala's identity for money — its appid, the serial
-- number of its certificate, merchant_no, term_no, vpos_id — and its key and Lakala's
-- certificates, held BY REFERENCE: a Secrets Manager ARN (or, for the local stack and tests, a
-- file:… path), never the key itself. Each app is bound to one merchant; each order records the
-- merchant it was created with and keeps it for life (its refunds included), whatever the app is
-- bound to later.
--
-- The merchant 'default' is the configuration's: its identity and key are the LAKALA_* variables,
-- read where they always were, so its row names nothing (configured). Every existing app and order
-- belongs to it: a deployment that had one merchant goes on exactly as before.
CREATE TABLE merchants (
    id                text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    configured        boolean NOT NULL DEFAULT false,
    lakala_appid      text,
    serial_no         text,
    merchant_no       text,
    term_no           text,
    vpos_id           text NOT NULL DEFAULT '',
    private_key_ref   text,
    platform_cert_ref text,
    -- empty: the platform certificate verifies the notifications too
    notify_cert_ref   text NOT NULL DEFAULT '',
    -- raised by every key rotation: each process builds the merchant's Lakala client again
    key_version       int NOT NULL DEFAULT 1,
    key_rotated_at    timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT merchants_default_configured CHECK (configured = (id = 'default')),
    CONSTRAINT merchants_identity CHECK (configured OR (
        coalesce(lakala_appid, '') <> '' AND coalesce(serial_no, '') <> '' AND coalesce(merchant_no, '') <> ''
        AND coalesce(term_no, '') <> '' AND coalesce(private_key_ref, '') <> '' AND coalesce(platform_cert_ref, '') <> '')),
    -- references only: a key or certificate pasted here in clear is refused by the database itself
    CONSTRAINT merchants_refs CHECK (
        coalesce(private_key_ref, '') !~ '-----BEGIN' AND coalesce(platform_cert_ref, '') !~ '-----BEGIN' AND notify_cert_ref !~ '-----BEGIN'
        AND (private_key_ref IS NULL OR private_key_ref ~ '^(arn:aws[a-z-]*:secretsmanager:|file:)')
        AND (platform_cert_ref IS NULL OR platform_cert_ref ~ '^(arn:aws[a-z-]*:secretsmanager:|file:)')
        AND (notify_cert_ref = '' OR notify_cert_ref ~ '^(arn:aws[a-z-]*:secretsmanager:|file:)'))
);
-- One merchant row per merchant and terminal (the default's identity is checked by the code).
CREATE UNIQUE INDEX merchants_identity_key ON merchants (merchant_no, term_no) WHERE NOT configured;
INSERT INTO merchants (id, configured) VALUES ('default', true);

ALTER TABLE apps ADD COLUMN merchant_id text NOT NULL DEFAULT 'default' REFERENCES merchants (id);

-- A constant default is stored once, not written into every row; the foreign key checks new rows
-- at once and old ones (all 'default') are not scanned under the deploy's lock.
ALTER TABLE payment_orders ADD COLUMN merchant_id text NOT NULL DEFAULT 'default';
ALTER TABLE payment_orders ADD CONSTRAINT payment_orders_merchant_fk FOREIGN KEY (merchant_id) REFERENCES merchants (id) NOT VALID;

-- Which merchant's client made each call (the evidence of a merchant whose key Lakala refuses).
ALTER TABLE gateway_calls ADD COLUMN merchant_id text;
