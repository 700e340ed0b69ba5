//! What the one writer runs inside a group commit's transaction ([`super::group_commit`]):
//! secret changes, outbox rows (queued, settled, claimed, released for a retry) and reads'
//! LastAccessedDate, many rows per statement. The statements' texts are `crate::writes`'s.

use sqlx::Row;

use super::{group_commit, terms_memo};
use crate::rows::{outbox_from_row, values_list};
use crate::writes::{
    OUTBOX_RETRY, SECRET_DELETE, SQLITE_ACCESS_SECRETS, SQLITE_ACCESS_VERSIONS,
    SQLITE_OUTBOX_INSERT, SQLITE_OUTBOX_SETTLE, SQLITE_SECRET_INSERT, SQLITE_SECRETS_MOVE,
    SQLITE_SECRETS_UPDATE, SQLITE_VERSIONS_UPSERT, VERSION_DELETE, VERSIONS_DELETE,
    bind_detachment, bind_outbox_entry, bind_secret, bind_version, now_ms, tags_json,
};
use crate::{OutboxEntry, OutboxRow, Result, SecretChange, StoreError, VersionRecord};

/// Rows per multi-row statement (each statement is one round trip to SQLite's worker thread,
/// which under a write load costs more than the statement itself).
const ROWS_PER_STATEMENT: usize = 64;

/// Inserts or updates `versions` in one statement per [`ROWS_PER_STATEMENT`].
async fn put_versions(conn: &mut sqlx::SqliteConnection, versions: &[VersionRecord]) -> Result<()> {
    for chunk in versions.chunks(ROWS_PER_STATEMENT) {
        let (head, tail) = SQLITE_VERSIONS_UPSERT;
        let sql = format!("{head}{}{tail}", values_list(chunk.len(), 9));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for v in chunk {
            query = bind_version!(query, bind, v);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

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
pub(super) fn plain_updates(changes: &[SecretChange]) -> Option<Vec<(&crate::SecretRecord, i64)>> {
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
pub(super) async fn update_records(
    tx: &mut sqlx::SqliteConnection,
    records: &[(&crate::SecretRecord, i64)],
    memo: &mut terms_memo::TermsMemo,
) -> Result<()> {
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let (head, tail) = SQLITE_SECRETS_UPDATE;
        let sql = format!("{head}{}{tail}", values_list(chunk.len(), 11));
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
        let (head, tail) = SQLITE_SECRETS_MOVE;
        let sql = format!("{head}{}{tail}", values_list(moved.len(), 3));
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

pub(super) async fn apply_change(
    tx: &mut sqlx::SqliteConnection,
    change: SecretChange,
    memo: &mut terms_memo::TermsMemo,
) -> Result<()> {
    match change {
        SecretChange::Insert { secret, versions } => {
            bind_secret!(sqlx::query(SQLITE_SECRET_INSERT), bind, &secret)
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
                sqlx::query(VERSION_DELETE)
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
            let key: Option<Option<i64>> = sqlx::query_scalar(SECRET_DELETE)
                .bind(&arn)
                .bind(expected_row_version)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(key) = key else {
                return Err(StoreError::Conflict);
            };
            sqlx::query(VERSIONS_DELETE)
                .bind(&arn)
                .execute(&mut *tx)
                .await?;
            crate::listing::lite::remove(tx, key).await?;
            memo.wrote(&arn, None);
        }
        SecretChange::RecordDetachment(d) => {
            bind_detachment!(sqlx::query(crate::writes::DETACHMENT_UPSERT), &d)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

/// Lets the next transactions on `conn` commit without their own fsync (still atomic and
/// ordered in the WAL; the next `synchronous=FULL` commit makes them durable too). Only for
/// bookkeeping that is redone if a crash loses it.
pub(super) async fn relax(conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>) -> Result<()> {
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut **conn)
        .await?;
    Ok(())
}

/// Puts `conn` back to `synchronous=FULL` for acknowledged user writes; a connection that
/// cannot be put back is closed rather than reused.
pub(super) async fn restore(conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>) -> Result<()> {
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
pub(super) async fn settle_outbox(
    conn: &mut sqlx::SqliteConnection,
    settle: &[group_commit::Settle],
) -> Result<()> {
    for chunk in settle.chunks(ROWS_PER_STATEMENT) {
        let (head, tail) = SQLITE_OUTBOX_SETTLE;
        let sql = format!("{head}{}{tail}", values_list(chunk.len(), 4));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (arn, dest, kind, up_to_id) in chunk {
            query = query.bind(arn).bind(dest).bind(kind).bind(*up_to_id);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Queues `outbox` rows (due now) in the transaction of the change they belong to.
pub(super) async fn insert_outbox(
    tx: &mut sqlx::SqliteConnection,
    outbox: &[OutboxEntry],
) -> Result<()> {
    let now = now_ms();
    // One statement per chunk; ids are assigned in row order, so the queue keeps this order.
    for chunk in outbox.chunks(ROWS_PER_STATEMENT) {
        let sql = format!("{SQLITE_OUTBOX_INSERT}{}", values_list(chunk.len(), 7));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for entry in chunk {
            query = bind_outbox_entry!(query, entry)
                .bind(now)
                .bind(0i64)
                .bind(now);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// A read's LastAccessedDate on the secret and the version read (see [`Store::record_access`])
/// for many reads, in one statement per table per [`ROWS_PER_STATEMENT`] (two reads of one
/// secret on one day write the same day); nothing happens for an unknown secret or version.
pub(super) async fn record_accesses_in(
    conn: &mut sqlx::SqliteConnection,
    reads: &[(&str, &str, i64)],
) -> Result<()> {
    for chunk in reads.chunks(ROWS_PER_STATEMENT) {
        let (head, tail) = SQLITE_ACCESS_SECRETS;
        let sql = format!("{head}{}{tail}", values_list(chunk.len(), 2));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (arn, _, day) in chunk {
            query = query.bind(*arn).bind(*day);
        }
        query.execute(&mut *conn).await?;
        let (head, tail) = SQLITE_ACCESS_VERSIONS;
        let sql = format!("{head}{}{tail}", values_list(chunk.len(), 3));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (arn, version, day) in chunk {
            query = query.bind(*arn).bind(*version).bind(*day);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// [`Store::retry_outbox`] inside the writer's transaction.
pub(super) async fn retry_in(
    conn: &mut sqlx::SqliteConnection,
    r: &group_commit::Retry,
) -> Result<()> {
    sqlx::query(OUTBOX_RETRY)
        .bind(r.attempts)
        .bind(r.next_attempt_ms)
        .bind(r.first_failure_ms)
        .bind(r.id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn claim_in(
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
