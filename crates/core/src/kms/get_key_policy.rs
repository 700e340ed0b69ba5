//! KMS `GetKeyPolicy`: the key policy (`PolicyName` `default`, the only name KMS has).

use serde::Deserialize;
use serde_json::{Value, json};

use super::Operation;
use crate::error::{Error, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: String,
    #[serde(default)]
    pub policy_name: Option<String>,
}

pub(crate) fn check_policy_name(name: Option<&str>) -> Result<()> {
    match name {
        None | Some("default") => Ok(()),
        Some(_) => Err(Error::validation(
            "Only the key policy named \"default\" exists: pass PolicyName=default or leave it out.",
        )),
    }
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    check_policy_name(input.policy_name.as_deref())?;
    let key = super::find_authorized_key(
        region,
        caller,
        &input.key_id,
        Operation::GetKeyPolicy.action(),
    )
    .await?;
    let policy = key.meta.policy.clone().unwrap_or_else(|| {
        region
            .keys
            .default_policy(&key.record.account_id, &key.meta)
    });
    Ok(json!({ "Policy": policy, "PolicyName": "default" }))
}
