//! A KMS key's stored metadata (`kms_keys.metadata`, JSON): state, policy, tags, multi-Region
//! links and rotations.

use serde::{Deserialize, Serialize};

/// A KMS tag (`TagKey` / `TagValue`, unlike Secrets Manager's `Key` / `Value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsTag {
    #[serde(rename = "TagKey")]
    pub key: String,
    #[serde(rename = "TagValue")]
    pub value: String,
}

/// A key's stored metadata (`kms_keys.metadata`). The field names of what AWS's `KeyMetadata`
/// shows are AWS's; the rest is Coffer's bookkeeping.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMeta {
    #[serde(default)]
    pub description: String,
    /// `AWS` (the `aws/secretsmanager` key) or `CUSTOMER`.
    pub key_manager: String,
    /// `Enabled`, `Disabled` or `PendingDeletion`.
    pub key_state: String,
    #[serde(default = "encrypt_decrypt")]
    pub key_usage: String,
    #[serde(default = "symmetric_default")]
    pub key_spec: String,
    #[serde(default = "aws_kms")]
    pub origin: String,
    #[serde(default)]
    pub multi_region: bool,
    /// When a key pending deletion is purged (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_date_ms: Option<i64>,
    /// The key policy as the user gave it; `None` is AWS's default policy for the key's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default)]
    pub tags: Vec<KmsTag>,
    /// Multi-Region replica keys: the Region of the primary key (`None` on a primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    /// Multi-Region primary keys: the Regions holding replicas.
    #[serde(default)]
    pub replica_regions: Vec<String>,
    /// The key's earlier materials (rotations), oldest first, each sealed under the current
    /// material ([`coffer_kms::KeyMaterial::seal_previous`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_materials: Vec<PreviousMaterial>,
    /// Every rotation of the key, oldest first (`ListKeyRotations`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotations: Vec<Rotation>,
    /// Automatic rotation: its period in days while enabled (`EnableKeyRotation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period_days: Option<i64>,
    /// When automatic rotation next rotates the key (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_ms: Option<i64>,
    /// A primary scheduled for deletion while it still has replicas (`PendingReplicaDeletion`):
    /// the waiting period that starts once the last replica is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_window_days: Option<i64>,
}

/// An earlier material of a rotated key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreviousMaterial {
    pub key_material_id: String,
    /// base64 of the material sealed under the key's current material.
    pub sealed: String,
}

/// One rotation of a key: the material it made current, when, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rotation {
    pub key_material_id: String,
    pub rotation_date_ms: i64,
    /// `AUTOMATIC` or `ON_DEMAND`.
    pub rotation_type: String,
}

fn encrypt_decrypt() -> String {
    "ENCRYPT_DECRYPT".into()
}
fn symmetric_default() -> String {
    "SYMMETRIC_DEFAULT".into()
}
fn aws_kms() -> String {
    "AWS_KMS".into()
}

impl KeyMeta {
    /// An AWS-managed key (`aws/secretsmanager`).
    pub fn aws_managed(description: &str) -> KeyMeta {
        KeyMeta {
            key_manager: "AWS".into(),
            ..KeyMeta::customer(description)
        }
    }

    /// A new, Enabled customer key (single-Region, default policy, no tags).
    pub fn customer(description: &str) -> KeyMeta {
        KeyMeta {
            description: description.into(),
            key_manager: "CUSTOMER".into(),
            key_state: "Enabled".into(),
            key_usage: encrypt_decrypt(),
            key_spec: symmetric_default(),
            origin: aws_kms(),
            multi_region: false,
            deletion_date_ms: None,
            policy: None,
            tags: Vec::new(),
            primary_region: None,
            replica_regions: Vec::new(),
            previous_materials: Vec::new(),
            rotations: Vec::new(),
            rotation_period_days: None,
            next_rotation_ms: None,
            pending_window_days: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("key metadata serializes")
    }
}
