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

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use coffer_retry::{Backoff, Jitter};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};

use crate::iam_rows::{
    ACCESS_KEY_INSERT, ACCESS_KEY_INSERT_WITHIN, ACCOUNT_INSERT, USER_INSERT, access_key_from_row,
    user_from_row, user_policy_from_row,
};
use crate::rows::{
    PG_LOAD_BY_ARN, PG_LOAD_BY_NAME, kms_alias_insert, kms_key_insert, kms_query, outbox_from_row,
    secret_from_joined, secret_from_row, version_from_row,
};
use crate::schema::{StoreKind, check_compatible_in};
mod read_cache;

use read_cache::ReadCache;

use crate::{
    AccessKeyRecord, IamStore, KmsAliasRecord, KmsChange, KmsKeyRecord, OutboxEntry, OutboxRow,
    Result, Secret, SecretChange, Store, StoreError, Tag, UserPolicyRecord, UserRecord,
    VersionRecord,
};

/// Re-runs after a serialization failure or a deadlock before giving up.
const MAX_RETRIES: u32 = 5;

/// Connections per Region store. The database does the work; a node with 2 cores keeps few
/// requests in flight at once, and every node of a Region (and every Region on the database)
/// adds its own pool, so stay well under PostgreSQL's default `max_connections` of 100. The read
/// cache's validating rounds (`read_cache`) use one more connection of their own.
const REGION_POOL: u32 = 8;
/// Principals are read at start and written rarely.
const IAM_POOL: u32 = 2;

/// An error inside one attempt: either worth another attempt or final.
enum PgError {
    Retry(sqlx::Error),
    Final(StoreError),
}

type PgResult<T> = std::result::Result<T, PgError>;

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

impl From<sqlx::Error> for PgError {
    fn from(err: sqlx::Error) -> Self {
        match sqlstate(&err).as_deref() {
            // serialization_failure, deadlock_detected
            Some("40001") | Some("40P01") => PgError::Retry(err),
            _ => PgError::Final(StoreError::from(err)),
        }
    }
}

impl From<StoreError> for PgError {
    fn from(err: StoreError) -> Self {
        PgError::Final(err)
    }
}

/// How a transaction that lost to a concurrent one (or a schema creation that collided) is run
/// again: 5 ms, 10 ms, 20 ms, ... (at most 160 ms) plus up to as much again of random jitter,
/// i.e. 10 ms doubling to 320 ms with equal jitter, so two nodes (or two tasks of one node)
/// that collided do not collide again in lockstep; `MAX_RETRIES` times at most.
const RETRIES: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(320))
    .jitter(Jitter::Equal)
    .attempts(MAX_RETRIES + 1);

#[cfg(test)]
fn backoff_pause(attempt: u32) -> Duration {
    RETRIES.delay(attempt)
}

/// What a transaction that kept losing to concurrent ones reports.
#[derive(Clone, Copy)]
enum Exhausted {
    /// A write whose caller reloads and retries on `Conflict`.
    Conflict,
    Backend,
}

fn exhausted(what: &str, how: Exhausted, err: sqlx::Error) -> StoreError {
    tracing::warn!(
        "{what}: still failing after {} attempts on concurrent transactions: {err}",
        MAX_RETRIES + 1
    );
    match how {
        Exhausted::Conflict => StoreError::Conflict,
        Exhausted::Backend => StoreError::DatabaseDuring {
            doing: format!(
                "{what}: still failing after {} attempts on concurrent transactions",
                MAX_RETRIES + 1
            ),
            source: Arc::new(err),
        },
    }
}

/// Evaluates `$attempt` (an expression producing a `PgResult` future) until it succeeds, fails
/// for good, or has been retried `MAX_RETRIES` times.
macro_rules! retrying {
    ($what:expr, $how:expr, $attempt:expr) => {{
        let mut retries = RETRIES.retries();
        loop {
            match $attempt.await {
                Ok(value) => break Ok(value),
                Err(PgError::Final(err)) => break Err(err),
                Err(PgError::Retry(err)) => match retries.next_delay() {
                    None => break Err(exhausted($what, $how, err)),
                    Some(pause) => {
                        tracing::debug!("{}: retrying ({}) after {err}", $what, retries.count());
                        coffer_retry::pause(pause).await;
                    }
                },
            }
        }
    }};
}

/// Schema names are interpolated into SQL (quoted), so they are kept to a safe alphabet.
fn validate_schema(schema: &str) -> Result<()> {
    let mut chars = schema.chars();
    let ok = schema.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "invalid PostgreSQL schema name {schema:?}: use 1 to 63 characters among a-z, 0-9 \
             and _, not starting with a digit or pg_"
        )))
    }
}

/// What `open` found in the schema before writing anything.
enum Found {
    /// No tables at all (or no schema yet).
    Nothing,
    /// Tables, but no `coffer_meta`.
    Foreign,
    /// `coffer_meta` with these markers (both `None` while another node is creating the store).
    Meta {
        kind: Option<String>,
        version: Option<i64>,
    },
}

async fn read_meta(
    conn: &mut PgConnection,
    table: &str,
) -> std::result::Result<(Option<String>, Option<i64>), sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT meta_key, meta_value FROM {table} WHERE meta_key IN ('kind', 'format_version')"
    )))
    .fetch_all(conn)
    .await?;
    let mut kind = None;
    let mut version = None;
    for row in &rows {
        let key: String = row.try_get("meta_key")?;
        let value: String = row.try_get("meta_value")?;
        match key.as_str() {
            "kind" => kind = Some(value),
            _ => version = value.parse().ok(),
        }
    }
    Ok((kind, version))
}

async fn inspect(pool: &PgPool, schema: &str, location: &str) -> Result<Found> {
    let mut conn = pool.acquire().await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    if tables.is_empty() {
        return Ok(Found::Nothing);
    }
    if !tables.iter().any(|t| t == "coffer_meta") {
        return Ok(Found::Foreign);
    }
    match read_meta(&mut conn, &format!("\"{schema}\".coffer_meta")).await {
        Ok((kind, version)) => Ok(Found::Meta { kind, version }),
        Err(e) => Err(StoreError::Incompatible(format!(
            "{location} has a coffer_meta table Coffer cannot read ({e}); the schema was left untouched."
        ))),
    }
}

fn is_creation_race(err: &sqlx::Error) -> bool {
    // Two `CREATE ... IF NOT EXISTS` at once can still collide in the catalog: unique_violation,
    // duplicate_object (the table's row type), duplicate_schema, duplicate_table.
    matches!(
        sqlstate(err).as_deref(),
        Some("23505" | "42710" | "42P06" | "42P07" | "40001" | "40P01")
    )
}

/// Creates the schema, `coffer_meta` and its `migration_lock` row if missing. Idempotent and
/// safe to run from several nodes at once.
async fn bootstrap(pool: &PgPool, schema: &str) -> Result<()> {
    let attempt = || async move {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
        )))
        .execute(pool)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS \"{schema}\".coffer_meta \
             (meta_key TEXT PRIMARY KEY, meta_value TEXT NOT NULL)"
        )))
        .execute(pool)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO \"{schema}\".coffer_meta (meta_key, meta_value) \
             VALUES ('migration_lock', 'coffer') ON CONFLICT (meta_key) DO NOTHING"
        )))
        .execute(pool)
        .await?;
        Ok::<(), sqlx::Error>(())
    };
    coffer_retry::retry(&RETRIES, attempt, is_creation_race)
        .await
        .map_err(|e| StoreError::DatabaseDuring {
            doing: format!("creating schema {schema}"),
            source: Arc::new(e),
        })
}

struct Target<'a> {
    kind: StoreKind,
    schema: &'a str,
    location: &'a str,
}

impl Target<'_> {
    fn check(&self, kind: Option<&str>, version: Option<i64>) -> Result<()> {
        check_compatible_in(
            self.kind,
            self.location,
            "the schema",
            "point this store at another schema",
            kind,
            version,
        )
        .map_err(StoreError::Incompatible)
    }
}

/// One attempt at migrating under the lock row.
async fn migrate_locked(pool: &PgPool, target: &Target<'_>) -> PgResult<()> {
    let migrations = target.kind.postgres_migrations();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT meta_value FROM coffer_meta WHERE meta_key = 'migration_lock' FOR UPDATE")
        .fetch_optional(&mut *tx)
        .await?;
    let (kind, version) = read_meta(&mut tx, "coffer_meta").await?;
    let applied = match (&kind, version) {
        (None, None) => 0,
        _ => {
            target.check(kind.as_deref(), version)?;
            version.unwrap_or(0)
        }
    };
    if applied as usize >= migrations.len() {
        tx.rollback().await?;
        return Ok(());
    }
    crate::schema::log_migration(target.kind, target.location, applied, migrations.len());
    for sql in &migrations[applied as usize..] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await?;
    }
    if crate::schema::needs_terms_backfill(target.kind, applied) {
        let n = crate::listing::pg::backfill(&mut tx).await?;
        tracing::info!(
            "{}: wrote the search terms of {n} existing secrets",
            target.location
        );
    }
    for (key, value) in [
        ("kind", target.kind.name().to_string()),
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
    tracing::info!(
        "{}: migrated from format {applied} to {}",
        target.location,
        migrations.len()
    );
    Ok(())
}

/// Checks, creates and migrates as needed; nothing is written when the check fails. With
/// `migrate` false (`migrate_on_start = false`), a schema that is not at this version's format
/// is refused instead, naming `coffer migrate`.
async fn prepare(pool: &PgPool, target: &Target<'_>, migrate: bool) -> Result<()> {
    let supported = target.kind.postgres_migrations().len() as i64;
    match inspect(pool, target.schema, target.location).await? {
        Found::Nothing => {}
        Found::Foreign => target.check(None, None)?,
        // Another node is creating this store right now: the lock row orders us after it.
        Found::Meta {
            kind: None,
            version: None,
        } => {}
        Found::Meta { kind, version } => {
            target.check(kind.as_deref(), version)?;
            if version == Some(supported) {
                return Ok(());
            }
        }
    }
    if !migrate {
        return Err(StoreError::Incompatible(format!(
            "{} is not at store format {supported} and migrate_on_start is false: run \
             `coffer migrate --config FILE` first; the schema was left untouched.",
            target.location
        )));
    }
    bootstrap(pool, target.schema).await?;
    retrying!(
        "migrating the store",
        Exhausted::Backend,
        migrate_locked(pool, target)
    )
}

async fn open_pool(
    url: &str,
    schema: &str,
    kind: StoreKind,
    size: u32,
    migrate: bool,
) -> Result<PgPool> {
    validate_schema(schema)?;
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::DatabaseDuring {
        doing: "invalid PostgreSQL URL".into(),
        source: Arc::new(e),
    })?;
    // Never the URL itself: it may hold a password.
    let location = format!(
        "PostgreSQL schema {schema} in database {} on {}:{}",
        options.get_database().unwrap_or(options.get_username()),
        options.get_host(),
        options.get_port()
    );
    // One direct connection first: an unreachable server or a refused login is reported at
    // once, instead of after the pool's acquire timeout of retrying.
    let probe = PgConnection::connect_with(&options)
        .await
        .map_err(|e| StoreError::Backend(format!("{location}: cannot connect: {e}")))?;
    probe.close().await.ok();
    let set_path: Arc<str> = format!("SET search_path TO \"{schema}\"").into();
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(10))
        .idle_timeout(Some(Duration::from_secs(300)))
        .after_connect(move |conn, _meta| {
            let sql = set_path.clone();
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Backend(format!("{location}: cannot connect: {e}")))?;
    let target = Target {
        kind,
        schema,
        location: &location,
    };
    if let Err(e) = prepare(&pool, &target, migrate).await {
        pool.close().await;
        return Err(e);
    }
    Ok(pool)
}

fn tags_json(tags: &Option<Vec<Tag>>) -> Option<String> {
    tags.as_ref()
        .map(|t| serde_json::to_string(t).expect("tags serialize"))
}

const SECRET_COLUMNS: &str = "arn, account_id, name, description, kms_key_id, tags, resource_policy, \
     created_ms, last_changed_ms, last_accessed_day, deleted_ms, purge_at_ms, rotation, replication, row_version";

const VERSION_UPSERT: &str = "INSERT INTO secret_versions (secret_arn, version_id, stages, created_ms, \
     last_accessed_day, kms_key_arn, value_kind, wrapped_data_key, ciphertext) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (secret_arn, version_id) DO UPDATE SET stages = excluded.stages, \
     last_accessed_day = excluded.last_accessed_day, kms_key_arn = excluded.kms_key_arn, \
     value_kind = excluded.value_kind, wrapped_data_key = excluded.wrapped_data_key, \
     ciphertext = excluded.ciphertext";

const FINISH_OUTBOX: &str = "DELETE FROM replication_outbox WHERE secret_arn = $1 \
     AND dest_region = $2 AND kind = $3 AND id <= $4";

/// Reads see one snapshot (a secret and its versions from the same commit).
const READ_TX: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

async fn upsert_version(conn: &mut PgConnection, v: &VersionRecord) -> PgResult<()> {
    sqlx::query(VERSION_UPSERT)
        .bind(&v.secret_arn)
        .bind(&v.version_id)
        .bind(serde_json::to_string(&v.stages).expect("stages serialize"))
        .bind(v.created_ms)
        .bind(v.last_accessed_day)
        .bind(&v.kms_key_arn)
        .bind(v.value_kind as i64)
        .bind(&v.wrapped_data_key)
        .bind(&v.ciphertext)
        .execute(conn)
        .await?;
    Ok(())
}

const DETACHMENT_UPSERT: &str = "INSERT INTO replica_detachments (arn, primary_arn, epoch, detached_ms) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (arn) DO UPDATE SET \
     primary_arn = excluded.primary_arn, epoch = excluded.epoch, \
     detached_ms = excluded.detached_ms";

async fn apply_change(tx: &mut PgConnection, change: &SecretChange) -> PgResult<()> {
    match change {
        SecretChange::Insert { secret, versions } => {
            let sql = format!(
                "INSERT INTO secrets ({SECRET_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
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
            for v in versions {
                upsert_version(tx, v).await?;
            }
            crate::listing::pg::sync(tx, secret).await?;
        }
        SecretChange::Update {
            secret,
            expected_row_version,
            upsert_versions,
            delete_versions,
        } => {
            let done = sqlx::query(
                "UPDATE secrets SET description = $1, kms_key_id = $2, tags = $3, \
                     resource_policy = $4, last_changed_ms = $5, last_accessed_day = $6, \
                     deleted_ms = $7, purge_at_ms = $8, rotation = $9, replication = $10, \
                     row_version = $11 WHERE arn = $12 AND row_version = $13",
            )
            .bind(&secret.description)
            .bind(&secret.kms_key_id)
            .bind(tags_json(&secret.tags))
            .bind(&secret.resource_policy)
            .bind(secret.last_changed_ms)
            .bind(secret.last_accessed_day)
            .bind(secret.deleted_ms)
            .bind(secret.purge_at_ms)
            .bind(&secret.rotation)
            .bind(&secret.replication)
            .bind(secret.row_version)
            .bind(&secret.arn)
            .bind(expected_row_version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict.into());
            }
            crate::listing::pg::sync(tx, secret).await?;
            for v in upsert_versions {
                upsert_version(tx, v).await?;
            }
            for id in delete_versions {
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
            .bind(arn)
            .bind(expected_row_version)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(key) = key else {
                return Err(StoreError::Conflict.into());
            };
            sqlx::query("DELETE FROM secret_versions WHERE secret_arn = $1")
                .bind(arn)
                .execute(&mut *tx)
                .await?;
            crate::listing::pg::remove(tx, key).await?;
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

/// Queues `outbox` rows (due now) in the transaction of the change they belong to.
async fn insert_outbox(tx: &mut sqlx::PgConnection, outbox: &[OutboxEntry]) -> Result<()> {
    let now = now_ms();
    for entry in outbox {
        sqlx::query(
            "INSERT INTO replication_outbox (secret_arn, dest_region, kind, payload, enqueued_ms, \
             attempts, next_attempt_ms) VALUES ($1, $2, $3, $4, $5, 0, $5)",
        )
        .bind(&entry.secret_arn)
        .bind(&entry.dest_region)
        .bind(&entry.kind)
        .bind(&entry.payload)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How a read names its secret.
enum By<'a> {
    Arn(&'a str),
    Name(&'a str, &'a str),
}

/// A Region's store in its own PostgreSQL schema.
pub struct PostgresStore {
    pool: PgPool,
    schema: String,
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
    /// loaded whole (and cached).
    async fn load(&self, by: &By<'_>) -> Result<Option<Secret>> {
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
        let (sql, args): (&'static str, Vec<&str>) = match by {
            By::Arn(arn) => (PG_LOAD_BY_ARN, vec![*arn]),
            By::Name(account_id, name) => (PG_LOAD_BY_NAME, vec![*account_id, *name]),
        };
        let found = retrying!(
            "loading a secret",
            Exhausted::Backend,
            self.try_load(sql, &args)
        )?;
        if let (Some(cache), Some(secret)) = (&self.cache, &found) {
            cache.put(secret);
        }
        Ok(found)
    }

    /// Reads every record of the Region into `sink`, page by page from one snapshot
    /// (REPEATABLE READ, READ ONLY), for `coffer backup`.
    pub async fn export_to<S: crate::RegionSink>(
        &self,
        sink: &mut S,
    ) -> std::result::Result<(), S::Error> {
        let mut tx = self
            .pool
            .begin_with(READ_TX)
            .await
            .map_err(StoreError::from)?;
        crate::snapshot::pg::export(&mut tx, sink).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// Every record of the Region, in memory ([`PostgresStore::export_to`] streams).
    pub async fn export(&self) -> Result<crate::RegionSnapshot> {
        let mut snapshot = crate::RegionSnapshot::default();
        self.export_to(&mut snapshot).await?;
        Ok(snapshot.sorted())
    }

    /// Whether this Region store holds no secret and no KMS key, as an import needs.
    pub async fn region_is_empty(&self) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        Ok(crate::snapshot::pg::held(&mut conn).await? == 0)
    }

    /// Writes the records `next` yields (until `None`) into this (empty) Region store in one
    /// transaction, for `coffer restore`; returns the number of secrets. A store that already
    /// holds secrets or keys is refused and left as it was; on any error nothing is written.
    pub async fn import_from<E: From<StoreError>>(
        &self,
        mut next: impl FnMut() -> std::result::Result<Option<crate::RegionItem>, E>,
    ) -> std::result::Result<u64, E> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let secrets = crate::snapshot::pg::import(&mut tx, &mut next, &self.schema).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(secrets)
    }

    /// [`PostgresStore::import_from`] of a snapshot in memory.
    pub async fn import(&self, snapshot: &crate::RegionSnapshot) -> Result<()> {
        let mut items = snapshot.items();
        self.import_from(|| Ok::<_, StoreError>(items.next()))
            .await?;
        Ok(())
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
            sqlx::query(FINISH_OUTBOX)
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
        sqlx::query(crate::ACCESS_SECRET_SQL)
            .bind(day)
            .bind(arn)
            .execute(&mut *tx)
            .await?;
        sqlx::query(crate::ACCESS_VERSION_SQL)
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
        let row = sqlx::query("SELECT * FROM kms_keys WHERE key_arn = $1")
            .bind(key_arn)
            .fetch_optional(&self.pool)
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

    async fn try_load_kms_alias(
        &self,
        account_id: &str,
        alias_name: &str,
    ) -> PgResult<Option<KmsAliasRecord>> {
        let row =
            sqlx::query("SELECT * FROM kms_aliases WHERE account_id = $1 AND alias_name = $2")
                .bind(account_id)
                .bind(alias_name)
                .fetch_optional(&self.pool)
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

    async fn try_list_kms_keys(&self, account_id: Option<&str>) -> PgResult<Vec<KmsKeyRecord>> {
        let rows = match account_id {
            Some(account) => {
                sqlx::query(
                    "SELECT * FROM kms_keys WHERE account_id = $1 ORDER BY created_ms, key_arn",
                )
                .bind(account)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query("SELECT * FROM kms_keys ORDER BY created_ms, key_arn")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows
            .iter()
            .map(crate::rows::kms_key_from_row)
            .collect::<Result<_>>()?)
    }

    async fn try_list_kms_aliases(&self, account_id: &str) -> PgResult<Vec<KmsAliasRecord>> {
        let rows =
            sqlx::query("SELECT * FROM kms_aliases WHERE account_id = $1 ORDER BY alias_name")
                .bind(account_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(crate::rows::kms_alias_from_row)
            .collect::<Result<_>>()?)
    }

    async fn try_commit_kms(&self, change: &KmsChange, outbox: &[OutboxEntry]) -> PgResult<()> {
        let mut tx = self.pool.begin().await?;
        for (i, statement) in crate::rows::kms_change_statements(change)
            .into_iter()
            .enumerate()
        {
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
    async fn load_secret_by_name(&self, account_id: &str, name: &str) -> Result<Option<Secret>> {
        self.load(&By::Name(account_id, name)).await
    }

    async fn load_secret_by_arn(&self, arn: &str) -> Result<Option<Secret>> {
        self.load(&By::Arn(arn)).await
    }

    async fn record_heads(&self, heads: &[crate::ReplicaHead]) -> Result<()> {
        retrying!("recording replica heads", Exhausted::Backend, async {
            crate::failover_rows::postgres::record_heads(&self.pool, heads)
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
            crate::failover_rows::postgres::delete_heads(&self.pool, arns)
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
            crate::failover_rows::postgres::save_document(&self.pool, key, body, now_ms)
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
            let row = sqlx::query("SELECT * FROM replica_detachments WHERE arn = $1")
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
                sqlx::query(FINISH_OUTBOX)
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
                sqlx::query(
                    "UPDATE replication_outbox SET attempts = $1, next_attempt_ms = $2, \
                     first_failure_ms = $3, lease_owner = NULL, lease_until_ms = NULL \
                     WHERE id = $4 OR (id < $4 AND (secret_arn, dest_region, kind) = \
                     (SELECT secret_arn, dest_region, kind FROM replication_outbox WHERE id = $4))",
                )
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

/// The deployment's principals in their own PostgreSQL schema (e.g. `coffer_iam`).
pub struct PostgresIamStore {
    pool: PgPool,
}

/// The statement inserting `user` ([`USER_INSERT`]), bound.
fn insert_user(
    user: &UserRecord,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
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
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(&key.access_key_id)
        .bind(&key.user_arn)
        .bind(&key.account_id)
        .bind(&key.wrapped_secret)
        .bind(&key.status)
        .bind(key.created_ms)
}

/// The accounts, oldest first.
const ACCOUNTS: &str =
    "SELECT account_id FROM accounts ORDER BY created_ms, account_id COLLATE \"C\"";

impl PostgresIamStore {
    /// Like [`PostgresStore::open`], for the IAM store.
    pub async fn open(url: &str, schema: &str) -> Result<PostgresIamStore> {
        Self::open_with(url, schema, true).await
    }

    /// Like [`PostgresStore::open_with`], for the IAM store.
    pub async fn open_with(url: &str, schema: &str, migrate: bool) -> Result<PostgresIamStore> {
        Ok(PostgresIamStore {
            pool: open_pool(url, schema, StoreKind::Iam, IAM_POOL, migrate).await?,
        })
    }

    async fn try_execute(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> PgResult<()> {
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// The user's row is locked first, so concurrent creations for one user (on any node)
    /// take turns, and each one's count sees the keys committed before it.
    async fn try_create_access_key_within(
        &self,
        key: &AccessKeyRecord,
        max_per_user: i64,
    ) -> PgResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM users WHERE user_arn = $1 FOR UPDATE")
            .bind(&key.user_arn)
            .execute(&mut *tx)
            .await?;
        let done = insert_access_key(ACCESS_KEY_INSERT_WITHIN, key)
            .bind(max_per_user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// `EXCLUSIVE` on `accounts` conflicts with itself: nodes bootstrapping at the same
    /// instant take turns, and the second sees the first's account.
    async fn try_bootstrap_account(
        &self,
        now_ms: i64,
        admin: &UserRecord,
        key: &AccessKeyRecord,
    ) -> PgResult<String> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE accounts IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
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
        insert_user(admin).execute(&mut *tx).await?;
        insert_access_key(ACCESS_KEY_INSERT, key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(admin.account_id.clone())
    }

    async fn try_users(&self) -> PgResult<Vec<UserRecord>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY created_ms, user_arn COLLATE \"C\"")
            .fetch_all(&self.pool)
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

    async fn try_access_keys(&self) -> PgResult<Vec<AccessKeyRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM access_keys ORDER BY created_ms, access_key_id COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
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
}

#[async_trait]
impl IamStore for PostgresIamStore {
    async fn accounts(&self) -> Result<Vec<String>> {
        retrying!("listing accounts", Exhausted::Backend, async {
            Ok::<_, PgError>(sqlx::query_scalar(ACCOUNTS).fetch_all(&self.pool).await?)
        })
    }

    async fn create_account(&self, account_id: &str, now_ms: i64) -> Result<()> {
        retrying!(
            "creating an account",
            Exhausted::Conflict,
            self.try_execute(sqlx::query(ACCOUNT_INSERT).bind(account_id).bind(now_ms))
        )
    }

    async fn bootstrap_account(
        &self,
        now_ms: i64,
        admin: UserRecord,
        key: AccessKeyRecord,
    ) -> Result<String> {
        retrying!(
            "creating the first account",
            Exhausted::Conflict,
            self.try_bootstrap_account(now_ms, &admin, &key)
        )
    }

    async fn create_user(&self, user: UserRecord) -> Result<()> {
        retrying!(
            "creating a user",
            Exhausted::Conflict,
            self.try_execute(insert_user(&user))
        )
    }

    async fn create_access_key(&self, key: AccessKeyRecord) -> Result<()> {
        retrying!(
            "creating an access key",
            Exhausted::Conflict,
            self.try_execute(insert_access_key(ACCESS_KEY_INSERT, &key))
        )
    }

    async fn create_access_key_within(
        &self,
        key: AccessKeyRecord,
        max_per_user: i64,
    ) -> Result<bool> {
        retrying!(
            "creating an access key",
            Exhausted::Conflict,
            self.try_create_access_key_within(&key, max_per_user)
        )
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        retrying!("listing users", Exhausted::Backend, self.try_users())
    }

    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>> {
        retrying!(
            "listing access keys",
            Exhausted::Backend,
            self.try_access_keys()
        )
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        retrying!("loading an access key", Exhausted::Backend, async {
            let row = sqlx::query("SELECT * FROM access_keys WHERE access_key_id = $1")
                .bind(access_key_id)
                .fetch_optional(&self.pool)
                .await?;
            Ok::<_, PgError>(row.as_ref().map(access_key_from_row).transpose()?)
        })
    }

    async fn user(&self, user_arn: &str) -> Result<Option<UserRecord>> {
        retrying!("loading a user", Exhausted::Backend, async {
            let row = sqlx::query("SELECT * FROM users WHERE user_arn = $1")
                .bind(user_arn)
                .fetch_optional(&self.pool)
                .await?;
            Ok::<_, PgError>(row.as_ref().map(user_from_row).transpose()?)
        })
    }

    async fn user_access_keys(&self, user_arn: &str) -> Result<Vec<AccessKeyRecord>> {
        retrying!("listing a user's access keys", Exhausted::Backend, async {
            let rows = sqlx::query(
                "SELECT * FROM access_keys WHERE user_arn = $1 \
                 ORDER BY created_ms, access_key_id COLLATE \"C\"",
            )
            .bind(user_arn)
            .fetch_all(&self.pool)
            .await?;
            Ok::<_, PgError>(
                rows.iter()
                    .map(access_key_from_row)
                    .collect::<Result<Vec<_>>>()?,
            )
        })
    }

    async fn set_access_key_status(&self, access_key_id: &str, status: &str) -> Result<bool> {
        retrying!("updating an access key", Exhausted::Backend, async {
            let done = sqlx::query("UPDATE access_keys SET status = $1 WHERE access_key_id = $2")
                .bind(status)
                .bind(access_key_id)
                .execute(&self.pool)
                .await?;
            Ok::<_, PgError>(done.rows_affected() > 0)
        })
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<bool> {
        retrying!("deleting an access key", Exhausted::Backend, async {
            let done = sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1")
                .bind(access_key_id)
                .execute(&self.pool)
                .await?;
            Ok::<_, PgError>(done.rows_affected() > 0)
        })
    }

    async fn delete_user(&self, user_arn: &str) -> Result<bool> {
        retrying!("deleting a user", Exhausted::Backend, async {
            let done = sqlx::query("DELETE FROM users WHERE user_arn = $1")
                .bind(user_arn)
                .execute(&self.pool)
                .await?;
            Ok::<_, PgError>(done.rows_affected() > 0)
        })
    }

    async fn put_user_policy(&self, policy: UserPolicyRecord) -> Result<()> {
        retrying!(
            "putting a user policy",
            Exhausted::Backend,
            self.try_execute(
                sqlx::query(
                    "INSERT INTO user_policies (user_arn, policy_name, document, updated_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (user_arn, policy_name) \
                     DO UPDATE SET document = excluded.document, updated_ms = excluded.updated_ms",
                )
                .bind(&policy.user_arn)
                .bind(&policy.policy_name)
                .bind(&policy.document)
                .bind(policy.updated_ms)
            )
        )
    }

    async fn delete_user_policy(&self, user_arn: &str, policy_name: &str) -> Result<bool> {
        retrying!("deleting a user policy", Exhausted::Backend, async {
            let done =
                sqlx::query("DELETE FROM user_policies WHERE user_arn = $1 AND policy_name = $2")
                    .bind(user_arn)
                    .bind(policy_name)
                    .execute(&self.pool)
                    .await?;
            Ok::<_, PgError>(done.rows_affected() > 0)
        })
    }

    async fn user_policies(&self, user_arn: &str) -> Result<Vec<UserPolicyRecord>> {
        retrying!("listing a user's policies", Exhausted::Backend, async {
            let rows = sqlx::query(
                "SELECT * FROM user_policies WHERE user_arn = $1 ORDER BY policy_name COLLATE \"C\"",
            )
            .bind(user_arn)
            .fetch_all(&self.pool)
            .await?;
            Ok::<_, PgError>(
                rows.iter()
                    .map(user_policy_from_row)
                    .collect::<Result<Vec<_>>>()?,
            )
        })
    }

    async fn user_tags(&self, user_arn: &str) -> Result<Option<String>> {
        retrying!("loading a user's tags", Exhausted::Backend, async {
            let row = sqlx::query("SELECT tags FROM users WHERE user_arn = $1")
                .bind(user_arn)
                .fetch_optional(&self.pool)
                .await?;
            Ok::<_, PgError>(row.map(|r| r.try_get::<String, _>("tags")).transpose()?)
        })
    }

    async fn replace_user_tags(&self, user_arn: &str, old: &str, new: &str) -> Result<bool> {
        retrying!("replacing a user's tags", Exhausted::Backend, async {
            let done = sqlx::query(crate::iam_rows::USER_TAGS_REPLACE)
                .bind(new)
                .bind(user_arn)
                .bind(old)
                .execute(&self.pool)
                .await?;
            Ok::<_, PgError>(done.rows_affected() > 0)
        })
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        assert_eq!(
            PostgresStore::schema_for_region("us-east-1"),
            "coffer_us_east_1"
        );
        assert!(validate_schema("coffer_us_east_1").is_ok());
        for bad in [
            "",
            "1abc",
            "Coffer",
            "a-b",
            "a\"b",
            "pg_temp",
            &"a".repeat(64),
        ] {
            assert!(validate_schema(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn backoff_doubles_to_160_ms_with_up_to_as_much_again_of_jitter() {
        for attempt in 1..10u32 {
            let base = 5u64 << (attempt - 1).min(5);
            let pauses: std::collections::HashSet<Duration> =
                (0..64).map(|_| backoff_pause(attempt)).collect();
            for p in &pauses {
                assert!(
                    *p >= Duration::from_millis(base) && *p <= Duration::from_millis(2 * base),
                    "{attempt}: {p:?}"
                );
            }
            // Random, not the same for everyone who collided at one instant.
            assert!(pauses.len() > 1, "{attempt}: {pauses:?}");
        }
    }
}
