-- PostgreSQL dialect of migrations/region/0005_failover.sql. Region failover (docs/failover.md). `replica_heads`: per replica in this Region, the newest
-- state its primary announced (sequence = the primary's row_version, its AWSCURRENT version,
-- when the primary committed it) even when that state itself did not arrive, so the Region
-- knows which secrets lag (the replication point) and a failover reports the writes that may
-- be lost. `coffer_documents`: small JSON documents by key; a failover or failback keeps its
-- progress and report here, so a node killed halfway finishes on restart.
CREATE TABLE replica_heads (
    arn TEXT PRIMARY KEY NOT NULL,
    primary_region TEXT NOT NULL,
    seq BIGINT NOT NULL,
    version_id TEXT,
    commit_ms BIGINT NOT NULL,
    heard_ms BIGINT NOT NULL
);
CREATE TABLE coffer_documents (
    doc_key TEXT PRIMARY KEY NOT NULL,
    body TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
