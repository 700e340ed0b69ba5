//! The rows of Region failover (`replica_heads`, `coffer_documents`, migration 0005): the same
//! SQL on both backends, so one macro writes the functions for each pool type and the
//! `Store` impls only delegate here.

use sqlx::Row;

use crate::ReplicaHead;

/// A head only ever moves forward: an older announcement arriving late changes nothing.
pub(crate) const HEAD_UPSERT: &str = "INSERT INTO replica_heads \
     (arn, primary_region, seq, version_id, commit_ms, heard_ms) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (arn) DO UPDATE SET primary_region = excluded.primary_region, \
     seq = excluded.seq, version_id = excluded.version_id, commit_ms = excluded.commit_ms, \
     heard_ms = excluded.heard_ms \
     WHERE excluded.seq > replica_heads.seq OR excluded.primary_region <> replica_heads.primary_region";

pub(crate) const HEAD_DELETE: &str = "DELETE FROM replica_heads WHERE arn = $1";

pub(crate) const DOCUMENT_UPSERT: &str = "INSERT INTO coffer_documents (doc_key, body, updated_ms) \
     VALUES ($1, $2, $3) ON CONFLICT (doc_key) DO UPDATE SET body = excluded.body, \
     updated_ms = excluded.updated_ms";

/// Replicas are the secrets whose replication state is `{"replica": ...}` (see
/// `coffer_core::replication::ReplicationState`, serialized by serde_json without spaces).
pub(crate) const REPLICA_STATES: &str =
    "SELECT arn, replication FROM secrets WHERE replication LIKE '{\"replica\":%' ORDER BY arn";

fn head_from_row<R: Row>(row: &R) -> Result<ReplicaHead, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(ReplicaHead {
        arn: row.try_get("arn")?,
        primary_region: row.try_get("primary_region")?,
        seq: row.try_get("seq")?,
        version_id: row.try_get("version_id")?,
        commit_ms: row.try_get("commit_ms")?,
        heard_ms: row.try_get("heard_ms")?,
    })
}

/// Binds a [`ReplicaHead`]'s 6 values in [`HEAD_UPSERT`]'s order.
macro_rules! bind_head {
    ($query:expr, $head:expr) => {{
        let h: &$crate::ReplicaHead = $head;
        $query
            .bind(&h.arn)
            .bind(&h.primary_region)
            .bind(h.seq)
            .bind(&h.version_id)
            .bind(h.commit_ms)
            .bind(h.heard_ms)
    }};
}
pub(crate) use bind_head;

/// The reads, on either backend's pool. (SQLite writes these rows on its group commit's
/// writer, `sqlite::group_commit`; PostgreSQL's writes are [`postgres_writes`].)
macro_rules! failover_rows {
    ($module:ident, $pool:ty) => {
        pub(crate) mod $module {
            use super::*;

            pub(crate) async fn replica_heads(
                pool: &$pool,
            ) -> Result<Vec<ReplicaHead>, sqlx::Error> {
                sqlx::query("SELECT * FROM replica_heads ORDER BY arn")
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(head_from_row)
                    .collect()
            }

            pub(crate) async fn replica_states(
                pool: &$pool,
            ) -> Result<Vec<(String, String)>, sqlx::Error> {
                sqlx::query(REPLICA_STATES)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get("arn")?, r.try_get("replication")?)))
                    .collect()
            }

            pub(crate) async fn load_documents(
                pool: &$pool,
                prefix: &str,
            ) -> Result<Vec<(String, String)>, sqlx::Error> {
                // A prefix match without LIKE, so `_` and `%` in keys mean themselves.
                let rows =
                    sqlx::query("SELECT doc_key, body FROM coffer_documents ORDER BY doc_key")
                        .fetch_all(pool)
                        .await?;
                let mut out = Vec::new();
                for r in &rows {
                    let key: String = r.try_get("doc_key")?;
                    if key.starts_with(prefix) {
                        out.push((key, r.try_get("body")?));
                    }
                }
                Ok(out)
            }
        }
    };
}

failover_rows!(sqlite, sqlx::SqlitePool);
failover_rows!(postgres, sqlx::PgPool);

/// The writes of these rows on PostgreSQL.
pub(crate) mod postgres_writes {
    use super::*;

    pub(crate) async fn record_heads(
        pool: &sqlx::PgPool,
        heads: &[ReplicaHead],
    ) -> Result<(), sqlx::Error> {
        if heads.is_empty() {
            return Ok(());
        }
        let mut tx = pool.begin().await?;
        for h in heads {
            bind_head!(sqlx::query(HEAD_UPSERT), h)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    pub(crate) async fn delete_heads(
        pool: &sqlx::PgPool,
        arns: &[String],
    ) -> Result<(), sqlx::Error> {
        if arns.is_empty() {
            return Ok(());
        }
        let mut tx = pool.begin().await?;
        for arn in arns {
            sqlx::query(HEAD_DELETE).bind(arn).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    pub(crate) async fn save_document(
        pool: &sqlx::PgPool,
        key: &str,
        body: &str,
        now_ms: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(DOCUMENT_UPSERT)
            .bind(key)
            .bind(body)
            .bind(now_ms)
            .execute(pool)
            .await?;
        Ok(())
    }
}
