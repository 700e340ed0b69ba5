//! ValidateResourcePolicy (spec §4.13).

use serde::{Deserialize, Serialize};

use crate::authorize::{Access, Target, authorize};
use crate::error::Result;
use crate::region::{Caller, RegionService};
use crate::secret::load;
use crate::validate::Violations;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub resource_policy: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidationError {
    pub check_name: String,
    pub error_message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub policy_validation_passed: bool,
    pub validation_errors: Vec<ValidationError>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    v.length(input.secret_id.as_deref(), "secretId", 1, 2048);
    if v.required(&input.resource_policy, "resourcePolicy") {
        v.length(input.resource_policy.as_deref(), "resourcePolicy", 1, 20480);
    }
    v.finish()?;
    let access = Access::new("secretsmanager:ValidateResourcePolicy");
    match &input.secret_id {
        // [S] the SecretId is resolved (and its name validated) when given.
        Some(id) => {
            load(region, caller, id, &access).await?;
        }
        None => authorize(region, caller, &access, Target::Everything)?,
    }
    let policy = input.resource_policy.unwrap_or_default();
    // Syntax (with line/column or statement and element), unknown condition operators, broad
    // access, and actions or resources of other services: coffer-iam's findings module.
    let findings = coffer_iam::validate_resource_policy(&policy, "secretsmanager");
    Ok(Output {
        policy_validation_passed: findings.is_empty(),
        validation_errors: findings
            .into_iter()
            .map(|f| ValidationError {
                check_name: f.check.to_string(),
                error_message: f.message,
            })
            .collect(),
    })
}
