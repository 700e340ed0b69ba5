//! Row -> record mapping shared by both backends: the columns are the same on SQLite and
//! PostgreSQL, only the driver's row type differs.

use sqlx::{ColumnIndex, Database, Decode, Row, Type};

use crate::{
    OutboxEntry, OutboxRow, Result, SecretRecord, StoreError, Tag, ValueKind, VersionRecord,
};

/// What a driver's row must decode for these mappings.
pub(crate) trait RecordRow: Row
where
    for<'a> &'a str: ColumnIndex<Self>,
{
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>>;
}

impl<R> RecordRow for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    R::Database: Database,
{
    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }
    fn int(&self, column: &str) -> Result<i64> {
        Ok(self.try_get(column)?)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(column)?)
    }
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("corrupt JSON column: {e}"))
}

pub(crate) fn secret_from_row<R: RecordRow>(row: &R) -> Result<SecretRecord>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    let tags = match row.opt_text("tags")? {
        Some(t) => Some(serde_json::from_str::<Vec<Tag>>(&t).map_err(json_err)?),
        None => None,
    };
    Ok(SecretRecord {
        arn: row.text("arn")?,
        account_id: row.text("account_id")?,
        name: row.text("name")?,
        description: row.opt_text("description")?,
        kms_key_id: row.opt_text("kms_key_id")?,
        tags,
        resource_policy: row.opt_text("resource_policy")?,
        created_ms: row.int("created_ms")?,
        last_changed_ms: row.int("last_changed_ms")?,
        last_accessed_day: row.opt_int("last_accessed_day")?,
        deleted_ms: row.opt_int("deleted_ms")?,
        purge_at_ms: row.opt_int("purge_at_ms")?,
        rotation: row.opt_text("rotation")?,
        replication: row.opt_text("replication")?,
        row_version: row.int("row_version")?,
    })
}

pub(crate) fn version_from_row<R: RecordRow>(row: &R) -> Result<VersionRecord>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(VersionRecord {
        secret_arn: row.text("secret_arn")?,
        version_id: row.text("version_id")?,
        stages: serde_json::from_str(&row.text("stages")?).map_err(json_err)?,
        created_ms: row.int("created_ms")?,
        last_accessed_day: row.opt_int("last_accessed_day")?,
        kms_key_arn: row.opt_text("kms_key_arn")?,
        value_kind: ValueKind::from_i64(row.int("value_kind")?),
        wrapped_data_key: row.opt_bytes("wrapped_data_key")?,
        ciphertext: row.opt_bytes("ciphertext")?,
    })
}

pub(crate) fn outbox_from_row<R: RecordRow>(row: &R) -> Result<OutboxRow>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(OutboxRow {
        id: row.int("id")?,
        entry: OutboxEntry {
            secret_arn: row.text("secret_arn")?,
            dest_region: row.text("dest_region")?,
            kind: row.text("kind")?,
            payload: row.text("payload")?,
        },
        enqueued_ms: row.int("enqueued_ms")?,
        attempts: row.int("attempts")?,
        next_attempt_ms: row.int("next_attempt_ms")?,
        first_failure_ms: row.opt_int("first_failure_ms")?,
    })
}
