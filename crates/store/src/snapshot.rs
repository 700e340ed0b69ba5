//! Portable snapshots of a Region's store, for `coffer backup` and `coffer restore`.
//!
//! A [`RegionSnapshot`] holds every record of one Region as the store keeps it: secrets and
//! their versions (values only as ciphertext under the Region's KMS keys), KMS keys (material
//! wrapped by the Region's root key), aliases and the pending outbox (replication deliveries
//! and scheduled rotations). The columns are the same on SQLite and PostgreSQL, so a snapshot
//! taken on one backend loads into the other. Export reads in one transaction (a consistent
//! snapshot while the Region keeps serving); import writes in one transaction into an empty
//! store, so a restore is all or nothing.

use std::path::Path;

use sqlx::{Connection, Row};

use crate::rows::{outbox_from_row, secret_from_row, version_from_row};
use crate::schema::StoreKind;
use crate::{
    KmsAliasRecord, KmsKeyRecord, OutboxRow, Result, Secret, SqliteStore, Store, StoreError,
    VersionRecord,
};

/// Every record of one Region's store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionSnapshot {
    /// The store format the records were read in (a restore needs the same).
    pub format_version: i64,
    pub secrets: Vec<Secret>,
    pub kms_keys: Vec<KmsKeyRecord>,
    pub kms_aliases: Vec<KmsAliasRecord>,
    /// Pending outbox rows, oldest first; a restore clears their leases and gives them new ids.
    pub outbox: Vec<OutboxRow>,
    /// Replicas that were promoted (kept after the promoted secret is deleted).
    pub detachments: Vec<crate::Detachment>,
}

impl RegionSnapshot {
    /// The Region store format this version of Coffer writes.
    pub fn current_format_version() -> i64 {
        StoreKind::Region.migrations().len() as i64
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
    ($module:ident, $conn:ty, $terms:path) => {
        pub(crate) mod $module {
            use super::*;

            pub(crate) async fn export(conn: &mut $conn) -> Result<RegionSnapshot> {
                let mut snapshot = RegionSnapshot {
                    format_version: RegionSnapshot::current_format_version(),
                    ..RegionSnapshot::default()
                };
                let secrets =
                    sqlx::query("SELECT * FROM secrets ORDER BY created_ms, arn")
                        .fetch_all(&mut *conn)
                        .await?;
                let versions = sqlx::query(
                    "SELECT * FROM secret_versions ORDER BY secret_arn, created_ms, version_id",
                )
                .fetch_all(&mut *conn)
                .await?;
                let mut by_arn: std::collections::HashMap<String, Vec<VersionRecord>> =
                    std::collections::HashMap::new();
                for row in &versions {
                    let v = version_from_row(row)?;
                    by_arn.entry(v.secret_arn.clone()).or_default().push(v);
                }
                for row in &secrets {
                    let record = secret_from_row(row)?;
                    let mut versions = by_arn.remove(&record.arn).unwrap_or_default();
                    versions.sort_by(|a, b| {
                        (a.created_ms, &a.version_id).cmp(&(b.created_ms, &b.version_id))
                    });
                    snapshot.secrets.push(Secret { record, versions });
                }
                for row in sqlx::query("SELECT * FROM kms_keys ORDER BY created_ms, key_arn")
                    .fetch_all(&mut *conn)
                    .await?
                {
                    snapshot.kms_keys.push(KmsKeyRecord {
                        key_arn: row.try_get("key_arn")?,
                        account_id: row.try_get("account_id")?,
                        key_id: row.try_get("key_id")?,
                        wrapped_material: row.try_get("wrapped_material")?,
                        metadata: row.try_get("metadata")?,
                        created_ms: row.try_get("created_ms")?,
                    });
                }
                for row in sqlx::query(
                    "SELECT * FROM kms_aliases ORDER BY account_id, alias_name",
                )
                .fetch_all(&mut *conn)
                .await?
                {
                    snapshot.kms_aliases.push(KmsAliasRecord {
                        account_id: row.try_get("account_id")?,
                        alias_name: row.try_get("alias_name")?,
                        target_key_arn: row.try_get("target_key_arn")?,
                        created_ms: row.try_get("created_ms")?,
                    });
                }
                for row in sqlx::query(
                    "SELECT id, secret_arn, dest_region, kind, payload, enqueued_ms, attempts, \
                     next_attempt_ms, first_failure_ms FROM replication_outbox ORDER BY id",
                )
                .fetch_all(&mut *conn)
                .await?
                {
                    snapshot.outbox.push(outbox_from_row(&row)?);
                }
                for row in sqlx::query("SELECT * FROM replica_detachments ORDER BY arn")
                    .fetch_all(&mut *conn)
                    .await?
                {
                    snapshot
                        .detachments
                        .push(crate::rows::detachment_from_row(&row)?);
                }
                Ok(snapshot)
            }

            pub(crate) async fn import(
                conn: &mut $conn,
                snapshot: &RegionSnapshot,
                location: &str,
            ) -> Result<()> {
                let held: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM secrets) + (SELECT COUNT(*) FROM kms_keys)",
                )
                .fetch_one(&mut *conn)
                .await?;
                if held > 0 {
                    return Err(not_empty(location));
                }
                for key in &snapshot.kms_keys {
                    sqlx::query(
                        "INSERT INTO kms_keys (key_arn, account_id, key_id, wrapped_material, \
                         metadata, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&key.key_arn)
                    .bind(&key.account_id)
                    .bind(&key.key_id)
                    .bind(&key.wrapped_material)
                    .bind(&key.metadata)
                    .bind(key.created_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                for alias in &snapshot.kms_aliases {
                    sqlx::query(
                        "INSERT INTO kms_aliases (account_id, alias_name, target_key_arn, \
                         created_ms) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&alias.account_id)
                    .bind(&alias.alias_name)
                    .bind(&alias.target_key_arn)
                    .bind(alias.created_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                for secret in &snapshot.secrets {
                    let s = &secret.record;
                    sqlx::query(
                        "INSERT INTO secrets (arn, account_id, name, description, kms_key_id, \
                         tags, resource_policy, created_ms, last_changed_ms, last_accessed_day, \
                         deleted_ms, purge_at_ms, rotation, replication, row_version) VALUES \
                         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                    )
                    .bind(&s.arn)
                    .bind(&s.account_id)
                    .bind(&s.name)
                    .bind(&s.description)
                    .bind(&s.kms_key_id)
                    .bind(
                        s.tags
                            .as_ref()
                            .map(|t| serde_json::to_string(t).expect("tags serialize")),
                    )
                    .bind(&s.resource_policy)
                    .bind(s.created_ms)
                    .bind(s.last_changed_ms)
                    .bind(s.last_accessed_day)
                    .bind(s.deleted_ms)
                    .bind(s.purge_at_ms)
                    .bind(&s.rotation)
                    .bind(&s.replication)
                    .bind(s.row_version)
                    .execute(&mut *conn)
                    .await?;
                    {
                        use $terms as terms;
                        terms::sync(conn, s).await?;
                    }
                    for v in &secret.versions {
                        sqlx::query(
                            "INSERT INTO secret_versions (secret_arn, version_id, stages, \
                             created_ms, last_accessed_day, kms_key_arn, value_kind, \
                             wrapped_data_key, ciphertext) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(&v.secret_arn)
                        .bind(&v.version_id)
                        .bind(serde_json::to_string(&v.stages).expect("stages serialize"))
                        .bind(v.created_ms)
                        .bind(v.last_accessed_day)
                        .bind(&v.kms_key_arn)
                        .bind(v.value_kind as i64)
                        .bind(&v.wrapped_data_key)
                        .bind(&v.ciphertext)
                        .execute(&mut *conn)
                        .await?;
                    }
                }
                for row in &snapshot.outbox {
                    // New ids in the same order; no lease: whichever node runs first claims it.
                    sqlx::query(
                        "INSERT INTO replication_outbox (secret_arn, dest_region, kind, payload, \
                         enqueued_ms, attempts, next_attempt_ms, first_failure_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&row.entry.secret_arn)
                    .bind(&row.entry.dest_region)
                    .bind(&row.entry.kind)
                    .bind(&row.entry.payload)
                    .bind(row.enqueued_ms)
                    .bind(row.attempts)
                    .bind(row.next_attempt_ms)
                    .bind(row.first_failure_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                for d in &snapshot.detachments {
                    sqlx::query(
                        "INSERT INTO replica_detachments (arn, primary_arn, epoch, detached_ms) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&d.arn)
                    .bind(&d.primary_arn)
                    .bind(d.epoch)
                    .bind(d.detached_ms)
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }
        }
    };
}

snapshot_sql!(pg, sqlx::PgConnection, crate::listing::pg);
snapshot_sql!(lite, sqlx::SqliteConnection, crate::listing::lite);

fn sqlite_options(path: &Path) -> sqlx::sqlite::SqliteConnectOptions {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(std::time::Duration::from_secs(10))
}

/// Reads a Region's SQLite store (checked and migrated as `coffer serve` would) in one read
/// transaction; safe while a node serves from the file (WAL readers see one snapshot).
pub async fn export_sqlite(path: &Path) -> Result<RegionSnapshot> {
    SqliteStore::open(path).await?.close().await;
    let mut conn =
        sqlx::SqliteConnection::connect_with(&sqlite_options(path).read_only(true)).await?;
    let mut tx = conn.begin().await?;
    let snapshot = lite::export(&mut tx).await?;
    tx.commit().await?;
    conn.close().await.ok();
    Ok(snapshot)
}

/// Creates (or opens an empty) Region SQLite store at `path` and loads the snapshot into it in
/// one transaction. Refuses a store that already holds secrets or keys.
pub async fn import_sqlite(path: &Path, snapshot: &RegionSnapshot) -> Result<()> {
    SqliteStore::open(path).await?.close().await;
    let mut conn = sqlx::SqliteConnection::connect_with(
        &sqlite_options(path)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full),
    )
    .await?;
    let mut tx = conn.begin().await?;
    lite::import(&mut tx, snapshot, &path.display().to_string()).await?;
    tx.commit().await?;
    conn.close().await.ok();
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
            6,
            "a new Region store migration: make export/import in snapshot.rs (and the backup \
             file's body in crates/coffer/src/backup.rs) carry its tables and columns, then \
             update this number"
        );
    }
}
