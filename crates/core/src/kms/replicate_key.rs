//! KMS `ReplicateKey`: a multi-Region primary key (`mrk-...`) gets a replica in another Region:
//! the same key id and the same key material, wrapped under that Region's root key, so data
//! encrypted in one Region decrypts in the other.
//!
//! - A Region of this node gets its replica at once, in the call. The answer still shows it
//!   `Creating` (as AWS's always does); it is `Enabled` by the time DescribeKey can ask.
//! - A Region served by a peer node (`[[peers]]`) gets it asynchronously, as AWS creates replicas:
//!   the answer shows the replica `Creating`, and the primary lists the Region among its
//!   `ReplicaKeys` at once. The primary's metadata and an outbox row of kind
//!   [`crate::replication::KIND_KEY`] commit in one transaction; the replication worker then
//!   reads the material from the primary and sends it, with the replica's metadata, in a sealed
//!   message only the destination Region can open (`coffer_replication::keys`). The peer
//!   creates the key under its own root key, and it becomes usable there (`Enabled`). An
//!   unreachable peer is retried with backoff until it answers.
//! - A Region no node serves: `UnsupportedOperationException` naming the Region.
//!
//! See docs/keys.md.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Operation;
use super::{KeyMeta, KmsTag, RegionDirectory};
use crate::error::{Error, ErrorCode, Result};
use crate::keys::KeyHandle;
use crate::operation::Operation as _;
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

/// What a replica in a Region of another node gets besides the primary's material: the payload
/// of its outbox row (not secret: no key material).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicaPayload {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub tags: Vec<KmsTag>,
}

/// The stored metadata of `primary`'s replica (in whatever Region), as the replica's Region
/// keeps it: its own description (empty unless given: AWS does not share descriptions), policy
/// and tags, `Enabled`; and the primary's earlier materials (sealed under the material they
/// share), so the replica decrypts what the primary encrypted before a rotation.
pub fn replica_meta(primary: &KeyHandle, primary_region: &str, payload: ReplicaPayload) -> KeyMeta {
    KeyMeta {
        description: payload.description.unwrap_or_default(),
        key_manager: "CUSTOMER".into(),
        key_state: "Enabled".into(),
        key_usage: primary.meta.key_usage.clone(),
        key_spec: primary.meta.key_spec.clone(),
        origin: primary.meta.origin.clone(),
        multi_region: true,
        deletion_date_ms: None,
        policy: payload.policy,
        tags: payload.tags,
        primary_region: Some(primary_region.to_string()),
        replica_regions: Vec::new(),
        previous_materials: primary.meta.previous_materials.clone(),
        rotations: primary.meta.rotations.clone(),
        rotation_period_days: None,
        next_rotation_ms: None,
        pending_window_days: None,
    }
}

/// ReplicateKey's answer [L test_replicate_key]: the replica `Creating` (not yet `Enabled`,
/// no `CurrentKeyMaterialId`), its policy, and `ReplicaTags` when tags were given.
fn answer(
    arn: &str,
    primary: &KeyHandle,
    created_ms: i64,
    mut meta: KeyMeta,
    policy: String,
) -> Value {
    meta.key_state = "Creating".into();
    let mut out = json!({
        "ReplicaKeyMetadata": super::metadata_of(
            arn,
            &primary.record.account_id,
            &primary.record.key_id,
            created_ms,
            &meta,
        ),
        "ReplicaPolicy": policy,
    });
    if !meta.tags.is_empty() {
        out["ReplicaTags"] = json!(meta.tags);
    }
    out
}

fn already_replicated(key: &KeyHandle, replica_region: &str) -> Error {
    Error::new(
        ErrorCode::KmsAlreadyExists,
        format!("Key {} already has a replica in {replica_region}.", key.arn),
    )
}

pub async fn run(
    region: &RegionService,
    caller: &Caller,
    input: Input,
    regions: &dyn RegionDirectory,
) -> Result<Value> {
    let key = super::find_authorized_key(
        region,
        caller,
        &input.key_id,
        Operation::ReplicateKey.action(),
    )
    .await?;
    if !key.meta.multi_region {
        return Err(Error::new(
            ErrorCode::KmsUnsupportedOperation,
            format!("{} is not a multi-Region key.", key.arn),
        ));
    }
    if key.meta.primary_region.is_some() {
        // [L test_replicate_replica_key_should_fail]
        return Err(Error::new(
            ErrorCode::KmsUnsupportedOperation,
            format!("{} is not a multi-region primary key.", key.arn),
        ));
    }
    super::require_not_pending_deletion(&key)?;
    if input.replica_region == region.region {
        return Err(Error::validation(format!(
            "The replica Region must differ from the primary key's Region ({}).",
            region.region
        )));
    }
    let dest = regions.local(&input.replica_region);
    if dest.is_none() && !regions.is_peer(&input.replica_region) {
        return Err(Error::new(
            ErrorCode::KmsUnsupportedOperation,
            format!(
                "Region {} is not enabled in this deployment: no Coffer node serves it. Add it to the Regions of a node (--regions) or to the peers of this node's config file (see docs/keys.md).",
                input.replica_region
            ),
        ));
    }
    if let Some(policy) = &input.policy {
        super::check_policy(policy)?;
    }
    let tags = input.tags.unwrap_or_default();
    super::check_tags(&tags)?;
    let payload = ReplicaPayload {
        description: input.description,
        policy: input.policy,
        tags,
    };
    match dest {
        Some(dest) => replicate_here(region, &key, dest, &input.replica_region, payload).await,
        None => replicate_to_peer(region, &key, &input.replica_region, payload).await,
    }
}

/// A Region of this node: the replica is created in the call.
async fn replicate_here(
    region: &RegionService,
    key: &KeyHandle,
    dest: &RegionService,
    replica_region: &str,
    payload: ReplicaPayload,
) -> Result<Value> {
    let meta = replica_meta(key, &region.region, payload);
    let replica = match dest
        .keys
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
            return Err(already_replicated(key, replica_region));
        }
        Err(e) => return Err(e),
    };
    let mut primary = (*key.meta).clone();
    if !primary.replica_regions.iter().any(|r| r == replica_region) {
        primary.replica_regions.push(replica_region.to_string());
    }
    super::save_meta(region, key, primary).await?;
    let policy = replica.meta.policy.clone().unwrap_or_else(|| {
        dest.keys
            .default_policy(&replica.record.account_id, &replica.meta)
    });
    Ok(answer(
        &replica.arn,
        key,
        replica.record.created_ms,
        (*replica.meta).clone(),
        policy,
    ))
}

/// A Region of another node: the primary records the Region and the delivery in one
/// transaction; the replica is `Creating` until the peer has created it.
async fn replicate_to_peer(
    region: &RegionService,
    key: &KeyHandle,
    replica_region: &str,
    payload: ReplicaPayload,
) -> Result<Value> {
    // The primary's list is the record of replicas in other nodes' Regions (the peer may be
    // down now): a Region already on it has, or is getting, its replica.
    if key.meta.replica_regions.iter().any(|r| r == replica_region) {
        return Err(already_replicated(key, replica_region));
    }
    let mut primary = (*key.meta).clone();
    primary.replica_regions.push(replica_region.to_string());
    let mut record = (*key.record).clone();
    record.metadata = primary.to_json();
    // The outbox names what it delivers in `secret_arn`: here the primary key's ARN.
    let row = crate::outbox::OutboxMessage::Key(payload.clone()).entry(&key.arn, replica_region);
    super::commit_key(region, key, record, vec![row]).await?;
    // [D] AWS answers ReplicateKey with the new replica `Creating`; it turns `Enabled` once
    // created. Its ARN is the primary's with the replica's Region.
    let meta = replica_meta(key, &region.region, payload);
    let arn = crate::replication::arn_in_region(&key.arn, replica_region);
    let policy = meta
        .policy
        .clone()
        .unwrap_or_else(|| region.keys.default_policy(&key.record.account_id, &meta));
    Ok(answer(&arn, key, region.now_ms(), meta, policy))
}
