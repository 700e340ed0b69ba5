//! Portable snapshots of a Region's store, for `coffer backup` and `coffer restore`.
//!
//! Every record of one Region as the store keeps it: secrets and their versions (values only as
//! ciphertext under the Region's KMS keys), KMS keys (material wrapped by the Region's root
//! key), aliases, the pending outbox (replication deliveries and scheduled rotations) and the
//! replica detachments. The columns are the same on SQLite and PostgreSQL, so an export taken on
//! one backend loads into the other.
//!
//! Export streams: it reads the Region in pages (keyset on each table's primary key) inside one
//! read transaction, so it is a consistent snapshot while the Region keeps serving (SQLite: a
//! deferred read transaction on a connection of its own, which WAL lets writers pass;
//! PostgreSQL: REPEATABLE READ, READ ONLY), and hands each record to a [`RegionSink`] as it
//! is read: memory holds one page, whatever the number of secrets. Import pulls records one at
//! a time from its source and writes them in one transaction into an empty store, so a restore
//! is all or nothing. [`RegionSnapshot`] collects a whole Region in memory, for tests and small
//! tools.

use std::path::Path;

use sqlx::{Connection, Row};

use crate::rows::{
    detachment_from_row, kms_alias_from_row, kms_key_from_row, outbox_from_row, secret_from_row,
    version_from_row,
};
use crate::schema::StoreKind;
use crate::writes::{
    DETACHMENT_RESTORE, OUTBOX_RESTORE, SECRET_RESTORE_INTO, VERSION_RESTORE_INTO, bind_detachment,
    bind_outbox_entry, bind_secret, bind_version, kms_alias_insert, kms_key_insert, kms_query,
};
use crate::{
    Detachment, KmsAliasRecord, KmsKeyRecord, OutboxRow, Result, Secret, SqliteStore, Store,
    StoreError, VersionRecord,
};

/// Secrets (with their versions) read per page by an export; other tables are read in pages of
/// [`EXPORT_PAGE`] * 4 rows.
const EXPORT_PAGE: i64 = 256;

/// Secrets an import writes per batch (15 values a row: 960 bind parameters).
const IMPORT_BATCH: usize = 64;

/// Versions per multi-row statement (9 values a row); search terms go 3 times as many.
const IMPORT_ROWS: usize = 100;

/// One record of a Region's store. An export yields the KMS keys, then the aliases, the
/// secrets (each with its versions), the outbox rows (oldest first) and the detachments.
#[derive(Debug, Clone, PartialEq)]
pub enum RegionItem {
    KmsKey(KmsKeyRecord),
    KmsAlias(KmsAliasRecord),
    Secret(Secret),
    /// A pending outbox row; an import clears its lease and gives it a new id (in order).
    Outbox(OutboxRow),
    /// A replica that was promoted (kept after the promoted secret is deleted).
    Detachment(Detachment),
}

/// Where an export puts the records it reads.
pub trait RegionSink {
    type Error: From<StoreError>;
    /// Called once, before any record: the store format the records are in, and how many
    /// secrets follow (counted in the export's snapshot).
    fn start(&mut self, format_version: i64, secrets: u64) -> std::result::Result<(), Self::Error>;
    fn item(&mut self, item: RegionItem) -> std::result::Result<(), Self::Error>;
}

/// Every record of one Region's store, in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionSnapshot {
    /// The store format the records were read in (a restore needs the same).
    pub format_version: i64,
    /// Oldest first.
    pub secrets: Vec<Secret>,
    pub kms_keys: Vec<KmsKeyRecord>,
    pub kms_aliases: Vec<KmsAliasRecord>,
    /// Pending outbox rows, oldest first; a restore clears their leases and gives them new ids.
    pub outbox: Vec<OutboxRow>,
    /// Replicas that were promoted (kept after the promoted secret is deleted).
    pub detachments: Vec<Detachment>,
}

impl RegionSnapshot {
    /// The Region store format this version of Coffer writes.
    pub fn current_format_version() -> i64 {
        StoreKind::Region.migrations().len() as i64
    }

    /// The records in the order an export yields them.
    pub fn items(&self) -> impl Iterator<Item = RegionItem> + '_ {
        let keys = self.kms_keys.iter().cloned().map(RegionItem::KmsKey);
        let aliases = self.kms_aliases.iter().cloned().map(RegionItem::KmsAlias);
        let secrets = self.secrets.iter().cloned().map(RegionItem::Secret);
        let outbox = self.outbox.iter().cloned().map(RegionItem::Outbox);
        let detachments = self.detachments.iter().cloned().map(RegionItem::Detachment);
        keys.chain(aliases)
            .chain(secrets)
            .chain(outbox)
            .chain(detachments)
    }

    /// Sorts what an export collected: secrets and KMS keys oldest first, the rest by primary
    /// key (the same on both backends, whose text collations may differ).
    pub(crate) fn sorted(mut self) -> RegionSnapshot {
        self.secrets.sort_by(|a, b| {
            (a.record.created_ms, &a.record.arn).cmp(&(b.record.created_ms, &b.record.arn))
        });
        self.kms_keys
            .sort_by(|a, b| (a.created_ms, &a.key_arn).cmp(&(b.created_ms, &b.key_arn)));
        self.kms_aliases
            .sort_by(|a, b| (&a.account_id, &a.alias_name).cmp(&(&b.account_id, &b.alias_name)));
        self.outbox.sort_by_key(|o| o.id);
        self.detachments.sort_by(|a, b| a.arn.cmp(&b.arn));
        self
    }
}

impl RegionSink for RegionSnapshot {
    type Error = StoreError;
    fn start(&mut self, format_version: i64, _secrets: u64) -> Result<()> {
        self.format_version = format_version;
        Ok(())
    }
    fn item(&mut self, item: RegionItem) -> Result<()> {
        match item {
            RegionItem::KmsKey(k) => self.kms_keys.push(k),
            RegionItem::KmsAlias(a) => self.kms_aliases.push(a),
            RegionItem::Secret(s) => self.secrets.push(s),
            RegionItem::Outbox(o) => self.outbox.push(o),
            RegionItem::Detachment(d) => self.detachments.push(d),
        }
        Ok(())
    }
}

fn not_empty(location: &str) -> StoreError {
    StoreError::Incompatible(format!(
        "{location} already holds secrets or KMS keys; restore only into an empty Region store \
         (a new data directory, or a new PostgreSQL database or schema). Nothing was written."
    ))
}

/// Export and import over one connection; the SQL is the same on both backends.
macro_rules! snapshot_sql {
    ($module:ident, $conn:ty, $db:ty) => {
        pub(crate) mod $module {
            use super::*;

            /// Secrets plus KMS keys the store holds (an import needs none).
            pub(crate) async fn held(conn: &mut $conn) -> Result<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM secrets) + (SELECT COUNT(*) FROM kms_keys)",
                )
                .fetch_one(&mut *conn)
                .await?)
            }

            /// Reads every record, page by page, into `sink`. Run it inside one read
            /// transaction: the pages then come from one snapshot.
            pub(crate) async fn export<S: RegionSink>(
                conn: &mut $conn,
                sink: &mut S,
            ) -> std::result::Result<(), S::Error> {
                let secrets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM secrets")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(StoreError::from)?;
                sink.start(RegionSnapshot::current_format_version(), secrets as u64)?;
                let rows = EXPORT_PAGE * 4;

                by_text_key(
                    conn,
                    sink,
                    "SELECT * FROM kms_keys WHERE key_arn > $1 ORDER BY key_arn LIMIT $2",
                    "key_arn",
                    |row| Ok(RegionItem::KmsKey(kms_key_from_row(row)?)),
                )
                .await?;

                let mut after = (String::new(), String::new());
                loop {
                    let page = sqlx::query(
                        "SELECT * FROM kms_aliases WHERE (account_id, alias_name) > ($1, $2) \
                         ORDER BY account_id, alias_name LIMIT $3",
                    )
                    .bind(&after.0)
                    .bind(&after.1)
                    .bind(rows)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(StoreError::from)?;
                    for row in &page {
                        let alias = kms_alias_from_row(row)?;
                        after = (alias.account_id.clone(), alias.alias_name.clone());
                        sink.item(RegionItem::KmsAlias(alias))?;
                    }
                    if (page.len() as i64) < rows {
                        break;
                    }
                }

                // Secrets by ARN; the versions of a page's secrets in one range read of
                // the versions' primary key.
                let mut after = String::new();
                loop {
                    let page = sqlx::query(concat!(
                        "SELECT ",
                        crate::rows::secret_select!(),
                        " FROM secrets s WHERE s.arn > $1 ORDER BY s.arn LIMIT $2"
                    ))
                    .bind(&after)
                    .bind(EXPORT_PAGE)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(StoreError::from)?;
                    let (Some(first), Some(last)) = (page.first(), page.last()) else {
                        break;
                    };
                    let first: String = first.try_get("arn").map_err(StoreError::from)?;
                    let last: String = last.try_get("arn").map_err(StoreError::from)?;
                    let versions = sqlx::query(
                        "SELECT * FROM secret_versions WHERE secret_arn >= $1 \
                         AND secret_arn <= $2 ORDER BY secret_arn, created_ms, version_id",
                    )
                    .bind(&first)
                    .bind(&last)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(StoreError::from)?;
                    let mut by_arn: std::collections::HashMap<String, Vec<VersionRecord>> =
                        std::collections::HashMap::new();
                    for row in &versions {
                        let v = version_from_row(row)?;
                        by_arn.entry(v.secret_arn.clone()).or_default().push(v);
                    }
                    drop(versions);
                    for row in &page {
                        let record = secret_from_row(row)?;
                        let versions = by_arn.remove(&record.arn).unwrap_or_default();
                        sink.item(RegionItem::Secret(Secret { record, versions }))?;
                    }
                    if (page.len() as i64) < EXPORT_PAGE {
                        break;
                    }
                    after = last;
                }

                let mut after = i64::MIN;
                loop {
                    let page = sqlx::query(
                        "SELECT id, secret_arn, dest_region, kind, payload, enqueued_ms, \
                         attempts, next_attempt_ms, first_failure_ms FROM replication_outbox \
                         WHERE id > $1 ORDER BY id LIMIT $2",
                    )
                    .bind(after)
                    .bind(rows)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(StoreError::from)?;
                    for row in &page {
                        let outbox = outbox_from_row(row)?;
                        after = outbox.id;
                        sink.item(RegionItem::Outbox(outbox))?;
                    }
                    if (page.len() as i64) < rows {
                        break;
                    }
                }

                by_text_key(
                    conn,
                    sink,
                    "SELECT * FROM replica_detachments WHERE arn > $1 ORDER BY arn LIMIT $2",
                    "arn",
                    |row| Ok(RegionItem::Detachment(detachment_from_row(row)?)),
                )
                .await
            }

            /// The rows of a table keyed by one text column, page by page: `sql` selects the
            /// rows after `$1` in key order, at most `$2`.
            async fn by_text_key<S: RegionSink>(
                conn: &mut $conn,
                sink: &mut S,
                sql: &'static str,
                key: &str,
                item: fn(&<$db as sqlx::Database>::Row) -> Result<RegionItem>,
            ) -> std::result::Result<(), S::Error> {
                let rows = EXPORT_PAGE * 4;
                let mut after = String::new();
                loop {
                    let page = sqlx::query(sql)
                        .bind(&after)
                        .bind(rows)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(StoreError::from)?;
                    for row in &page {
                        sink.item(item(row)?)?;
                    }
                    match page.last() {
                        Some(last) if page.len() as i64 == rows => {
                            after = last.try_get(key).map_err(StoreError::from)?;
                        }
                        _ => return Ok(()),
                    }
                }
            }

            /// Writes the records `next` yields (until `None`) into the store, which must hold
            /// no secret and no KMS key; returns the number of secrets. Run it inside one
            /// transaction: a failure part-way leaves nothing. Secrets are written
            /// [`IMPORT_BATCH`] at a time (a few multi-row statements instead of a dozen
            /// statements each); memory holds one batch.
            pub(crate) async fn import<E: From<StoreError>>(
                conn: &mut $conn,
                next: &mut impl FnMut() -> std::result::Result<Option<RegionItem>, E>,
                location: &str,
            ) -> std::result::Result<u64, E> {
                if held(conn).await? > 0 {
                    return Err(not_empty(location).into());
                }
                let mut secrets = 0;
                let mut batch = Vec::with_capacity(IMPORT_BATCH);
                while let Some(item) = next()? {
                    match item {
                        RegionItem::Secret(secret) => {
                            secrets += 1;
                            batch.push(secret);
                            if batch.len() == IMPORT_BATCH {
                                insert_secrets(conn, &batch).await?;
                                batch.clear();
                            }
                        }
                        other => {
                            // In the order they came: the batch first.
                            insert_secrets(conn, &batch).await?;
                            batch.clear();
                            insert(conn, &other).await?;
                        }
                    }
                }
                insert_secrets(conn, &batch).await?;
                Ok(secrets)
            }

            /// Secrets with their versions and search terms, in multi-row statements.
            async fn insert_secrets(conn: &mut $conn, batch: &[Secret]) -> Result<()> {
                if batch.is_empty() {
                    return Ok(());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(SECRET_RESTORE_INTO);
                query.push_values(batch, |mut row, secret| {
                    bind_secret!(row, push_bind, &secret.record);
                });
                query.build().execute(&mut *conn).await?;

                let versions: Vec<&VersionRecord> =
                    batch.iter().flat_map(|s| &s.versions).collect();
                for rows in versions.chunks(IMPORT_ROWS) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(VERSION_RESTORE_INTO);
                    query.push_values(rows, |mut row, v| {
                        bind_version!(row, push_bind, v);
                    });
                    query.build().execute(&mut *conn).await?;
                }

                let terms: Vec<(&str, &'static str, String)> = batch
                    .iter()
                    .flat_map(|s| {
                        crate::listing::search_terms(&s.record)
                            .into_iter()
                            .map(|(kind, term)| (s.record.arn.as_str(), kind, term))
                    })
                    .collect();
                // Each term names its secret by the `term_key` the secret's insert above was
                // given (migration 0007), found by ARN in a subquery per row: a lookup of the
                // primary key whatever the plan. A join instead (`JOIN secrets s ON s.arn =
                // v.column1`) was planned by PostgreSQL as a hash join over every secret once
                // the statement's cached generic plan was made while the table was small, so a
                // restore of a million secrets slowed down with every chunk (about 100,000
                // secrets in 11 minutes, against the million in 4 minutes on SQLite). The
                // `WHERE` keeps SQLite's parser from reading `ON CONFLICT` as part of the
                // `FROM` (SQLite's rule for an upsert whose `SELECT` has a `FROM`).
                for rows in terms.chunks(IMPORT_ROWS * 3) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO secret_terms (secret_key, kind, term) \
                         SELECT (SELECT s.term_key FROM secrets s WHERE s.arn = v.column1), \
                         v.column2, v.column3 FROM (",
                    );
                    query.push_values(rows, |mut row, (arn, kind, term)| {
                        row.push_bind(arn.to_string())
                            .push_bind(*kind)
                            .push_bind(term.clone());
                    });
                    query.push(
                        ") v WHERE true ON CONFLICT DO NOTHING",
                    );
                    query.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            async fn insert(conn: &mut $conn, item: &RegionItem) -> Result<()> {
                match item {
                    RegionItem::KmsKey(key) => {
                        kms_query!(kms_key_insert(key))
                            .execute(&mut *conn)
                            .await?;
                    }
                    RegionItem::KmsAlias(alias) => {
                        kms_query!(kms_alias_insert(alias))
                            .execute(&mut *conn)
                            .await?;
                    }
                    RegionItem::Secret(secret) => {
                        insert_secrets(conn, std::slice::from_ref(secret)).await?;
                    }
                    RegionItem::Outbox(row) => {
                        // A new id, in the same order; no lease: whichever node runs first
                        // claims it.
                        bind_outbox_entry!(sqlx::query(OUTBOX_RESTORE), &row.entry)
                        .bind(row.enqueued_ms)
                        .bind(row.attempts)
                        .bind(row.next_attempt_ms)
                        .bind(row.first_failure_ms)
                        .execute(&mut *conn)
                        .await?;
                    }
                    RegionItem::Detachment(d) => {
                        bind_detachment!(sqlx::query(DETACHMENT_RESTORE), d)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                Ok(())
            }
        }
    };
}

snapshot_sql!(pg, sqlx::PgConnection, sqlx::Postgres);
snapshot_sql!(lite, sqlx::SqliteConnection, sqlx::Sqlite);

fn sqlite_options(path: &Path) -> sqlx::sqlite::SqliteConnectOptions {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(std::time::Duration::from_secs(10))
}

/// Opens a Region's SQLite store as `coffer serve` would (checked and migrated), then a
/// connection of its own to it.
async fn sqlite_connection(
    path: &Path,
    options: sqlx::sqlite::SqliteConnectOptions,
) -> Result<sqlx::SqliteConnection> {
    SqliteStore::open(path).await?.close().await;
    Ok(sqlx::SqliteConnection::connect_with(&options).await?)
}

/// Reads a Region's SQLite store into `sink`, page by page in one read transaction; safe while
/// a node serves from the file (a WAL reader sees one snapshot and does not block writers).
pub async fn export_sqlite_to<S: RegionSink>(
    path: &Path,
    sink: &mut S,
) -> std::result::Result<(), S::Error> {
    let mut conn = sqlite_connection(path, sqlite_options(path).read_only(true)).await?;
    let mut tx = conn.begin().await.map_err(StoreError::from)?;
    lite::export(&mut tx, sink).await?;
    tx.commit().await.map_err(StoreError::from)?;
    conn.close().await.ok();
    Ok(())
}

/// Every record of a Region's SQLite store, in memory ([`export_sqlite_to`] streams).
pub async fn export_sqlite(path: &Path) -> Result<RegionSnapshot> {
    let mut snapshot = RegionSnapshot::default();
    export_sqlite_to(path, &mut snapshot).await?;
    Ok(snapshot.sorted())
}

/// Whether the Region's SQLite store at `path` (created if missing) holds no secret and no KMS
/// key, as an import needs.
pub async fn sqlite_region_is_empty(path: &Path) -> Result<bool> {
    let mut conn = sqlite_connection(path, sqlite_options(path).read_only(true)).await?;
    let held = lite::held(&mut conn).await;
    conn.close().await.ok();
    Ok(held? == 0)
}

/// Creates (or opens an empty) Region SQLite store at `path` and writes the records `next`
/// yields into it in one transaction; returns the number of secrets. Refuses a store that
/// already holds secrets or keys; on any error nothing is written.
pub async fn import_sqlite_from<E: From<StoreError>>(
    path: &Path,
    mut next: impl FnMut() -> std::result::Result<Option<RegionItem>, E>,
) -> std::result::Result<u64, E> {
    let mut conn = sqlite_connection(
        path,
        sqlite_options(path)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full),
    )
    .await?;
    let mut tx = conn.begin().await.map_err(StoreError::from)?;
    let secrets = lite::import(&mut tx, &mut next, &path.display().to_string()).await?;
    tx.commit().await.map_err(StoreError::from)?;
    conn.close().await.ok();
    Ok(secrets)
}

/// [`import_sqlite_from`] of a snapshot in memory.
pub async fn import_sqlite(path: &Path, snapshot: &RegionSnapshot) -> Result<()> {
    let mut items = snapshot.items();
    import_sqlite_from(path, || Ok::<_, StoreError>(items.next())).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tripwire for the next migration: `coffer backup` must carry whatever it adds.
    #[test]
    fn snapshots_cover_every_region_migration() {
        assert_eq!(
            RegionSnapshot::current_format_version(),
            // 3: 0003_kms.sql adds only indexes.
            // 4: 0004_replica_detachments.sql: `detachments` (snapshot and backup body).
            // 5: 0005_failover.sql: not carried, on purpose. `replica_heads` is what primaries
            //    announced (the next messages announce it again) and `coffer_documents` holds
            //    failover progress and reports: a restored Region starts with no failover
            //    under way (docs/failover.md).
            // 6: 0006_list_in_store.sql: indexes and `secret_terms`, derived from the secrets
            //    (import writes them; a snapshot carries nothing new).
            // 7: 0007_term_keys.sql: `secrets.term_key`, given anew by the store that imports
            //    (a key only has to be unique within one store; a snapshot carries none).
            // 8: 0008_labelled_versions.sql adds only an index.
            // 9: 0009_labelled_inline.sql: `secrets.labelled`, a copy of the versions that
            //    triggers keep; the importing store's triggers write it (a snapshot carries
            //    none).
            9,
            "a new Region store migration: make export/import in snapshot.rs (and the backup \
             file's body in crates/coffer/src/backup.rs) carry its tables and columns, then \
             update this number"
        );
    }
}
