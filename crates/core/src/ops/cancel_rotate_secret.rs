//! CancelRotateSecret (spec §6.4): disables rotation; rules and function are kept, a rotation in
//! progress is left in place (its AWSPENDING version id is returned).

use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::Access;
use crate::error::{Error, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::rotation::{set_state, state};
use crate::secret::{
    check_secret_id, commit_update, ensure_not_deleted, ensure_primary, load, with_retry,
};
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
    pub version_id: Option<String>,
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
            &Access::new(Operation::CancelRotateSecret.action()),
        )
        .await?;
        ensure_primary(&secret)?;
        ensure_not_deleted(&secret)?;
        let Some(mut st) = state(&secret) else {
            // [E] moto's behaviour for a secret that never had rotation configured.
            return Err(Error::invalid_request(
                "Rotation is not configured for this secret: there is nothing to cancel.",
            )
            .into());
        };
        let expected = secret.record.row_version;
        st.enabled = false;
        st.generation += 1;
        st.next_window = None;
        let version_id = st.pending.as_ref().map(|p| p.token.clone());
        set_state(&mut secret, &st);
        secret.record.last_changed_ms = region.now_ms();
        let secret = commit_update(region, secret, expected, Vec::new(), Vec::new()).await?;
        Ok(Output {
            arn: secret.record.arn,
            name: secret.record.name,
            version_id,
        })
    })
    .await
}
