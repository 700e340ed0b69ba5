//! RemoveRegionsFromReplication (spec §5.7): drops Regions from the primary and deletes their
//! replicas, with no recovery window. The `remove` outbox rows are written in the same
//! transaction and do not depend on the primary still existing, so a force-delete of the
//! primary right afterwards cannot strand a replica.

use coffer_store::OutboxEntry;
use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::Access;
use crate::error::Result;
use crate::operation::Operation as _;
use crate::outbox::OutboxMessage;
use crate::region::{Caller, RegionService};
use crate::replication::{ReplicationState, ReplicationStatusView, replicas, set_state};
use crate::secret::{check_secret_id, commit_update_with, ensure_primary, load, with_retry};
use crate::validate::Violations;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub remove_replica_regions: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    /// [D] `[]` once the last replica is gone.
    pub replication_status: Vec<ReplicationStatusView>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    if v.required(&input.remove_replica_regions, "removeReplicaRegions") {
        let regions = input.remove_replica_regions.as_deref().unwrap_or_default();
        v.count_strings(Some(regions), "removeReplicaRegions", 1, usize::MAX);
        for (i, r) in regions.iter().enumerate() {
            v.length(
                Some(r),
                &format!("removeReplicaRegions.{}.member", i + 1),
                1,
                128,
            );
        }
    }
    v.finish()?;
    let remove = input.remove_replica_regions.unwrap_or_default();
    let secret_id = input.secret_id.unwrap_or_default();
    with_retry(|| async {
        let mut secret = load(
            region,
            caller,
            &secret_id,
            &Access::new(Operation::RemoveRegionsFromReplication.action()),
        )
        .await?;
        ensure_primary(&secret)?;
        let expected = secret.record.row_version;
        let (gone, kept): (Vec<_>, Vec<_>) = replicas(&secret)
            .into_iter()
            .partition(|r| remove.contains(&r.region));
        // [E] a Region that is not a replica is a no-op.
        let outbox: Vec<OutboxEntry> = gone
            .iter()
            .map(|r| {
                OutboxMessage::Remove {
                    epoch: Some(r.epoch),
                }
                .entry(&secret.record.arn, &r.region)
            })
            .collect();
        // [E] with no replica left, the secret is no longer shown as replicated.
        let state = (!kept.is_empty()).then(|| ReplicationState::Primary {
            replicas: kept.clone(),
        });
        set_state(&mut secret, state.as_ref());
        // [E] LastChangedDate marks any change of the secret ("modified in any way"). It also
        // fences a forced overwrite from another Region that was sent before this change: a
        // secret that had replicas when the overwrite was asked was not to be overwritten
        // (`coffer_core::replication::FORCE_WINDOW_MS` and the check beside it).
        if !gone.is_empty() {
            secret.record.last_changed_ms = region.now_ms();
        }
        let secret = if gone.is_empty() {
            secret
        } else {
            commit_update_with(region, secret, expected, Vec::new(), Vec::new(), outbox).await?
        };
        Ok(Output {
            arn: secret.record.arn,
            replication_status: kept.iter().map(|r| r.view()).collect(),
        })
    })
    .await
}
