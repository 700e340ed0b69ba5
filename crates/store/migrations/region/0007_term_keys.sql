-- Search terms keyed by a small integer per secret instead of its ARN (issue 13). Every term
-- row repeated its secret's ARN twice (in the primary key and in the term index): at a million
-- secrets `secret_terms` was 80% of the Region's database, and every filter that is checked
-- per secret compared ARNs. `secrets.term_key` is that integer, unique while the secret
-- exists: Coffer's insert gives the largest plus one (on the one writer); an insert that names
-- no key (a restore) gets the same from the trigger.
ALTER TABLE secrets ADD COLUMN term_key INTEGER;
UPDATE secrets SET term_key = rowid;
CREATE UNIQUE INDEX secrets_by_term_key ON secrets (term_key);
CREATE TRIGGER secrets_term_key AFTER INSERT ON secrets WHEN NEW.term_key IS NULL
BEGIN
    UPDATE secrets SET term_key = (SELECT COALESCE(MAX(term_key), 0) + 1 FROM secrets)
    WHERE rowid = NEW.rowid;
END;
CREATE TABLE secret_terms_by_key (
    secret_key INTEGER NOT NULL,
    kind TEXT NOT NULL,
    term TEXT NOT NULL,
    PRIMARY KEY (secret_key, kind, term)
) WITHOUT ROWID;
-- Walks the secrets in rowid order (= key order here) and each one's terms in (kind, term)
-- order, so the rows arrive in the new table's order: appended, not sorted in memory.
INSERT INTO secret_terms_by_key (secret_key, kind, term)
    SELECT s.term_key, t.kind, t.term FROM secrets s CROSS JOIN secret_terms t
    WHERE t.secret_arn = s.arn;
DROP TABLE secret_terms;
ALTER TABLE secret_terms_by_key RENAME TO secret_terms;
CREATE INDEX secret_terms_by_term ON secret_terms (kind, term);
