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

pub(crate) fn detachment_from_row<R: RecordRow>(row: &R) -> Result<crate::Detachment>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(crate::Detachment {
        arn: row.text("arn")?,
        primary_arn: row.text("primary_arn")?,
        epoch: row.int("epoch")?,
        detached_ms: row.int("detached_ms")?,
    })
}

pub(crate) fn kms_key_from_row<R: RecordRow>(row: &R) -> Result<crate::KmsKeyRecord>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(crate::KmsKeyRecord {
        key_arn: row.text("key_arn")?,
        account_id: row.text("account_id")?,
        key_id: row.text("key_id")?,
        wrapped_material: row.opt_bytes("wrapped_material")?.unwrap_or_default(),
        metadata: row.text("metadata")?,
        created_ms: row.int("created_ms")?,
    })
}

pub(crate) fn kms_alias_from_row<R: RecordRow>(row: &R) -> Result<crate::KmsAliasRecord>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(crate::KmsAliasRecord {
        account_id: row.text("account_id")?,
        alias_name: row.text("alias_name")?,
        target_key_arn: row.text("target_key_arn")?,
        created_ms: row.int("created_ms")?,
    })
}

/// The statements of one [`crate::KmsChange`], the same on both backends: `(sql, binds)` run
/// in order in one transaction; the first statement must touch a row, else the change is a
/// `Conflict`.
pub(crate) enum KmsBind {
    Text(String),
    Bytes(Vec<u8>),
    Int(i64),
}

pub(crate) fn kms_change_statements(
    change: &crate::KmsChange,
) -> Vec<(&'static str, Vec<KmsBind>)> {
    use crate::KmsChange;
    use KmsBind::{Bytes, Int, Text};
    match change {
        KmsChange::UpdateKey(k) => vec![(
            "UPDATE kms_keys SET wrapped_material = $1, metadata = $2 WHERE key_arn = $3",
            vec![
                Bytes(k.wrapped_material.clone()),
                Text(k.metadata.clone()),
                Text(k.key_arn.clone()),
            ],
        )],
        KmsChange::UpdateKeyIf { key: k, expected } => vec![(
            "UPDATE kms_keys SET wrapped_material = $1, metadata = $2 \
             WHERE key_arn = $3 AND metadata = $4 AND wrapped_material = $5",
            vec![
                Bytes(k.wrapped_material.clone()),
                Text(k.metadata.clone()),
                Text(k.key_arn.clone()),
                Text(expected.metadata.clone()),
                Bytes(expected.wrapped_material.clone()),
            ],
        )],
        KmsChange::CreateAlias(a) => vec![(
            "INSERT INTO kms_aliases (account_id, alias_name, target_key_arn, created_ms) \
             VALUES ($1, $2, $3, $4)",
            vec![
                Text(a.account_id.clone()),
                Text(a.alias_name.clone()),
                Text(a.target_key_arn.clone()),
                Int(a.created_ms),
            ],
        )],
        KmsChange::UpdateAlias(a) => vec![(
            "UPDATE kms_aliases SET target_key_arn = $1 WHERE account_id = $2 AND alias_name = $3",
            vec![
                Text(a.target_key_arn.clone()),
                Text(a.account_id.clone()),
                Text(a.alias_name.clone()),
            ],
        )],
        KmsChange::DeleteAlias {
            account_id,
            alias_name,
        } => vec![(
            "DELETE FROM kms_aliases WHERE account_id = $1 AND alias_name = $2",
            vec![Text(account_id.clone()), Text(alias_name.clone())],
        )],
        KmsChange::DeleteKey { key_arn } => vec![
            (
                "DELETE FROM kms_keys WHERE key_arn = $1",
                vec![Text(key_arn.clone())],
            ),
            (
                "DELETE FROM kms_aliases WHERE target_key_arn = $1",
                vec![Text(key_arn.clone())],
            ),
        ],
    }
}
