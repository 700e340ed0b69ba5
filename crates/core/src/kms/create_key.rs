//! KMS `CreateKey`: a symmetric ENCRYPT_DECRYPT key (`SYMMETRIC_DEFAULT`), optionally
//! multi-Region (`mrk-` key id), with a policy (default: AWS's default key policy) and tags.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Operation;
use super::{KeyMeta, KmsTag};
use crate::error::{Error, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Input {
    pub description: Option<String>,
    pub key_usage: Option<String>,
    pub key_spec: Option<String>,
    pub customer_master_key_spec: Option<String>,
    pub origin: Option<String>,
    pub policy: Option<String>,
    pub tags: Option<Vec<KmsTag>>,
    pub multi_region: Option<bool>,
    pub bypass_policy_lockout_safety_check: Option<bool>,
}

/// A key description: at most 8192 characters.
pub(crate) fn check_description(description: &str) -> Result<()> {
    if description.chars().count() > 8192 {
        return Err(Error::validation(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192",
        ));
    }
    Ok(())
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    super::authorize_account(region, caller, Operation::CreateKey.action())?;
    if let Some(usage) = input.key_usage.as_deref()
        && usage != "ENCRYPT_DECRYPT"
    {
        return Err(Error::validation(format!(
            "KeyUsage {usage} is not supported: Coffer's KMS makes symmetric ENCRYPT_DECRYPT keys only."
        )));
    }
    for spec in [&input.key_spec, &input.customer_master_key_spec]
        .into_iter()
        .flatten()
    {
        if spec != "SYMMETRIC_DEFAULT" {
            return Err(Error::validation(format!(
                "KeySpec {spec} is not supported: Coffer's KMS makes SYMMETRIC_DEFAULT keys only."
            )));
        }
    }
    if let Some(origin) = input.origin.as_deref()
        && origin != "AWS_KMS"
    {
        return Err(Error::new(
            crate::error::ErrorCode::KmsUnsupportedOperation,
            format!(
                "Origin {origin} is not supported: Coffer's KMS generates all key material (AWS_KMS)."
            ),
        ));
    }
    let description = input.description.unwrap_or_default();
    check_description(&description)?;
    if let Some(policy) = &input.policy {
        super::check_policy(policy)?;
    }
    let tags = input.tags.unwrap_or_default();
    super::check_tags(&tags)?;
    let multi_region = input.multi_region.unwrap_or(false);
    let key_id = if multi_region {
        format!("mrk-{}", uuid::Uuid::new_v4().simple())
    } else {
        uuid::Uuid::new_v4().to_string()
    };
    let meta = KeyMeta {
        multi_region,
        policy: input.policy,
        tags,
        ..KeyMeta::customer(&description)
    };
    let key = region
        .keys
        .create_key(
            &caller.account_id,
            &key_id,
            meta,
            coffer_kms::KeyMaterial::generate(),
        )
        .await?;
    Ok(json!({ "KeyMetadata": super::key_metadata(&key) }))
}
