//! KMS `TagResource`: adds or replaces tags of a key (`TagKey` / `TagValue`).

use serde::Deserialize;
use serde_json::{Value, json};

use super::KmsTag;
use super::Operation;
use crate::error::Result;
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: String,
    pub tags: Vec<KmsTag>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    let key = super::find_authorized_key(
        region,
        caller,
        &input.key_id,
        Operation::TagResource.action(),
    )
    .await?;
    super::check_tags(&input.tags)?;
    super::require_not_pending_deletion(&key)?;
    let mut meta = (*key.meta).clone();
    super::merge_tags(&mut meta.tags, input.tags);
    if meta.tags.len() > super::MAX_TAGS {
        return Err(super::too_many_tags());
    }
    super::save_meta(region, &key, meta).await?;
    Ok(json!({}))
}
