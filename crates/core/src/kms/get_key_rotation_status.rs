//! KMS `GetKeyRotationStatus`: whether the key rotates automatically, and if so its period and
//! next rotation date (in any key state, as AWS answers it).

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
        Operation::GetKeyRotationStatus.action(),
    )
    .await?;
    let mut out = json!({ "KeyId": key.arn, "KeyRotationEnabled": false });
    if let Some((days, next)) = crate::key_rotation::schedule(&key.meta, key.record.created_ms) {
        out["KeyRotationEnabled"] = json!(true);
        out["RotationPeriodInDays"] = json!(days);
        out["NextRotationDate"] = json!(super::epoch_seconds(next));
    }
    Ok(out)
}
