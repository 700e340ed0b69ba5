//! KMS `RotateKeyOnDemand`: the key gets new material now (`CurrentKeyMaterialId` changes);
//! what it encrypted before still decrypts. At most 10 on-demand rotations per key, as AWS.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Operation;
use super::RegionDirectory;
use crate::error::{Error, ErrorCode, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

/// AWS's quota of on-demand rotations per key.
pub const ON_DEMAND_LIMIT: usize = 10;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: String,
}

pub async fn run(
    region: &RegionService,
    caller: &Caller,
    input: Input,
    regions: &dyn RegionDirectory,
) -> Result<Value> {
    let key = super::find_authorized_key(
        region,
        caller,
        &input.key_id,
        Operation::RotateKeyOnDemand.action(),
    )
    .await?;
    super::require_enabled(&key)?;
    let on_demand = key
        .meta
        .rotations
        .iter()
        .filter(|r| r.rotation_type == "ON_DEMAND")
        .count();
    if on_demand >= ON_DEMAND_LIMIT {
        // [L test_key_rotations_limits]
        return Err(Error::new(
            ErrorCode::KmsLimitExceeded,
            format!(
                "The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations can be performed for this key: {}",
                key.arn
            ),
        ));
    }
    crate::key_rotation::rotate(region, &key, "ON_DEMAND", regions).await?;
    Ok(json!({ "KeyId": key.arn }))
}
