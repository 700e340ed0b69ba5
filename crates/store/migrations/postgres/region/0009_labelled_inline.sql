-- Nothing on PostgreSQL. SQLite's 0009 gives each secret's row a copy of its labelled
-- versions, kept by triggers, so that a read that misses the cache walks two B-trees instead
-- of four; PostgreSQL keeps reading the versions through the partial index of 0008 (its reads
-- by label already join in one statement, and a node's cache answers most of them). The
-- statement below only keeps both backends at the same format number.
SELECT 1;
