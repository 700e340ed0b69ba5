-- PostgreSQL dialect of migrations/iam/0001_initial.sql: BYTEA for BLOB. `coffer_meta` is
-- created by the migration runner before it takes the migration lock, hence IF NOT EXISTS.
CREATE TABLE IF NOT EXISTS coffer_meta (
    meta_key TEXT PRIMARY KEY,
    meta_value TEXT NOT NULL
);

CREATE TABLE accounts (
    account_id TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL
);

CREATE TABLE users (
    user_arn TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    is_admin BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (account_id, user_name)
);

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    user_arn TEXT NOT NULL,
    account_id TEXT NOT NULL,
    wrapped_secret BYTEA NOT NULL,
    status TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
