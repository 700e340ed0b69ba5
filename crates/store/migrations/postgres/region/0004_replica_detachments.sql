-- PostgreSQL dialect of migrations/region/0004_replica_detachments.sql.
CREATE TABLE replica_detachments (
    arn TEXT PRIMARY KEY NOT NULL,
    primary_arn TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    detached_ms BIGINT NOT NULL
);
CREATE INDEX replication_outbox_by_destination ON replication_outbox (dest_region, next_attempt_ms);
CREATE INDEX replication_outbox_by_secret ON replication_outbox (secret_arn, dest_region, kind, id);
