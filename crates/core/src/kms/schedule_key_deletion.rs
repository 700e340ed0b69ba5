//! KMS `ScheduleKeyDeletion`: the key becomes PendingDeletion for `PendingWindowInDays` (7–30,
//! default 30) and is purged, with its aliases, when the window ends (`kms::purge`).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
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
    let key =
        super::find_authorized(region, caller, &input.key_id, "kms:ScheduleKeyDeletion").await?;
    super::require_not_pending_deletion(&key)?;
    if key.meta.multi_region
        && key.meta.primary_region.is_none()
        && !key.meta.replica_regions.is_empty()
    {
        // As AWS: a primary multi-Region key with replicas cannot be deleted first.
        return Err(Error::new(
            crate::error::ErrorCode::KmsInvalidState,
            format!(
                "{} is a primary multi-Region key with replicas in {}; delete the replicas first.",
                key.arn,
                key.meta.replica_regions.join(", ")
            ),
        ));
    }
    let deletion = region.now_ms() + days * DAY_MS;
    let mut meta = (*key.meta).clone();
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
