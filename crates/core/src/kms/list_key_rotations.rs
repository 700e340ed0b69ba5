//! KMS `ListKeyRotations`: the key's rotations, oldest first (`KeyMaterialId` made current,
//! `RotationDate`, `RotationType` AUTOMATIC or ON_DEMAND), paged with `Limit` (1–1000, default
//! 100) and `Marker`.

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
    pub limit: Option<i64>,
    #[serde(default)]
    pub marker: Option<String>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    let key = super::find_authorized_key(
        region,
        caller,
        &input.key_id,
        Operation::ListKeyRotations.action(),
    )
    .await?;
    let entries: Vec<Value> = key
        .meta
        .rotations
        .iter()
        .map(|r| {
            json!({
                "KeyId": key.arn,
                "KeyMaterialId": r.key_material_id,
                "RotationDate": super::epoch_seconds(r.rotation_date_ms),
                "RotationType": r.rotation_type,
            })
        })
        .collect();
    super::list_aliases::page(entries, input.limit, input.marker.as_deref(), "Rotations")
}
