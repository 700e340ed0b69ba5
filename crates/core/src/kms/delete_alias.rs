//! KMS `DeleteAlias`: removes an alias; the key it pointed at is not affected.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Operation;
use crate::error::{Error, ErrorCode, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub alias_name: String,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    if input.alias_name.starts_with("alias/aws/") {
        return Err(Error::new(
            ErrorCode::KmsInvalidAliasName,
            "Alias names starting with alias/aws/ are reserved for AWS managed keys.",
        ));
    }
    let not_found = || {
        super::not_found(format!(
            "Alias {} is not found.",
            region.keys.kms_arn(&caller.account_id, &input.alias_name)
        ))
    };
    let Some(alias) = region
        .store
        .load_kms_alias(&caller.account_id, &input.alias_name)
        .await?
    else {
        return Err(not_found());
    };
    if let Some(key) = region.keys.key_by_arn(&alias.target_key_arn).await? {
        super::authorize(caller, &key, Operation::DeleteAlias.action())?;
    }
    match region
        .store
        .commit_kms(coffer_store::KmsChange::DeleteAlias {
            account_id: caller.account_id.clone(),
            alias_name: input.alias_name.clone(),
        })
        .await
    {
        Ok(()) => Ok(json!({})),
        Err(coffer_store::StoreError::Conflict) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}
