//! ReplicateSecretToRegions (spec §5.4): adds replicas, or retries failed ones (optionally with
//! ForceOverwriteReplicaSecret). The call returns at once with `InProgress`; the replication
//! workers deliver and record the outcome per Region.

use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::Access;
use crate::error::Result;
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::replica_regions::{ReplicaRegionType, check_regions, check_shape, merge};
use crate::replication::{
    ReplicationState, ReplicationStatusView, replicas, set_state, sync_entries,
};
use crate::secret::{
    check_secret_id, commit_update_with, ensure_not_deleted, ensure_primary, load, with_retry,
};
use crate::validate::Violations;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub add_replica_regions: Option<Vec<ReplicaRegionType>>,
    pub force_overwrite_replica_secret: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub replication_status: Vec<ReplicationStatusView>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    v.required(&input.add_replica_regions, "addReplicaRegions");
    check_shape(&mut v, &input.add_replica_regions);
    v.finish()?;
    // Authorisation before existence (authorize.rs).
    let access = Access::new(Operation::ReplicateSecretToRegions.action())
        .with_all(
            "secretsmanager:AddReplicaRegions",
            input
                .add_replica_regions
                .as_ref()
                .map(|r| r.iter().filter_map(|r| r.region.clone()).collect()),
        )
        .with(
            "secretsmanager:ForceOverwriteReplicaSecret",
            input.force_overwrite_replica_secret.map(|b| b.to_string()),
        );
    let requested = input.add_replica_regions.unwrap_or_default();
    let force = input.force_overwrite_replica_secret.unwrap_or(false);
    let secret_id = input.secret_id.unwrap_or_default();
    with_retry(|| async {
        let mut secret = load(region, caller, &secret_id, &access).await?;
        ensure_primary(&secret)?;
        ensure_not_deleted(&secret)?;
        check_regions(region, &requested)?;
        let expected = secret.record.row_version;
        let mut list = replicas(&secret);
        let touched = merge(&mut list, &requested, region.now_ms(), force);
        set_state(
            &mut secret,
            Some(&ReplicationState::Primary {
                replicas: list.clone(),
            }),
        );
        let forced: Vec<String> = if force { touched.clone() } else { Vec::new() };
        // Announce the state to the requested Regions only: the others are unaffected.
        let outbox = sync_entries(&secret, &forced)
            .into_iter()
            .filter(|e| touched.contains(&e.dest_region))
            .collect();
        let secret =
            commit_update_with(region, secret, expected, Vec::new(), Vec::new(), outbox).await?;
        Ok(Output {
            arn: secret.record.arn,
            replication_status: list.iter().map(|r| r.view()).collect(),
        })
    })
    .await
}
