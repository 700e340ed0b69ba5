//! KMS `DisableKeyRotation`: the key stops rotating automatically (on-demand rotation still
//! works).

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
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    let key = super::find_authorized_key(
        region,
        caller,
        &input.key_id,
        Operation::DisableKeyRotation.action(),
    )
    .await?;
    super::require_enabled(&key)?;
    crate::key_rotation::require_not_replica(&key)?;
    let mut meta = (*key.meta).clone();
    meta.rotation_period_days = None;
    meta.next_rotation_ms = None;
    super::save_meta(region, &key, meta).await?;
    Ok(json!({}))
}
