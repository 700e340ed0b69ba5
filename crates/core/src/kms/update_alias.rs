//! KMS `UpdateAlias`: points an existing alias at another key of the account.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::region::{Caller, RegionService};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub alias_name: String,
    pub target_key_id: String,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    super::create_alias::check_alias_name(&input.alias_name)?;
    let key =
        super::find_authorized(region, caller, &input.target_key_id, "kms:UpdateAlias").await?;
    if input.target_key_id.starts_with("alias/") || input.target_key_id.contains(":alias/") {
        return Err(Error::validation(
            "TargetKeyId must be a key id or key ARN, not an alias.",
        ));
    }
    if key.record.account_id != caller.account_id {
        return Err(super::not_found(format!(
            "Key '{}' does not exist",
            key.arn
        )));
    }
    super::require_not_pending_deletion(&key)?;
    let alias = coffer_store::KmsAliasRecord {
        account_id: caller.account_id.clone(),
        alias_name: input.alias_name.clone(),
        target_key_arn: key.arn.clone(),
        created_ms: region.now_ms(),
    };
    match region
        .store
        .commit_kms(coffer_store::KmsChange::UpdateAlias(alias))
        .await
    {
        Ok(()) => Ok(json!({})),
        Err(coffer_store::StoreError::Conflict) => Err(super::not_found(format!(
            "Alias {} is not found.",
            super::kms_arn(region, &caller.account_id, &input.alias_name)
        ))),
        Err(e) => Err(e.into()),
    }
}
