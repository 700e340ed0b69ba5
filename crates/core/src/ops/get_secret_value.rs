//! GetSecretValue (spec §4.3).

use base64::Engine;
use coffer_store::Secret;
use serde::{Deserialize, Serialize, Serializer};
use zeroize::Zeroizing;

use super::Operation;
use crate::authorize::Access;
use crate::error::{Error, Result};
use crate::model::{SecretValue, Timestamp, day_of};
use crate::operation::Operation as _;
use crate::outbox::OutboxMessage;
use crate::region::{Caller, RegionService};
use crate::replication::{ReplicationState, state};
use crate::secret::{
    AWSCURRENT, check_secret_id, ensure_not_deleted, load, load_labelled, version_by_id,
    version_with_stage,
};
use crate::validate::Violations;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub version_id: Option<String>,
    pub version_stage: Option<String>,
}

/// The value members of GetSecretValue and BatchGetSecretValue entries.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub version_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_string: Option<Zeroizing<String>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "base64_blob"
    )]
    pub secret_binary: Option<Zeroizing<Vec<u8>>>,
    pub version_stages: Vec<String>,
    pub created_date: Timestamp,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("arn", &self.arn)
            .field("version_id", &self.version_id)
            .finish_non_exhaustive()
    }
}

fn base64_blob<S: Serializer>(
    v: &Option<Zeroizing<Vec<u8>>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(bytes) => {
            let text =
                Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes.as_slice()));
            s.serialize_str(&text)
        }
        None => s.serialize_none(),
    }
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    v.length(input.version_id.as_deref(), "versionId", 32, 64);
    v.length(input.version_stage.as_deref(), "versionStage", 1, 256);
    v.finish()?;
    // Authorisation before existence (authorize.rs).
    let access = Access::new(Operation::GetSecretValue.action())
        .with("secretsmanager:VersionId", input.version_id.clone())
        .with("secretsmanager:VersionStage", input.version_stage.clone());
    let secret_id = input.secret_id.as_deref().unwrap_or_default();
    // A read by label needs only the labelled versions; one by VersionId may ask for a
    // version without labels.
    let secret = if input.version_id.is_some() {
        load(region, caller, secret_id, &access).await?
    } else {
        load_labelled(region, caller, secret_id, &access).await?
    };
    read(
        region,
        caller,
        &secret,
        input.version_id.as_deref(),
        input.version_stage.as_deref(),
    )
    .await
}

/// Reads one version's value (default AWSCURRENT) and records the access at day resolution.
pub async fn read(
    region: &RegionService,
    caller: &Caller,
    secret: &Secret,
    version_id: Option<&str>,
    version_stage: Option<&str>,
) -> Result<Output> {
    ensure_not_deleted(secret)?;
    let version = match version_id {
        Some(id) => {
            let version = version_by_id(secret, id).ok_or_else(|| {
                Error::new(
                    crate::ErrorCode::ResourceNotFound,
                    format!(
                        "Secrets Manager can't find the specified secret value for VersionId: {id}"
                    ),
                )
            })?;
            if let Some(stage) = version_stage
                && !version.stages.iter().any(|s| s == stage)
            {
                return Err(Error::invalid_request(
                    "You provided a VersionStage that is not associated to the provided VersionId.",
                ));
            }
            version
        }
        None => {
            let stage = version_stage.unwrap_or(AWSCURRENT);
            version_with_stage(secret, stage).ok_or_else(|| stage_not_found(stage))?
        }
    };
    if version.ciphertext.is_none() {
        // [V] the value-less AWSPENDING placeholder of a rotation in progress.
        return Err(match version_stage {
            Some(stage) if version_id.is_none() => stage_not_found(stage),
            _ => Error::new(
                crate::ErrorCode::ResourceNotFound,
                format!(
                    "Secrets Manager can't find the specified secret value for VersionId: {}",
                    version.version_id
                ),
            ),
        });
    }
    let value = region
        .keys
        .decrypt_value(caller, &secret.record.arn, version)
        .await?;
    let today = day_of(region.now_ms());
    if version.last_accessed_day != Some(today) || secret.record.last_accessed_day != Some(today) {
        let (arn, version_id) = (&secret.record.arn, &version.version_id);
        match state(secret) {
            // [D] a replica's reads show in the primary's ReplicationStatus[].LastAccessedDate:
            // its first read of the day tells the primary, with the day (`record_access_and_tell`
            // writes both behind the read on SQLite; the worker finds the row at its next poll).
            Some(ReplicationState::Replica { primary_region, .. })
                if secret.record.last_accessed_day != Some(today) =>
            {
                let tell = OutboxMessage::Access {
                    region: region.region.clone(),
                    day: Some(today),
                }
                .entry(arn, &primary_region);
                region
                    .store
                    .record_access_and_tell(arn, version_id, today, tell)
                    .await?;
            }
            _ => region.store.record_access(arn, version_id, today).await?,
        }
    }
    let (secret_string, secret_binary) = match value {
        SecretValue::String(s) => (Some(s), None),
        SecretValue::Binary(b) => (None, Some(b)),
    };
    Ok(Output {
        arn: secret.record.arn.clone(),
        name: secret.record.name.clone(),
        version_id: version.version_id.clone(),
        secret_string,
        secret_binary,
        version_stages: version.stages.clone(),
        created_date: Timestamp(version.created_ms),
    })
}

/// [S] note: no trailing period.
fn stage_not_found(stage: &str) -> Error {
    Error::new(
        crate::ErrorCode::ResourceNotFound,
        format!("Secrets Manager can't find the specified secret value for staging label: {stage}"),
    )
}
