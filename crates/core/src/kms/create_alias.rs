//! KMS `CreateAlias`: a friendly name (`alias/...`) for a key of the same account and Region.

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
    pub target_key_id: String,
}

/// AWS's alias name rules: `alias/` followed by 1–250 of `[a-zA-Z0-9/_-]` (256 in all), and
/// `alias/aws/` is reserved for AWS-managed keys (`InvalidAliasNameException`).
pub(crate) fn check_alias_name(name: &str) -> Result<()> {
    let invalid = |why: &str| Error::new(ErrorCode::KmsInvalidAliasName, why.to_string());
    if name.is_empty() || name.len() > 256 {
        return Err(Error::validation(
            "1 validation error detected: Value at 'aliasName' failed to satisfy constraint: Member must have length between 1 and 256",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '_' | '-'))
    {
        return Err(Error::validation(format!(
            "1 validation error detected: Value '{name}' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
        )));
    }
    let Some(rest) = name.strip_prefix("alias/") else {
        // [L test_create_alias] a ValidationException, with AWS's pointer to the guide.
        return Err(Error::validation(
            "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
        ));
    };
    if rest.is_empty() || rest.contains(':') {
        return Err(invalid("Alias name is not valid."));
    }
    if name.starts_with("alias/aws/") {
        return Err(invalid(
            "Alias names starting with alias/aws/ are reserved for AWS managed keys.",
        ));
    }
    Ok(())
}

/// The alias `alias_name` pointing at `target_key_id` (a key id or key ARN of the caller's
/// account, not pending deletion), once the caller may do `action` on that key; shared by
/// CreateAlias and UpdateAlias.
pub(super) async fn alias_record(
    region: &RegionService,
    caller: &Caller,
    alias_name: &str,
    target_key_id: &str,
    action: &str,
) -> Result<coffer_store::KmsAliasRecord> {
    let key = super::find_authorized(region, caller, target_key_id, action).await?;
    if target_key_id.starts_with("alias/") || target_key_id.contains(":alias/") {
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
    Ok(coffer_store::KmsAliasRecord {
        account_id: caller.account_id.clone(),
        alias_name: alias_name.to_string(),
        target_key_arn: key.arn.clone(),
        created_ms: region.now_ms(),
    })
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    check_alias_name(&input.alias_name)?;
    let alias = alias_record(
        region,
        caller,
        &input.alias_name,
        &input.target_key_id,
        Operation::CreateAlias.action(),
    )
    .await?;
    match region
        .store
        .commit_kms(coffer_store::KmsChange::CreateAlias(alias))
        .await
    {
        Ok(()) => Ok(json!({})),
        Err(coffer_store::StoreError::Conflict) => Err(Error::new(
            ErrorCode::KmsAlreadyExists,
            format!(
                "An alias with the name {} already exists",
                region.keys.kms_arn(&caller.account_id, &input.alias_name)
            ),
        )),
        Err(e) => Err(e.into()),
    }
}
