-- The replication outbox: written in the same transaction as the change it announces, drained
-- by the replication workers. `secret_arn` is the ARN in the Region that wrote the row.
CREATE TABLE replication_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_arn TEXT NOT NULL,
    dest_region TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    enqueued_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    first_failure_ms BIGINT,
    lease_owner TEXT,
    lease_until_ms BIGINT
);
CREATE INDEX replication_outbox_due ON replication_outbox (next_attempt_ms);
