//! RestoreSecret (spec §4.11): cancels a scheduled deletion.

use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::Access;
use crate::error::Result;
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::secret::{check_secret_id, commit_update, ensure_primary, load, with_retry};
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
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    v.finish()?;
    let secret_id = input.secret_id.unwrap_or_default();
    with_retry(|| async {
        let mut secret = load(
            region,
            caller,
            &secret_id,
            &Access::new(Operation::RestoreSecret.action()),
        )
        .await?;
        ensure_primary(&secret)?;
        // [E] restoring a secret that is not scheduled for deletion is a no-op success.
        if secret.record.deleted_ms.is_some() {
            let expected = secret.record.row_version;
            secret.record.deleted_ms = None;
            secret.record.purge_at_ms = None;
            secret = commit_update(region, secret, expected, Vec::new(), Vec::new()).await?;
        }
        Ok(Output {
            arn: secret.record.arn,
            name: secret.record.name,
        })
    })
    .await
}
