//! Opening a PostgreSQL store: connecting (a probe first, so an unreachable server is reported
//! at once), every pooled connection's `search_path`, the look at the schema before anything is
//! written, creating the schema and `coffer_meta`, and migrating under the lock row.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};

use super::retrying::{Exhausted, PgResult, RETRIES, retrying, sqlstate};
use crate::schema::{StoreKind, check_compatible_in};
use crate::{Result, StoreError};

/// Connections per Region store. The database does the work; a node with 2 cores keeps few
/// requests in flight at once, and every node of a Region (and every Region on the database)
/// adds its own pool, so stay well under PostgreSQL's default `max_connections` of 100. The read
/// cache's validating rounds (`read_cache`) use one more connection of their own.
pub(super) const REGION_POOL: u32 = 8;
/// Principals are read at start and written rarely.
pub(super) const IAM_POOL: u32 = 2;

/// Schema names are interpolated into SQL (quoted), so they are kept to a safe alphabet.
pub(super) fn validate_schema(schema: &str) -> Result<()> {
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
    crate::writes::record_format!(tx, target.kind, migrations.len());
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

pub(super) async fn open_pool(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PostgresStore;

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
}
