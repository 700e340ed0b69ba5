//! KMS `DescribeKey`: a key's `KeyMetadata`, by key id, key ARN, alias or alias ARN.

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
    pub grant_tokens: Option<Vec<String>>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    let key = super::find_authorized(
        region,
        caller,
        &input.key_id,
        Operation::DescribeKey.action(),
    )
    .await?;
    Ok(json!({ "KeyMetadata": super::key_metadata(&key) }))
}
