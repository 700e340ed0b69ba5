//! ListSecretVersionIds (spec §4.8).

use serde::{Deserialize, Serialize};

use super::Operation;
use super::list_secrets::{page, page_token};
use crate::authorize::Access;
use crate::error::Result;
use crate::model::Timestamp;
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::secret::{check_secret_id, ensure_not_deleted, load};
use crate::validate::Violations;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub include_deprecated: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionEntry {
    pub version_id: String,
    /// [S] absent (not `[]`) on deprecated versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_stages: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<Timestamp>,
    pub created_date: Timestamp,
    pub kms_key_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub versions: Vec<VersionEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    v.range(input.max_results, "maxResults", 1, 100);
    v.length(input.next_token.as_deref(), "nextToken", 1, 4096);
    v.finish()?;
    let secret = load(
        region,
        caller,
        input.secret_id.as_deref().unwrap_or_default(),
        &Access::new(Operation::ListSecretVersionIds.action()),
    )
    .await?;
    // Spec §4: every operation but a few refuses a secret scheduled for deletion.
    ensure_not_deleted(&secret)?;
    let include_deprecated = input.include_deprecated.unwrap_or(false);
    let uses_default_key = secret.record.kms_key_id.is_none();
    let all: Vec<VersionEntry> = secret
        .versions
        .iter()
        .rev()
        .filter(|v| include_deprecated || !v.stages.is_empty())
        .map(|v| VersionEntry {
            version_id: v.version_id.clone(),
            version_stages: (!v.stages.is_empty()).then(|| v.stages.clone()),
            last_accessed_date: v.last_accessed_day.map(Timestamp::from_day),
            created_date: Timestamp(v.created_ms),
            // [S] the default key is reported as "DefaultEncryptionKey".
            kms_key_ids: vec![if uses_default_key {
                "DefaultEncryptionKey".to_string()
            } else {
                secret.record.kms_key_id.clone().unwrap_or_default()
            }],
        })
        .collect();
    let start = page_token(input.next_token.as_deref())?;
    let (versions, next_token) = page(all, start, input.max_results.unwrap_or(100) as usize);
    Ok(Output {
        arn: secret.record.arn,
        name: secret.record.name,
        versions,
        next_token,
    })
}
