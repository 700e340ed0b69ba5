//! KMS `ListAliases`: the account's aliases in this Region, by name, optionally only those of one
//! key (`KeyId`), paged with `Limit` (1–1000, default 100) and `Marker`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Operation;
use crate::error::{Error, ErrorCode, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Input {
    pub key_id: Option<String>,
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Value> {
    super::authorize_account(region, caller, Operation::ListAliases.action())?;
    let only = match input.key_id.as_deref() {
        Some(id) => Some(super::find_key(region, caller, id).await?.arn),
        None => None,
    };
    let aliases = region.store.list_kms_aliases(&caller.account_id).await?;
    let entries: Vec<Value> = aliases
        .iter()
        .filter(|a| only.as_ref().is_none_or(|arn| *arn == a.target_key_arn))
        .map(|a| {
            let target = a
                .target_key_arn
                .rsplit_once("key/")
                .map(|(_, id)| id.to_string())
                .unwrap_or_default();
            json!({
                "AliasName": a.alias_name,
                "AliasArn": region.keys.kms_arn(&a.account_id, &a.alias_name),
                "TargetKeyId": target,
                "CreationDate": super::epoch_seconds(a.created_ms),
                "LastUpdatedDate": super::epoch_seconds(a.created_ms),
            })
        })
        .collect();
    page(entries, input.limit, input.marker.as_deref(), "Aliases")
}

/// One page of `entries` under `member`: the marker is the index of the next entry.
pub(crate) fn page(
    entries: Vec<Value>,
    limit: Option<i64>,
    marker: Option<&str>,
    member: &str,
) -> Result<Value> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::validation(format!(
            "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 1000"
        )));
    }
    let start = match marker {
        None => 0,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|&i| i <= entries.len())
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::KmsInvalidMarker,
                    "The marker is not valid: pass the NextMarker of the previous response.",
                )
            })?,
    };
    let end = (start + limit as usize).min(entries.len());
    let truncated = end < entries.len();
    let mut out = json!({ member: entries[start..end].to_vec(), "Truncated": truncated });
    if truncated {
        out["NextMarker"] = json!(end.to_string());
    }
    Ok(out)
}
