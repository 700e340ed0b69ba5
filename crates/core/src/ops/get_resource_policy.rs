//! GetResourcePolicy (spec §4.13): `ResourcePolicy` omitted when none is attached.

use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::Access;
use crate::error::Result;
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::secret::{check_secret_id, ensure_not_deleted, load};
use crate::validate::Violations;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<String>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    v.finish()?;
    let secret = load(
        region,
        caller,
        input.secret_id.as_deref().unwrap_or_default(),
        &Access::new(Operation::GetResourcePolicy.action()),
    )
    .await?;
    // [F] refused while scheduled for deletion.
    ensure_not_deleted(&secret)?;
    Ok(Output {
        arn: secret.record.arn,
        name: secret.record.name,
        resource_policy: secret.record.resource_policy,
    })
}
