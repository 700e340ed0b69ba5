//! The embedded default: one SQLite file per store, WAL, one writer connection (SQLite allows
//! one writer anyway; a pool of one avoids `SQLITE_BUSY`), a small pool of read-only readers,
//! and `synchronous=FULL` so a commit that returned is on disk. Secret changes reach the
//! writer through [`group_commit`]: the changes of concurrent callers share one transaction and
//! one fsync.

mod group_commit;
mod sync_reads;
mod terms_memo;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};

use crate::iam_rows::{
    ACCESS_KEY_INSERT, ACCESS_KEY_INSERT_WITHIN, ACCOUNT_INSERT, USER_INSERT, access_key_from_row,
    user_from_row, user_policy_from_row,
};
use crate::rows::{
    SQLITE_LOAD_BY_ARN, SQLITE_LOAD_BY_NAME, kms_alias_from_row, kms_alias_insert,
    kms_change_statements, kms_key_from_row, kms_key_insert, kms_query, outbox_from_row,
    secret_from_row, values_list, version_from_row,
};
use crate::schema::{StoreKind, check_compatible};
use crate::{
    AccessKeyRecord, IamStore, KmsAliasRecord, KmsChange, KmsKeyRecord, OutboxEntry, OutboxRow,
    Result, Secret, SecretChange, Store, StoreError, Tag, UserPolicyRecord, UserRecord,
    VersionRecord,
};

struct Pools {
    writer: SqlitePool,
    reader: SqlitePool,
    /// One connection that checkpoints the WAL into the database file in the background.
    checkpointer: SqlitePool,
}

/// The writer connection's page cache (SQLite's `cache_size`, in KiB).
const WRITER_CACHE_KIB: u32 = 32 * 1024;

/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

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

async fn open_pools(path: &Path, kind: StoreKind) -> Result<Pools> {
    open_pools_with(path, kind, WAL_LIMIT_BYTES).await
}

async fn open_pools_with(path: &Path, kind: StoreKind, wal_limit: u64) -> Result<Pools> {
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
                // A group commit runs each change in a savepoint, and SQLite keeps a
                // savepoint's undo pages in a statement journal, a temporary file by default:
                // profiled under a CreateSecret fill, writing it was 15% of the writer's time.
                .pragma("temp_store", "memory")
                // The writer walks the secrets', versions' and search terms' indexes for
                // every change; SQLite's default 2 MiB page cache made most of those walks
                // reads from the OS.
                .pragma("cache_size", format!("-{}", WRITER_CACHE_KIB)),
        )
        .await?;
    migrate(&writer, kind, &location, applied).await?;
    let checkpointer = pool_options(1)
        .connect_with(base.clone().synchronous(SqliteSynchronous::Full))
        .await?;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    spawn_checkpointer(checkpointer.clone(), wal.into(), wal_limit);
    let reader = pool_options(4).connect_with(base.read_only(true)).await?;
    Ok(Pools {
        writer,
        reader,
        checkpointer,
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
    for (key, value) in [
        ("kind", kind.name().to_string()),
        ("format_version", migrations.len().to_string()),
    ] {
        sqlx::query(
            "INSERT INTO coffer_meta (meta_key, meta_value) VALUES ($1, $2) \
             ON CONFLICT (meta_key) DO UPDATE SET meta_value = excluded.meta_value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn tags_json(tags: &Option<Vec<Tag>>) -> Option<String> {
    tags.as_ref()
        .map(|t| serde_json::to_string(t).expect("tags serialize"))
}

const SECRET_COLUMNS: &str = "arn, account_id, name, description, kms_key_id, tags, resource_policy, \
     created_ms, last_changed_ms, last_accessed_day, deleted_ms, purge_at_ms, rotation, replication, row_version";

/// Rows per multi-row statement (each statement is one round trip to SQLite's worker thread,
/// which under a write load costs more than the statement itself).
const ROWS_PER_STATEMENT: usize = 64;

/// Inserts or updates `versions` in one statement per [`ROWS_PER_STATEMENT`].
async fn put_versions(conn: &mut sqlx::SqliteConnection, versions: &[VersionRecord]) -> Result<()> {
    for chunk in versions.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO secret_versions (secret_arn, version_id, stages, created_ms, \
             last_accessed_day, kms_key_arn, value_kind, wrapped_data_key, ciphertext) VALUES {} \
             ON CONFLICT (secret_arn, version_id) DO UPDATE SET stages = excluded.stages, \
             last_accessed_day = excluded.last_accessed_day, kms_key_arn = excluded.kms_key_arn, \
             value_kind = excluded.value_kind, wrapped_data_key = excluded.wrapped_data_key, \
             ciphertext = excluded.ciphertext",
            values_list(chunk.len(), 9)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for v in chunk {
            query = query
                .bind(&v.secret_arn)
                .bind(&v.version_id)
                .bind(serde_json::to_string(&v.stages).expect("stages serialize"))
                .bind(v.created_ms)
                .bind(v.last_accessed_day)
                .bind(&v.kms_key_arn)
                .bind(v.value_kind as i64)
                .bind(&v.wrapped_data_key)
                .bind(&v.ciphertext);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

const DETACHMENT_UPSERT: &str = "INSERT INTO replica_detachments (arn, primary_arn, epoch, detached_ms) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (arn) DO UPDATE SET \
     primary_arn = excluded.primary_arn, epoch = excluded.epoch, \
     detached_ms = excluded.detached_ms";

/// Makes `record`'s search terms the ones in `secret_terms`, unless the writer knows they
/// already are ([`terms_memo`]).
async fn sync_terms(
    tx: &mut sqlx::SqliteConnection,
    record: &crate::SecretRecord,
    memo: &mut terms_memo::TermsMemo,
) -> Result<()> {
    let fingerprint = terms_memo::fingerprint(&crate::listing::search_terms(record));
    if !memo.holds(&record.arn, fingerprint) {
        crate::listing::lite::sync(tx, record).await?;
        memo.wrote(&record.arn, Some(fingerprint));
    }
    Ok(())
}

/// The records of `changes` when every one is an [`SecretChange::Update`] that changes no
/// version, of distinct secrets (a replica's status; a delivered batch's replica statuses):
/// they are made together by [`update_records`].
fn plain_updates(changes: &[SecretChange]) -> Option<Vec<(&crate::SecretRecord, i64)>> {
    let mut records = Vec::with_capacity(changes.len());
    let mut arns = std::collections::HashSet::with_capacity(changes.len());
    for change in changes {
        let SecretChange::Update {
            secret,
            expected_row_version,
            upsert_versions,
            delete_versions,
        } = change
        else {
            return None;
        };
        if !upsert_versions.is_empty() || !delete_versions.is_empty() || !arns.insert(&secret.arn) {
            return None;
        }
        records.push((secret, *expected_row_version));
    }
    (!records.is_empty()).then_some(records)
}

/// Updates secret rows, each only at its `expected` row_version (`Conflict` when any of them
/// finds its secret gone or at another one; the caller's savepoint then undoes the others),
/// in one statement per [`ROWS_PER_STATEMENT`], and syncs their search terms.
///
/// Two of the columns that secondary indexes cover (`last_accessed_day`, `purge_at_ms`) are
/// set by a second statement, only for the rows where they change: SQLite rewrites an index
/// entry for every column an UPDATE sets, changed or not (one more page in the WAL and in the
/// next checkpoint), and they rarely change. `last_changed_ms` is set by the first statement:
/// most writes change it, and a second statement for it would cost every write a round trip to
/// SQLite's thread to save a page of the others.
async fn update_records(
    tx: &mut sqlx::SqliteConnection,
    records: &[(&crate::SecretRecord, i64)],
    memo: &mut terms_memo::TermsMemo,
) -> Result<()> {
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH changed (arn, description, kms_key_id, tags, resource_policy, last_changed_ms, \
             deleted_ms, rotation, replication, row_version, expected) AS (VALUES {}) \
             UPDATE secrets SET description = c.description, kms_key_id = c.kms_key_id, \
             tags = c.tags, resource_policy = c.resource_policy, \
             last_changed_ms = c.last_changed_ms, deleted_ms = c.deleted_ms, \
             rotation = c.rotation, replication = c.replication, row_version = c.row_version \
             FROM changed c WHERE secrets.arn = c.arn AND secrets.row_version = c.expected \
             RETURNING secrets.arn, secrets.last_accessed_day, secrets.purge_at_ms",
            values_list(chunk.len(), 11)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (secret, expected) in chunk {
            query = query
                .bind(&secret.arn)
                .bind(&secret.description)
                .bind(&secret.kms_key_id)
                .bind(tags_json(&secret.tags))
                .bind(&secret.resource_policy)
                .bind(secret.last_changed_ms)
                .bind(secret.deleted_ms)
                .bind(&secret.rotation)
                .bind(&secret.replication)
                .bind(secret.row_version)
                .bind(*expected);
        }
        let updated = query.fetch_all(&mut *tx).await?;
        if updated.len() != chunk.len() {
            return Err(StoreError::Conflict);
        }
        let mut indexed: std::collections::HashMap<String, (Option<i64>, Option<i64>)> =
            std::collections::HashMap::with_capacity(updated.len());
        for row in &updated {
            indexed.insert(
                row.try_get("arn")?,
                (
                    row.try_get("last_accessed_day")?,
                    row.try_get("purge_at_ms")?,
                ),
            );
        }
        let moved: Vec<&crate::SecretRecord> = chunk
            .iter()
            .map(|(secret, _)| *secret)
            .filter(|s| indexed.get(&s.arn) != Some(&(s.last_accessed_day, s.purge_at_ms)))
            .collect();
        if moved.is_empty() {
            continue;
        }
        let sql = format!(
            "WITH changed (arn, last_accessed_day, purge_at_ms) AS (VALUES {}) \
             UPDATE secrets SET last_accessed_day = c.last_accessed_day, \
             purge_at_ms = c.purge_at_ms FROM changed c WHERE secrets.arn = c.arn",
            values_list(moved.len(), 3)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for secret in &moved {
            query = query
                .bind(&secret.arn)
                .bind(secret.last_accessed_day)
                .bind(secret.purge_at_ms);
        }
        query.execute(&mut *tx).await?;
    }
    for (secret, _) in records {
        sync_terms(tx, secret, memo).await?;
    }
    Ok(())
}

async fn apply_change(
    tx: &mut sqlx::SqliteConnection,
    change: SecretChange,
    memo: &mut terms_memo::TermsMemo,
) -> Result<()> {
    match change {
        SecretChange::Insert { secret, versions } => {
            // The next `term_key` (migration 0007): the largest plus one, read through the
            // key's index, on the one writer.
            let sql = format!(
                "INSERT INTO secrets ({SECRET_COLUMNS}, term_key) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     (SELECT COALESCE(MAX(term_key), 0) + 1 FROM secrets))"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&secret.arn)
                .bind(&secret.account_id)
                .bind(&secret.name)
                .bind(&secret.description)
                .bind(&secret.kms_key_id)
                .bind(tags_json(&secret.tags))
                .bind(&secret.resource_policy)
                .bind(secret.created_ms)
                .bind(secret.last_changed_ms)
                .bind(secret.last_accessed_day)
                .bind(secret.deleted_ms)
                .bind(secret.purge_at_ms)
                .bind(&secret.rotation)
                .bind(&secret.replication)
                .bind(secret.row_version)
                .execute(&mut *tx)
                .await?;
            put_versions(tx, &versions).await?;
            sync_terms(tx, &secret, memo).await?;
        }
        SecretChange::Update {
            secret,
            expected_row_version,
            upsert_versions,
            delete_versions,
        } => {
            update_records(tx, &[(&secret, expected_row_version)], memo).await?;
            put_versions(tx, &upsert_versions).await?;
            for id in &delete_versions {
                sqlx::query(
                    "DELETE FROM secret_versions WHERE secret_arn = $1 AND version_id = $2",
                )
                .bind(&secret.arn)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
        }
        SecretChange::Delete {
            arn,
            expected_row_version,
        } => {
            let key: Option<Option<i64>> = sqlx::query_scalar(
                "DELETE FROM secrets WHERE arn = $1 AND row_version = $2 RETURNING term_key",
            )
            .bind(&arn)
            .bind(expected_row_version)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(key) = key else {
                return Err(StoreError::Conflict);
            };
            sqlx::query("DELETE FROM secret_versions WHERE secret_arn = $1")
                .bind(&arn)
                .execute(&mut *tx)
                .await?;
            crate::listing::lite::remove(tx, key).await?;
            memo.wrote(&arn, None);
        }
        SecretChange::RecordDetachment(d) => {
            sqlx::query(DETACHMENT_UPSERT)
                .bind(&d.arn)
                .bind(&d.primary_arn)
                .bind(d.epoch)
                .bind(d.detached_ms)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

/// Lets the next transactions on `conn` commit without their own fsync (still atomic and
/// ordered in the WAL; the next `synchronous=FULL` commit makes them durable too). Only for
/// bookkeeping that is redone if a crash loses it.
async fn relax(conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>) -> Result<()> {
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut **conn)
        .await?;
    Ok(())
}

/// Puts `conn` back to `synchronous=FULL` for acknowledged user writes; a connection that
/// cannot be put back is closed rather than reused.
async fn restore(conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>) -> Result<()> {
    if let Err(e) = sqlx::query("PRAGMA synchronous = FULL")
        .execute(&mut **conn)
        .await
    {
        conn.close_on_drop();
        return Err(e.into());
    }
    Ok(())
}

/// Removes, for each `(secret, destination, kind, up to id)`, the outbox rows of that
/// (secret, destination, kind) up to and including the id: one statement per
/// [`ROWS_PER_STATEMENT`] tuples (a delivered batch settles up to 64 secrets at once).
async fn settle_outbox(
    conn: &mut sqlx::SqliteConnection,
    settle: &[group_commit::Settle],
) -> Result<()> {
    for chunk in settle.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH settled (secret_arn, dest_region, kind, up_to_id) AS (VALUES {}) \
             DELETE FROM replication_outbox WHERE id IN (SELECT o.id FROM replication_outbox o \
             JOIN settled s ON o.secret_arn = s.secret_arn AND o.dest_region = s.dest_region \
             AND o.kind = s.kind AND o.id <= s.up_to_id)",
            values_list(chunk.len(), 4)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (arn, dest, kind, up_to_id) in chunk {
            query = query.bind(arn).bind(dest).bind(kind).bind(*up_to_id);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Queues `outbox` rows (due now) in the transaction of the change they belong to.
async fn insert_outbox(tx: &mut sqlx::SqliteConnection, outbox: &[OutboxEntry]) -> Result<()> {
    let now = now_ms();
    // One statement per chunk; ids are assigned in row order, so the queue keeps this order.
    for chunk in outbox.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO replication_outbox (secret_arn, dest_region, kind, payload, enqueued_ms, \
             attempts, next_attempt_ms) VALUES {}",
            values_list(chunk.len(), 7)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for entry in chunk {
            query = query
                .bind(&entry.secret_arn)
                .bind(&entry.dest_region)
                .bind(&entry.kind)
                .bind(&entry.payload)
                .bind(now)
                .bind(0i64)
                .bind(now);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A read's LastAccessedDate on the secret and the version read (see [`Store::record_access`])
/// for many reads, in one statement per table per [`ROWS_PER_STATEMENT`] (two reads of one
/// secret on one day write the same day); nothing happens for an unknown secret or version.
async fn record_accesses_in(
    conn: &mut sqlx::SqliteConnection,
    reads: &[(&str, &str, i64)],
) -> Result<()> {
    for chunk in reads.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH read (arn, day) AS (VALUES {}) UPDATE secrets SET last_accessed_day = r.day \
             FROM (SELECT arn, max(day) AS day FROM read GROUP BY arn) r \
             WHERE secrets.arn = r.arn",
            values_list(chunk.len(), 2)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (arn, _, day) in chunk {
            query = query.bind(*arn).bind(*day);
        }
        query.execute(&mut *conn).await?;
        let sql = format!(
            "WITH read (arn, version_id, day) AS (VALUES {}) UPDATE secret_versions \
             SET last_accessed_day = r.day FROM read r \
             WHERE secret_versions.secret_arn = r.arn AND secret_versions.version_id = r.version_id",
            values_list(chunk.len(), 3)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (arn, version, day) in chunk {
            query = query.bind(*arn).bind(*version).bind(*day);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// [`Store::retry_outbox`] inside the writer's transaction.
async fn retry_in(conn: &mut sqlx::SqliteConnection, r: &group_commit::Retry) -> Result<()> {
    sqlx::query(
        "UPDATE replication_outbox SET attempts = $1, next_attempt_ms = $2, first_failure_ms = $3, \
         lease_owner = NULL, lease_until_ms = NULL WHERE id = $4 OR (id < $4 AND \
         (secret_arn, dest_region, kind) = (SELECT secret_arn, dest_region, kind \
          FROM replication_outbox WHERE id = $4))",
    )
    .bind(r.attempts)
    .bind(r.next_attempt_ms)
    .bind(r.first_failure_ms)
    .bind(r.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn claim_in(
    conn: &mut sqlx::SqliteConnection,
    now_ms: i64,
    owner: &str,
    lease_ms: i64,
    limit: i64,
    dest_region: Option<&str>,
) -> Result<Vec<OutboxRow>> {
    // A node may take back its own leases: after a crash and restart (same node id) it
    // resumes at once instead of waiting for the lease to expire. A row waits while an older
    // row of the same (secret, destination) waits out a backoff, so one secret's messages to
    // a Region never overtake each other (a sync must not reach a Region before the removal
    // queued ahead of it). A rotation row is a schedule, not a message: it neither waits nor
    // holds anything back. One statement for the whole claim (the selection and the leases
    // are one atomic step on the one writer; one round trip, however many rows).
    //
    // The rows are walked in the order they are due (`next_attempt_ms`, then id), through the
    // destination's index: the walk stops after `limit` rows and never visits a row waiting out
    // a backoff, so a claim costs the rows it takes, not the queue. (Walking in id order had to
    // read every row of every destination: with a Region down for a while, each claim of every
    // healthy lane read the dead Region's whole backlog, on the writer that every write shares.)
    // Taking rows by due time must not let a row overtake an older one of its secret that is
    // due later: such a row waits too (the older one is taken first, or by a later claim).
    let walk = match dest_region {
        Some(_) => {
            "replication_outbox o INDEXED BY replication_outbox_by_destination \
                    WHERE o.dest_region = $4 AND"
        }
        None => "replication_outbox o INDEXED BY replication_outbox_due WHERE",
    };
    let sql = format!(
        "UPDATE replication_outbox SET lease_owner = $3, lease_until_ms = $5 WHERE id IN \
         (SELECT o.id FROM {walk} o.next_attempt_ms <= $1 \
         AND (o.lease_until_ms IS NULL OR o.lease_until_ms < $1 OR o.lease_owner = $3) \
         AND NOT EXISTS (SELECT 1 FROM replication_outbox w INDEXED BY replication_outbox_by_secret \
             WHERE w.secret_arn = o.secret_arn AND w.dest_region = o.dest_region AND w.id < o.id \
             AND w.kind <> 'rotate' \
             AND (w.next_attempt_ms > $1 OR w.next_attempt_ms > o.next_attempt_ms)) \
         ORDER BY o.next_attempt_ms, o.id LIMIT $2) RETURNING *"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now_ms)
        .bind(limit)
        .bind(owner)
        .bind(dest_region)
        .bind(now_ms + lease_ms)
        .fetch_all(conn)
        .await?;
    let mut claimed = rows
        .iter()
        .map(outbox_from_row)
        .collect::<Result<Vec<_>>>()?;
    // RETURNING has no order.
    claimed.sort_by_key(|row| row.id);
    Ok(claimed)
}

pub struct SqliteStore {
    pools: Pools,
    /// The one door of secret changes to `pools.writer` (see [`group_commit`]).
    writer: group_commit::GroupCommitter,
    /// Reads of one secret, on the calling thread (see [`sync_reads`]).
    point_reads: Arc<sync_reads::SyncReaders>,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) a Region's store file.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        SqliteStore::on(path, open_pools(path, StoreKind::Region).await?)
    }

    /// The store of the Region file `path`, whose `pools` are open.
    fn on(path: &Path, pools: Pools) -> Result<SqliteStore> {
        let writer = group_commit::GroupCommitter::spawn(pools.writer.clone());
        let point_reads = Arc::new(sync_reads::SyncReaders::open(path)?);
        Ok(SqliteStore {
            pools,
            writer,
            point_reads,
        })
    }

    /// `(transactions, changes)` the writer committed (or refused inside a transaction) since
    /// the store opened: their ratio is the mean number of changes per fsync.
    pub fn commit_counts(&self) -> (u64, u64) {
        self.writer.counts()
    }

    #[cfg(test)]
    async fn open_with_wal_limit(path: &Path, wal_limit: u64) -> Result<SqliteStore> {
        SqliteStore::on(
            path,
            open_pools_with(path, StoreKind::Region, wal_limit).await?,
        )
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn load_secret_by_name(&self, account_id: &str, name: &str) -> Result<Option<Secret>> {
        self.point_reads
            .load(SQLITE_LOAD_BY_NAME, &[account_id, name])
    }

    async fn load_secret_by_arn(&self, arn: &str) -> Result<Option<Secret>> {
        self.point_reads.load(SQLITE_LOAD_BY_ARN, &[arn])
    }

    async fn record_heads(&self, heads: &[crate::ReplicaHead]) -> Result<()> {
        Ok(crate::failover_rows::sqlite::record_heads(&self.pools.writer, heads).await?)
    }

    async fn replica_heads(&self) -> Result<Vec<crate::ReplicaHead>> {
        Ok(crate::failover_rows::sqlite::replica_heads(&self.pools.reader).await?)
    }

    async fn delete_heads(&self, arns: &[String]) -> Result<()> {
        Ok(crate::failover_rows::sqlite::delete_heads(&self.pools.writer, arns).await?)
    }

    async fn replica_states(&self) -> Result<Vec<(String, String)>> {
        Ok(crate::failover_rows::sqlite::replica_states(&self.pools.reader).await?)
    }

    async fn save_document(&self, key: &str, body: &str, now_ms: i64) -> Result<()> {
        Ok(
            crate::failover_rows::sqlite::save_document(&self.pools.writer, key, body, now_ms)
                .await?,
        )
    }

    async fn load_documents(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        Ok(crate::failover_rows::sqlite::load_documents(&self.pools.reader, prefix).await?)
    }

    async fn load_detachment(&self, arn: &str) -> Result<Option<crate::Detachment>> {
        let row = sqlx::query("SELECT * FROM replica_detachments WHERE arn = $1")
            .bind(arn)
            .fetch_optional(&self.pools.reader)
            .await?;
        Ok(row
            .as_ref()
            .map(crate::rows::detachment_from_row)
            .transpose()?)
    }

    async fn list_secrets(&self, account_id: &str) -> Result<Vec<Secret>> {
        let rows =
            sqlx::query("SELECT * FROM secrets WHERE account_id = $1 ORDER BY created_ms, arn")
                .bind(account_id)
                .fetch_all(&self.pools.reader)
                .await?;
        let version_rows = sqlx::query(
            "SELECT v.* FROM secret_versions v JOIN secrets s ON s.arn = v.secret_arn \
             WHERE s.account_id = $1 ORDER BY v.created_ms, v.version_id",
        )
        .bind(account_id)
        .fetch_all(&self.pools.reader)
        .await?;
        let mut by_arn: std::collections::HashMap<String, Vec<VersionRecord>> =
            std::collections::HashMap::new();
        for row in &version_rows {
            let v = version_from_row(row)?;
            by_arn.entry(v.secret_arn.clone()).or_default().push(v);
        }
        rows.iter()
            .map(|row| {
                let record = secret_from_row(row)?;
                let versions = by_arn.remove(&record.arn).unwrap_or_default();
                Ok(Secret { record, versions })
            })
            .collect()
    }

    async fn list_page(&self, query: &crate::ListQuery<'_>) -> Result<crate::ListPage> {
        // On a blocking thread: a page takes SQLite milliseconds, which would hold up the
        // requests sharing a runtime thread.
        let readers = Arc::clone(&self.point_reads);
        let account_id = query.account_id.to_string();
        let filters = query.filters.to_vec();
        let after = query.after.cloned();
        let (include_planned_deletion, sort, descending, limit) = (
            query.include_planned_deletion,
            query.sort,
            query.descending,
            query.limit,
        );
        tokio::task::spawn_blocking(move || {
            readers.page(&crate::ListQuery {
                account_id: &account_id,
                filters: &filters,
                include_planned_deletion,
                sort,
                descending,
                after: after.as_ref(),
                limit,
            })
        })
        .await
        .map_err(|e| StoreError::Backend(format!("a listing's reader stopped: {e}")))?
    }

    async fn commit_with(
        &self,
        changes: Vec<SecretChange>,
        outbox: Vec<OutboxEntry>,
    ) -> Result<()> {
        self.writer
            .commit(group_commit::Job {
                changes,
                outbox,
                durable: true,
                ..Default::default()
            })
            .await
    }

    async fn claim_outbox_to(
        &self,
        now_ms: i64,
        owner: &str,
        lease_ms: i64,
        limit: i64,
        dest_region: Option<&str>,
    ) -> Result<Vec<OutboxRow>> {
        // Without its own fsync: a lease lost in a crash only means the row is claimed again.
        self.writer
            .run(group_commit::Job {
                claim: Some(group_commit::Claim {
                    now_ms,
                    owner: owner.to_string(),
                    lease_ms,
                    limit,
                    dest_region: dest_region.map(str::to_string),
                }),
                durable: false,
                ..Default::default()
            })
            .await
    }

    async fn finish_outbox(
        &self,
        secret_arn: &str,
        dest_region: &str,
        kind: &str,
        up_to_id: i64,
    ) -> Result<()> {
        self.writer
            .commit(group_commit::Job {
                settle: vec![(
                    secret_arn.to_string(),
                    dest_region.to_string(),
                    kind.to_string(),
                    up_to_id,
                )],
                durable: true,
                ..Default::default()
            })
            .await
    }

    async fn commit_and_finish(
        &self,
        changes: Vec<SecretChange>,
        finish: &[(&str, &str, &str, i64)],
    ) -> Result<()> {
        // This is delivery bookkeeping (a replica's status, settled outbox rows): if a crash
        // loses it, the rows are delivered again and the status recorded again (delivery is
        // idempotent). So it needs no fsync of its own (`synchronous=NORMAL`, still atomic and
        // ordered in the WAL); the next user write's fsync makes it durable too. This halves
        // the fsyncs of a primary under replicated writes.
        self.writer
            .commit(group_commit::Job {
                changes,
                settle: finish
                    .iter()
                    .map(|f| (f.0.to_string(), f.1.to_string(), f.2.to_string(), f.3))
                    .collect(),
                durable: false,
                ..Default::default()
            })
            .await
    }

    async fn retry_outbox(
        &self,
        id: i64,
        attempts: i64,
        next_attempt_ms: i64,
        first_failure_ms: Option<i64>,
    ) -> Result<()> {
        // Without its own fsync, like a claim: a retry schedule lost in a crash only means the
        // row is attempted again sooner. Under an outage every failed delivery writes one, so it
        // is a job of the group commit: the retries of a failed batch share one transaction
        // with each other and with the writes (each used to take the writer connection for a
        // transaction of its own, holding every other Region's deliveries and writes up).
        self.writer
            .commit(group_commit::Job {
                retry: Some(group_commit::Retry {
                    id,
                    attempts,
                    next_attempt_ms,
                    first_failure_ms,
                }),
                durable: false,
                ..Default::default()
            })
            .await
    }

    async fn outbox_depth(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT dest_region, COUNT(*) AS n FROM replication_outbox GROUP BY dest_region ORDER BY dest_region",
        )
        .fetch_all(&self.pools.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("dest_region")?, r.try_get("n")?)))
            .collect()
    }

    async fn replication_depth(&self, source: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(crate::rows::REPLICATION_DEPTH)
            .bind(source)
            .fetch_all(&self.pools.reader)
            .await?;
        let mut depths = rows
            .iter()
            .map(|r| Ok((r.try_get("dest_region")?, r.try_get("n")?)))
            .collect::<Result<Vec<(String, i64)>>>()?;
        depths.sort();
        Ok(depths)
    }

    async fn record_access(&self, arn: &str, version_id: &str, day: i64) -> Result<()> {
        // Without its own fsync, like a claim: the first read of a secret each day writes its
        // LastAccessedDate, so reads spread over many secrets were one fsync each (measured:
        // 558 random GetSecretValue/s over 100,000 secrets against 17,000/s of one secret).
        // A job of the group commit: concurrent first reads share one transaction.
        self.record_accesses(
            &[(arn.to_string(), version_id.to_string(), day)],
            Vec::new(),
        )
        .await
    }

    async fn record_accesses(
        &self,
        reads: &[crate::AccessRead],
        tell: Vec<OutboxEntry>,
    ) -> Result<()> {
        if reads.is_empty() && tell.is_empty() {
            return Ok(());
        }
        self.writer
            .commit(group_commit::Job {
                access: reads.to_vec(),
                outbox: tell,
                durable: false,
                ..Default::default()
            })
            .await
    }

    async fn secrets_due_for_purge(&self, now_ms: i64, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT arn FROM secrets WHERE purge_at_ms IS NOT NULL AND purge_at_ms <= $1 \
             ORDER BY purge_at_ms, arn LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pools.reader)
        .await?)
    }

    async fn load_kms_key(&self, key_arn: &str) -> Result<Option<KmsKeyRecord>> {
        let row = sqlx::query("SELECT * FROM kms_keys WHERE key_arn = $1")
            .bind(key_arn)
            .fetch_optional(&self.pools.reader)
            .await?;
        row.map(|row| {
            Ok(KmsKeyRecord {
                key_arn: row.try_get("key_arn")?,
                account_id: row.try_get("account_id")?,
                key_id: row.try_get("key_id")?,
                wrapped_material: row.try_get("wrapped_material")?,
                metadata: row.try_get("metadata")?,
                created_ms: row.try_get("created_ms")?,
            })
        })
        .transpose()
    }

    async fn load_kms_alias(
        &self,
        account_id: &str,
        alias_name: &str,
    ) -> Result<Option<KmsAliasRecord>> {
        let row =
            sqlx::query("SELECT * FROM kms_aliases WHERE account_id = $1 AND alias_name = $2")
                .bind(account_id)
                .bind(alias_name)
                .fetch_optional(&self.pools.reader)
                .await?;
        row.map(|row| {
            Ok(KmsAliasRecord {
                account_id: row.try_get("account_id")?,
                alias_name: row.try_get("alias_name")?,
                target_key_arn: row.try_get("target_key_arn")?,
                created_ms: row.try_get("created_ms")?,
            })
        })
        .transpose()
    }

    async fn create_kms_key(&self, key: KmsKeyRecord, alias: Option<KmsAliasRecord>) -> Result<()> {
        let mut tx = self.pools.writer.begin().await?;
        kms_query!(kms_key_insert(&key)).execute(&mut *tx).await?;
        if let Some(alias) = alias {
            kms_query!(kms_alias_insert(&alias))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_kms_keys(&self, account_id: Option<&str>) -> Result<Vec<KmsKeyRecord>> {
        let rows = match account_id {
            Some(account) => {
                sqlx::query(
                    "SELECT * FROM kms_keys WHERE account_id = $1 ORDER BY created_ms, key_arn",
                )
                .bind(account)
                .fetch_all(&self.pools.reader)
                .await?
            }
            None => {
                sqlx::query("SELECT * FROM kms_keys ORDER BY created_ms, key_arn")
                    .fetch_all(&self.pools.reader)
                    .await?
            }
        };
        rows.iter().map(kms_key_from_row).collect()
    }

    async fn list_kms_aliases(&self, account_id: &str) -> Result<Vec<KmsAliasRecord>> {
        sqlx::query("SELECT * FROM kms_aliases WHERE account_id = $1 ORDER BY alias_name")
            .bind(account_id)
            .fetch_all(&self.pools.reader)
            .await?
            .iter()
            .map(kms_alias_from_row)
            .collect()
    }

    async fn commit_kms_with(&self, change: KmsChange, outbox: Vec<OutboxEntry>) -> Result<()> {
        let mut tx = self.pools.writer.begin().await?;
        for (i, statement) in kms_change_statements(&change).into_iter().enumerate() {
            let done = kms_query!(statement).execute(&mut *tx).await?;
            if i == 0 && done.rows_affected() == 0 {
                return Err(StoreError::Conflict);
            }
        }
        insert_outbox(&mut tx, &outbox).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn close(&self) {
        // The point readers first: the writer's connection, closed last, then finds itself
        // the only one and folds the WAL into the database file.
        self.point_reads.close();
        self.pools.reader.close().await;
        self.pools.writer.close().await;
        self.pools.checkpointer.close().await;
    }
}

pub struct SqliteIamStore {
    pools: Pools,
}

impl SqliteIamStore {
    pub async fn open(path: &Path) -> Result<SqliteIamStore> {
        Ok(SqliteIamStore {
            pools: open_pools(path, StoreKind::Iam).await?,
        })
    }
}

/// The statement inserting `user` ([`USER_INSERT`]), bound.
fn insert_user(
    user: &UserRecord,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(USER_INSERT)
        .bind(&user.user_arn)
        .bind(&user.account_id)
        .bind(&user.user_name)
        .bind(&user.user_id)
        .bind(user.is_admin as i64)
        .bind(user.created_ms)
}

/// `sql` ([`ACCESS_KEY_INSERT`] or [`ACCESS_KEY_INSERT_WITHIN`]) with `key`'s six columns bound.
fn insert_access_key<'q>(
    sql: &'static str,
    key: &'q AccessKeyRecord,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(sql)
        .bind(&key.access_key_id)
        .bind(&key.user_arn)
        .bind(&key.account_id)
        .bind(&key.wrapped_secret)
        .bind(&key.status)
        .bind(key.created_ms)
}

/// The accounts, oldest first.
const ACCOUNTS: &str = "SELECT account_id FROM accounts ORDER BY created_ms";

#[async_trait]
impl IamStore for SqliteIamStore {
    async fn accounts(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(ACCOUNTS)
            .fetch_all(&self.pools.reader)
            .await?)
    }

    async fn create_account(&self, account_id: &str, now_ms: i64) -> Result<()> {
        sqlx::query(ACCOUNT_INSERT)
            .bind(account_id)
            .bind(now_ms)
            .execute(&self.pools.writer)
            .await?;
        Ok(())
    }

    async fn bootstrap_account(
        &self,
        now_ms: i64,
        admin: UserRecord,
        key: AccessKeyRecord,
    ) -> Result<String> {
        // The one writer connection: the look and the inserts cannot interleave with another.
        let mut tx = self.pools.writer.begin().await?;
        let first = sqlx::query_scalar::<_, String>(ACCOUNTS)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(existing) = first {
            return Ok(existing);
        }
        sqlx::query(ACCOUNT_INSERT)
            .bind(&admin.account_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        insert_user(&admin).execute(&mut *tx).await?;
        insert_access_key(ACCESS_KEY_INSERT, &key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(admin.account_id)
    }

    async fn create_user(&self, user: UserRecord) -> Result<()> {
        insert_user(&user).execute(&self.pools.writer).await?;
        Ok(())
    }

    async fn create_access_key(&self, key: AccessKeyRecord) -> Result<()> {
        insert_access_key(ACCESS_KEY_INSERT, &key)
            .execute(&self.pools.writer)
            .await?;
        Ok(())
    }

    async fn create_access_key_within(
        &self,
        key: AccessKeyRecord,
        max_per_user: i64,
    ) -> Result<bool> {
        // One statement on the one writer connection: the count cannot change under it.
        let done = insert_access_key(ACCESS_KEY_INSERT_WITHIN, &key)
            .bind(max_per_user)
            .execute(&self.pools.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY created_ms")
            .fetch_all(&self.pools.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(UserRecord {
                    user_arn: row.try_get("user_arn")?,
                    account_id: row.try_get("account_id")?,
                    user_name: row.try_get("user_name")?,
                    user_id: row.try_get("user_id")?,
                    is_admin: row.try_get::<i64, _>("is_admin")? != 0,
                    created_ms: row.try_get("created_ms")?,
                })
            })
            .collect()
    }

    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM access_keys ORDER BY created_ms")
            .fetch_all(&self.pools.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AccessKeyRecord {
                    access_key_id: row.try_get("access_key_id")?,
                    user_arn: row.try_get("user_arn")?,
                    account_id: row.try_get("account_id")?,
                    wrapped_secret: row.try_get("wrapped_secret")?,
                    status: row.try_get("status")?,
                    created_ms: row.try_get("created_ms")?,
                })
            })
            .collect()
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        sqlx::query("SELECT * FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .fetch_optional(&self.pools.reader)
            .await?
            .as_ref()
            .map(access_key_from_row)
            .transpose()
    }

    async fn user(&self, user_arn: &str) -> Result<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE user_arn = $1")
            .bind(user_arn)
            .fetch_optional(&self.pools.reader)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn user_access_keys(&self, user_arn: &str) -> Result<Vec<AccessKeyRecord>> {
        sqlx::query(
            "SELECT * FROM access_keys WHERE user_arn = $1 ORDER BY created_ms, access_key_id",
        )
        .bind(user_arn)
        .fetch_all(&self.pools.reader)
        .await?
        .iter()
        .map(access_key_from_row)
        .collect()
    }

    async fn set_access_key_status(&self, access_key_id: &str, status: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE access_keys SET status = $1 WHERE access_key_id = $2")
            .bind(status)
            .bind(access_key_id)
            .execute(&self.pools.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .execute(&self.pools.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_user(&self, user_arn: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE user_arn = $1")
            .bind(user_arn)
            .execute(&self.pools.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_user_policy(&self, policy: UserPolicyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_policies (user_arn, policy_name, document, updated_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_arn, policy_name) \
             DO UPDATE SET document = excluded.document, updated_ms = excluded.updated_ms",
        )
        .bind(&policy.user_arn)
        .bind(&policy.policy_name)
        .bind(&policy.document)
        .bind(policy.updated_ms)
        .execute(&self.pools.writer)
        .await?;
        Ok(())
    }

    async fn delete_user_policy(&self, user_arn: &str, policy_name: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM user_policies WHERE user_arn = $1 AND policy_name = $2")
                .bind(user_arn)
                .bind(policy_name)
                .execute(&self.pools.writer)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn user_policies(&self, user_arn: &str) -> Result<Vec<UserPolicyRecord>> {
        sqlx::query("SELECT * FROM user_policies WHERE user_arn = $1 ORDER BY policy_name")
            .bind(user_arn)
            .fetch_all(&self.pools.reader)
            .await?
            .iter()
            .map(user_policy_from_row)
            .collect()
    }

    async fn user_tags(&self, user_arn: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT tags FROM users WHERE user_arn = $1")
            .bind(user_arn)
            .fetch_optional(&self.pools.reader)
            .await?;
        row.map(|r| r.try_get::<String, _>("tags").map_err(Into::into))
            .transpose()
    }

    async fn replace_user_tags(&self, user_arn: &str, old: &str, new: &str) -> Result<bool> {
        let done = sqlx::query(crate::iam_rows::USER_TAGS_REPLACE)
            .bind(new)
            .bind(user_arn)
            .bind(old)
            .execute(&self.pools.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn close(&self) {
        self.pools.reader.close().await;
        self.pools.writer.close().await;
        self.pools.checkpointer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        sqlx::query("INSERT INTO coffer_meta (meta_key, meta_value) VALUES ($1, $2)")
            .bind(format!("filler-{i}"))
            .bind("x".repeat(4096))
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
            write_filler(&store, i).await;
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            // A steady load (about 4 MB/s), not a burst within one checkpoint tick.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            r.await.unwrap();
        }
        let end = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        // 4 MB written; the WAL may pass the limit by what is written between two ticks.
        assert!(
            largest < 2 * 1024 * 1024 && end < 2 * 1024 * 1024,
            "the WAL reached {largest} bytes (now {end}) with a limit of {limit}"
        );
        store.close().await;
    }
}
