-- Each app's Redis user, kept here so that it can be made again, with the app's passwords, when
-- Redis loses it (a restart without persistence, a failover to an empty replica): its name, the
-- SHA-256 (hex) of each password in force — ACL SETUSER takes "#<hex>", so the passwords
-- themselves are never stored — and the ACL rules last applied. Whether the user is on follows
-- apps.disabled_at.
CREATE TABLE app_redis_users (
    app_id          text PRIMARY KEY REFERENCES apps (app_id),
    username        text NOT NULL UNIQUE,
    password_hashes text[] NOT NULL CHECK (cardinality(password_hashes) >= 1),
    rules           text[] NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- This deployment's name inside the names of its Redis users: random, so that deployments (stacks,
-- checkouts, test runs) sharing one Redis never make or reset each other's users.
CREATE TABLE deployment (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    id  text NOT NULL CHECK (id ~ '^[0-9a-f]{8}$')
);
INSERT INTO deployment (id) VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 8));
