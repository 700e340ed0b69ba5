//! KMS `ReplicateKey`: a multi-Region primary key (`mrk-...`) gets a replica in another Region:
//! the same key id and the same key material, wrapped under that Region's root key, so data
//! encrypted in one Region decrypts in the other.
//!
//! Only Regions served by this node can receive a replica: the key material would otherwise
//! have to travel to the peer, which the replication transport does not carry today. A Region
//! served by a peer gets an `UnsupportedOperationException` that says so (see docs/keys.md).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{KeyMeta, KmsTag, Regions};
use crate::error::{Error, ErrorCode, Result};
use crate::region::{Caller, RegionService};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: String,
    pub replica_region: String,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<KmsTag>>,
    #[serde(default)]
    pub bypass_policy_lockout_safety_check: Option<bool>,
}

pub async fn run(
    region: &RegionService,
    caller: &Caller,
    input: Input,
    regions: &Regions,
) -> Result<Value> {
    let key = super::find_authorized(region, caller, &input.key_id, "kms:ReplicateKey").await?;
    if !key.meta.multi_region {
        return Err(Error::new(
            ErrorCode::KmsUnsupportedOperation,
            format!("{} is not a multi-Region key.", key.arn),
        ));
    }
    if key.meta.primary_region.is_some() {
        return Err(Error::new(
            ErrorCode::KmsUnsupportedOperation,
            format!(
                "{} is a replica key; replicate the primary key instead.",
                key.arn
            ),
        ));
    }
    super::require_not_pending_deletion(&key)?;
    if input.replica_region == region.region {
        return Err(Error::validation(format!(
            "The replica Region must differ from the primary key's Region ({}).",
            region.region
        )));
    }
    let Some(dest) = regions.get(&input.replica_region) else {
        return Err(Error::new(
            ErrorCode::KmsUnsupportedOperation,
            format!(
                "Region {} is not served by this Coffer node: a multi-Region key can be replicated only to a Region of the same node (see docs/keys.md).",
                input.replica_region
            ),
        ));
    };
    if let Some(policy) = &input.policy {
        super::check_policy(policy)?;
    }
    let tags = input.tags.unwrap_or_default();
    super::check_tags(&tags)?;
    let meta = KeyMeta {
        description: input
            .description
            .unwrap_or_else(|| key.meta.description.clone()),
        key_manager: "CUSTOMER".into(),
        key_state: "Enabled".into(),
        key_usage: key.meta.key_usage.clone(),
        key_spec: key.meta.key_spec.clone(),
        origin: key.meta.origin.clone(),
        multi_region: true,
        deletion_date_ms: None,
        policy: input.policy,
        tags,
        primary_region: Some(region.region.clone()),
        replica_regions: Vec::new(),
    };
    let replica = match dest
        .create_key(
            &key.record.account_id,
            &key.record.key_id,
            meta,
            (*key.material).clone(),
        )
        .await
    {
        Ok(k) => k,
        Err(e) if e.code == ErrorCode::KmsAlreadyExists => {
            return Err(Error::new(
                ErrorCode::KmsAlreadyExists,
                format!(
                    "Key {} already has a replica in {}.",
                    key.arn, input.replica_region
                ),
            ));
        }
        Err(e) => return Err(e),
    };
    let mut primary = (*key.meta).clone();
    if !primary.replica_regions.contains(&input.replica_region) {
        primary.replica_regions.push(input.replica_region.clone());
    }
    super::save_meta(region, &key, primary).await?;
    let policy =
        replica.meta.policy.clone().unwrap_or_else(|| {
            super::default_policy(dest, &replica.record.account_id, &replica.meta)
        });
    Ok(json!({
        "ReplicaKeyMetadata": super::key_metadata(&replica),
        "ReplicaPolicy": policy,
        "ReplicaTags": replica.meta.tags,
    }))
}

/// Used by `RegionService::create_key`: a key id taken in the Region.
pub(crate) fn already_exists(arn: &str) -> Error {
    Error::new(
        ErrorCode::KmsAlreadyExists,
        format!("Key {arn} already exists."),
    )
}
