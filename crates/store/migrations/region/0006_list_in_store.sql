-- ListSecrets in the store (issue 13): one index per sort order, each starting with the
-- account and ending with the ARN (the tie-breaker), so a page is a walk of an index from the
-- position in the NextToken; and the search terms of every secret (see listing.rs), written in
-- the transaction that writes the secret. Rows for secrets that exist already are written by
-- the migration runner right after this script (word splitting is not SQL).
CREATE TABLE secret_terms (
    secret_arn TEXT NOT NULL,
    kind TEXT NOT NULL,
    term TEXT NOT NULL,
    PRIMARY KEY (secret_arn, kind, term)
) WITHOUT ROWID;
CREATE INDEX secret_terms_by_term ON secret_terms (kind, term);
CREATE INDEX secrets_by_created ON secrets (account_id, created_ms, arn);
CREATE INDEX secrets_by_changed ON secrets (account_id, last_changed_ms, arn);
CREATE INDEX secrets_by_accessed ON secrets (account_id, COALESCE(last_accessed_day, -1), arn);
CREATE INDEX secrets_by_name ON secrets (account_id, name, arn);
