-- PostgreSQL dialect of migrations/region/0001_initial.sql (same tables, same columns): BYTEA
-- for BLOB. Runs inside the Region's own schema (the connection's search_path). Portable to
-- PG-wire distributed databases: BIGINT, TEXT, BYTEA, no engine extensions.
-- `coffer_meta` is created by the migration runner before it takes the migration lock (a row of
-- that table), hence IF NOT EXISTS here.
CREATE TABLE IF NOT EXISTS coffer_meta (
    meta_key TEXT PRIMARY KEY,
    meta_value TEXT NOT NULL
);

CREATE TABLE secrets (
    arn TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    kms_key_id TEXT,
    tags TEXT,
    resource_policy TEXT,
    created_ms BIGINT NOT NULL,
    last_changed_ms BIGINT NOT NULL,
    last_accessed_day BIGINT,
    deleted_ms BIGINT,
    purge_at_ms BIGINT,
    rotation TEXT,
    replication TEXT,
    row_version BIGINT NOT NULL,
    UNIQUE (account_id, name)
);
CREATE INDEX secrets_purge ON secrets (purge_at_ms);

CREATE TABLE secret_versions (
    secret_arn TEXT NOT NULL,
    version_id TEXT NOT NULL,
    stages TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_accessed_day BIGINT,
    kms_key_arn TEXT,
    value_kind BIGINT NOT NULL,
    wrapped_data_key BYTEA,
    ciphertext BYTEA,
    PRIMARY KEY (secret_arn, version_id)
);

CREATE TABLE kms_keys (
    key_arn TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    wrapped_material BYTEA NOT NULL,
    metadata TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE kms_aliases (
    account_id TEXT NOT NULL,
    alias_name TEXT NOT NULL,
    target_key_arn TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, alias_name)
);
