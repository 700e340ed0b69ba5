//! What the one writer runs inside a group commit's transaction ([`super::group_commit`]):
//! secret changes, outbox rows (queued, settled, claimed, released for a retry) and reads'
//! LastAccessedDate, many rows per statement. The statements' texts are `crate::writes`'s.
//!
//! The writer owns its connection on a thread of its own and runs these through rusqlite, on
//! that thread: no hand-off per statement (see [`super::group_commit`]).

use rusqlite::{Connection, ToSql};

use super::sync_reads::{SyncRow, rows_with};
use super::{group_commit, terms_memo};
use crate::rows::{RecordRow, outbox_from_row, values_list};
use crate::writes::{
    OUTBOX_RETRY, SECRET_DELETE, SQLITE_ACCESS_SECRETS, SQLITE_ACCESS_VERSIONS,
    SQLITE_OUTBOX_INSERT, SQLITE_OUTBOX_SETTLE, SQLITE_SECRET_INSERT, SQLITE_SECRETS_MOVE,
    SQLITE_SECRETS_UPDATE, SQLITE_VERSIONS_UPSERT, VERSION_DELETE, VERSIONS_DELETE,
    bind_detachment, bind_outbox_entry, bind_secret, bind_version, now_ms, tags_json,
};
use crate::{OutboxEntry, OutboxRow, Result, SecretChange, StoreError, VersionRecord};

/// The values of a statement's `$1`, `$2`, ..., in order: built with the same `bind` chains
/// (`crate::writes`'s `bind_*!` macros) as sqlx's queries.
#[derive(Default)]
pub(super) struct Binds<'a>(Vec<Box<dyn ToSql + 'a>>);

impl<'a> Binds<'a> {
    pub(super) fn new() -> Binds<'a> {
        Binds(Vec::new())
    }

    pub(super) fn bind(mut self, value: impl ToSql + 'a) -> Binds<'a> {
        self.0.push(Box::new(value));
        self
    }
}

impl Binds<'_> {
    fn values(&self) -> impl Iterator<Item = &dyn ToSql> {
        self.0.iter().map(|b| b.as_ref() as &dyn ToSql)
    }
}

/// Runs `sql`, which returns no rows; the number of rows it changed.
pub(super) fn execute(conn: &Connection, sql: &str, binds: Binds<'_>) -> Result<usize> {
    let mut statement = conn.prepare_cached(sql)?;
    super::sync_reads::bind(&mut statement, binds.values())?;
    Ok(statement.raw_execute()?)
}

/// The rows of `sql`, each mapped by `map`.
pub(super) fn query<T>(
    conn: &Connection,
    sql: &str,
    binds: Binds<'_>,
    map: impl FnMut(&SyncRow<'_, '_>) -> Result<T>,
) -> Result<Vec<T>> {
    rows_with(conn, sql, binds.values(), map)
}

/// Rows per multi-row statement (through sqlx each statement was a round trip to SQLite's
/// worker thread, which under a write load cost more than the statement itself; one statement
/// of many rows is still cheaper than many statements).
const ROWS_PER_STATEMENT: usize = 64;

/// Inserts or updates `versions` in one statement per [`ROWS_PER_STATEMENT`].
fn put_versions(conn: &Connection, versions: &[VersionRecord]) -> Result<()> {
    for chunk in versions.chunks(ROWS_PER_STATEMENT) {
        let (head, tail) = SQLITE_VERSIONS_UPSERT;
        let sql = format!("{head}{}{tail}", values_list(chunk.len(), 9));
        let mut binds = Binds::new();
        for v in chunk {
            binds = bind_version!(binds, bind, v);
        }
        execute(conn, &sql, binds)?;
    }
    Ok(())
}

/// Makes `record`'s search terms the ones in `secret_terms`, unless the writer knows they
/// already are ([`terms_memo`]): deletes the ones it no longer has and inserts the new ones
/// (`crate::listing`'s statements, which PostgreSQL runs through sqlx).
fn sync_terms(
    conn: &Connection,
    record: &crate::SecretRecord,
    memo: &mut terms_memo::TermsMemo,
) -> Result<()> {
    let want = crate::listing::search_terms(record);
    let fingerprint = terms_memo::fingerprint(&want);
    if memo.holds(&record.arn, fingerprint) {
        return Ok(());
    }
    let have: std::collections::BTreeSet<(String, String)> = query(
        conn,
        crate::listing::TERMS_OF_SECRET,
        Binds::new().bind(&record.arn),
        |row| Ok((row.text("kind")?, row.text("term")?)),
    )?
    .into_iter()
    .collect();
    let (stale, new) = crate::listing::terms_change(&want, &have);
    for chunk in stale.chunks(crate::listing::TERMS_PER_STATEMENT) {
        let mut binds = Binds::new();
        for (kind, term) in chunk {
            binds = binds.bind(kind).bind(term);
        }
        let sql = crate::listing::terms_delete_sql(chunk.len());
        execute(conn, &sql, binds.bind(&record.arn))?;
    }
    for chunk in new.chunks(crate::listing::TERMS_PER_STATEMENT) {
        let mut binds = Binds::new();
        for (kind, term) in chunk {
            binds = binds.bind(*kind).bind(term);
        }
        let sql = crate::listing::terms_insert_sql(chunk.len());
        execute(conn, &sql, binds.bind(&record.arn))?;
    }
    memo.wrote(&record.arn, Some(fingerprint));
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
/// next checkpoint), and they rarely change.
pub(super) fn update_records(
    conn: &Connection,
    records: &[(&crate::SecretRecord, i64)],
    memo: &mut terms_memo::TermsMemo,
) -> Result<()> {
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let (head, tail) = SQLITE_SECRETS_UPDATE;
        let sql = format!("{head}{}{tail}", values_list(chunk.len(), 11));
        let mut binds = Binds::new();
        for (secret, expected) in chunk {
            binds = binds
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
        let updated = query(conn, &sql, binds, |row| {
            Ok((
                row.text("arn")?,
                (
                    row.opt_int("last_accessed_day")?,
                    row.opt_int("purge_at_ms")?,
                ),
            ))
        })?;
        if updated.len() != chunk.len() {
            return Err(StoreError::Conflict);
        }
        let indexed: std::collections::HashMap<String, (Option<i64>, Option<i64>)> =
            updated.into_iter().collect();
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
        let mut binds = Binds::new();
        for secret in &moved {
            binds = binds
                .bind(&secret.arn)
                .bind(secret.last_accessed_day)
                .bind(secret.purge_at_ms);
        }
        execute(conn, &sql, binds)?;
    }
    for (secret, _) in records {
        sync_terms(conn, secret, memo)?;
    }
    Ok(())
}

pub(super) fn apply_change(
    conn: &Connection,
    change: SecretChange,
    memo: &mut terms_memo::TermsMemo,
) -> Result<()> {
    match change {
        SecretChange::Insert { secret, versions } => {
            execute(
                conn,
                SQLITE_SECRET_INSERT,
                bind_secret!(Binds::new(), bind, &secret),
            )?;
            put_versions(conn, &versions)?;
            sync_terms(conn, &secret, memo)?;
        }
        SecretChange::Update {
            secret,
            expected_row_version,
            upsert_versions,
            delete_versions,
        } => {
            update_records(conn, &[(&secret, expected_row_version)], memo)?;
            put_versions(conn, &upsert_versions)?;
            for id in &delete_versions {
                execute(
                    conn,
                    VERSION_DELETE,
                    Binds::new().bind(&secret.arn).bind(id),
                )?;
            }
        }
        SecretChange::Delete {
            arn,
            expected_row_version,
        } => {
            let keys = query(
                conn,
                SECRET_DELETE,
                Binds::new().bind(&arn).bind(expected_row_version),
                |row| row.opt_int("term_key"),
            )?;
            let Some(key) = keys.first() else {
                return Err(StoreError::Conflict);
            };
            execute(conn, VERSIONS_DELETE, Binds::new().bind(&arn))?;
            execute(conn, crate::listing::TERMS_REMOVE, Binds::new().bind(*key))?;
            memo.wrote(&arn, None);
        }
        SecretChange::RecordDetachment(d) => {
            execute(
                conn,
                crate::writes::DETACHMENT_UPSERT,
                bind_detachment!(Binds::new(), &d),
            )?;
        }
    }
    Ok(())
}

/// Removes, for each `(secret, destination, kind, up to id)`, the outbox rows of that
/// (secret, destination, kind) up to and including the id: one statement per
/// [`ROWS_PER_STATEMENT`] tuples (a delivered batch settles up to 64 secrets at once).
pub(super) fn settle_outbox(conn: &Connection, settle: &[group_commit::Settle]) -> Result<()> {
    for chunk in settle.chunks(ROWS_PER_STATEMENT) {
        let (head, tail) = SQLITE_OUTBOX_SETTLE;
        let sql = format!("{head}{}{tail}", values_list(chunk.len(), 4));
        let mut binds = Binds::new();
        for (arn, dest, kind, up_to_id) in chunk {
            binds = binds.bind(arn).bind(dest).bind(kind).bind(*up_to_id);
        }
        execute(conn, &sql, binds)?;
    }
    Ok(())
}

/// Queues `outbox` rows (due now) in the transaction of the change they belong to.
pub(super) fn insert_outbox(conn: &Connection, outbox: &[OutboxEntry]) -> Result<()> {
    let now = now_ms();
    // One statement per chunk; ids are assigned in row order, so the queue keeps this order.
    for chunk in outbox.chunks(ROWS_PER_STATEMENT) {
        let sql = format!("{SQLITE_OUTBOX_INSERT}{}", values_list(chunk.len(), 7));
        let mut binds = Binds::new();
        for entry in chunk {
            binds = bind_outbox_entry!(binds, entry)
                .bind(now)
                .bind(0i64)
                .bind(now);
        }
        execute(conn, &sql, binds)?;
    }
    Ok(())
}

/// A read's LastAccessedDate on the secret and the version read (see [`Store::record_access`])
/// for many reads, in one statement per table per [`ROWS_PER_STATEMENT`] (two reads of one
/// secret on one day write the same day); nothing happens for an unknown secret or version.
///
/// [`Store::record_access`]: crate::Store::record_access
pub(super) fn record_accesses_in(conn: &Connection, reads: &[crate::AccessRead]) -> Result<()> {
    for chunk in reads.chunks(ROWS_PER_STATEMENT) {
        let (head, tail) = SQLITE_ACCESS_SECRETS;
        let sql = format!("{head}{}{tail}", values_list(chunk.len(), 2));
        let mut binds = Binds::new();
        for (arn, _, day) in chunk {
            binds = binds.bind(arn).bind(*day);
        }
        execute(conn, &sql, binds)?;
        let (head, tail) = SQLITE_ACCESS_VERSIONS;
        let sql = format!("{head}{}{tail}", values_list(chunk.len(), 3));
        let mut binds = Binds::new();
        for (arn, version, day) in chunk {
            binds = binds.bind(arn).bind(version).bind(*day);
        }
        execute(conn, &sql, binds)?;
    }
    Ok(())
}

/// [`Store::retry_outbox`](crate::Store::retry_outbox) inside the writer's transaction.
pub(super) fn retry_in(conn: &Connection, r: &group_commit::Retry) -> Result<()> {
    execute(
        conn,
        OUTBOX_RETRY,
        Binds::new()
            .bind(r.attempts)
            .bind(r.next_attempt_ms)
            .bind(r.first_failure_ms)
            .bind(r.id),
    )?;
    Ok(())
}

/// A KMS change ([`crate::writes::kms_change_statements`], or a new key and its alias) inside
/// the writer's transaction; with `first_must_change`, a first statement that changes no row
/// is a `Conflict`.
pub(super) fn kms_in(
    conn: &Connection,
    statements: &[crate::writes::KmsStatement],
    first_must_change: bool,
) -> Result<()> {
    for (i, (sql, values)) in statements.iter().enumerate() {
        let mut binds = Binds::new();
        for value in values {
            binds = match value {
                crate::writes::KmsBind::Text(t) => binds.bind(t),
                crate::writes::KmsBind::Bytes(b) => binds.bind(b),
                crate::writes::KmsBind::Int(n) => binds.bind(*n),
            };
        }
        if execute(conn, sql, binds)? == 0 && i == 0 && first_must_change {
            return Err(StoreError::Conflict);
        }
    }
    Ok(())
}

pub(super) fn claim_in(conn: &Connection, c: &group_commit::Claim) -> Result<Vec<OutboxRow>> {
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
    let walk = match c.dest_region {
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
    let binds = Binds::new()
        .bind(c.now_ms)
        .bind(c.limit)
        .bind(&c.owner)
        .bind(&c.dest_region)
        .bind(c.now_ms + c.lease_ms);
    let mut claimed = query(conn, &sql, binds, |row| outbox_from_row(row))?;
    // RETURNING has no order.
    claimed.sort_by_key(|row| row.id);
    Ok(claimed)
}
