//! KMS `ScheduleKeyDeletion`: the key becomes PendingDeletion for `PendingWindowInDays` (7–30,
//! default 30) and is purged, with its aliases, when the window ends (`purge::purge_due_keys`).
//!
//! A multi-Region primary key that still has replicas becomes `PendingReplicaDeletion`, as in
//! AWS: unusable, with no deletion date yet; when its last replica is gone ([`replicas_gone`])
//! it becomes `PendingDeletion` and its waiting period starts.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Operation;
use crate::error::{Error, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: String,
    #[serde(default)]
    pub pending_window_in_days: Option<i64>,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    let days = input.pending_window_in_days.unwrap_or(30);
    if !(7..=30).contains(&days) {
        return Err(Error::validation(format!(
            "1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30"
        )));
    }
    let key = super::find_authorized_key(
        region,
        caller,
        &input.key_id,
        Operation::ScheduleKeyDeletion.action(),
    )
    .await?;
    super::require_not_pending_deletion(&key)?;
    let mut meta = (*key.meta).clone();
    if meta.primary_region.is_none() && !meta.replica_regions.is_empty() {
        // The API reference: "If the KMS key is a multi-Region primary key with replica keys,
        // [DeletionDate] is omitted."
        meta.key_state = "PendingReplicaDeletion".into();
        meta.pending_window_days = Some(days);
        super::save_meta(region, &key, meta).await?;
        return Ok(json!({
            "KeyId": key.arn,
            "KeyState": "PendingReplicaDeletion",
            "PendingWindowInDays": days,
        }));
    }
    let deletion = region.now_ms() + days * DAY_MS;
    meta.key_state = "PendingDeletion".into();
    meta.deletion_date_ms = Some(deletion);
    super::save_meta(region, &key, meta).await?;
    Ok(json!({
        "KeyId": key.arn,
        "DeletionDate": super::epoch_seconds(deletion),
        "KeyState": "PendingDeletion",
        "PendingWindowInDays": days,
    }))
}

/// Called when a primary key has lost a replica (`meta.replica_regions` already without it): a
/// key `PendingReplicaDeletion` whose last replica is gone starts its waiting period.
pub fn replicas_gone(meta: &mut super::KeyMeta, now_ms: i64) {
    if meta.key_state == "PendingReplicaDeletion" && meta.replica_regions.is_empty() {
        let days = meta.pending_window_days.take().unwrap_or(30);
        meta.key_state = "PendingDeletion".into();
        meta.deletion_date_ms = Some(now_ms + days * DAY_MS);
    }
}
