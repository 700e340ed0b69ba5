//! Opening a SQLite store file: its connections and their settings, the look at the file
//! before touching it (a foreign or newer file stays as it was), migrations, and the
//! background WAL checkpointer.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::group_commit;
use crate::schema::{StoreKind, check_compatible};
use crate::{Result, StoreError};

/// A store file's connections.
pub(super) struct Pools {
    /// The migrations' connection, and the IAM store's writer. A Region store writes through
    /// its group commit's own connection instead (`group_commit`).
    pub(super) writer: SqlitePool,
    pub(super) reader: SqlitePool,
    /// One connection that checkpoints the WAL into the database file in the background.
    pub(super) checkpointer: SqlitePool,
    /// The file, for the group commit's writer (its own connection, see `group_commit`).
    pub(super) file: group_commit::WriterFile,
}

/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// How long a checkpoint waits for locks. A TRUNCATE checkpoint holds the writer lock while it
/// waits for the readers of the WAL to finish; with the 10 s of every other connection, a
/// stream of overlapping readers once kept it waiting long enough that the writer's own wait
/// ran out ("database is locked" on a write, seen under a loaded test run). Past this, the
/// checkpoint gives up, writes go on, and the next tick tries again.
const CHECKPOINT_BUSY: Duration = Duration::from_millis(200);

/// The WAL size above which the checkpointer starts the log over (and SQLite's
/// `journal_size_limit`, the size a reset WAL file is truncated to).
const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Checkpoints off the write path. SQLite's automatic checkpoint runs inside the commit that
/// crosses 1000 WAL pages, on the one writer connection, so every write queued behind it
/// waits for the copy and the database file's fsync (measured: 150–400 ms stalls under a
/// steady write load, the tail of replication lag). The writer has `wal_autocheckpoint=0`
/// and this task runs a PASSIVE checkpoint (never blocks readers or the writer) on its own
/// connection instead. It ends when the store closes.
///
/// A PASSIVE checkpoint copies frames but never starts the WAL over: SQLite reuses the file
/// from its beginning only when a write begins while no reader is reading from the WAL, which
/// under a steady read load (overlapping readers) never happens, so the file grew without
/// bound (391 MB measured). When the WAL is larger than `wal_limit`, this task runs a
/// TRUNCATE checkpoint instead: it waits for the readers of older snapshots to finish (reads
/// are short: one page or one secret), holding off writers meanwhile, then empties the file.
fn spawn_checkpointer(pool: SqlitePool, wal: std::path::PathBuf, wal_limit: u64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                break;
            }
            let too_big = std::fs::metadata(&wal).is_ok_and(|m| m.len() > wal_limit);
            let sql = if too_big {
                "PRAGMA wal_checkpoint(TRUNCATE)"
            } else {
                "PRAGMA wal_checkpoint(PASSIVE)"
            };
            let started = std::time::Instant::now();
            let done = sqlx::query(sql).execute(&pool).await;
            group_commit::slow("the background WAL checkpoint", started);
            if let Err(e) = done {
                if pool.is_closed() {
                    break;
                }
                tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
            }
        }
    });
}

/// A pool of `max` connections, at least one always open. sqlx's pools test an idle
/// connection before handing it out by default (`test_before_acquire`): a ping, which on SQLite
/// is one more round trip to the connection's worker thread for every acquire, to check a
/// local file handle that cannot go stale (a failed connection fails its statement anyway).
/// The test is off: it only added a round trip.
fn pool_options(max: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .test_before_acquire(false)
}

pub(super) async fn open_pools(path: &Path, kind: StoreKind) -> Result<Pools> {
    open_pools_with(path, kind, WAL_LIMIT_BYTES).await
}

pub(super) async fn open_pools_with(path: &Path, kind: StoreKind, wal_limit: u64) -> Result<Pools> {
    let location = path.display().to_string();
    let base = SqliteConnectOptions::from_str("sqlite://")
        .map_err(StoreError::from)?
        .filename(path)
        .busy_timeout(Duration::from_secs(10));
    let existing = std::fs::metadata(path)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    let mut applied = 0;
    if existing {
        // Look before touching: a read-only connection, so a foreign or newer file stays as it was.
        let mut conn =
            base.clone().read_only(true).connect().await.map_err(|e| {
                StoreError::Incompatible(format!("{location} cannot be opened: {e}"))
            })?;
        let kind_found: Option<String> =
            sqlx::query_scalar("SELECT meta_value FROM coffer_meta WHERE meta_key = 'kind'")
                .fetch_optional(&mut conn)
                .await
                .ok()
                .flatten();
        let version_found: Option<i64> = sqlx::query_scalar(
            "SELECT meta_value FROM coffer_meta WHERE meta_key = 'format_version'",
        )
        .fetch_optional(&mut conn)
        .await
        .ok()
        .flatten()
        .and_then(|v: String| v.parse().ok());
        drop(conn);
        check_compatible(kind, &location, kind_found.as_deref(), version_found)
            .map_err(StoreError::Incompatible)?;
        applied = version_found.unwrap_or(0);
    }
    let writer = pool_options(1)
        .connect_with(
            base.clone()
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .pragma("wal_autocheckpoint", "0")
                .pragma("journal_size_limit", wal_limit.to_string())
                .pragma("temp_store", "memory"),
        )
        .await?;
    migrate(&writer, kind, &location, applied).await?;
    let checkpointer = pool_options(1)
        .connect_with(
            base.clone()
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(CHECKPOINT_BUSY),
        )
        .await?;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    spawn_checkpointer(checkpointer.clone(), wal.into(), wal_limit);
    let reader = pool_options(4).connect_with(base.read_only(true)).await?;
    Ok(Pools {
        writer,
        reader,
        checkpointer,
        file: group_commit::WriterFile {
            path: path.to_path_buf(),
            wal_limit,
        },
    })
}

async fn migrate(pool: &SqlitePool, kind: StoreKind, location: &str, applied: i64) -> Result<()> {
    let migrations = kind.migrations();
    if applied as usize >= migrations.len() {
        return Ok(());
    }
    crate::schema::log_migration(kind, location, applied, migrations.len());
    let mut tx = pool.begin().await?;
    for sql in &migrations[applied as usize..] {
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
    }
    if crate::schema::needs_terms_backfill(kind, applied) {
        let n = crate::listing::lite::backfill(&mut tx).await?;
        tracing::info!("wrote the search terms of {n} existing secrets");
    }
    crate::writes::record_format!(tx, kind, migrations.len());
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::sqlite::SqliteStore;

    /// The writer never checkpoints (`wal_autocheckpoint=0`); without the background
    /// checkpointer the database file would stay empty and the WAL would grow for ever.
    #[tokio::test]
    async fn the_wal_is_checkpointed_into_the_database_file_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("region.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        for i in 0..256 {
            write_filler(&store, i).await;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let grown = loop {
            let now = std::fs::metadata(&path).unwrap().len();
            if now >= before + 256 * 4096 || std::time::Instant::now() > deadline {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            grown >= before + 256 * 4096,
            "the database file holds {grown} bytes ({before} before 1 MiB of writes): the WAL was not checkpointed"
        );
        store.close().await;
    }

    /// A store that closed leaves one file behind, the database: everything committed is in
    /// it (a copy of the file alone is complete) and the WAL is gone. The point readers hold
    /// connections of their own; if they stayed open, the writer's close would not be the last
    /// and SQLite would leave the WAL as it was.
    #[tokio::test]
    async fn a_closed_store_leaves_no_wal_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("region.db");
        let store = SqliteStore::open(&path).await.unwrap();
        write_filler(&store, 0).await;
        assert!(
            store
                .load_secret_by_arn("arn:none")
                .await
                .unwrap()
                .is_none()
        );
        store.close().await;
        let wal = dir.path().join("region.db-wal");
        assert!(
            !wal.exists(),
            "{} bytes of WAL left after the store closed",
            std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0)
        );
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        let conn = rusqlite::Connection::open(&copy).unwrap();
        let kept: i64 = conn
            .query_row(
                "SELECT length(meta_value) FROM coffer_meta WHERE meta_key = 'filler-0'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(kept, 4096);
    }

    /// Writes 4 KiB to the store.
    async fn write_filler(store: &SqliteStore, i: usize) {
        write_filler_of(store, i, 4096).await;
    }

    /// Writes `bytes` bytes to the store.
    async fn write_filler_of(store: &SqliteStore, i: usize, bytes: usize) {
        sqlx::query("INSERT INTO coffer_meta (meta_key, meta_value) VALUES ($1, $2)")
            .bind(format!("filler-{i}"))
            .bind("x".repeat(bytes))
            .execute(&store.pools.writer)
            .await
            .unwrap();
    }

    /// Readers that overlap without pause keep SQLite from ever starting the WAL over; the
    /// checkpointer then truncates it once it passes the limit, so it stays bounded under a
    /// steady read and write load.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_overlapping_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("region.db");
        let limit = 512 * 1024;
        let store = std::sync::Arc::new(
            SqliteStore::open_with_wal_limit(&path, limit)
                .await
                .unwrap(),
        );
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..3 {
            let (store, stop) = (store.clone(), stop.clone());
            readers.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut tx = store.pools.reader.begin().await.unwrap();
                    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM coffer_meta")
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    tx.commit().await.unwrap();
                }
            }));
        }
        let mut largest = 0;
        let wal = dir.path().join("region.db-wal");
        for i in 0..1000 {
            write_filler_of(&store, i, 16 * 1024).await;
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            // A steady load (several MB/s), not a burst within one checkpoint tick.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            r.await.unwrap();
        }
        let end = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        // 16 MB written, which an unbounded WAL would hold whole. It may pass the limit by what
        // is written between two ticks, and by more while a TRUNCATE waits for the readers on a
        // loaded machine (2.3 MB seen in a full test run with 4 MB written).
        assert!(
            largest < 6 * 1024 * 1024 && end < 6 * 1024 * 1024,
            "the WAL reached {largest} bytes (now {end}) with a limit of {limit}"
        );
        store.close().await;
    }
}
