//! UpdateSecretVersionStage (spec §4.9).

use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::Access;
use crate::error::{Error, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::secret::{
    AWSCURRENT, AWSPREVIOUS, Failure, check_secret_id, commit_update, ensure_not_deleted,
    ensure_primary, load, version_by_id, version_with_stage, with_retry,
};
use crate::validate::Violations;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub version_stage: Option<String>,
    pub remove_from_version_id: Option<String>,
    pub move_to_version_id: Option<String>,
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
    if v.required(&input.version_stage, "versionStage") {
        v.length(input.version_stage.as_deref(), "versionStage", 1, 256);
    }
    v.length(
        input.remove_from_version_id.as_deref(),
        "removeFromVersionId",
        32,
        64,
    );
    v.length(
        input.move_to_version_id.as_deref(),
        "moveToVersionId",
        32,
        64,
    );
    v.finish()?;
    // Authorisation before existence (authorize.rs).
    let access = Access::new(Operation::UpdateSecretVersionStage.action())
        .with("secretsmanager:VersionStage", input.version_stage.clone());
    let secret_id = input.secret_id.unwrap_or_default();
    let stage = input.version_stage.unwrap_or_default();
    let (remove_from, move_to) = (input.remove_from_version_id, input.move_to_version_id);
    with_retry(|| async {
        let mut secret = load(region, caller, &secret_id, &access).await?;
        ensure_primary(&secret)?;
        ensure_not_deleted(&secret)?;
        let expected = secret.record.row_version;
        for id in remove_from.iter().chain(move_to.iter()) {
            if version_by_id(&secret, id).is_none() {
                // [E] moto's wording for an unknown version.
                return Err(Failure::Api(Error::invalid_parameter(format!(
                    "Secrets Manager can't find the specified secret version: {id}"
                ))));
            }
        }
        let holder = version_with_stage(&secret, &stage).map(|v| v.version_id.clone());
        if let Some(remove_from) = &remove_from
            && holder.as_deref() != Some(remove_from.as_str())
        {
            // [E] moto's wording for a RemoveFromVersionId that does not have the label.
            return Err(Failure::Api(Error::invalid_parameter(format!(
                "Version stage {stage} not found in version {remove_from}"
            ))));
        }
        if move_to.is_some()
            && let Some(h) = &holder
            && remove_from.is_none()
            && Some(h) != move_to.as_ref()
        {
            // [E] moto's wording.
            return Err(Failure::Api(Error::invalid_parameter(format!(
                "The parameter RemoveFromVersionId can't be empty. Staging label {stage} is currently attached to version {h}, so you must explicitly reference that version in RemoveFromVersionId."
            ))));
        }
        if stage == AWSCURRENT && move_to.is_none() {
            // A secret must keep a current version.
            return Err(Failure::Api(Error::invalid_parameter(
                "You can only move the staging label AWSCURRENT to a different secret version. It can't be completely removed.",
            )));
        }
        let mut touched: Vec<String> = Vec::new();
        if let Some(from) = &remove_from {
            for v in secret.versions.iter_mut().filter(|v| &v.version_id == from) {
                v.stages.retain(|s| s != &stage);
                touched.push(v.version_id.clone());
            }
        }
        if let Some(to) = &move_to {
            if stage == AWSCURRENT && holder.as_deref() != Some(to.as_str()) {
                // [S] the version AWSCURRENT left gets AWSPREVIOUS; the old AWSPREVIOUS loses it.
                for v in secret.versions.iter_mut() {
                    let is_from = Some(v.version_id.as_str()) == holder.as_deref();
                    if is_from {
                        if !v.stages.iter().any(|s| s == AWSPREVIOUS) {
                            v.stages.push(AWSPREVIOUS.to_string());
                        }
                        touched.push(v.version_id.clone());
                    } else if v.stages.iter().any(|s| s == AWSPREVIOUS) {
                        v.stages.retain(|s| s != AWSPREVIOUS);
                        touched.push(v.version_id.clone());
                    }
                }
            }
            // The loop above took AWSPREVIOUS off the target when AWSCURRENT moves to it.
            // [E] AWSCURRENT "moved" onto the version that has it moves nothing, so that
            // version keeps an AWSPREVIOUS moved onto it before (the spec: a target keeps its
            // other labels).
            for v in secret.versions.iter_mut().filter(|v| &v.version_id == to) {
                if !v.stages.contains(&stage) {
                    v.stages.push(stage.clone());
                }
                touched.push(v.version_id.clone());
            }
        }
        let now = region.now_ms();
        let deleted = crate::secret::prune_deprecated(&mut secret, now)?;
        secret.record.last_changed_ms = now;
        let changed = secret
            .versions
            .iter()
            .filter(|v| touched.contains(&v.version_id))
            .cloned()
            .collect();
        let secret = commit_update(region, secret, expected, changed, deleted).await?;
        Ok(Output {
            arn: secret.record.arn,
            name: secret.record.name,
        })
    })
    .await
}
