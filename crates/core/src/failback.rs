//! Failback after a Region failover (docs/failover.md): the halves that run in one Region.
//! The old primary Region P answers what its copies hold ([`inspect`]: versions and labels, no
//! values) and, for the swap of roles, takes a secret back ([`handback`]); the failed-over
//! Region R works out the diverged writes ([`diverged`]). The orchestration, which needs the
//! replication transport between R and P, is `coffer_replication::failback`.

use coffer_store::{Secret, SecretChange};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Timestamp;
use crate::outbox::OutboxMessage;
use crate::region::RegionService;
use crate::replica_regions::{ReplicaRegionType, merge};
use crate::replication::{Answer, FailureCause, ReplicationState, arn_in_region, state};

/// What R asks P about its copies (their ARNs in P).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct InspectRequest {
    pub arns: Vec<String>,
}

/// One copy in P as P holds it: never a value.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Inspected {
    pub arn: String,
    pub exists: bool,
    pub deleted: bool,
    /// Regions P replicates the copy to (it is a primary).
    pub replica_regions: Vec<String>,
    /// The primary Region when the copy is a replica, and of which ARN.
    pub primary_region: Option<String>,
    pub primary_arn: Option<String>,
    pub last_changed_ms: i64,
    pub versions: Vec<InspectedVersion>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct InspectedVersion {
    pub version_id: String,
    pub stages: Vec<String>,
    pub created_ms: i64,
}

/// P's side of `inspect`: its copies, as they are now.
pub async fn inspect(region: &RegionService, request: &InspectRequest) -> Result<Vec<Inspected>> {
    let mut out = Vec::with_capacity(request.arns.len());
    for arn in &request.arns {
        let secret = region.store.load_secret_by_arn(arn).await?;
        out.push(match secret {
            None => Inspected {
                arn: arn.clone(),
                exists: false,
                deleted: false,
                replica_regions: Vec::new(),
                primary_region: None,
                primary_arn: None,
                last_changed_ms: 0,
                versions: Vec::new(),
            },
            Some(s) => {
                let (replica_regions, primary_region, primary_arn) = match state(&s) {
                    Some(ReplicationState::Primary { replicas }) => {
                        (replicas.into_iter().map(|r| r.region).collect(), None, None)
                    }
                    Some(ReplicationState::Replica {
                        primary_region,
                        primary_arn,
                        ..
                    }) => (Vec::new(), Some(primary_region), Some(primary_arn)),
                    None => (Vec::new(), None, None),
                };
                Inspected {
                    arn: arn.clone(),
                    exists: true,
                    deleted: s.record.deleted_ms.is_some(),
                    replica_regions,
                    primary_region,
                    primary_arn,
                    last_changed_ms: s.record.last_changed_ms,
                    versions: s
                        .versions
                        .iter()
                        .map(|v| InspectedVersion {
                            version_id: v.version_id.clone(),
                            stages: v.stages.clone(),
                            created_ms: v.created_ms,
                        })
                        .collect(),
                }
            }
        });
    }
    Ok(out)
}

/// A write made in P that R's promoted secret does not have.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct DivergedVersion {
    pub version_id: String,
    pub created_date: Timestamp,
    /// Its labels in P.
    pub version_stages: Vec<String>,
    /// Made after R was promoted (otherwise a write that never arrived before it).
    pub after_promotion: bool,
}

/// The versions of P's copy that R's `promoted` secret lacks, by age; and whether P changed
/// the copy (any write, a new version or not) after `promoted_ms`.
pub fn diverged(
    promoted: &Secret,
    copy: &Inspected,
    promoted_ms: i64,
) -> (Vec<DivergedVersion>, bool) {
    let mut versions: Vec<DivergedVersion> = copy
        .versions
        .iter()
        .filter(|v| {
            !promoted
                .versions
                .iter()
                .any(|o| o.version_id == v.version_id)
        })
        .map(|v| DivergedVersion {
            version_id: v.version_id.clone(),
            created_date: Timestamp(v.created_ms),
            version_stages: v.stages.clone(),
            after_promotion: v.created_ms >= promoted_ms,
        })
        .collect();
    versions.sort_by_key(|v| v.created_date);
    (versions, copy.exists && copy.last_changed_ms >= promoted_ms)
}

/// R asks P to take a secret back (the swap of roles): P's copy, a replica of `primary_arn`
/// holding at least `seq`, becomes the primary again and replicates to R with overwrite.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct HandbackRequest {
    /// R's promoted secret.
    pub primary_arn: String,
    pub seq: i64,
    /// The KMS key R's copy is to use (R's promoted secret's own).
    pub kms_key_id: Option<String>,
}

/// P's side of the swap: in one transaction, P's replica is promoted exactly as
/// StopReplicationToReplica does (the `detach` row tells R) and made the primary of a new
/// replication to R with ForceOverwriteReplicaSecret (its `sync` row follows the `detach` in
/// the same lane, so R has dropped P before the forced state replaces its secret).
pub async fn handback(
    region: &RegionService,
    source: &str,
    request: &HandbackRequest,
) -> Result<Answer> {
    let arn = arn_in_region(&request.primary_arn, &region.region);
    for _ in 0..20 {
        let Some(secret) = region.store.load_secret_by_arn(&arn).await? else {
            return Ok(Answer::Failed {
                message: format!("{arn} does not exist in {}.", region.region),
                cause: FailureCause::Other,
            });
        };
        match state(&secret) {
            Some(ReplicationState::Replica {
                primary_arn, seq, ..
            }) if primary_arn == request.primary_arn => {
                if seq < request.seq {
                    return Ok(Answer::Failed {
                        message: format!(
                            "{arn} does not hold {source}'s latest state yet; run the failback again."
                        ),
                        cause: FailureCause::Other,
                    });
                }
                let (mut changes, mut outbox) =
                    crate::ops::stop_replication_to_replica::promotion(region, secret.clone())?;
                let mut list = Vec::new();
                merge(
                    &mut list,
                    &[ReplicaRegionType {
                        region: Some(source.to_string()),
                        kms_key_id: request.kms_key_id.clone(),
                    }],
                    region.now_ms(),
                    true,
                );
                if let Some(SecretChange::Update { secret: record, .. }) = changes.first_mut() {
                    list[0].target_seq = record.row_version;
                    record.replication = Some(
                        serde_json::to_string(&ReplicationState::Primary { replicas: list })
                            .expect("state serializes"),
                    );
                }
                outbox.push(OutboxMessage::Sync { force: true }.entry(&arn, source));
                match region.store.commit_with(changes, outbox).await {
                    Ok(()) => {
                        region.notify_outbox();
                        return Ok(Answer::Done);
                    }
                    Err(coffer_store::StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            // Already taken back (a repeated request).
            Some(ReplicationState::Primary { replicas })
                if replicas.iter().any(|r| r.region == source) =>
            {
                return Ok(Answer::Done);
            }
            _ => {
                return Ok(Answer::Failed {
                    message: format!(
                        "{arn} in {} is not a replica of {}.",
                        region.region, request.primary_arn
                    ),
                    cause: FailureCause::Other,
                });
            }
        }
    }
    Err(crate::error::Error::internal(
        "secret kept changing while handing it back",
    ))
}
