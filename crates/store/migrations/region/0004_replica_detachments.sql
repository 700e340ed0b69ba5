-- Replicas promoted to standalone secrets (StopReplicationToReplica): the fact outlives the
-- secret, so a late message of the old primary never recreates a promoted secret that was then
-- deleted. `epoch` is the primary's number for the replication that was stopped; a later
-- ReplicateSecretToRegions has a higher one. Also: each destination's lane claims only its rows, and
-- settling or retrying the rows of one (secret, destination, kind) finds them by index.
CREATE TABLE replica_detachments (
    arn TEXT PRIMARY KEY NOT NULL,
    primary_arn TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    detached_ms BIGINT NOT NULL
);
CREATE INDEX replication_outbox_by_destination ON replication_outbox (dest_region, next_attempt_ms);
CREATE INDEX replication_outbox_by_secret ON replication_outbox (secret_arn, dest_region, kind, id);
