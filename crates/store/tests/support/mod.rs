//! Where a conformance test's stores live: a temporary directory (SQLite) or fresh schemas with
//! a random suffix in the database named by `COFFER_TEST_POSTGRES_URL` (PostgreSQL).

use std::path::PathBuf;
use std::sync::Arc;

use coffer_store::{
    IamStore, PostgresIamStore, PostgresStore, SqliteIamStore, SqliteStore, Store, StoreError,
};
use sqlx::{Connection, Row};

pub const POSTGRES_URL_VAR: &str = "COFFER_TEST_POSTGRES_URL";

pub enum Backend {
    Sqlite {
        dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
        /// Prefix of this test's schemas; `{prefix}_region`, `{prefix}_iam`, ...
        prefix: String,
    },
}

/// The PostgreSQL URL of the test cluster; a missing variable is a failure, never a skip.
pub fn postgres_url() -> String {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{POSTGRES_URL_VAR} is not set, so the PostgreSQL half of the store conformance suite \
             cannot run. Start a throwaway PostgreSQL and export its URL with\n\n    \
             eval \"$(scripts/postgres.sh start)\"\n\nthen run the tests again (stop it with \
             `scripts/postgres.sh stop`)."
        ),
    }
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend::Sqlite {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    pub fn postgres() -> Backend {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        Backend::Postgres {
            url: postgres_url(),
            prefix: format!("coffer_test_{}", &suffix[..12]),
        }
    }

    /// PostgreSQL with every transaction SERIALIZABLE, as on PG-wire distributed databases:
    /// concurrent writers then fail with serialization errors the store has to retry.
    pub fn postgres_serializable() -> Backend {
        let Backend::Postgres { url, prefix } = Backend::postgres() else {
            unreachable!()
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        Backend::Postgres {
            url: format!("{url}{sep}options=-c%20default_transaction_isolation%3Dserializable"),
            prefix,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    fn path(&self, store: &str) -> PathBuf {
        match self {
            Backend::Sqlite { dir } => dir.path().join(format!("{store}.db")),
            Backend::Postgres { .. } => unreachable!("no files on PostgreSQL"),
        }
    }

    /// The schema of one of this test's stores (PostgreSQL only).
    pub fn schema(&self, store: &str) -> String {
        match self {
            Backend::Postgres { prefix, .. } => format!("{prefix}_{store}"),
            Backend::Sqlite { .. } => unreachable!("no schemas on SQLite"),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Backend::Postgres { url, .. } => url,
            Backend::Sqlite { .. } => unreachable!("no URL on SQLite"),
        }
    }

    /// Opens (creating on first use) the Region store called `store` of this test.
    pub async fn try_region_named(&self, store: &str) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Backend::Sqlite { .. } => Arc::new(SqliteStore::open(&self.path(store)).await?),
            Backend::Postgres { url, .. } => {
                Arc::new(PostgresStore::open(url, &self.schema(store)).await?)
            }
        })
    }

    /// The Region store `region` without a cache in front: on PostgreSQL with its read cache
    /// off (`cache_max_bytes(0)`), so every load reaches the database. SQLite's store has
    /// none of its own (`CachedStore` wraps it).
    pub async fn region_uncached(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite { .. } => self.region().await,
            Backend::Postgres { url, .. } => Arc::new(
                PostgresStore::open(url, &self.schema("region"))
                    .await
                    .expect("opening the PostgreSQL store")
                    .cache_max_bytes(0),
            ),
        }
    }

    pub async fn region_named(&self, store: &str) -> Arc<dyn Store> {
        self.try_region_named(store)
            .await
            .unwrap_or_else(|e| panic!("opening the {} store {store}: {e}", self.name()))
    }

    pub async fn try_region(&self) -> Result<Arc<dyn Store>, StoreError> {
        self.try_region_named("region").await
    }

    pub async fn region(&self) -> Arc<dyn Store> {
        self.region_named("region").await
    }

    pub async fn try_iam_named(&self, store: &str) -> Result<Arc<dyn IamStore>, StoreError> {
        Ok(match self {
            Backend::Sqlite { .. } => Arc::new(SqliteIamStore::open(&self.path(store)).await?),
            Backend::Postgres { url, .. } => {
                Arc::new(PostgresIamStore::open(url, &self.schema(store)).await?)
            }
        })
    }

    pub async fn iam(&self) -> Arc<dyn IamStore> {
        self.try_iam_named("iam")
            .await
            .unwrap_or_else(|e| panic!("opening the {} IAM store: {e}", self.name()))
    }

    /// Every row of a store's `coffer_meta`, sorted, read over a connection of its own.
    pub async fn meta(&self, store: &str) -> Vec<(String, String)> {
        let rows = match self {
            Backend::Sqlite { .. } => {
                let url = format!("sqlite://{}?mode=ro", self.path(store).display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                let rows = sqlx::query("SELECT meta_key, meta_value FROM coffer_meta")
                    .fetch_all(&mut conn)
                    .await
                    .expect("read coffer_meta");
                rows.iter()
                    .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
                    .collect::<Vec<_>>()
            }
            Backend::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.expect("postgres");
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT meta_key, meta_value FROM \"{}\".coffer_meta",
                    self.schema(store)
                )))
                .fetch_all(&mut conn)
                .await
                .expect("read coffer_meta");
                rows.iter()
                    .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
                    .collect::<Vec<_>>()
            }
        };
        let mut rows = rows;
        rows.sort();
        rows
    }

    /// Writes `coffer_meta` behind the store's back (the store must be closed).
    pub async fn set_meta(&self, store: &str, key: &str, value: &str) {
        match self {
            Backend::Sqlite { .. } => {
                let url = format!("sqlite://{}", self.path(store).display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                sqlx::query("UPDATE coffer_meta SET meta_value = $1 WHERE meta_key = $2")
                    .bind(value)
                    .bind(key)
                    .execute(&mut conn)
                    .await
                    .expect("update coffer_meta");
                conn.close().await.expect("close");
            }
            Backend::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.expect("postgres");
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE \"{}\".coffer_meta SET meta_value = $1 WHERE meta_key = $2",
                    self.schema(store)
                )))
                .bind(value)
                .bind(key)
                .execute(&mut conn)
                .await
                .expect("update coffer_meta");
                conn.close().await.expect("close");
            }
        }
    }

    /// Runs SQL in one of this test's stores behind its back (the store must be closed).
    pub async fn execute_in(&self, store: &str, sql: &str) {
        match self {
            Backend::Sqlite { .. } => {
                let url = format!("sqlite://{}", self.path(store).display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(&mut conn)
                    .await
                    .expect("SQL");
                conn.close().await.expect("close");
            }
            Backend::Postgres { .. } => {
                self.pg_execute(format!(
                    "SET search_path TO \"{}\"; {sql}",
                    self.schema(store)
                ))
                .await
            }
        }
    }

    /// Runs SQL on the PostgreSQL database directly (PostgreSQL-only tests).
    pub async fn pg_execute(&self, sql: String) {
        let mut conn = sqlx::PgConnection::connect(self.url())
            .await
            .expect("postgres");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("SQL");
        conn.close().await.expect("close");
    }

    pub async fn pg_scalar(&self, sql: String) -> i64 {
        let mut conn = sqlx::PgConnection::connect(self.url())
            .await
            .expect("postgres");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .expect("SQL");
        conn.close().await.expect("close");
        n
    }

    /// Drops this test's schemas (the temporary directory goes on drop).
    pub async fn cleanup(self) {
        if let Backend::Postgres { url, prefix } = &self {
            let Ok(mut conn) = sqlx::PgConnection::connect(url).await else {
                return;
            };
            let schemas: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(schema_name AS TEXT) FROM information_schema.schemata \
                 WHERE schema_name LIKE $1",
            )
            .bind(format!("{prefix}\\_%"))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            for schema in schemas {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                )))
                .execute(&mut conn)
                .await;
            }
            let _ = conn.close().await;
        }
    }
}
