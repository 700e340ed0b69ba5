-- ListSecrets in the store (issue 13); see the SQLite migration of the same number. Text that
-- is sorted or compared by prefix uses the "C" collation (byte order, as on SQLite), whatever
-- the database's default collation is.
CREATE TABLE secret_terms (
    secret_arn TEXT NOT NULL,
    kind TEXT NOT NULL,
    term TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (secret_arn, kind, term)
);
CREATE INDEX secret_terms_by_term ON secret_terms (kind, term);
CREATE INDEX secrets_by_created ON secrets (account_id, created_ms, arn COLLATE "C");
CREATE INDEX secrets_by_changed ON secrets (account_id, last_changed_ms, arn COLLATE "C");
CREATE INDEX secrets_by_accessed ON secrets (account_id, (COALESCE(last_accessed_day, -1)), arn COLLATE "C");
CREATE INDEX secrets_by_name ON secrets (account_id, name COLLATE "C", arn COLLATE "C");
