-- PostgreSQL dialect of migrations/iam/0002_user_policies.sql (identical).
CREATE TABLE user_policies (
    user_arn TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    document TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (user_arn, policy_name)
);

CREATE INDEX access_keys_by_user ON access_keys (user_arn);
