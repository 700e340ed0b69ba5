CREATE TABLE coffer_meta (
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
    wrapped_secret BLOB NOT NULL,
    status TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
