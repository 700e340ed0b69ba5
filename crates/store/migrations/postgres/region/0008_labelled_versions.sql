-- The versions that carry a staging label, by secret (issue 13). AWS keeps up to 100 versions
-- of a secret without labels, so a secret rotated every hour has about a hundred after four
-- days; a GetSecretValue by label needs only the labelled ones (two or three), and without
-- this index reading them meant reading every version's row: the label is not in the key.
-- `stages` is the JSON array of the version's labels, `[]` when it has none.
CREATE INDEX secret_versions_labelled ON secret_versions (secret_arn) WHERE stages <> '[]';
