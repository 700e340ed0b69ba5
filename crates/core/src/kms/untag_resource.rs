//! KMS `UntagResource`: removes tags of a key by key; absent keys are ignored.

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
    pub tag_keys: Vec<String>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    let key = super::find_authorized_key(
        region,
        caller,
        &input.key_id,
        Operation::UntagResource.action(),
    )
    .await?;
    super::require_not_pending_deletion(&key)?;
    let mut meta = (*key.meta).clone();
    meta.tags.retain(|t| !input.tag_keys.contains(&t.key));
    super::save_meta(region, &key, meta).await?;
    Ok(json!({}))
}
