//! TagResource (spec §4.12): merges tags; an existing key gets the new value.

use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::{Access, Target, ensure_tags_keep_access};
use crate::error::Result;
use crate::input::{TagInput, check_tag_count, check_tags, merge_tags, to_tags};
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
    pub tags: Option<Vec<TagInput>>,
}

/// No output members: `{}` [S].
#[derive(Serialize)]
pub struct Output {}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    v.required(&input.tags, "tags");
    check_tags(&mut v, &input.tags, "tags");
    v.finish()?;
    // Authorisation before existence (authorize.rs).
    let access = Access::new(Operation::TagResource.action()).with_request_tags(
        input.tags.as_ref().map(|tags| {
            tags.iter()
                .filter_map(|t| Some((t.key.as_deref()?, t.value.as_deref().unwrap_or_default())))
        }),
    );
    let secret_id = input.secret_id.unwrap_or_default();
    let tags = to_tags(input.tags.unwrap_or_default());
    with_retry(|| async {
        let mut secret = load(region, caller, &secret_id, &access).await?;
        ensure_primary(&secret)?;
        ensure_not_deleted(&secret)?;
        let expected = secret.record.row_version;
        let mut merged = secret.record.tags.clone().unwrap_or_default();
        merge_tags(&mut merged, tags.clone());
        check_tag_count(&merged)?;
        ensure_tags_keep_access(
            region,
            caller,
            access.action,
            Target::Secret(&secret),
            Target::retagged(&secret, &merged),
        )?;
        secret.record.tags = Some(merged);
        secret.record.last_changed_ms = region.now_ms();
        commit_update(region, secret, expected, Vec::new(), Vec::new()).await?;
        Ok(Output {})
    })
    .await
}
