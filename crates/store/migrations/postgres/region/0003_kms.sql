-- The KMS API (TrentService): keys are listed per account (ListKeys, the deletion purge walks
-- every account's keys), aliases are found by the key they point at (ListAliases with KeyId,
-- and removed with their key when its deletion window ends). Key state, policy, tags and the
-- deletion date live in `kms_keys.metadata` (JSON), so no column changes are needed.
CREATE INDEX kms_keys_by_account ON kms_keys (account_id, created_ms);
CREATE INDEX kms_aliases_by_target ON kms_aliases (target_key_arn);
