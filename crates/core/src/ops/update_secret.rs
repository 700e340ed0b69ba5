//! UpdateSecret (spec §4.6).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Operation;
use crate::authorize::Access;
use crate::error::{Error, Result};
use crate::input::{Blob, check_value, take_value};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::secret::{
    AWSCURRENT, AWSPENDING, AWSPREVIOUS, Failure, NewVersion, add_version, check_secret_id,
    commit_update, ensure_not_deleted, ensure_primary, load, with_retry,
};
use crate::validate::Violations;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub secret_string: Option<Zeroizing<String>>,
    pub secret_binary: Option<Blob>,
    #[serde(rename = "Type")]
    pub secret_type: Option<String>,
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
    check_value(
        &mut v,
        &input.client_request_token,
        &input.secret_string,
        &input.secret_binary,
    );
    v.length(input.description.as_deref(), "description", 0, 2048);
    v.length(input.kms_key_id.as_deref(), "kmsKeyId", 0, 2048);
    v.length(input.secret_type.as_deref(), "type", 0, 256);
    v.finish()?;
    // Authorisation before existence (authorize.rs).
    let access = Access::new(Operation::UpdateSecret.action())
        .with("secretsmanager:Description", input.description.clone())
        .with("secretsmanager:KmsKeyId", input.kms_key_id.clone());
    let value = take_value(input.secret_string, input.secret_binary)?;
    if value.is_some() && input.client_request_token.is_none() {
        return Err(Error::missing_token());
    }
    let secret_id = input.secret_id.unwrap_or_default();
    let token = input.client_request_token.unwrap_or_default();
    let description = input.description;
    // `""` reverts to the default key [D].
    let new_key = input.kms_key_id;
    with_retry(|| async {
        let mut secret = load(region, caller, &secret_id, &access).await?;
        // [E] AWS lets a replica change its key; Coffer refuses every write on a replica and
        // changes a replica's key through ReplicateSecretToRegions on the primary instead, so
        // the primary stays the one source of truth.
        ensure_primary(&secret)?;
        ensure_not_deleted(&secret)?;
        let expected = secret.record.row_version;
        let mut metadata_changed = false;
        let mut changed_versions = Vec::new();
        if let Some(d) = &description {
            secret.record.description = Some(d.clone());
            metadata_changed = true;
        }
        if let Some(k) = &new_key {
            let target = Some(k.clone()).filter(|k| !k.is_empty());
            if target != secret.record.kms_key_id {
                changed_versions =
                    reencrypt(region, caller, &mut secret, target.as_deref()).await?;
                secret.record.kms_key_id = target;
            }
            metadata_changed = true;
        }
        let mut version_id = None;
        if let Some(value) = &value {
            if metadata_changed {
                secret.record.last_changed_ms = region.now_ms();
                secret =
                    commit_update(region, secret, expected, changed_versions, Vec::new()).await?;
            }
            secret = match add_version(region, caller, secret, &token, value, None).await? {
                NewVersion::Replay(s) | NewVersion::Added(s) => s,
            };
            version_id = Some(token.clone());
        } else if metadata_changed {
            secret.record.last_changed_ms = region.now_ms();
            secret = commit_update(region, secret, expected, changed_versions, Vec::new()).await?;
        }
        Ok::<_, Failure>(Output {
            arn: secret.record.arn,
            name: secret.record.name,
            version_id,
        })
    })
    .await
}

/// Re-encrypts the AWSCURRENT, AWSPENDING and AWSPREVIOUS versions under a new key [D].
async fn reencrypt(
    region: &RegionService,
    caller: &Caller,
    secret: &mut coffer_store::Secret,
    key_id: Option<&str>,
) -> Result<Vec<coffer_store::VersionRecord>> {
    let key = region
        .keys
        .resolve_key(&secret.record.account_id, key_id)
        .await?;
    let arn = secret.record.arn.clone();
    let mut changed = Vec::new();
    for version in secret.versions.iter_mut() {
        let staged = version
            .stages
            .iter()
            .any(|s| s == AWSCURRENT || s == AWSPENDING || s == AWSPREVIOUS);
        if !staged || version.ciphertext.is_none() {
            continue;
        }
        let value = region.keys.decrypt_value(caller, &arn, version).await?;
        let (wrapped, ciphertext) =
            region
                .keys
                .encrypt_value(caller, &key, &arn, &version.version_id, &value)?;
        version.kms_key_arn = Some(key.arn.clone());
        version.wrapped_data_key = Some(wrapped);
        version.ciphertext = Some(ciphertext);
        changed.push(version.clone());
    }
    Ok(changed)
}
