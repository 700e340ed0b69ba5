-- Inline policies of IAM users (PutUserPolicy); the document is kept as the caller sent it.
CREATE TABLE user_policies (
    user_arn TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    document TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (user_arn, policy_name)
);

CREATE INDEX access_keys_by_user ON access_keys (user_arn);
