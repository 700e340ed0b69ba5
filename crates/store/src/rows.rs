//! Row -> record mapping shared by both backends: the columns are the same on SQLite and
//! PostgreSQL, only the driver's row type differs.

use sqlx::{ColumnIndex, Database, Decode, Row, Type};

use crate::{
    OutboxEntry, OutboxRow, Result, SecretRecord, StoreError, Tag, ValueKind, VersionRecord,
};

/// What a driver's row must decode for these mappings: sqlx's rows (both backends), and the
/// rows of the synchronous SQLite readers (`sqlite::sync_reads`).
pub(crate) trait RecordRow {
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

pub(crate) fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::CorruptJson(std::sync::Arc::new(e))
}

pub(crate) fn secret_from_row<R: RecordRow>(row: &R) -> Result<SecretRecord> {
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

/// The names of a version's columns in a statement: as stored, or renamed `v_*` in the joined
/// loads of a secret with its versions (`joined_load!`).
struct VersionColumns {
    stages: &'static str,
    created_ms: &'static str,
    last_accessed_day: &'static str,
    kms_key_arn: &'static str,
    value_kind: &'static str,
    wrapped_data_key: &'static str,
    ciphertext: &'static str,
}

const VERSION_COLUMNS: VersionColumns = VersionColumns {
    stages: "stages",
    created_ms: "created_ms",
    last_accessed_day: "last_accessed_day",
    kms_key_arn: "kms_key_arn",
    value_kind: "value_kind",
    wrapped_data_key: "wrapped_data_key",
    ciphertext: "ciphertext",
};

const JOINED_VERSION_COLUMNS: VersionColumns = VersionColumns {
    stages: "v_stages",
    created_ms: "v_created_ms",
    last_accessed_day: "v_last_accessed_day",
    kms_key_arn: "v_kms_key_arn",
    value_kind: "v_value_kind",
    wrapped_data_key: "v_wrapped_data_key",
    ciphertext: "v_ciphertext",
};

/// The version `version_id` of `secret_arn` in `row`, its other columns named by `columns`.
fn version_in<R: RecordRow>(
    row: &R,
    columns: &VersionColumns,
    secret_arn: String,
    version_id: String,
) -> Result<VersionRecord> {
    Ok(VersionRecord {
        secret_arn,
        version_id,
        stages: serde_json::from_str(&row.text(columns.stages)?).map_err(json_err)?,
        created_ms: row.int(columns.created_ms)?,
        last_accessed_day: row.opt_int(columns.last_accessed_day)?,
        kms_key_arn: row.opt_text(columns.kms_key_arn)?,
        value_kind: ValueKind::from_i64(row.int(columns.value_kind)?),
        wrapped_data_key: row.opt_bytes(columns.wrapped_data_key)?,
        ciphertext: row.opt_bytes(columns.ciphertext)?,
    })
}

pub(crate) fn version_from_row<R: RecordRow>(row: &R) -> Result<VersionRecord> {
    version_in(
        row,
        &VERSION_COLUMNS,
        row.text("secret_arn")?,
        row.text("version_id")?,
    )
}

/// The secrets of `rows` (in their order), each with its versions from `version_rows` (in
/// theirs): what `list_secrets` reads in two statements.
pub(crate) fn secrets_with_versions<R: RecordRow>(
    rows: &[R],
    version_rows: &[R],
) -> Result<Vec<crate::Secret>> {
    let mut by_arn: std::collections::HashMap<String, Vec<VersionRecord>> =
        std::collections::HashMap::new();
    for row in version_rows {
        let v = version_from_row(row)?;
        by_arn.entry(v.secret_arn.clone()).or_default().push(v);
    }
    rows.iter()
        .map(|row| {
            let record = secret_from_row(row)?;
            let versions = by_arn.remove(&record.arn).unwrap_or_default();
            Ok(crate::Secret { record, versions })
        })
        .collect()
}

pub(crate) fn outbox_from_row<R: RecordRow>(row: &R) -> Result<OutboxRow> {
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

pub(crate) fn detachment_from_row<R: RecordRow>(row: &R) -> Result<crate::Detachment> {
    Ok(crate::Detachment {
        arn: row.text("arn")?,
        primary_arn: row.text("primary_arn")?,
        epoch: row.int("epoch")?,
        detached_ms: row.int("detached_ms")?,
    })
}

pub(crate) fn kms_key_from_row<R: RecordRow>(row: &R) -> Result<crate::KmsKeyRecord> {
    Ok(crate::KmsKeyRecord {
        key_arn: row.text("key_arn")?,
        account_id: row.text("account_id")?,
        key_id: row.text("key_id")?,
        wrapped_material: row.opt_bytes("wrapped_material")?.unwrap_or_default(),
        metadata: row.text("metadata")?,
        created_ms: row.int("created_ms")?,
    })
}

pub(crate) fn kms_alias_from_row<R: RecordRow>(row: &R) -> Result<crate::KmsAliasRecord> {
    Ok(crate::KmsAliasRecord {
        account_id: row.text("account_id")?,
        alias_name: row.text("alias_name")?,
        target_key_arn: row.text("target_key_arn")?,
        created_ms: row.int("created_ms")?,
    })
}

/// The columns of a secret that [`secret_from_row`] reads, of the table aliased `s`: not
/// `s.*`, which on SQLite carries the secret's copy of its labelled versions
/// (`secrets.labelled`, migration 0009), hundreds of bytes that a joined load would repeat on
/// every version's row.
macro_rules! secret_select {
    () => {
        "s.arn, s.account_id, s.name, s.description, s.kms_key_id, s.tags, s.resource_policy, \
         s.created_ms, s.last_changed_ms, s.last_accessed_day, s.deleted_ms, s.purge_at_ms, \
         s.rotation, s.replication, s.row_version"
    };
}
pub(crate) use secret_select;

/// `SELECT` of a secret joined with its versions (columns renamed `v_*`), one row per version
/// (one row of `NULL`s for a secret without versions), for [`secret_from_joined`]. One
/// statement: one round trip and one snapshot, so the record and its versions always belong
/// together (two statements could see a change in between).
macro_rules! joined_load {
    ($filter:literal) => {
        joined_load!(@join "secret_versions v ON v.secret_arn = s.arn", $filter)
    };
    (@join $join:expr, $filter:literal) => {
        concat!(
            "SELECT ",
            secret_select!(),
            ", v.version_id AS v_version_id, v.stages AS v_stages, \
             v.created_ms AS v_created_ms, v.last_accessed_day AS v_last_accessed_day, \
             v.kms_key_arn AS v_kms_key_arn, v.value_kind AS v_value_kind, \
             v.wrapped_data_key AS v_wrapped_data_key, v.ciphertext AS v_ciphertext \
             FROM secrets s LEFT JOIN ",
            $join,
            " WHERE ",
            $filter
        )
    };
    ($filter:literal, $order:literal) => {
        concat!(joined_load!($filter), " ORDER BY ", $order)
    };
    (@join $join:expr, $filter:literal, $order:literal) => {
        concat!(joined_load!(@join $join, $filter), " ORDER BY ", $order)
    };
    // Only the versions with a staging label (PostgreSQL finds them by the partial index of
    // migration 0008; SQLite reads the secret's copy of them instead).
    (@labelled $($rest:literal),+) => {
        joined_load!(
            @join "secret_versions v ON v.secret_arn = s.arn AND v.stages <> '[]'",
            $($rest),+
        )
    };
}

/// The order the stores load versions in: oldest first, ties by id bytewise (PostgreSQL's
/// loads sort with `COLLATE "C"`; SQLite's are sorted with this after the load).
pub(crate) fn sort_versions(versions: &mut [crate::VersionRecord]) {
    versions.sort_by(|a, b| (a.created_ms, &a.version_id).cmp(&(b.created_ms, &b.version_id)));
}

/// SQLite's loads leave the order to [`sort_versions`]: an `ORDER BY` here made SQLite sort
/// every point read's rows in a temporary B-tree (a sorter allocated, each row's record with
/// its ciphertext copied in and out), where the few versions of a secret sort in Rust in
/// nanoseconds.
pub(crate) const SQLITE_LOAD_BY_ARN: &str = joined_load!("s.arn = $1");
pub(crate) const SQLITE_LOAD_BY_NAME: &str = joined_load!("s.account_id = $1 AND s.name = $2");
/// A secret with only the versions that carry a staging label
/// ([`crate::Store::load_by_name`]) from its row alone (SQLite, migration 0009): the
/// row's `labelled` copy, read by [`secret_with_labelled_copy`]. The versions' own rows are
/// two more B-trees to walk (the partial index of migration 0008 and the table).
pub(crate) const SQLITE_LOAD_LABELLED_COPY_BY_ARN: &str = concat!(
    "SELECT ",
    secret_select!(),
    ", s.labelled FROM secrets s WHERE s.arn = $1"
);
pub(crate) const SQLITE_LOAD_LABELLED_COPY_BY_NAME: &str = concat!(
    "SELECT ",
    secret_select!(),
    ", s.labelled FROM secrets s WHERE s.account_id = $1 AND s.name = $2"
);

/// One version in a secret's `labelled` copy, in the order of migration 0009's view:
/// version id, labels, created, last accessed (day), KMS key, value kind, wrapped data key
/// and ciphertext in hex.
///
/// The hex is borrowed from the row's text (it has no escapes to undo).
type CopiedVersion<'a> = (
    String,
    Vec<String>,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    Option<&'a str>,
    Option<&'a str>,
);

/// A copy of `arn`'s labelled versions that Coffer's triggers cannot have written: `what` is
/// wrong with it. The error says how to recover.
fn corrupt_copy(arn: &str, what: &str) -> StoreError {
    StoreError::Backend(format!(
        "the copy of {arn}'s labelled versions in its row (secrets.labelled, written by the \
         triggers of migration 0009) {what}: the Region's database was changed outside Coffer; \
         restore it from a `coffer backup`"
    ))
}

/// The bytes of a copied version's hex column, of the secret `arn`.
fn unhex(arn: &str, hex: Option<&str>) -> Result<Option<Vec<u8>>> {
    let Some(hex) = hex else { return Ok(None) };
    let mut bytes = vec![0; hex.len() / 2];
    hex::decode_to_slice(hex, &mut bytes)
        .map_err(|e| corrupt_copy(arn, &format!("has bytes that are not hex ({e})")))?;
    Ok(Some(bytes))
}

/// The secret of a row of a `SQLITE_LOAD_LABELLED_COPY_*` statement, with the versions of its
/// `labelled` copy (in no order: the reader sorts them). The triggers of migration 0009 write the copy with
/// every insert of a secret, so a row without one is corrupt, not a secret without versions.
pub(crate) fn secret_with_labelled_copy<R: RecordRow>(row: &R) -> Result<crate::Secret> {
    let record = secret_from_row(row)?;
    let copy = row
        .opt_text("labelled")?
        .ok_or_else(|| corrupt_copy(&record.arn, "is missing"))?;
    let copied: Vec<CopiedVersion<'_>> = serde_json::from_str(&copy).map_err(json_err)?;
    let versions = copied
        .into_iter()
        .map(
            |(version_id, stages, created_ms, day, kms_key_arn, kind, key, ciphertext)| {
                Ok(VersionRecord {
                    secret_arn: record.arn.clone(),
                    version_id,
                    stages,
                    created_ms,
                    last_accessed_day: day,
                    kms_key_arn,
                    value_kind: ValueKind::from_i64(kind),
                    wrapped_data_key: unhex(&record.arn, key)?,
                    ciphertext: unhex(&record.arn, ciphertext)?,
                })
            },
        )
        .collect::<Result<Vec<_>>>()?;
    Ok(crate::Secret { record, versions })
}

/// The loads of PostgreSQL, whose default collation is not bytewise. Its planner picks the
/// partial index by itself: the join's `v.stages <> '[]'` implies the index's predicate.
pub(crate) const PG_LOAD_BY_ARN: &str =
    joined_load!("s.arn = $1", "v.created_ms, v.version_id COLLATE \"C\"");
pub(crate) const PG_LOAD_BY_NAME: &str = joined_load!(
    "s.account_id = $1 AND s.name = $2",
    "v.created_ms, v.version_id COLLATE \"C\""
);
pub(crate) const PG_LOAD_LABELLED_BY_ARN: &str = joined_load!(
    @labelled
    "s.arn = $1",
    "v.created_ms, v.version_id COLLATE \"C\""
);
pub(crate) const PG_LOAD_LABELLED_BY_NAME: &str = joined_load!(
    @labelled
    "s.account_id = $1 AND s.name = $2",
    "v.created_ms, v.version_id COLLATE \"C\""
);

/// The secret of the rows of a `*_LOAD_BY_*` statement (`None` when there are none).
pub(crate) fn secret_from_joined<R: RecordRow>(rows: &[R]) -> Result<Option<crate::Secret>> {
    let mut secret = None;
    for row in rows {
        add_joined_row(&mut secret, row)?;
    }
    Ok(secret)
}

/// Adds one row of a `*_LOAD_BY_*` statement to the secret read so far (the first row makes
/// it), for drivers that hand out one row at a time.
pub(crate) fn add_joined_row<R: RecordRow>(
    secret: &mut Option<crate::Secret>,
    row: &R,
) -> Result<()> {
    let secret = match secret {
        Some(secret) => secret,
        None => secret.insert(crate::Secret {
            record: secret_from_row(row)?,
            versions: Vec::new(),
        }),
    };
    let Some(version_id) = row.opt_text("v_version_id")? else {
        return Ok(()); // a secret without versions: one row of NULLs
    };
    let arn = secret.record.arn.clone();
    let version = version_in(row, &JOINED_VERSION_COLUMNS, arn, version_id)?;
    secret.versions.push(version);
    Ok(())
}

/// `VALUES` of `rows` rows of `columns` numbered parameters each: `($1, $2), ($3, $4)`.
pub(crate) fn values_list(rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * columns + c + 1));
        }
        out.push(')');
    }
    out
}

/// The KMS and detachment reads, the same on both backends.
pub(crate) const KMS_KEY_BY_ARN: &str = "SELECT * FROM kms_keys WHERE key_arn = $1";
pub(crate) const KMS_ALIAS_BY_NAME: &str =
    "SELECT * FROM kms_aliases WHERE account_id = $1 AND alias_name = $2";
pub(crate) const KMS_KEYS_OF_ACCOUNT: &str =
    "SELECT * FROM kms_keys WHERE account_id = $1 ORDER BY created_ms, key_arn";
pub(crate) const KMS_KEYS: &str = "SELECT * FROM kms_keys ORDER BY created_ms, key_arn";
pub(crate) const KMS_ALIASES_OF_ACCOUNT: &str =
    "SELECT * FROM kms_aliases WHERE account_id = $1 ORDER BY alias_name";
pub(crate) const DETACHMENT_BY_ARN: &str = "SELECT * FROM replica_detachments WHERE arn = $1";

/// [`crate::Store::replication_depth`]'s query (`$1`: the source Region): every destination
/// but the source, as two ranges of `replication_outbox_by_destination`.
pub(crate) const REPLICATION_DEPTH: &str = "SELECT dest_region, COUNT(*) AS n FROM replication_outbox \
     WHERE dest_region < $1 GROUP BY dest_region UNION ALL \
     SELECT dest_region, COUNT(*) AS n FROM replication_outbox \
     WHERE dest_region > $1 GROUP BY dest_region";
