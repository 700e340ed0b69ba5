//! A secret change and its outbox rows inside the committing transaction, one row per
//! statement (the statements' texts are `crate::writes`'s). The transaction itself, and its
//! re-runs after losing to a concurrent one, are the caller's ([`super::region`]).

use sqlx::postgres::PgConnection;

use super::retrying::PgResult;
use crate::writes::{
    DETACHMENT_UPSERT, OUTBOX_INSERT, SECRET_DELETE, SECRET_INSERT, SECRET_UPDATE, VERSION_DELETE,
    VERSION_UPSERT, VERSIONS_DELETE, bind_detachment, bind_outbox_entry, bind_secret, bind_version,
    now_ms, tags_json,
};
use crate::{OutboxEntry, Result, SecretChange, StoreError, VersionRecord};

async fn upsert_version(conn: &mut PgConnection, v: &VersionRecord) -> PgResult<()> {
    bind_version!(sqlx::query(VERSION_UPSERT), bind, v)
        .execute(conn)
        .await?;
    Ok(())
}

/// Applies one change in the committing transaction; a secret that is not at the expected
/// `row_version` (or is gone) is a `Conflict`.
pub(super) async fn apply_change(tx: &mut PgConnection, change: &SecretChange) -> PgResult<()> {
    match change {
        SecretChange::Insert { secret, versions } => {
            bind_secret!(sqlx::query(SECRET_INSERT), bind, secret)
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
            let done = sqlx::query(SECRET_UPDATE)
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
                .bind(arn)
                .bind(expected_row_version)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(key) = key else {
                return Err(StoreError::Conflict.into());
            };
            sqlx::query(VERSIONS_DELETE)
                .bind(arn)
                .execute(&mut *tx)
                .await?;
            // The secret's row is gone; `key` was its `term_key`.
            sqlx::query(crate::listing::TERMS_REMOVE)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        SecretChange::RecordDetachment(d) => {
            bind_detachment!(sqlx::query(DETACHMENT_UPSERT), d)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

/// Queues `outbox` rows (due now) in the transaction of the change they belong to.
pub(super) async fn insert_outbox(
    tx: &mut sqlx::PgConnection,
    outbox: &[OutboxEntry],
) -> Result<()> {
    let now = now_ms();
    for entry in outbox {
        bind_outbox_entry!(sqlx::query(OUTBOX_INSERT), entry)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
