//! [`SqliteStore`]: a Region's store in one SQLite file. Secret changes, outbox bookkeeping and
//! reads' LastAccessedDate go to the one writer as jobs of the group commit
//! ([`super::group_commit`], statements in [`super::changes`]); reads of one secret and listing
//! pages run on the calling thread ([`super::sync_reads`]); KMS keys and the failover rows are
//! jobs of the same writer ([`SqliteStore::write`]).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Row;

use super::open::{Pools, open_pools};
use super::{changes, group_commit, sync_reads};
use crate::failover_rows::bind_head;
use crate::rows::{
    SQLITE_LOAD_BY_ARN, SQLITE_LOAD_BY_NAME, SQLITE_LOAD_LABELLED_COPY_BY_ARN,
    SQLITE_LOAD_LABELLED_COPY_BY_NAME, kms_alias_from_row, kms_key_from_row, secrets_with_versions,
};
use crate::schema::StoreKind;
use crate::writes::{kms_alias_insert, kms_change_statements, kms_key_insert};
use crate::{
    KmsAliasRecord, KmsChange, KmsKeyRecord, OutboxEntry, OutboxRow, Result, Secret, SecretChange,
    Store, StoreError, Versions,
};

pub struct SqliteStore {
    pub(super) pools: Pools,
    /// The one door of secret and KMS changes, on a connection of its own (see [`group_commit`]).
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
        let writer = group_commit::GroupCommitter::spawn(pools.file.clone())?;
        let point_reads = Arc::new(sync_reads::SyncReaders::open(path)?);
        Ok(SqliteStore {
            pools,
            writer,
            point_reads,
        })
    }

    /// Runs `write` on the writer, in a job of its own, durably.
    async fn write(
        &self,
        write: impl FnOnce(&rusqlite::Connection) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        self.writer
            .commit(group_commit::Job {
                write: Some(Box::new(write)),
                durable: true,
                ..Default::default()
            })
            .await
    }

    /// `(transactions, changes)` the writer committed (or refused inside a transaction) since
    /// the store opened: their ratio is the mean number of changes per fsync.
    pub fn commit_counts(&self) -> (u64, u64) {
        self.writer.counts()
    }

    #[cfg(test)]
    pub(super) async fn open_with_wal_limit(path: &Path, wal_limit: u64) -> Result<SqliteStore> {
        SqliteStore::on(
            path,
            super::open::open_pools_with(path, StoreKind::Region, wal_limit).await?,
        )
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn load_by_name(
        &self,
        account_id: &str,
        name: &str,
        versions: Versions,
    ) -> Result<Option<Secret>> {
        let params = [account_id, name];
        match versions {
            Versions::All => self.point_reads.load(SQLITE_LOAD_BY_NAME, &params),
            Versions::Labelled => self
                .point_reads
                .load_labelled_copy(SQLITE_LOAD_LABELLED_COPY_BY_NAME, &params),
        }
    }

    async fn load_by_arn(&self, arn: &str, versions: Versions) -> Result<Option<Secret>> {
        match versions {
            Versions::All => self.point_reads.load(SQLITE_LOAD_BY_ARN, &[arn]),
            Versions::Labelled => self
                .point_reads
                .load_labelled_copy(SQLITE_LOAD_LABELLED_COPY_BY_ARN, &[arn]),
        }
    }

    async fn record_heads(&self, heads: &[crate::ReplicaHead]) -> Result<()> {
        if heads.is_empty() {
            return Ok(());
        }
        let heads = heads.to_vec();
        self.write(move |conn| {
            for h in &heads {
                let binds = bind_head!(changes::Binds::new(), h);
                changes::execute(conn, crate::failover_rows::HEAD_UPSERT, binds)?;
            }
            Ok(())
        })
        .await
    }

    async fn replica_heads(&self) -> Result<Vec<crate::ReplicaHead>> {
        Ok(crate::failover_rows::sqlite::replica_heads(&self.pools.reader).await?)
    }

    async fn delete_heads(&self, arns: &[String]) -> Result<()> {
        if arns.is_empty() {
            return Ok(());
        }
        let arns = arns.to_vec();
        self.write(move |conn| {
            for arn in &arns {
                let binds = changes::Binds::new().bind(arn);
                changes::execute(conn, crate::failover_rows::HEAD_DELETE, binds)?;
            }
            Ok(())
        })
        .await
    }

    async fn replica_states(&self) -> Result<Vec<(String, String)>> {
        Ok(crate::failover_rows::sqlite::replica_states(&self.pools.reader).await?)
    }

    async fn save_document(&self, key: &str, body: &str, now_ms: i64) -> Result<()> {
        let (key, body) = (key.to_string(), body.to_string());
        self.write(move |conn| {
            let binds = changes::Binds::new().bind(key).bind(body).bind(now_ms);
            changes::execute(conn, crate::failover_rows::DOCUMENT_UPSERT, binds)?;
            Ok(())
        })
        .await
    }

    async fn load_documents(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        Ok(crate::failover_rows::sqlite::load_documents(&self.pools.reader, prefix).await?)
    }

    async fn load_detachment(&self, arn: &str) -> Result<Option<crate::Detachment>> {
        let row = sqlx::query(crate::rows::DETACHMENT_BY_ARN)
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
        secrets_with_versions(&rows, &version_rows)
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
        let row = sqlx::query(crate::rows::KMS_KEY_BY_ARN)
            .bind(key_arn)
            .fetch_optional(&self.pools.reader)
            .await?;
        row.as_ref().map(kms_key_from_row).transpose()
    }

    async fn load_kms_alias(
        &self,
        account_id: &str,
        alias_name: &str,
    ) -> Result<Option<KmsAliasRecord>> {
        let row = sqlx::query(crate::rows::KMS_ALIAS_BY_NAME)
            .bind(account_id)
            .bind(alias_name)
            .fetch_optional(&self.pools.reader)
            .await?;
        row.as_ref().map(kms_alias_from_row).transpose()
    }

    async fn create_kms_key(&self, key: KmsKeyRecord, alias: Option<KmsAliasRecord>) -> Result<()> {
        let mut statements = vec![kms_key_insert(&key)];
        statements.extend(alias.as_ref().map(kms_alias_insert));
        self.write(move |conn| changes::kms_in(conn, &statements, false))
            .await
    }

    async fn list_kms_keys(&self, account_id: Option<&str>) -> Result<Vec<KmsKeyRecord>> {
        let rows = match account_id {
            Some(account) => {
                sqlx::query(crate::rows::KMS_KEYS_OF_ACCOUNT)
                    .bind(account)
                    .fetch_all(&self.pools.reader)
                    .await?
            }
            None => {
                sqlx::query(crate::rows::KMS_KEYS)
                    .fetch_all(&self.pools.reader)
                    .await?
            }
        };
        rows.iter().map(kms_key_from_row).collect()
    }

    async fn list_kms_aliases(&self, account_id: &str) -> Result<Vec<KmsAliasRecord>> {
        sqlx::query(crate::rows::KMS_ALIASES_OF_ACCOUNT)
            .bind(account_id)
            .fetch_all(&self.pools.reader)
            .await?
            .iter()
            .map(kms_alias_from_row)
            .collect()
    }

    async fn commit_kms_with(&self, change: KmsChange, outbox: Vec<OutboxEntry>) -> Result<()> {
        let statements = kms_change_statements(&change);
        self.writer
            .commit(group_commit::Job {
                write: Some(Box::new(move |conn| {
                    changes::kms_in(conn, &statements, true)
                })),
                outbox,
                durable: true,
                ..Default::default()
            })
            .await
    }

    async fn close(&self) {
        // The point readers first: the writer's connection, closed last, then finds itself
        // the only one and folds the WAL into the database file.
        self.point_reads.close();
        self.pools.reader.close().await;
        self.writer.close().await;
        self.pools.writer.close().await;
        self.pools.checkpointer.close().await;
    }
}
