//! How a stored secret is shown by DescribeSecret and ListSecrets: members only when set
//! (AWS never sends `null`), timestamps as epoch-second numbers.

use std::collections::BTreeMap;

use coffer_store::{Secret, Tag};
use serde::Serialize;

use crate::model::Timestamp;
use crate::replication::{ReplicationState, ReplicationStatusView, replicas, state};

#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct SecretEntry {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_enabled: Option<bool>,
    #[serde(rename = "RotationLambdaARN", skip_serializing_if = "Option::is_none")]
    pub rotation_lambda_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_rules: Option<crate::rotation::RotationRules>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rotated_date: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_changed_date: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_date: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    /// DescribeSecret's name for the map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_ids_to_stages: Option<BTreeMap<String, Vec<String>>>,
    /// ListSecrets' name for the same map (spec §4.7).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_versions_to_stages: Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_date: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    /// DescribeSecret on a primary only; ListSecrets never shows it (spec §4.7).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_status: Option<Vec<ReplicationStatusView>>,
}

/// The Region of the primary: the secret's own for a primary with replicas, the primary's for
/// a replica, none for a secret that is not replicated.
pub fn primary_region(secret: &Secret, own_region: &str) -> Option<String> {
    match state(secret) {
        Some(ReplicationState::Primary { replicas }) if !replicas.is_empty() => {
            Some(own_region.to_string())
        }
        Some(ReplicationState::Replica { primary_region, .. }) => Some(primary_region),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Describe,
    List,
}

/// Non-deprecated versions and their labels; `None` when there are none [S].
fn stages_map(secret: &Secret) -> Option<BTreeMap<String, Vec<String>>> {
    let map: BTreeMap<String, Vec<String>> = secret
        .versions
        .iter()
        .filter(|v| !v.stages.is_empty())
        .map(|v| (v.version_id.clone(), v.stages.clone()))
        .collect();
    (!map.is_empty()).then_some(map)
}

pub fn entry(secret: &Secret, shape: Shape, own_region: &str) -> SecretEntry {
    let r = &secret.record;
    let stages = stages_map(secret);
    let (version_ids_to_stages, secret_versions_to_stages) = match shape {
        Shape::Describe => (stages, None),
        Shape::List => (None, stages),
    };
    let rotation = crate::rotation::state(secret);
    let rotation = rotation.as_ref();
    SecretEntry {
        // [S] present only once rotation was configured; rules and function kept after a cancel.
        rotation_enabled: rotation.map(|s| s.enabled),
        rotation_lambda_arn: rotation.and_then(|s| s.lambda_arn.clone()),
        rotation_rules: rotation.and_then(|s| s.rules.clone()),
        last_rotated_date: rotation.and_then(|s| s.last_rotated_ms).map(Timestamp),
        next_rotation_date: rotation.and_then(|s| s.next_rotation_date()),
        arn: r.arn.clone(),
        name: r.name.clone(),
        // [S] an empty description is not shown.
        description: r.description.clone().filter(|d| !d.is_empty()),
        // [D] the default key is not shown.
        kms_key_id: r.kms_key_id.clone().filter(|k| !k.is_empty()),
        last_changed_date: Some(Timestamp(r.last_changed_ms)),
        last_accessed_date: r.last_accessed_day.map(Timestamp::from_day),
        // Choice [E]: DeletedDate is when DeleteSecret was called; DeleteSecret's own
        // DeletionDate answer is when the secret will be purged.
        deleted_date: r.deleted_ms.map(Timestamp),
        tags: r.tags.clone(),
        version_ids_to_stages,
        secret_versions_to_stages,
        created_date: Some(Timestamp(r.created_ms)),
        primary_region: primary_region(secret, own_region),
        replication_status: match shape {
            Shape::Describe => {
                let list = replicas(secret);
                (!list.is_empty()).then(|| list.iter().map(|r| r.view()).collect())
            }
            Shape::List => None,
        },
    }
}
