//! KMS `EnableKeyRotation`: the key gets new material every `RotationPeriodInDays` (90–2560,
//! default 365), counted from now (`key_rotation::rotate_due_keys`).

use serde::Deserialize;
use serde_json::{Value, json};

use super::Operation;
use crate::error::Result;
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: String,
    #[serde(default)]
    pub rotation_period_in_days: Option<i64>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    let days = input.rotation_period_in_days.unwrap_or(365);
    super::check_value_range(days, "rotationPeriodInDays", 90, 2560)?;
    let key = super::find_authorized_key(
        region,
        caller,
        &input.key_id,
        Operation::EnableKeyRotation.action(),
    )
    .await?;
    super::require_enabled(&key)?;
    crate::key_rotation::require_not_replica(&key)?;
    let mut meta = (*key.meta).clone();
    // Enabling again with the same period keeps the schedule; a new period starts from now.
    if meta.rotation_period_days != Some(days) || meta.next_rotation_ms.is_none() {
        meta.rotation_period_days = Some(days);
        meta.next_rotation_ms = Some(region.now_ms() + days * crate::key_rotation::DAY_MS);
    }
    super::save_meta(region, &key, meta).await?;
    Ok(json!({}))
}
