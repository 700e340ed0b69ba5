//! Durable storage for one Region (secrets, versions, KMS keys) and for the deployment's
//! principals (accounts, users, access keys).
//!
//! The store knows no HTTP and no Secrets Manager rules: it keeps records and commits whole
//! *changes* atomically. Concurrency is optimistic: every secret row carries `row_version`, an
//! update names the version it read, and a mismatch is [`StoreError::Conflict`] so the caller
//! reloads and retries. That works the same on one SQLite writer and on several nodes over
//! PostgreSQL, with no advisory locks.
//!
//! Two backends implement both traits: [`SqliteStore`] / [`SqliteIamStore`] (the embedded
//! default, one file per store) and [`PostgresStore`] / [`PostgresIamStore`] (one schema per
//! store in a shared database, for several nodes per Region). `tests/conformance.rs` runs the
//! same behavioural tests against both.
//!
//! Secret values reach this crate only as ciphertext (`wrapped_data_key` + `ciphertext`).

mod cache;
mod failover_rows;
mod iam_rows;
mod listing;
mod postgres;
mod records;
mod rows;
mod schema;
mod snapshot;
mod sqlite;
mod writes;

pub use cache::{CachedStore, DEFAULT_CACHE_MAX_BYTES, secret_weight};
pub use listing::{
    FilterKey, FilterValue, ListFilter, ListPage, ListPosition, ListQuery, SortKey, SortValue,
    primary_region, set_drive_below, sort_value, whitespace_words, words,
};
pub use postgres::{PostgresIamStore, PostgresStore};
pub use records::*;
pub use snapshot::{
    RegionItem, RegionSink, RegionSnapshot, export_sqlite, export_sqlite_to, import_sqlite,
    import_sqlite_from, sqlite_region_is_empty,
};
pub use sqlite::{SqliteIamStore, SqliteStore};

use std::sync::Arc;

use async_trait::async_trait;

/// What a store reports. A failure below the store (the driver, a stored JSON column) keeps
/// that error as its [`source`](std::error::Error::source), so the log can name the cause
/// and code can ask its kind; the message still carries the cause's text, as it always did,
/// for the operator reading a command's output.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another writer changed the row first (or a unique name is taken); reload and retry.
    #[error("the record was changed concurrently")]
    Conflict,
    #[error("{0}")]
    Incompatible(String),
    /// A failure the store finds itself (a bad schema name, a closed store, a stopped writer),
    /// or one whose cause is written into the message.
    #[error("storage error: {0}")]
    Backend(String),
    /// The database driver (sqlx) failed.
    #[error("storage error: {0}")]
    Database(#[source] Arc<sqlx::Error>),
    /// The database driver failed and the store says where (`doing`): reading the URL,
    /// creating a schema, a transaction that kept losing to concurrent ones until its retries
    /// ran out.
    #[error("storage error: {doing}: {source}")]
    DatabaseDuring {
        doing: String,
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// SQLite through rusqlite failed: the group commit's writer, a point read or a listing page.
    #[error("storage error: sqlite: {0}")]
    Sqlite(#[source] Arc<rusqlite::Error>),
    /// A JSON column holds what Coffer cannot read.
    #[error("storage error: corrupt JSON column: {0}")]
    CorruptJson(#[source] Arc<serde_json::Error>),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && db.is_unique_violation()
        {
            return StoreError::Conflict;
        }
        StoreError::Database(Arc::new(err))
    }
}

/// The SQLite writer's and point readers' driver (rusqlite): a unique name or key taken is a
/// `Conflict`, as through sqlx.
impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(e, _) = &err
            && matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            )
        {
            return StoreError::Conflict;
        }
        StoreError::Sqlite(Arc::new(err))
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One atomic change to a secret and its versions.
#[derive(Debug, Clone)]
pub enum SecretChange {
    /// A new secret; fails with `Conflict` when its name or ARN is taken.
    Insert {
        secret: SecretRecord,
        versions: Vec<VersionRecord>,
    },
    /// `secret.row_version` must be `expected_row_version + 1`.
    Update {
        secret: SecretRecord,
        expected_row_version: i64,
        upsert_versions: Vec<VersionRecord>,
        delete_versions: Vec<String>,
    },
    /// Removes the secret and every version.
    Delete {
        arn: String,
        expected_row_version: i64,
    },
    /// Records that the replica `arn` was promoted (replaces an earlier record of that ARN).
    RecordDetachment(Detachment),
}

/// A replica promoted to a standalone secret: the messages of `primary_arn` up to `epoch` are
/// answered "detached" and never applied, even after the promoted secret was deleted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Detachment {
    pub arn: String,
    pub primary_arn: String,
    pub epoch: i64,
    pub detached_ms: i64,
}

/// A read whose LastAccessedDate to record ([`Store::record_accesses`]): `(secret ARN, version
/// id, day)`.
pub type AccessRead = (String, String, i64);

/// Which versions a load of a secret takes: all of them, or only those that carry a staging
/// label ([`Store::load_by_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versions {
    All,
    Labelled,
}

/// Storage of one Region.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The secret `name` of `account_id` with the `versions` asked for. `Versions::Labelled`
    /// may leave out the versions without a staging label: for a read of a version by label
    /// (GetSecretValue without a `VersionId`, DescribeSecret), never for a write or for
    /// anything that lists or counts versions. A secret rotated for days keeps about a hundred
    /// versions without labels; reading them all made such a read 7.5× slower
    /// (docs/benchmarks.md).
    async fn load_by_name(
        &self,
        account_id: &str,
        name: &str,
        versions: Versions,
    ) -> Result<Option<Secret>>;
    /// [`Store::load_by_name`] by ARN.
    async fn load_by_arn(&self, arn: &str, versions: Versions) -> Result<Option<Secret>>;
    /// The secret `name` of `account_id` with every version.
    async fn load_secret_by_name(&self, account_id: &str, name: &str) -> Result<Option<Secret>> {
        self.load_by_name(account_id, name, Versions::All).await
    }
    /// The secret `arn` with every version.
    async fn load_secret_by_arn(&self, arn: &str) -> Result<Option<Secret>> {
        self.load_by_arn(arn, Versions::All).await
    }
    /// [`Store::load_secret_by_arn`] for a reader that learned of a commit of the secret from
    /// the store itself (the replication worker, from the outbox row the commit wrote): a cache
    /// in front of the store may wait briefly for that commit to return to its writer, then
    /// serve the state it wrote through instead of reading the store again.
    async fn load_secret_settled(&self, arn: &str) -> Result<Option<Secret>> {
        self.load_secret_by_arn(arn).await
    }
    /// The record of the promotion of the replica `arn`, if it was ever promoted.
    async fn load_detachment(&self, arn: &str) -> Result<Option<Detachment>>;
    /// Every secret of an account, oldest first. Loads them all: for tools and tests, never on
    /// a request path (ListSecrets reads [`Store::list_page`]).
    async fn list_secrets(&self, account_id: &str) -> Result<Vec<Secret>>;
    /// One page of ListSecrets (filters, sort order, position), evaluated by the store with
    /// its indexes; see `listing.rs`.
    async fn list_page(&self, query: &ListQuery<'_>) -> Result<ListPage>;
    /// Commits changes and outbox entries in one transaction: all or nothing.
    async fn commit_with(&self, changes: Vec<SecretChange>, outbox: Vec<OutboxEntry>)
    -> Result<()>;
    async fn commit(&self, change: SecretChange) -> Result<()> {
        self.commit_with(vec![change], Vec::new()).await
    }
    async fn enqueue(&self, outbox: Vec<OutboxEntry>) -> Result<()> {
        self.commit_with(Vec::new(), outbox).await
    }
    /// Claims up to `limit` due outbox rows (oldest first) under a lease held by `owner` until
    /// `now_ms + lease_ms`, so several nodes of a Region never work the same row at once. Rows
    /// leased by `owner` itself are claimable again (a restarted node resumes its own work).
    async fn claim_outbox(
        &self,
        now_ms: i64,
        owner: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        self.claim_outbox_to(now_ms, owner, lease_ms, limit, None)
            .await
    }
    /// [`Store::claim_outbox`] for the rows of one destination Region only (`None`: any), so
    /// each destination is drained on its own and one that never answers cannot fill the
    /// claims of the others.
    async fn claim_outbox_to(
        &self,
        now_ms: i64,
        owner: &str,
        lease_ms: i64,
        limit: i64,
        dest_region: Option<&str>,
    ) -> Result<Vec<OutboxRow>>;
    /// Removes the rows of one (secret, destination, kind) up to and including `up_to_id`:
    /// one delivery of the current state settles every older announcement.
    async fn finish_outbox(
        &self,
        secret_arn: &str,
        dest_region: &str,
        kind: &str,
        up_to_id: i64,
    ) -> Result<()>;
    /// Commits `changes` and settles outbox rows as [`Store::finish_outbox`] does (each
    /// `(secret ARN, destination, kind, up to id)`), in one transaction where the backend can:
    /// the bookkeeping of a whole batch of deliveries costs one commit.
    async fn commit_and_finish(
        &self,
        changes: Vec<SecretChange>,
        finish: &[(&str, &str, &str, i64)],
    ) -> Result<()> {
        self.commit_with(changes, Vec::new()).await?;
        for f in finish {
            self.finish_outbox(f.0, f.1, f.2, f.3).await?;
        }
        Ok(())
    }
    /// Releases a row for a later attempt, together with the older rows of its (secret,
    /// destination, kind): one delivery of the newest row stands for all of them, so they
    /// wait and fail together instead of being retried one by one.
    async fn retry_outbox(
        &self,
        id: i64,
        attempts: i64,
        next_attempt_ms: i64,
        first_failure_ms: Option<i64>,
    ) -> Result<()>;
    /// Pending rows per destination Region, the Region's own rotation schedules included:
    /// every row is counted (tests and diagnostics; the worker and `/metrics` use
    /// [`Store::replication_depth`]).
    async fn outbox_depth(&self) -> Result<Vec<(String, i64)>>;
    /// Pending replication rows per destination Region other than `source`, the Region this
    /// store holds (rows addressed to `source` itself are its rotation schedules). Two index
    /// ranges that skip those rows: the replication worker asks four times a second, and a
    /// count of every row cost 7 ms with 100,000 rotation schedules (4% of a core while idle).
    async fn replication_depth(&self, source: &str) -> Result<Vec<(String, i64)>>;
    /// Records a read at day resolution for the secret and one of its versions. Not a
    /// "change": it never bumps `row_version` nor `LastChangedDate`.
    async fn record_access(&self, arn: &str, version_id: &str, day: i64) -> Result<()>;
    /// [`Store::record_access`], and `tell` queued for another Region: a replica's first read
    /// of the day tells its primary (an `access` outbox row). Neither needs its own fsync: a
    /// crash that loses them loses the day of a read, which the next read records again.
    async fn record_access_and_tell(
        &self,
        arn: &str,
        version_id: &str,
        day: i64,
        tell: OutboxEntry,
    ) -> Result<()> {
        self.record_accesses(
            &[(arn.to_string(), version_id.to_string(), day)],
            vec![tell],
        )
        .await
    }
    /// [`Store::record_access`] of many reads `(secret ARN, version id, day)` at once, with the
    /// outbox rows that tell other Regions of them (the SQLite store: one transaction, without
    /// its own fsync); a secret's day is the latest of its reads'. Reads of secrets or
    /// versions that no longer exist record nothing.
    async fn record_accesses(&self, reads: &[AccessRead], tell: Vec<OutboxEntry>) -> Result<()> {
        let mut reads: Vec<&AccessRead> = reads.iter().collect();
        reads.sort_by_key(|(_, _, day)| *day);
        for (arn, version_id, day) in reads {
            self.record_access(arn, version_id, *day).await?;
        }
        if !tell.is_empty() {
            self.enqueue(tell).await?;
        }
        Ok(())
    }
    /// ARNs of at most `limit` secrets whose recovery window ended at or before `now_ms`,
    /// the longest due first (the purge works in batches: memory and each read stay small).
    async fn secrets_due_for_purge(&self, now_ms: i64, limit: i64) -> Result<Vec<String>>;
    /// Takes or renews the named lease for `owner` until `now_ms + lease_ms`; `false` while
    /// another owner holds it. Background work that must run on one node of a Region at a time
    /// (the deletion purge) asks first. A backend with a single writer process (SQLite) has
    /// nobody to share with and always grants it.
    async fn try_lease(
        &self,
        _name: &str,
        _owner: &str,
        _now_ms: i64,
        _lease_ms: i64,
    ) -> Result<bool> {
        Ok(true)
    }

    /// Records `value` under `key` in the store's metadata unless a value is there already,
    /// and returns the stored one: nodes sharing a store agree on facts such as the fingerprint
    /// of the root key the store was created with. A store only one process opens (SQLite)
    /// keeps nothing and returns `value`.
    async fn claim_meta(&self, _key: &str, value: &str) -> Result<String> {
        Ok(value.to_string())
    }

    /// Records what primaries announced about replicas of this Region (a head only moves
    /// forward: an older announcement changes nothing).
    async fn record_heads(&self, heads: &[ReplicaHead]) -> Result<()>;
    /// Every recorded head, by replica ARN.
    async fn replica_heads(&self) -> Result<Vec<ReplicaHead>>;
    /// Forgets the heads of these replicas (promoted, or removed by their primary).
    async fn delete_heads(&self, arns: &[String]) -> Result<()>;
    /// `(ARN, replication state JSON)` of every replica in this Region, every account, by ARN:
    /// what a Region failover promotes and what the replication point is measured over.
    async fn replica_states(&self) -> Result<Vec<(String, String)>>;
    /// Creates or replaces a small JSON document (a failover's progress and report).
    async fn save_document(&self, key: &str, body: &str, now_ms: i64) -> Result<()>;
    /// The documents whose key starts with `prefix`, by key.
    async fn load_documents(&self, prefix: &str) -> Result<Vec<(String, String)>>;

    async fn load_kms_key(&self, key_arn: &str) -> Result<Option<KmsKeyRecord>>;
    async fn load_kms_alias(
        &self,
        account_id: &str,
        alias_name: &str,
    ) -> Result<Option<KmsAliasRecord>>;
    /// Creates a key and, optionally, an alias for it; `Conflict` when the alias exists.
    async fn create_kms_key(&self, key: KmsKeyRecord, alias: Option<KmsAliasRecord>) -> Result<()>;
    /// The keys of one account (every account's with `None`), oldest first.
    async fn list_kms_keys(&self, account_id: Option<&str>) -> Result<Vec<KmsKeyRecord>>;
    /// The aliases of one account, by name.
    async fn list_kms_aliases(&self, account_id: &str) -> Result<Vec<KmsAliasRecord>>;
    /// Commits one change to the KMS keys or aliases (see [`KmsChange`] for when it is a
    /// `Conflict`).
    async fn commit_kms(&self, change: KmsChange) -> Result<()> {
        self.commit_kms_with(change, Vec::new()).await
    }
    /// [`Store::commit_kms`] and outbox entries in one transaction: all or nothing (KMS
    /// `ReplicateKey` to a Region of another node records the replica and the delivery so).
    async fn commit_kms_with(&self, change: KmsChange, outbox: Vec<OutboxEntry>) -> Result<()>;

    async fn close(&self);
}

/// Storage of the deployment's principals.
#[async_trait]
pub trait IamStore: Send + Sync + 'static {
    async fn accounts(&self) -> Result<Vec<String>>;
    async fn create_account(&self, account_id: &str, now_ms: i64) -> Result<()>;
    /// First start of a deployment: when the store holds no account yet, creates `admin`'s
    /// account, `admin` and `key` in one transaction and returns the account id; otherwise
    /// writes nothing and returns the oldest account. Nodes starting at the same instant on
    /// one empty database take turns, so the deployment gets exactly one first account.
    async fn bootstrap_account(
        &self,
        now_ms: i64,
        admin: UserRecord,
        key: AccessKeyRecord,
    ) -> Result<String>;
    async fn create_user(&self, user: UserRecord) -> Result<()>;
    async fn create_access_key(&self, key: AccessKeyRecord) -> Result<()>;
    /// [`create_access_key`](Self::create_access_key) unless the key's user already has
    /// `max_per_user` keys (any status): `Ok(false)`, nothing written. The count and the insert
    /// are one atomic step, so concurrent calls never exceed the quota.
    async fn create_access_key_within(
        &self,
        key: AccessKeyRecord,
        max_per_user: i64,
    ) -> Result<bool>;
    async fn users(&self) -> Result<Vec<UserRecord>>;
    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>>;
    /// One access key (any status).
    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>>;
    async fn user(&self, user_arn: &str) -> Result<Option<UserRecord>>;
    /// The access keys of one user, oldest first.
    async fn user_access_keys(&self, user_arn: &str) -> Result<Vec<AccessKeyRecord>>;
    /// `false` when no such key exists.
    async fn set_access_key_status(&self, access_key_id: &str, status: &str) -> Result<bool>;
    /// `false` when no such key exists.
    async fn delete_access_key(&self, access_key_id: &str) -> Result<bool>;
    /// Removes the user row only (the caller checks it has no keys or policies left);
    /// `false` when no such user exists.
    async fn delete_user(&self, user_arn: &str) -> Result<bool>;
    /// Creates or replaces the user's policy of that name.
    async fn put_user_policy(&self, policy: UserPolicyRecord) -> Result<()>;
    /// `false` when the user has no policy of that name.
    async fn delete_user_policy(&self, user_arn: &str, policy_name: &str) -> Result<bool>;
    /// The inline policies of one user, by name.
    async fn user_policies(&self, user_arn: &str) -> Result<Vec<UserPolicyRecord>>;
    /// The user's tags as stored (a JSON array), or `None` when no such user exists.
    async fn user_tags(&self, user_arn: &str) -> Result<Option<String>>;
    /// Replaces the user's tags with `new` if they still are `old` (compare and swap, so
    /// concurrent tag changes never lose one); `false` when they changed or the user is gone.
    async fn replace_user_tags(&self, user_arn: &str, old: &str, new: &str) -> Result<bool>;
    async fn close(&self);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// A driver's error is kept as the source, and the message reads as it always did.
    #[test]
    fn a_driver_error_is_kept_as_the_cause() {
        let e = StoreError::from(sqlx::Error::RowNotFound);
        assert_eq!(
            e.to_string(),
            format!("storage error: {}", sqlx::Error::RowNotFound)
        );
        let cause = e.source().expect("the driver's error");
        assert_eq!(cause.to_string(), sqlx::Error::RowNotFound.to_string());
        let e = StoreError::DatabaseDuring {
            doing: "creating schema coffer_x".into(),
            source: Arc::new(sqlx::Error::PoolClosed),
        };
        assert_eq!(
            e.to_string(),
            format!(
                "storage error: creating schema coffer_x: {}",
                sqlx::Error::PoolClosed
            )
        );
        assert_eq!(
            e.source().expect("the driver's error").to_string(),
            sqlx::Error::PoolClosed.to_string()
        );
        let json = serde_json::from_str::<i64>("{").unwrap_err();
        let text = json.to_string();
        let e = crate::rows::json_err(json);
        assert_eq!(
            e.to_string(),
            format!("storage error: corrupt JSON column: {text}")
        );
        assert_eq!(e.source().expect("the parser's error").to_string(), text);
    }
}
