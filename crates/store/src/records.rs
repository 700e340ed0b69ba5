//! Plain records as stored. Secret values appear only encrypted.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value")]
    pub value: String,
}

/// A secret's metadata row.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRecord {
    pub arn: String,
    pub account_id: String,
    pub name: String,
    pub description: Option<String>,
    /// The key as the user named it; `None` is the Region's `aws/secretsmanager` key.
    pub kms_key_id: Option<String>,
    /// `None` until first tagged; `Some(vec![])` after every tag was removed (AWS then shows `Tags: []`).
    pub tags: Option<Vec<Tag>>,
    pub resource_policy: Option<String>,
    pub created_ms: i64,
    pub last_changed_ms: i64,
    pub last_accessed_day: Option<i64>,
    pub deleted_ms: Option<i64>,
    pub purge_at_ms: Option<i64>,
    /// Rotation configuration as JSON (owned by the rotation feature).
    pub rotation: Option<String>,
    /// Replication state as JSON (owned by the replication feature).
    pub replication: Option<String>,
    pub row_version: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// The value-less placeholder rotation creates.
    None = 0,
    String = 1,
    Binary = 2,
}

impl ValueKind {
    pub fn from_i64(v: i64) -> ValueKind {
        match v {
            1 => ValueKind::String,
            2 => ValueKind::Binary,
            _ => ValueKind::None,
        }
    }
}

/// One version. `Debug` is safe: the value is only present as ciphertext.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRecord {
    pub secret_arn: String,
    pub version_id: String,
    pub stages: Vec<String>,
    pub created_ms: i64,
    pub last_accessed_day: Option<i64>,
    /// ARN of the KMS key that wrapped the data key.
    pub kms_key_arn: Option<String>,
    pub value_kind: ValueKind,
    pub wrapped_data_key: Option<Vec<u8>>,
    pub ciphertext: Option<Vec<u8>>,
}

/// A secret with all its versions (oldest first).
#[derive(Debug, Clone, PartialEq)]
pub struct Secret {
    pub record: SecretRecord,
    pub versions: Vec<VersionRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KmsKeyRecord {
    pub key_arn: String,
    pub account_id: String,
    pub key_id: String,
    /// Key material wrapped by the Region's root key.
    pub wrapped_material: Vec<u8>,
    /// KeyMetadata as JSON (state, description, manager, ...).
    pub metadata: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KmsAliasRecord {
    pub account_id: String,
    /// With the `alias/` prefix.
    pub alias_name: String,
    pub target_key_arn: String,
    pub created_ms: i64,
}

/// One change to a Region's KMS keys or aliases, committed atomically by
/// [`crate::Store::commit_kms`].
#[derive(Debug, Clone, PartialEq)]
pub enum KmsChange {
    /// Replaces a key's metadata and wrapped material (state changes, policy, tags, root-key
    /// re-wrapping); `Conflict` when the key does not exist.
    UpdateKey(KmsKeyRecord),
    /// [`KmsChange::UpdateKey`] only if the key's stored metadata and wrapped material are
    /// still `expected` (what the writer read): `Conflict` when another write came in between,
    /// or the key is gone. Every change made from a key as read uses it, so none undoes another
    /// (a rotation's new material, a root key re-wrap).
    UpdateKeyIf {
        key: KmsKeyRecord,
        expected: KmsKeyRecord,
    },
    /// `Conflict` when the alias name is taken in the account.
    CreateAlias(KmsAliasRecord),
    /// Points an existing alias at another key; `Conflict` when the alias does not exist.
    UpdateAlias(KmsAliasRecord),
    /// `Conflict` when the alias does not exist.
    DeleteAlias {
        account_id: String,
        alias_name: String,
    },
    /// Removes a key for good (the end of its deletion window) with every alias pointing at it;
    /// `Conflict` when the key does not exist.
    DeleteKey { key_arn: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub user_arn: String,
    pub account_id: String,
    pub user_name: String,
    pub user_id: String,
    pub is_admin: bool,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub user_arn: String,
    pub account_id: String,
    /// The secret access key, wrapped by the deployment's root key.
    pub wrapped_secret: Vec<u8>,
    pub status: String,
    pub created_ms: i64,
}

/// An inline policy of an IAM user (PutUserPolicy).
#[derive(Debug, Clone, PartialEq)]
pub struct UserPolicyRecord {
    pub user_arn: String,
    pub policy_name: String,
    /// The JSON document as the caller sent it (GetUserPolicy returns it unchanged).
    pub document: String,
    pub updated_ms: i64,
}

/// A replication event to send to another Region.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub secret_arn: String,
    pub dest_region: String,
    /// `sync`, `remove`, `detach` or `access`.
    pub kind: String,
    /// Kind-specific JSON (never a secret value).
    pub payload: String,
}

/// An outbox row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub entry: OutboxEntry,
    pub enqueued_ms: i64,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub first_failure_ms: Option<i64>,
}

/// The newest state a primary announced for one replica of this Region (`arn`: the replica's
/// ARN here), whether or not that state has arrived: `seq` is the primary's `row_version`,
/// `version_id` its AWSCURRENT version then, `commit_ms` when the primary committed it,
/// `heard_ms` when this Region heard of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaHead {
    pub arn: String,
    pub primary_region: String,
    pub seq: i64,
    pub version_id: Option<String>,
    pub commit_ms: i64,
    pub heard_ms: i64,
}
