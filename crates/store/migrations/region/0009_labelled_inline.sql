-- Each secret's row carries a copy of its labelled versions (issue 13). A GetSecretValue by
-- label or a DescribeSecret that misses the cache read four B-trees: the secret's name index,
-- its row, the labelled versions' index and their rows. Over a million secrets each is a page
-- that is not in SQLite's cache, and those page reads were most of a read's time; with the
-- copy the read is the name index and the row (docs/benchmarks.md, "Labelled versions in the
-- secret's row").
--
-- `secrets.labelled` is a JSON array with one array per version that has a staging label:
-- [version_id, stages (the array), created_ms, last_accessed_day, kms_key_arn, value_kind,
-- wrapped_data_key (hex), ciphertext (hex)], in no particular order; `[]` when there is none.
-- The triggers below keep it equal to `secret_versions` in the same statement as any change,
-- whoever writes (the writer, restore, a replica's sync), so no code path can forget it.
-- `secret_versions` stays the versions' table: every other read (all versions, by id) and
-- every write use it. PostgreSQL reads its versions through the index (its 0009 is empty).
ALTER TABLE secrets ADD COLUMN labelled TEXT;

CREATE VIEW secret_labelled_versions (secret_arn, labelled) AS
    SELECT secret_arn, json_group_array(json_array(version_id, json(stages), created_ms,
        last_accessed_day, kms_key_arn, value_kind,
        iif(wrapped_data_key IS NULL, NULL, hex(wrapped_data_key)),
        iif(ciphertext IS NULL, NULL, hex(ciphertext))))
    FROM secret_versions WHERE stages <> '[]' GROUP BY secret_arn;

UPDATE secrets SET labelled = COALESCE((SELECT l.labelled FROM secret_labelled_versions l
    WHERE l.secret_arn = secrets.arn), '[]');

CREATE TRIGGER secrets_labelled AFTER INSERT ON secrets
BEGIN
    UPDATE secrets SET labelled = COALESCE((SELECT l.labelled FROM secret_labelled_versions l
        WHERE l.secret_arn = NEW.arn), '[]') WHERE arn = NEW.arn;
END;
CREATE TRIGGER secret_versions_labelled_insert AFTER INSERT ON secret_versions
WHEN NEW.stages <> '[]'
BEGIN
    UPDATE secrets SET labelled = COALESCE((SELECT l.labelled FROM secret_labelled_versions l
        WHERE l.secret_arn = NEW.secret_arn), '[]') WHERE arn = NEW.secret_arn;
END;
CREATE TRIGGER secret_versions_labelled_update AFTER UPDATE ON secret_versions
WHEN OLD.stages <> '[]' OR NEW.stages <> '[]'
BEGIN
    UPDATE secrets SET labelled = COALESCE((SELECT l.labelled FROM secret_labelled_versions l
        WHERE l.secret_arn = NEW.secret_arn), '[]') WHERE arn = NEW.secret_arn;
END;
CREATE TRIGGER secret_versions_labelled_delete AFTER DELETE ON secret_versions
WHEN OLD.stages <> '[]'
BEGIN
    UPDATE secrets SET labelled = COALESCE((SELECT l.labelled FROM secret_labelled_versions l
        WHERE l.secret_arn = OLD.secret_arn), '[]') WHERE arn = OLD.secret_arn;
END;
