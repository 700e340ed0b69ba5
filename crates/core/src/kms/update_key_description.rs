//! KMS `UpdateKeyDescription`: replaces a key's description (at most 8192 characters; not while
//! the key is pending deletion).

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
    pub description: String,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    super::create_key::check_description(&input.description)?;
    let key = super::find_authorized_key(
        region,
        caller,
        &input.key_id,
        Operation::UpdateKeyDescription.action(),
    )
    .await?;
    super::require_not_pending_deletion(&key)?;
    let mut meta = (*key.meta).clone();
    meta.description = input.description;
    super::save_meta(region, &key, meta).await?;
    Ok(json!({}))
}
