//! PutResourcePolicy (spec §4.13).

use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::Access;
use crate::error::{Error, ErrorCode, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::secret::{
    Failure, check_secret_id, commit_update, ensure_not_deleted, ensure_primary, load, with_retry,
};
use crate::validate::Violations;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub resource_policy: Option<String>,
    pub block_public_policy: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    if v.required(&input.resource_policy, "resourcePolicy") {
        v.length(input.resource_policy.as_deref(), "resourcePolicy", 1, 20480);
    }
    v.finish()?;
    // Authorisation before existence (authorize.rs).
    let access = Access::new(Operation::PutResourcePolicy.action()).with(
        "secretsmanager:BlockPublicPolicy",
        input.block_public_policy.map(|b| b.to_string()),
    );
    let policy = input.resource_policy.unwrap_or_default();
    let secret_id = input.secret_id.unwrap_or_default();
    with_retry(|| async {
        let mut secret = load(region, caller, &secret_id, &access).await?;
        ensure_primary(&secret)?;
        ensure_not_deleted(&secret)?;
        let parsed = coffer_iam::Policy::parse_resource_policy(&policy).map_err(|e| {
            Failure::Api(Error::new(
                ErrorCode::MalformedPolicyDocument,
                format!("This resource policy contains a syntax error: {e}"),
            ))
        })?;
        if input.block_public_policy.unwrap_or(false) && parsed.is_public() {
            // The model's documentation of PublicPolicyException. "Public" is defined in
            // coffer-iam's findings module.
            return Err(Failure::Api(Error::new(
                ErrorCode::PublicPolicy,
                "The BlockPublicPolicy parameter is set to true, and the resource policy did not prevent broad access to the secret.",
            )));
        }
        let expected = secret.record.row_version;
        secret.record.resource_policy = Some(policy.clone());
        secret.record.last_changed_ms = region.now_ms();
        let secret = commit_update(region, secret, expected, Vec::new(), Vec::new()).await?;
        Ok(Output {
            arn: secret.record.arn,
            name: secret.record.name,
        })
    })
    .await
}
