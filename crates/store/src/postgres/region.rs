//! [`PostgresStore`]: a Region's store in its own PostgreSQL schema. Every call runs its
//! transaction under `retrying!` (a transaction that lost to a concurrent one runs again);
//! reads of one secret go through the node's validated cache ([`super::read_cache`]); a
//! change's statements are [`super::changes`]'s.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgPool;

use super::changes::{apply_change, insert_outbox};
use super::open::{REGION_POOL, open_pool};
use super::read_cache::ReadCache;
use super::retrying::{Exhausted, PgError, PgResult, retrying};
use crate::rows::{
    PG_LOAD_BY_ARN, PG_LOAD_BY_NAME, PG_LOAD_LABELLED_BY_ARN, PG_LOAD_LABELLED_BY_NAME,
    kms_alias_from_row, kms_key_from_row, outbox_from_row, secret_from_joined,
    secrets_with_versions,
};
use crate::schema::StoreKind;
use crate::writes::{
    ACCESS_SECRET, ACCESS_VERSION, OUTBOX_FINISH, OUTBOX_RETRY, kms_alias_insert,
    kms_change_statements, kms_key_insert, kms_query,
};
use crate::{
    KmsAliasRecord, KmsChange, KmsKeyRecord, OutboxEntry, OutboxRow, Result, Secret, SecretChange,
    Store, StoreError, Versions,
};

/// Reads see one snapshot (a secret and its versions from the same commit).
pub(super) const READ_TX: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// How a read names its secret.
enum By<'a> {
    Arn(&'a str),
    Name(&'a str, &'a str),
}

/// A Region's store in its own PostgreSQL schema.
pub struct PostgresStore {
    pub(super) pool: PgPool,
    pub(super) schema: String,
    /// Secrets read, each hit validated against the database (`read_cache`); `None` when
    /// disabled (`cache_max_bytes(0)`).
    cache: Option<ReadCache>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database[?sslmode=...]`) and
    /// opens the Region store in `schema`, creating and migrating it if needed. A schema of
    /// another kind or a newer format is refused with [`StoreError::Incompatible`] and left
    /// untouched.
    pub async fn open(url: &str, schema: &str) -> Result<PostgresStore> {
        Self::open_with(url, schema, true).await
    }

    /// [`PostgresStore::open`], migrating only when `migrate` is true; otherwise a schema that
    /// is missing or at an older format is refused with [`StoreError::Incompatible`].
    pub async fn open_with(url: &str, schema: &str, migrate: bool) -> Result<PostgresStore> {
        let pool = open_pool(url, schema, StoreKind::Region, REGION_POOL, migrate).await?;
        Ok(PostgresStore {
            cache: Some(ReadCache::new(pool.clone(), crate::DEFAULT_CACHE_MAX_BYTES)),
            pool,
            schema: schema.to_string(),
        })
    }

    /// Bounds the node's cache of secrets to about `max_bytes` (see [`crate::secret_weight`]);
    /// 0 turns it off, so every read loads the secret from the database.
    pub fn cache_max_bytes(mut self, max_bytes: u64) -> PostgresStore {
        // The default cache is kept, not made again (its task and table are made at open).
        if self.cache.as_ref().map_or(0, |c| c.max_bytes) != max_bytes {
            self.cache = (max_bytes > 0).then(|| ReadCache::new(self.pool.clone(), max_bytes));
        }
        self
    }

    /// A secret by name or ARN: from the cache when its stamp is still the stored one, else
    /// loaded. A load the cache's doorkeeper admits takes every version and is remembered; any
    /// other takes the `versions` asked for and is only handed out (a partial secret never
    /// reaches the cache).
    async fn load(&self, by: &By<'_>, versions: Versions) -> Result<Option<Secret>> {
        if let Some(cache) = &self.cache {
            let arn = match by {
                By::Arn(arn) => Some(arn.to_string()),
                By::Name(account_id, name) => cache.arn_of(account_id, name),
            };
            if let Some(arn) = arn
                && let Some(secret) = cache.validated(&arn).await
            {
                return Ok(Some(secret));
            }
        }
        let admitted = self.cache.as_ref().is_some_and(|cache| match by {
            By::Arn(arn) => cache.admit(*arn),
            By::Name(account_id, name) => cache.admit(&(*account_id, *name)),
        });
        let whole = admitted || matches!(versions, Versions::All);
        let (sql, args): (&'static str, Vec<&str>) = match (by, whole) {
            (By::Arn(arn), true) => (PG_LOAD_BY_ARN, vec![*arn]),
            (By::Arn(arn), false) => (PG_LOAD_LABELLED_BY_ARN, vec![*arn]),
            (By::Name(account_id, name), true) => (PG_LOAD_BY_NAME, vec![*account_id, *name]),
            (By::Name(account_id, name), false) => {
                (PG_LOAD_LABELLED_BY_NAME, vec![*account_id, *name])
            }
        };
        let found = retrying!(
            "loading a secret",
            Exhausted::Backend,
            self.try_load(sql, &args)
        )?;
        if admitted && let (Some(cache), Some(secret)) = (&self.cache, &found) {
            cache.put(secret);
        }
        Ok(found)
    }

    /// The conventional schema of a Region: `us-east-1` → `coffer_us_east_1`.
    pub fn schema_for_region(region: &str) -> String {
        let mut schema = String::from("coffer_");
        schema.extend(region.chars().map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        }));
        schema
    }

    /// The schema this store lives in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// One statement (`rows::PG_LOAD_BY_*`), so one round trip and one snapshot (a single
    /// statement sees one even under READ COMMITTED). Reads are most of the traffic, so this
    /// matters: four round trips (BEGIN, secret, versions, COMMIT) cost ~3x the throughput.
    async fn try_load(&self, sql: &'static str, args: &[&str]) -> PgResult<Option<Secret>> {
        let mut query = sqlx::query(sql);
        for arg in args {
            query = query.bind(*arg);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(secret_from_joined(&rows)?)
    }

    async fn try_list(&self, account_id: &str) -> PgResult<Vec<Secret>> {
        let mut tx = self.pool.begin_with(READ_TX).await?;
        let rows = sqlx::query(
            "SELECT * FROM secrets WHERE account_id = $1 ORDER BY created_ms, arn COLLATE \"C\"",
        )
        .bind(account_id)
        .fetch_all(&mut *tx)
        .await?;
        let version_rows = sqlx::query(
            "SELECT v.* FROM secret_versions v JOIN secrets s ON s.arn = v.secret_arn \
             WHERE s.account_id = $1 ORDER BY v.created_ms, v.version_id COLLATE \"C\"",
        )
        .bind(account_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(secrets_with_versions(&rows, &version_rows)?)
    }

    async fn try_commit(&self, changes: &[SecretChange], outbox: &[OutboxEntry]) -> PgResult<()> {
        let mut tx = self.pool.begin().await?;
        for change in changes {
            apply_change(&mut tx, change).await?;
        }
        insert_outbox(&mut tx, outbox).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn try_commit_and_finish(
        &self,
        changes: &[SecretChange],
        finish: &[(&str, &str, &str, i64)],
    ) -> PgResult<()> {
        let mut tx = self.pool.begin().await?;
        for change in changes {
            apply_change(&mut tx, change).await?;
        }
        for f in finish {
            sqlx::query(OUTBOX_FINISH)
                .bind(f.0)
                .bind(f.1)
                .bind(f.2)
                .bind(f.3)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn try_claim(
        &self,
        now_ms: i64,
        owner: &str,
        lease_ms: i64,
        limit: i64,
        dest_region: Option<&str>,
    ) -> PgResult<Vec<OutboxRow>> {
        // The outer conditions are re-checked on the latest row version when a concurrent
        // claimer got there first (READ COMMITTED), so a leased row is skipped, never shared.
        // A node may take back its own leases: after a crash and restart (same node id) it
        // resumes at once instead of waiting for the lease to expire. A row waits while an
        // older row of the same (secret, destination) waits out a backoff (messages in order).
        let rows = sqlx::query(
            "UPDATE replication_outbox SET lease_owner = $1, lease_until_ms = $2 \
             WHERE id IN (SELECT id FROM replication_outbox o WHERE next_attempt_ms <= $3 \
                 AND (lease_until_ms IS NULL OR lease_until_ms < $3 OR lease_owner = $1) \
                 AND ($5::text IS NULL OR dest_region = $5::text) \
                 AND NOT EXISTS (SELECT 1 FROM replication_outbox w \
                     WHERE w.secret_arn = o.secret_arn AND w.dest_region = o.dest_region \
                     AND w.id < o.id AND w.next_attempt_ms > $3 AND w.kind <> 'rotate') \
                 ORDER BY id LIMIT $4) \
             AND next_attempt_ms <= $3 \
             AND (lease_until_ms IS NULL OR lease_until_ms < $3 OR lease_owner = $1) \
             RETURNING id, secret_arn, dest_region, kind, payload, enqueued_ms, attempts, \
                 next_attempt_ms, first_failure_ms",
        )
        .bind(owner)
        .bind(now_ms + lease_ms)
        .bind(now_ms)
        .bind(limit)
        .bind(dest_region)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = rows
            .iter()
            .map(|r| outbox_from_row(r).map_err(PgError::from))
            .collect::<PgResult<Vec<_>>>()?;
        claimed.sort_by_key(|r| r.id);
        Ok(claimed)
    }

    async fn try_record_access(&self, arn: &str, version_id: &str, day: i64) -> PgResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(ACCESS_SECRET)
            .bind(day)
            .bind(arn)
            .execute(&mut *tx)
            .await?;
        sqlx::query(ACCESS_VERSION)
            .bind(day)
            .bind(arn)
            .bind(version_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn try_create_kms_key(
        &self,
        key: &KmsKeyRecord,
        alias: Option<&KmsAliasRecord>,
    ) -> PgResult<()> {
        let mut tx = self.pool.begin().await?;
        kms_query!(kms_key_insert(key)).execute(&mut *tx).await?;
        if let Some(alias) = alias {
            kms_query!(kms_alias_insert(alias))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn try_load_kms_key(&self, key_arn: &str) -> PgResult<Option<KmsKeyRecord>> {
        let row = sqlx::query(crate::rows::KMS_KEY_BY_ARN)
            .bind(key_arn)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(kms_key_from_row).transpose()?)
    }

    async fn try_load_kms_alias(
        &self,
        account_id: &str,
        alias_name: &str,
    ) -> PgResult<Option<KmsAliasRecord>> {
        let row = sqlx::query(crate::rows::KMS_ALIAS_BY_NAME)
            .bind(account_id)
            .bind(alias_name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(kms_alias_from_row).transpose()?)
    }

    async fn try_list_kms_keys(&self, account_id: Option<&str>) -> PgResult<Vec<KmsKeyRecord>> {
        let rows = match account_id {
            Some(account) => {
                sqlx::query(crate::rows::KMS_KEYS_OF_ACCOUNT)
                    .bind(account)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(crate::rows::KMS_KEYS)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows.iter().map(kms_key_from_row).collect::<Result<_>>()?)
    }

    async fn try_list_kms_aliases(&self, account_id: &str) -> PgResult<Vec<KmsAliasRecord>> {
        let rows = sqlx::query(crate::rows::KMS_ALIASES_OF_ACCOUNT)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(kms_alias_from_row).collect::<Result<_>>()?)
    }

    async fn try_commit_kms(&self, change: &KmsChange, outbox: &[OutboxEntry]) -> PgResult<()> {
        let mut tx = self.pool.begin().await?;
        for (i, statement) in kms_change_statements(change).into_iter().enumerate() {
            let done = kms_query!(statement).execute(&mut *tx).await?;
            if i == 0 && done.rows_affected() == 0 {
                return Err(PgError::Final(StoreError::Conflict));
            }
        }
        insert_outbox(&mut tx, outbox).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn try_execute(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> PgResult<()> {
        query.execute(&self.pool).await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn load_by_name(
        &self,
        account_id: &str,
        name: &str,
        versions: Versions,
    ) -> Result<Option<Secret>> {
        self.load(&By::Name(account_id, name), versions).await
    }

    async fn load_by_arn(&self, arn: &str, versions: Versions) -> Result<Option<Secret>> {
        self.load(&By::Arn(arn), versions).await
    }

    async fn record_heads(&self, heads: &[crate::ReplicaHead]) -> Result<()> {
        retrying!("recording replica heads", Exhausted::Backend, async {
            crate::failover_rows::postgres_writes::record_heads(&self.pool, heads)
                .await
                .map_err(PgError::from)
        })
    }

    async fn replica_heads(&self) -> Result<Vec<crate::ReplicaHead>> {
        retrying!("loading replica heads", Exhausted::Backend, async {
            crate::failover_rows::postgres::replica_heads(&self.pool)
                .await
                .map_err(PgError::from)
        })
    }

    async fn delete_heads(&self, arns: &[String]) -> Result<()> {
        retrying!("deleting replica heads", Exhausted::Backend, async {
            crate::failover_rows::postgres_writes::delete_heads(&self.pool, arns)
                .await
                .map_err(PgError::from)
        })
    }

    async fn replica_states(&self) -> Result<Vec<(String, String)>> {
        retrying!("listing replicas", Exhausted::Backend, async {
            crate::failover_rows::postgres::replica_states(&self.pool)
                .await
                .map_err(PgError::from)
        })
    }

    async fn save_document(&self, key: &str, body: &str, now_ms: i64) -> Result<()> {
        retrying!("saving a document", Exhausted::Backend, async {
            crate::failover_rows::postgres_writes::save_document(&self.pool, key, body, now_ms)
                .await
                .map_err(PgError::from)
        })
    }

    async fn load_documents(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        retrying!("loading documents", Exhausted::Backend, async {
            crate::failover_rows::postgres::load_documents(&self.pool, prefix)
                .await
                .map_err(PgError::from)
        })
    }

    async fn load_detachment(&self, arn: &str) -> Result<Option<crate::Detachment>> {
        retrying!("loading a detachment", Exhausted::Backend, async {
            let row = sqlx::query(crate::rows::DETACHMENT_BY_ARN)
                .bind(arn)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref()
                .map(crate::rows::detachment_from_row)
                .transpose()
                .map_err(PgError::from)
        })
    }

    async fn list_page(&self, query: &crate::ListQuery<'_>) -> Result<crate::ListPage> {
        retrying!("listing a page of secrets", Exhausted::Backend, async {
            let mut tx = self.pool.begin_with(READ_TX).await?;
            let page = crate::listing::pg_page(&mut tx, query).await?;
            tx.commit().await?;
            Ok::<_, PgError>(page)
        })
    }

    async fn list_secrets(&self, account_id: &str) -> Result<Vec<Secret>> {
        retrying!(
            "listing secrets",
            Exhausted::Backend,
            self.try_list(account_id)
        )
    }

    async fn commit_with(
        &self,
        changes: Vec<SecretChange>,
        outbox: Vec<OutboxEntry>,
    ) -> Result<()> {
        retrying!(
            "committing a change",
            Exhausted::Conflict,
            self.try_commit(&changes, &outbox)
        )
    }

    async fn claim_outbox_to(
        &self,
        now_ms: i64,
        owner: &str,
        lease_ms: i64,
        limit: i64,
        dest_region: Option<&str>,
    ) -> Result<Vec<OutboxRow>> {
        retrying!(
            "claiming outbox rows",
            Exhausted::Backend,
            self.try_claim(now_ms, owner, lease_ms, limit, dest_region)
        )
    }

    async fn finish_outbox(
        &self,
        secret_arn: &str,
        dest_region: &str,
        kind: &str,
        up_to_id: i64,
    ) -> Result<()> {
        retrying!(
            "finishing outbox rows",
            Exhausted::Backend,
            self.try_execute(
                sqlx::query(OUTBOX_FINISH)
                    .bind(secret_arn)
                    .bind(dest_region)
                    .bind(kind)
                    .bind(up_to_id)
            )
        )
    }

    async fn commit_and_finish(
        &self,
        changes: Vec<SecretChange>,
        finish: &[(&str, &str, &str, i64)],
    ) -> Result<()> {
        retrying!(
            "committing a change and settling outbox rows",
            Exhausted::Conflict,
            self.try_commit_and_finish(&changes, finish)
        )
    }

    async fn retry_outbox(
        &self,
        id: i64,
        attempts: i64,
        next_attempt_ms: i64,
        first_failure_ms: Option<i64>,
    ) -> Result<()> {
        retrying!(
            "releasing an outbox row",
            Exhausted::Backend,
            self.try_execute(
                sqlx::query(OUTBOX_RETRY)
                    .bind(attempts)
                    .bind(next_attempt_ms)
                    .bind(first_failure_ms)
                    .bind(id)
            )
        )
    }

    async fn outbox_depth(&self) -> Result<Vec<(String, i64)>> {
        retrying!("counting outbox rows", Exhausted::Backend, async {
            let rows = sqlx::query(
                "SELECT dest_region, COUNT(*) AS n FROM replication_outbox \
                 GROUP BY dest_region ORDER BY dest_region COLLATE \"C\"",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("dest_region")?, r.try_get("n")?)))
                .collect::<PgResult<Vec<_>>>()
        })
    }

    async fn replication_depth(&self, source: &str) -> Result<Vec<(String, i64)>> {
        let mut depths = retrying!("counting outbox rows", Exhausted::Backend, async {
            let rows = sqlx::query(crate::rows::REPLICATION_DEPTH)
                .bind(source)
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("dest_region")?, r.try_get("n")?)))
                .collect::<PgResult<Vec<(String, i64)>>>()
        })?;
        depths.sort();
        Ok(depths)
    }

    async fn record_access(&self, arn: &str, version_id: &str, day: i64) -> Result<()> {
        retrying!(
            "recording an access",
            Exhausted::Backend,
            self.try_record_access(arn, version_id, day)
        )
    }

    async fn secrets_due_for_purge(&self, now_ms: i64, limit: i64) -> Result<Vec<String>> {
        retrying!("listing secrets due for purge", Exhausted::Backend, async {
            Ok::<_, PgError>(
                sqlx::query_scalar(
                    "SELECT arn FROM secrets WHERE purge_at_ms IS NOT NULL AND purge_at_ms <= $1 \
                     ORDER BY purge_at_ms, arn COLLATE \"C\" LIMIT $2",
                )
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
            )
        })
    }

    async fn try_lease(&self, name: &str, owner: &str, now_ms: i64, lease_ms: i64) -> Result<bool> {
        // A row of `coffer_meta` per lease, `"<owner> <until_ms>"`: one conditional upsert, so
        // of several nodes asking at once exactly one gets it (the others re-check the WHERE on
        // the winner's row and update nothing). The holder renews it; when it dies, the lease
        // runs out and the next node to ask takes over.
        retrying!("taking a lease", Exhausted::Backend, async {
            let row: Option<String> = sqlx::query_scalar(
                "INSERT INTO coffer_meta (meta_key, meta_value) VALUES ($1, $2) \
                 ON CONFLICT (meta_key) DO UPDATE SET meta_value = excluded.meta_value \
                 WHERE split_part(coffer_meta.meta_value, ' ', 1) = $3 \
                    OR CAST(split_part(coffer_meta.meta_value, ' ', 2) AS BIGINT) < $4 \
                 RETURNING meta_key",
            )
            .bind(format!("lease:{name}"))
            .bind(format!("{owner} {}", now_ms + lease_ms))
            .bind(owner)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
            Ok::<_, PgError>(row.is_some())
        })
    }

    async fn claim_meta(&self, key: &str, value: &str) -> Result<String> {
        retrying!("recording store metadata", Exhausted::Backend, async {
            sqlx::query(
                "INSERT INTO coffer_meta (meta_key, meta_value) VALUES ($1, $2) \
                 ON CONFLICT (meta_key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
            let stored: String =
                sqlx::query_scalar("SELECT meta_value FROM coffer_meta WHERE meta_key = $1")
                    .bind(key)
                    .fetch_one(&self.pool)
                    .await?;
            Ok::<_, PgError>(stored)
        })
    }

    async fn load_kms_key(&self, key_arn: &str) -> Result<Option<KmsKeyRecord>> {
        retrying!(
            "loading a KMS key",
            Exhausted::Backend,
            self.try_load_kms_key(key_arn)
        )
    }

    async fn load_kms_alias(
        &self,
        account_id: &str,
        alias_name: &str,
    ) -> Result<Option<KmsAliasRecord>> {
        retrying!(
            "loading a KMS alias",
            Exhausted::Backend,
            self.try_load_kms_alias(account_id, alias_name)
        )
    }

    async fn create_kms_key(&self, key: KmsKeyRecord, alias: Option<KmsAliasRecord>) -> Result<()> {
        retrying!(
            "creating a KMS key",
            Exhausted::Conflict,
            self.try_create_kms_key(&key, alias.as_ref())
        )
    }

    async fn list_kms_keys(&self, account_id: Option<&str>) -> Result<Vec<KmsKeyRecord>> {
        retrying!(
            "listing KMS keys",
            Exhausted::Backend,
            self.try_list_kms_keys(account_id)
        )
    }

    async fn list_kms_aliases(&self, account_id: &str) -> Result<Vec<KmsAliasRecord>> {
        retrying!(
            "listing KMS aliases",
            Exhausted::Backend,
            self.try_list_kms_aliases(account_id)
        )
    }

    async fn commit_kms_with(&self, change: KmsChange, outbox: Vec<OutboxEntry>) -> Result<()> {
        retrying!(
            "changing a KMS key or alias",
            Exhausted::Conflict,
            self.try_commit_kms(&change, &outbox)
        )
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
