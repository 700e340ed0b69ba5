//! KMS `PutKeyPolicy`: replaces the key policy (`MalformedPolicyDocumentException` for a
//! document that is not a policy). Takes effect at once on this node.

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
    pub policy_name: Option<String>,
    pub policy: String,
    #[serde(default)]
    pub bypass_policy_lockout_safety_check: Option<bool>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    super::get_key_policy::check_policy_name(input.policy_name.as_deref())?;
    let key = super::find_authorized_key(
        region,
        caller,
        &input.key_id,
        Operation::PutKeyPolicy.action(),
    )
    .await?;
    super::check_policy(&input.policy)?;
    let mut meta = (*key.meta).clone();
    meta.policy = Some(input.policy);
    super::save_meta(region, &key, meta).await?;
    Ok(json!({}))
}
