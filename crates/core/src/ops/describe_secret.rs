//! DescribeSecret (spec §4.2): works on secrets scheduled for deletion.

use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::Access;
use crate::error::Result;
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::secret::{check_secret_id, load_labelled};
use crate::validate::Violations;
use crate::view::{SecretEntry, Shape, entry};

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<SecretEntry> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    v.finish()?;
    // VersionIdsToStages lists only the versions with labels, so the labelled ones suffice.
    let secret = load_labelled(
        region,
        caller,
        input.secret_id.as_deref().unwrap_or_default(),
        &Access::new(Operation::DescribeSecret.action()),
    )
    .await?;
    Ok(entry(&secret, Shape::Describe, &region.region))
}
pub type Output = crate::view::SecretEntry;
