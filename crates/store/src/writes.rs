//! The write SQL of both backends, as `rows.rs` is their reads: one text per statement (`$1`
//! placeholders, which both sqlx drivers accept) and one binding of each record's columns, used
//! by the SQLite store (`sqlite/changes.rs`, `sqlite/region.rs`, `sqlite/iam.rs`), the
//! PostgreSQL store (`postgres/changes.rs`, `postgres/region.rs`, `postgres/iam.rs`) and
//! backup/restore (`snapshot.rs`).
//!
//! Where the dialects truly differ, both texts stand side by side here, `SQLITE_*` next to the
//! PostgreSQL one, with the reason. Mostly it is the SQLite writer's multi-row statements: one
//! statement there is one round trip to SQLite's worker thread, which under a write load costs
//! more than the statement itself, so the one writer ([`crate::sqlite`]'s group commit) writes
//! many rows per statement (`VALUES` lists made by [`crate::rows::values_list`]), while a PostgreSQL
//! transaction writes one row per statement.
//!
//! Sections: the store's metadata, secrets, versions, replica detachments, the outbox, reads'
//! LastAccessedDate, KMS keys and aliases, the IAM store.

use crate::Tag;

// ----- The store's metadata -----

/// Sets one `coffer_meta` row (`kind`, `format_version` after a migration).
pub(crate) const META_UPSERT: &str = "INSERT INTO coffer_meta (meta_key, meta_value) \
     VALUES ($1, $2) ON CONFLICT (meta_key) DO UPDATE SET meta_value = excluded.meta_value";

/// Writes a store's format markers (`kind`, `format_version`) with [`META_UPSERT`] in the
/// migrating transaction `$tx`, on either backend.
macro_rules! record_format {
    ($tx:expr, $kind:expr, $version:expr) => {
        for (key, value) in [
            ("kind", $kind.name().to_string()),
            ("format_version", $version.to_string()),
        ] {
            sqlx::query($crate::writes::META_UPSERT)
                .bind(key)
                .bind(value)
                .execute(&mut *$tx)
                .await?;
        }
    };
}
pub(crate) use record_format;

// ----- Secrets -----

/// A secret's columns in [`bind_secret!`]'s order (every column but `term_key`).
macro_rules! secret_columns {
    () => {
        "arn, account_id, name, description, kms_key_id, tags, resource_policy, created_ms, \
         last_changed_ms, last_accessed_day, deleted_ms, purge_at_ms, rotation, replication, \
         row_version"
    };
}

/// A new secret, [`bind_secret!`]'s 15 values. PostgreSQL gives `term_key` (migration 0007)
/// from its identity column, on any node.
pub(crate) const SECRET_INSERT: &str = concat!(
    "INSERT INTO secrets (",
    secret_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
);

/// [`SECRET_INSERT`] on SQLite, which has no identity column: the next `term_key` is the
/// largest plus one, read through the key's index, on the one writer.
pub(crate) const SQLITE_SECRET_INSERT: &str = concat!(
    "INSERT INTO secrets (",
    secret_columns!(),
    ", term_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
     (SELECT COALESCE(MAX(term_key), 0) + 1 FROM secrets))"
);

/// Secrets restored from a backup (`snapshot.rs`), rows pushed by `QueryBuilder::push_values`
/// with [`bind_secret!`]; the importing store gives `term_key` as for any insert.
pub(crate) const SECRET_RESTORE_INTO: &str =
    concat!("INSERT INTO secrets (", secret_columns!(), ") ");

/// The JSON of a secret's tags, as stored.
pub(crate) fn tags_json(tags: &Option<Vec<Tag>>) -> Option<String> {
    tags.as_ref()
        .map(|t| serde_json::to_string(t).expect("tags serialize"))
}

/// Binds a [`crate::SecretRecord`]'s 15 columns in [`secret_columns!`]'s order, with `$bind`:
/// `bind` on a query (`bind_secret!(sqlx::query(SECRET_INSERT), bind, &secret)`), `push_bind`
/// on a row of a `QueryBuilder`.
macro_rules! bind_secret {
    ($query:expr, $bind:ident, $secret:expr) => {{
        let s: &$crate::SecretRecord = $secret;
        $query
            .$bind(&s.arn)
            .$bind(&s.account_id)
            .$bind(&s.name)
            .$bind(&s.description)
            .$bind(&s.kms_key_id)
            .$bind($crate::writes::tags_json(&s.tags))
            .$bind(&s.resource_policy)
            .$bind(s.created_ms)
            .$bind(s.last_changed_ms)
            .$bind(s.last_accessed_day)
            .$bind(s.deleted_ms)
            .$bind(s.purge_at_ms)
            .$bind(&s.rotation)
            .$bind(&s.replication)
            .$bind(s.row_version)
    }};
}
pub(crate) use bind_secret;

/// An update of one secret at the `row_version` it was read at (`$13`); no row is a
/// `Conflict`. PostgreSQL: one row per statement, every column set.
pub(crate) const SECRET_UPDATE: &str = "UPDATE secrets SET description = $1, kms_key_id = $2, \
     tags = $3, resource_policy = $4, last_changed_ms = $5, last_accessed_day = $6, \
     deleted_ms = $7, purge_at_ms = $8, rotation = $9, replication = $10, row_version = $11 \
     WHERE arn = $12 AND row_version = $13";

/// [`SECRET_UPDATE`] on SQLite, for many secrets in one statement:
/// `SQLITE_SECRETS_UPDATE.0`, a `VALUES` list of 11 columns per secret, then `.1`. The rows
/// updated come back (fewer than asked is a `Conflict`). It leaves out the two indexed
/// columns that rarely change (`last_accessed_day`, `purge_at_ms`): SQLite rewrites an index
/// entry for every column an UPDATE sets, changed or not, so they are set by
/// [`SQLITE_SECRETS_MOVE`] only where they change.
pub(crate) const SQLITE_SECRETS_UPDATE: (&str, &str) = (
    "WITH changed (arn, description, kms_key_id, tags, resource_policy, last_changed_ms, \
     deleted_ms, rotation, replication, row_version, expected) AS (VALUES ",
    ") UPDATE secrets SET description = c.description, kms_key_id = c.kms_key_id, \
     tags = c.tags, resource_policy = c.resource_policy, \
     last_changed_ms = c.last_changed_ms, deleted_ms = c.deleted_ms, \
     rotation = c.rotation, replication = c.replication, row_version = c.row_version \
     FROM changed c WHERE secrets.arn = c.arn AND secrets.row_version = c.expected \
     RETURNING secrets.arn, secrets.last_accessed_day, secrets.purge_at_ms",
);

/// The second half of [`SQLITE_SECRETS_UPDATE`]: `.0`, a `VALUES` list of
/// `(arn, last_accessed_day, purge_at_ms)`, then `.1`.
pub(crate) const SQLITE_SECRETS_MOVE: (&str, &str) = (
    "WITH changed (arn, last_accessed_day, purge_at_ms) AS (VALUES ",
    ") UPDATE secrets SET last_accessed_day = c.last_accessed_day, \
     purge_at_ms = c.purge_at_ms FROM changed c WHERE secrets.arn = c.arn",
);

/// A secret at the `row_version` it was read at (`$2`); its search terms' key comes back (no
/// row is a `Conflict`). Its versions go with [`VERSIONS_DELETE`].
pub(crate) const SECRET_DELETE: &str =
    "DELETE FROM secrets WHERE arn = $1 AND row_version = $2 RETURNING term_key";

// ----- Versions -----

/// A version's columns in [`bind_version!`]'s order.
macro_rules! version_columns {
    () => {
        "secret_arn, version_id, stages, created_ms, last_accessed_day, kms_key_arn, \
         value_kind, wrapped_data_key, ciphertext"
    };
}

/// What an upsert of versions does to a version that exists (a version's id never moves to
/// another secret, and `created_ms` stays).
macro_rules! version_on_conflict {
    () => {
        " ON CONFLICT (secret_arn, version_id) DO UPDATE SET stages = excluded.stages, \
         last_accessed_day = excluded.last_accessed_day, kms_key_arn = excluded.kms_key_arn, \
         value_kind = excluded.value_kind, wrapped_data_key = excluded.wrapped_data_key, \
         ciphertext = excluded.ciphertext"
    };
}

/// Inserts or updates one version, [`bind_version!`]'s 9 values (PostgreSQL).
pub(crate) const VERSION_UPSERT: &str = concat!(
    "INSERT INTO secret_versions (",
    version_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    version_on_conflict!()
);

/// [`VERSION_UPSERT`] of many versions in one statement (SQLite): `.0`, a `VALUES` list of
/// 9 columns per version, then `.1`.
pub(crate) const SQLITE_VERSIONS_UPSERT: (&str, &str) = (
    concat!(
        "INSERT INTO secret_versions (",
        version_columns!(),
        ") VALUES "
    ),
    version_on_conflict!(),
);

/// Versions restored from a backup (`snapshot.rs`), rows pushed by
/// `QueryBuilder::push_values` with [`bind_version!`].
pub(crate) const VERSION_RESTORE_INTO: &str =
    concat!("INSERT INTO secret_versions (", version_columns!(), ") ");

/// Binds a [`crate::VersionRecord`]'s 9 columns in [`version_columns!`]'s order, with `$bind`
/// (see [`bind_secret!`]).
macro_rules! bind_version {
    ($query:expr, $bind:ident, $version:expr) => {{
        let v: &$crate::VersionRecord = $version;
        $query
            .$bind(&v.secret_arn)
            .$bind(&v.version_id)
            .$bind(serde_json::to_string(&v.stages).expect("stages serialize"))
            .$bind(v.created_ms)
            .$bind(v.last_accessed_day)
            .$bind(&v.kms_key_arn)
            .$bind(v.value_kind as i64)
            .$bind(&v.wrapped_data_key)
            .$bind(&v.ciphertext)
    }};
}
pub(crate) use bind_version;

/// One version of a secret: `$1` the secret's ARN, `$2` the version id.
pub(crate) const VERSION_DELETE: &str =
    "DELETE FROM secret_versions WHERE secret_arn = $1 AND version_id = $2";

/// Every version of a secret (`$1`, its ARN).
pub(crate) const VERSIONS_DELETE: &str = "DELETE FROM secret_versions WHERE secret_arn = $1";

// ----- Replica detachments -----

/// Records a promotion ([`crate::SecretChange::RecordDetachment`]), replacing an earlier one of
/// the ARN; [`bind_detachment!`]'s 4 values.
pub(crate) const DETACHMENT_UPSERT: &str = "INSERT INTO replica_detachments \
     (arn, primary_arn, epoch, detached_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (arn) DO UPDATE \
     SET primary_arn = excluded.primary_arn, epoch = excluded.epoch, \
     detached_ms = excluded.detached_ms";

/// A promotion restored from a backup into an empty store.
pub(crate) const DETACHMENT_RESTORE: &str = "INSERT INTO replica_detachments \
     (arn, primary_arn, epoch, detached_ms) VALUES ($1, $2, $3, $4)";

/// Binds a [`crate::Detachment`]'s 4 columns (see [`bind_secret!`]).
macro_rules! bind_detachment {
    ($query:expr, $detachment:expr) => {{
        let d: &$crate::Detachment = $detachment;
        $query
            .bind(&d.arn)
            .bind(&d.primary_arn)
            .bind(d.epoch)
            .bind(d.detached_ms)
    }};
}
pub(crate) use bind_detachment;

// ----- The outbox -----

/// The columns of a new outbox row, then `VALUES`: `secret_arn, dest_region, kind, payload,
/// enqueued_ms, attempts, next_attempt_ms`.
macro_rules! outbox_insert_into {
    () => {
        "INSERT INTO replication_outbox (secret_arn, dest_region, kind, payload, enqueued_ms, \
         attempts, next_attempt_ms) VALUES "
    };
}

/// Queues one row due now (PostgreSQL): `$1`..`$4` the entry, `$5` now.
pub(crate) const OUTBOX_INSERT: &str =
    concat!(outbox_insert_into!(), "($1, $2, $3, $4, $5, 0, $5)");

/// [`OUTBOX_INSERT`] of many rows in one statement (SQLite), followed by a `VALUES` list of 7
/// columns per row; ids are given in row order, so the queue keeps it.
pub(crate) const SQLITE_OUTBOX_INSERT: &str = outbox_insert_into!();

/// A pending row restored from a backup: a new id, in the same order, and no lease (whichever
/// node runs first claims it).
pub(crate) const OUTBOX_RESTORE: &str = "INSERT INTO replication_outbox (secret_arn, \
     dest_region, kind, payload, enqueued_ms, attempts, next_attempt_ms, first_failure_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// When outbox rows queued now are due (milliseconds since the epoch).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Binds a [`crate::OutboxEntry`]'s 4 columns (`secret_arn, dest_region, kind, payload`).
macro_rules! bind_outbox_entry {
    ($query:expr, $entry:expr) => {{
        let e: &$crate::OutboxEntry = $entry;
        $query
            .bind(&e.secret_arn)
            .bind(&e.dest_region)
            .bind(&e.kind)
            .bind(&e.payload)
    }};
}
pub(crate) use bind_outbox_entry;

/// Settles the rows of one (secret `$1`, destination `$2`, kind `$3`) up to and including id
/// `$4` (PostgreSQL, one tuple per statement).
pub(crate) const OUTBOX_FINISH: &str = "DELETE FROM replication_outbox WHERE secret_arn = $1 \
     AND dest_region = $2 AND kind = $3 AND id <= $4";

/// [`OUTBOX_FINISH`] of many tuples in one statement (SQLite): `.0`, a `VALUES` list of
/// `(secret_arn, dest_region, kind, up_to_id)`, then `.1`.
pub(crate) const SQLITE_OUTBOX_SETTLE: (&str, &str) = (
    "WITH settled (secret_arn, dest_region, kind, up_to_id) AS (VALUES ",
    ") DELETE FROM replication_outbox WHERE id IN (SELECT o.id FROM replication_outbox o \
     JOIN settled s ON o.secret_arn = s.secret_arn AND o.dest_region = s.dest_region \
     AND o.kind = s.kind AND o.id <= s.up_to_id)",
);

/// Releases row `$4` for a later attempt (`$1` attempts, `$2` when, `$3` the first failure),
/// with the older rows of its (secret, destination, kind).
pub(crate) const OUTBOX_RETRY: &str = "UPDATE replication_outbox SET attempts = $1, \
     next_attempt_ms = $2, first_failure_ms = $3, lease_owner = NULL, lease_until_ms = NULL \
     WHERE id = $4 OR (id < $4 AND (secret_arn, dest_region, kind) = \
     (SELECT secret_arn, dest_region, kind FROM replication_outbox WHERE id = $4))";

// ----- Reads' LastAccessedDate -----

/// LastAccessedDate of a read ([`crate::Store::record_access`], PostgreSQL): the secret's day
/// (`$1` day, `$2` ARN), then the version's ([`ACCESS_VERSION`]).
pub(crate) const ACCESS_SECRET: &str = "UPDATE secrets SET last_accessed_day = $1 WHERE arn = $2";
pub(crate) const ACCESS_VERSION: &str =
    "UPDATE secret_versions SET last_accessed_day = $1 WHERE secret_arn = $2 AND version_id = $3";

/// [`ACCESS_SECRET`] of many reads in one statement (SQLite): `.0`, a `VALUES` list of
/// `(arn, day)`, then `.1`; a secret's day is its latest read's.
pub(crate) const SQLITE_ACCESS_SECRETS: (&str, &str) = (
    "WITH read (arn, day) AS (VALUES ",
    ") UPDATE secrets SET last_accessed_day = r.day \
     FROM (SELECT arn, max(day) AS day FROM read GROUP BY arn) r WHERE secrets.arn = r.arn",
);

/// [`ACCESS_VERSION`] of many reads in one statement (SQLite): `.0`, a `VALUES` list of
/// `(arn, version_id, day)`, then `.1`.
pub(crate) const SQLITE_ACCESS_VERSIONS: (&str, &str) = (
    "WITH read (arn, version_id, day) AS (VALUES ",
    ") UPDATE secret_versions SET last_accessed_day = r.day FROM read r \
     WHERE secret_versions.secret_arn = r.arn AND secret_versions.version_id = r.version_id",
);

// ----- KMS keys and aliases -----

/// The statements of one [`crate::KmsChange`], the same on both backends: `(sql, binds)` run
/// in order in one transaction; the first statement must touch a row, else the change is a
/// `Conflict`.
pub(crate) type KmsStatement = (&'static str, Vec<KmsBind>);

/// A value of a [`KmsStatement`].
pub(crate) enum KmsBind {
    Text(String),
    Bytes(Vec<u8>),
    Int(i64),
}

pub(crate) fn kms_change_statements(change: &crate::KmsChange) -> Vec<KmsStatement> {
    use crate::KmsChange;
    use KmsBind::{Bytes, Text};
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
        KmsChange::CreateAlias(a) => vec![kms_alias_insert(a)],
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

/// The statement that stores a new KMS key (`create_kms_key`, and a restore).
pub(crate) fn kms_key_insert(k: &crate::KmsKeyRecord) -> KmsStatement {
    use KmsBind::{Bytes, Int, Text};
    (
        "INSERT INTO kms_keys (key_arn, account_id, key_id, wrapped_material, metadata, \
         created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            Text(k.key_arn.clone()),
            Text(k.account_id.clone()),
            Text(k.key_id.clone()),
            Bytes(k.wrapped_material.clone()),
            Text(k.metadata.clone()),
            Int(k.created_ms),
        ],
    )
}

/// The statement that stores a new KMS alias (`CreateAlias`, `create_kms_key`, a restore).
pub(crate) fn kms_alias_insert(a: &crate::KmsAliasRecord) -> KmsStatement {
    use KmsBind::{Int, Text};
    (
        "INSERT INTO kms_aliases (account_id, alias_name, target_key_arn, created_ms) \
         VALUES ($1, $2, $3, $4)",
        vec![
            Text(a.account_id.clone()),
            Text(a.alias_name.clone()),
            Text(a.target_key_arn.clone()),
            Int(a.created_ms),
        ],
    )
}

/// A query of one of these `(sql, binds)` statements, for either backend's connection.
macro_rules! kms_query {
    ($statement:expr) => {{
        let (sql, binds) = $statement;
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = match bind {
                $crate::writes::KmsBind::Text(t) => query.bind(t),
                $crate::writes::KmsBind::Bytes(b) => query.bind(b),
                $crate::writes::KmsBind::Int(n) => query.bind(n),
            };
        }
        query
    }};
}
pub(crate) use kms_query;

// ----- The IAM store -----

pub(crate) const ACCOUNT_INSERT: &str =
    "INSERT INTO accounts (account_id, created_ms) VALUES ($1, $2)";

/// A new user, [`bind_user!`]'s 6 values.
pub(crate) const USER_INSERT: &str = "INSERT INTO users (user_arn, account_id, user_name, \
     user_id, is_admin, created_ms) VALUES ($1, $2, $3, $4, $5, $6)";

/// Binds a [`crate::UserRecord`]'s 6 columns in [`USER_INSERT`]'s order.
macro_rules! bind_user {
    ($query:expr, $user:expr) => {{
        let u: &$crate::UserRecord = $user;
        $query
            .bind(&u.user_arn)
            .bind(&u.account_id)
            .bind(&u.user_name)
            .bind(&u.user_id)
            .bind(u.is_admin as i64)
            .bind(u.created_ms)
    }};
}
pub(crate) use bind_user;

/// Removes the user row only (`$1`, its ARN).
pub(crate) const USER_DELETE: &str = "DELETE FROM users WHERE user_arn = $1";

/// Compare and swap of a user's tags: `$1` new, `$2` user ARN, `$3` the tags read before.
pub(crate) const USER_TAGS_REPLACE: &str =
    "UPDATE users SET tags = $1 WHERE user_arn = $2 AND tags = $3";

/// A new access key, [`bind_access_key!`]'s 6 values.
pub(crate) const ACCESS_KEY_INSERT: &str = "INSERT INTO access_keys (access_key_id, user_arn, \
     account_id, wrapped_secret, status, created_ms) VALUES ($1, $2, $3, $4, $5, $6)";

/// [`ACCESS_KEY_INSERT`] unless the key's user already has `$7` keys (one statement).
pub(crate) const ACCESS_KEY_INSERT_WITHIN: &str = "INSERT INTO access_keys (access_key_id, \
     user_arn, account_id, wrapped_secret, status, created_ms) SELECT $1, $2, $3, $4, $5, $6 \
     WHERE (SELECT COUNT(*) FROM access_keys WHERE user_arn = $2) < $7";

/// Binds a [`crate::AccessKeyRecord`]'s 6 columns in [`ACCESS_KEY_INSERT`]'s order.
macro_rules! bind_access_key {
    ($query:expr, $key:expr) => {{
        let k: &$crate::AccessKeyRecord = $key;
        $query
            .bind(&k.access_key_id)
            .bind(&k.user_arn)
            .bind(&k.account_id)
            .bind(&k.wrapped_secret)
            .bind(&k.status)
            .bind(k.created_ms)
    }};
}
pub(crate) use bind_access_key;

/// `$1` the new status of access key `$2`.
pub(crate) const ACCESS_KEY_STATUS_UPDATE: &str =
    "UPDATE access_keys SET status = $1 WHERE access_key_id = $2";

pub(crate) const ACCESS_KEY_DELETE: &str = "DELETE FROM access_keys WHERE access_key_id = $1";

/// Creates or replaces a user's inline policy: `$1` user ARN, `$2` name, `$3` document, `$4`
/// when.
pub(crate) const USER_POLICY_UPSERT: &str = "INSERT INTO user_policies (user_arn, policy_name, \
     document, updated_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (user_arn, policy_name) \
     DO UPDATE SET document = excluded.document, updated_ms = excluded.updated_ms";

/// Binds a [`crate::UserPolicyRecord`]'s 4 columns in [`USER_POLICY_UPSERT`]'s order.
macro_rules! bind_user_policy {
    ($query:expr, $policy:expr) => {{
        let p: &$crate::UserPolicyRecord = $policy;
        $query
            .bind(&p.user_arn)
            .bind(&p.policy_name)
            .bind(&p.document)
            .bind(p.updated_ms)
    }};
}
pub(crate) use bind_user_policy;

/// `$1` user ARN, `$2` policy name.
pub(crate) const USER_POLICY_DELETE: &str =
    "DELETE FROM user_policies WHERE user_arn = $1 AND policy_name = $2";
