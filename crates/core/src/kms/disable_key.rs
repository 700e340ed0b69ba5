//! KMS `DisableKey`: an Enabled key becomes Disabled; nothing can be encrypted or decrypted
//! under it (Secrets Manager: EncryptionFailure / DecryptionFailure) until EnableKey.

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
        Operation::DisableKey.action(),
    )
    .await?;
    super::require_not_pending_deletion(&key)?;
    let mut meta = (*key.meta).clone();
    meta.key_state = "Disabled".into();
    super::save_meta(region, &key, meta).await?;
    Ok(json!({}))
}
