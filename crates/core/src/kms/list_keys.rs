//! KMS `ListKeys`: the account's keys in this Region (`KeyId`, `KeyArn`), oldest first, paged
//! with `Limit` (1–1000, default 100) and `Marker`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Operation;
use crate::error::Result;
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Input {
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    super::authorize_account(region, caller, Operation::ListKeys.action())?;
    let keys = region.store.list_kms_keys(Some(&caller.account_id)).await?;
    let entries: Vec<Value> = keys
        .iter()
        .map(|k| json!({"KeyId": k.key_id, "KeyArn": k.key_arn}))
        .collect();
    super::list_aliases::page(entries, input.limit, input.marker.as_deref(), "Keys")
}
