//! The `AddReplicaRegions` member shared by CreateSecret and ReplicateSecretToRegions.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::partition_of;
use crate::region::RegionService;
use crate::replication::{ReplicaState, ReplicaStatus};
use crate::validate::Violations;

#[derive(Deserialize, Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicaRegionType {
    pub region: Option<String>,
    pub kms_key_id: Option<String>,
}

/// `^([a-z]+-)+\d+$`
fn region_shape(r: &str) -> bool {
    let Some((head, digits)) = r.rsplit_once('-') else {
        return false;
    };
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && head
            .split('-')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
}

pub fn check_shape(v: &mut Violations, regions: &Option<Vec<ReplicaRegionType>>) {
    let Some(regions) = regions else { return };
    v.count(Some(regions.len()), "addReplicaRegions", 1, usize::MAX);
    for (i, r) in regions.iter().enumerate() {
        let path = format!("addReplicaRegions.{}.member.region", i + 1);
        v.length(r.region.as_deref(), &path, 1, 128);
        if r.region.as_deref().is_some_and(|x| !x.is_empty()) {
            v.pattern(r.region.as_deref(), &path, region_shape, r"^([a-z]+-)+\d+$");
        }
        v.length(
            r.kms_key_id.as_deref(),
            &format!("addReplicaRegions.{}.member.kmsKeyId", i + 1),
            0,
            2048,
        );
    }
}

/// [F] missing region; [E] own Region, a name AWS does not have, or another partition.
pub fn check_regions(region: &RegionService, regions: &[ReplicaRegionType]) -> Result<()> {
    for r in regions {
        let name = r.region.as_deref().unwrap_or_default();
        if name.is_empty() || name == region.region || partition_of(name).is_none() {
            return Err(Error::invalid_parameter("Invalid replica region."));
        }
        if partition_of(name) != Some(region.partition) {
            return Err(Error::invalid_parameter(format!(
                "Invalid replica region. {name} is in partition {}, this secret in {}: replication never crosses a partition.",
                partition_of(name).unwrap_or_default(),
                region.partition
            )));
        }
    }
    Ok(())
}

/// Adds (or, for a Region already listed, restarts) each requested replica, keeping the order
/// in which Regions were first added and never listing a Region twice. Each requested Region
/// gets `epoch` (the primary Region's clock now, see `ReplicaStatus::epoch`) and `overwrite`
/// (ForceOverwriteReplicaSecret).
pub fn merge(
    existing: &mut Vec<ReplicaStatus>,
    requested: &[ReplicaRegionType],
    epoch: i64,
    overwrite: bool,
) -> Vec<String> {
    let mut touched = Vec::new();
    for r in requested {
        let name = r.region.clone().unwrap_or_default();
        let key = r.kms_key_id.clone().filter(|k| !k.is_empty());
        match existing.iter_mut().find(|s| s.region == name) {
            Some(s) => {
                if key.is_some() {
                    s.kms_key_id = key;
                }
                s.status = ReplicaState::InProgress;
                s.status_message = None;
                s.cause = None;
                // Asking again starts a new replication: if the copy there was promoted
                // meanwhile (and this primary has not heard yet), the promotion's late notice
                // must not drop this request, and the copy shows as a name clash.
                s.epoch = epoch;
                s.overwrite = overwrite;
            }
            None => existing.push(ReplicaStatus {
                target_seq: 0,
                region: name.clone(),
                kms_key_id: key,
                status: ReplicaState::InProgress,
                status_message: None,
                cause: None,
                last_accessed_day: None,
                epoch,
                overwrite,
            }),
        }
        if !touched.contains(&name) {
            touched.push(name);
        }
    }
    touched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_follow_the_model_pattern() {
        assert!(region_shape("us-east-1"));
        assert!(region_shape("us-gov-west-1"));
        assert!(!region_shape("US-east-1"));
        assert!(!region_shape("useast1"));
        assert!(!region_shape("us-east-"));
    }

    #[test]
    fn adding_a_region_twice_keeps_one_entry_in_first_order() {
        let mut list = Vec::new();
        let req = |r: &str| ReplicaRegionType {
            region: Some(r.into()),
            kms_key_id: None,
        };
        merge(
            &mut list,
            &[req("eu-west-1"), req("us-west-2"), req("eu-west-1")],
            2,
            false,
        );
        merge(&mut list, &[req("us-west-2")], 3, false);
        let regions: Vec<_> = list.iter().map(|s| s.region.as_str()).collect();
        assert_eq!(regions, ["eu-west-1", "us-west-2"]);
    }
}
