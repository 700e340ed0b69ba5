//! KMS `EnableKey`: a Disabled key becomes Enabled (a key pending deletion must first be
//! cancelled: `KMSInvalidStateException`).

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
    let key =
        super::find_authorized_key(region, caller, &input.key_id, Operation::EnableKey.action())
            .await?;
    super::require_not_pending_deletion(&key)?;
    let mut meta = (*key.meta).clone();
    meta.key_state = "Enabled".into();
    super::save_meta(region, &key, meta).await?;
    Ok(json!({}))
}
