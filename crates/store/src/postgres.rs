//! PostgreSQL: for a Region served by several nodes over one database.
//!
//! - **One schema per store.** A Region's tables live in their own schema (`coffer_us_east_1`,
//!   see [`PostgresStore::schema_for_region`]), created if missing, so several Regions and the
//!   IAM store can share one database. Every pooled connection sets `search_path` to that schema
//!   once, so the SQL is the same as SQLite's (`$1` placeholders, no schema prefixes).
//! - **Look before touching.** `open` first reads `coffer_meta` (`kind`, `format_version`) and
//!   refuses a foreign or newer schema with [`StoreError::Incompatible`] before writing
//!   anything.
//! - **Migrations under a row lock, not an advisory lock.** The runner creates the schema and
//!   `coffer_meta` idempotently, then, in one transaction, locks the `migration_lock` row of
//!   `coffer_meta` (`SELECT ... FOR UPDATE`), re-reads the format version and applies only what is
//!   missing. A second node starting at the same moment waits on that row and then finds nothing
//!   to do. Runs unchanged on PG-wire distributed databases, which have no advisory locks.
//! - **Optimistic concurrency** as on SQLite: an update names the `row_version` it read; under
//!   READ COMMITTED a concurrent writer waits for the first, re-checks the condition, matches no
//!   row and reports [`StoreError::Conflict`].
//! - **Outbox leases are columns of the row.** A claim is one conditional
//!   `UPDATE ... RETURNING`: two claimers never get the same row while its lease is valid (the
//!   second re-checks the lease after the first commits and skips the row).
//! - **Retries.** Serialization failures (SQLSTATE 40001, routine on SERIALIZABLE distributed
//!   databases) and deadlocks (40P01) re-run the whole transaction a few times with a short
//!   jittered backoff; after that a write reports `Conflict` (the caller reloads and retries) and
//!   anything else a backend error.
//!
//! What lives where:
//!
//! - [`open`]: connecting, the schema's check before anything is written, creating the schema
//!   and migrating it under the lock row;
//! - [`retrying`]: re-running a transaction that lost to a concurrent one (`retrying!`);
//! - [`region`]: [`PostgresStore`], a Region's store (`impl Store`), and [`read_cache`], the
//!   node's validated cache in front of it;
//! - [`changes`]: a secret change and its outbox rows inside the committing transaction;
//! - [`backup`]: a Region's export and import for `coffer backup` / `coffer restore`;
//! - [`iam`]: [`PostgresIamStore`], the IAM store (`impl IamStore`).
//!
//! The SQL both backends share is in `crate::rows` (reads) and `crate::writes` (writes).

mod backup;
mod changes;
mod iam;
mod open;
mod read_cache;
mod region;
mod retrying;

pub use iam::PostgresIamStore;
pub use region::PostgresStore;
