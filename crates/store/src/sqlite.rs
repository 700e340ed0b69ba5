//! The embedded default: one SQLite file per store, WAL, one writer connection (SQLite allows
//! one writer anyway; a pool of one avoids `SQLITE_BUSY`), a small pool of read-only readers,
//! and `synchronous=FULL` so a commit that returned is on disk. Secret changes reach the
//! writer through [`group_commit`]: the changes of concurrent callers share one transaction and
//! one fsync.
//!
//! What lives where:
//!
//! - [`open`]: a store file's connections (writer, readers, checkpointer) and their settings,
//!   the look at the file before touching it, migrations, the background WAL checkpointer;
//! - [`region`]: [`SqliteStore`], a Region's store (`impl Store`);
//! - [`changes`]: what the one writer runs inside a group commit's transaction (secret
//!   changes, outbox rows, claims, retries, reads' LastAccessedDate), many rows per statement;
//! - [`group_commit`]: the writer thread (its own rusqlite connection) that batches those, and
//!   the store's other writes, into shared transactions;
//! - [`sync_reads`]: reads of one secret and listing pages on the calling thread (rusqlite);
//! - [`terms_memo`]: the writer's memory of the search terms it wrote;
//! - [`iam`]: [`SqliteIamStore`], the IAM store (`impl IamStore`).
//!
//! The SQL both backends share is in `crate::rows` (reads) and `crate::writes` (writes).

mod changes;
mod group_commit;
mod iam;
mod open;
mod region;
mod sync_reads;
mod terms_memo;

pub use iam::SqliteIamStore;
pub use region::SqliteStore;
