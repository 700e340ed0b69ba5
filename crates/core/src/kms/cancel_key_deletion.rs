//! KMS `CancelKeyDeletion`: a key pending deletion comes back Disabled, as AWS does (enable it
//! with EnableKey).

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
        Operation::CancelKeyDeletion.action(),
    )
    .await?;
    if !super::is_pending_deletion(&key.meta) {
        return Err(super::invalid_state(format!(
            "{} is not pending deletion.",
            key.arn
        )));
    }
    let mut meta = (*key.meta).clone();
    meta.key_state = "Disabled".into();
    meta.deletion_date_ms = None;
    meta.pending_window_days = None;
    super::save_meta(region, &key, meta).await?;
    Ok(json!({ "KeyId": key.arn }))
}
