//! UntagResource (spec §4.12): removes keys; unknown keys are ignored; `Tags: []` remains.

use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::{Access, Target, ensure_tags_keep_access};
use crate::error::Result;
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::secret::{
    check_secret_id, commit_update, ensure_not_deleted, ensure_primary, load, with_retry,
};
use crate::validate::Violations;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub tag_keys: Option<Vec<String>>,
}

#[derive(Serialize)]
pub struct Output {}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    v.required(&input.tag_keys, "tagKeys");
    for (i, key) in input.tag_keys.iter().flatten().enumerate() {
        v.length(Some(key), &format!("tagKeys.{}.member", i + 1), 1, 128);
    }
    v.finish()?;
    // Authorisation before existence (authorize.rs).
    let access = Access::new(Operation::UntagResource.action())
        .with_all("aws:TagKeys", input.tag_keys.clone());
    let secret_id = input.secret_id.unwrap_or_default();
    let keys = input.tag_keys.unwrap_or_default();
    with_retry(|| async {
        let mut secret = load(region, caller, &secret_id, &access).await?;
        ensure_primary(&secret)?;
        ensure_not_deleted(&secret)?;
        let expected = secret.record.row_version;
        let mut kept = secret.record.tags.clone().unwrap_or_default();
        kept.retain(|t| !keys.contains(&t.key));
        ensure_tags_keep_access(
            region,
            caller,
            access.action,
            Target::Secret(&secret),
            Target::retagged(&secret, &kept),
        )?;
        secret.record.tags = Some(kept);
        secret.record.last_changed_ms = region.now_ms();
        commit_update(region, secret, expected, Vec::new(), Vec::new()).await?;
        Ok(Output {})
    })
    .await
}
