//! KMS `UpdateAlias`: points an existing alias at another key of the account.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Operation;
use crate::error::Result;
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub alias_name: String,
    pub target_key_id: String,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    super::create_alias::check_alias_name(&input.alias_name)?;
    let alias = super::create_alias::alias_record(
        region,
        caller,
        &input.alias_name,
        &input.target_key_id,
        Operation::UpdateAlias.action(),
    )
    .await?;
    match region
        .store
        .commit_kms(coffer_store::KmsChange::UpdateAlias(alias))
        .await
    {
        Ok(()) => Ok(json!({})),
        Err(coffer_store::StoreError::Conflict) => Err(super::not_found(format!(
            "Alias {} is not found.",
            region.keys.kms_arn(&caller.account_id, &input.alias_name)
        ))),
        Err(e) => Err(e.into()),
    }
}
