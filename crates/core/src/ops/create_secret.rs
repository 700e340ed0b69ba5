//! CreateSecret (spec §4.1).

use coffer_store::{Secret, SecretChange, SecretRecord, VersionRecord};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Operation;
use crate::authorize::{Access, Target, authorize, ensure_tags_keep_access};
use crate::error::{Error, ErrorCode, Result};
use crate::input::{
    Blob, TagInput, check_tag_count, check_tags, check_value, merge_tags, take_value, to_tags,
};
use crate::model::{arn_suffix, secret_arn};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::replica_regions::{ReplicaRegionType, check_regions, check_shape, merge};
use crate::replication::{ReplicationState, set_state, sync_entries};
use crate::secret::{AWSCURRENT, Failure, version_by_id, with_retry};
use crate::validate::{Violations, invalid_name, is_valid_name};

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub name: Option<String>,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub secret_string: Option<Zeroizing<String>>,
    pub secret_binary: Option<Blob>,
    pub tags: Option<Vec<TagInput>>,
    pub add_replica_regions: Option<Vec<ReplicaRegionType>>,
    pub force_overwrite_replica_secret: Option<bool>,
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
    /// Only when replicas were requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_status: Option<Vec<crate::replication::ReplicationStatusView>>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    if v.required(&input.name, "name") {
        v.length(input.name.as_deref(), "name", 1, 512);
    }
    check_value(
        &mut v,
        &input.client_request_token,
        &input.secret_string,
        &input.secret_binary,
    );
    v.length(input.description.as_deref(), "description", 0, 2048);
    v.length(input.kms_key_id.as_deref(), "kmsKeyId", 0, 2048);
    v.length(input.secret_type.as_deref(), "type", 0, 256);
    check_tags(&mut v, &input.tags, "tags");
    check_shape(&mut v, &input.add_replica_regions);
    v.finish()?;
    let has_value = input.secret_string.is_some() || input.secret_binary.is_some();
    // [S] a raw request with a value but no token; SDKs always fill one in.
    if has_value && input.client_request_token.is_none() {
        return Err(Error::missing_token());
    }
    let name = input.name.clone().unwrap_or_default();
    if !is_valid_name(&name) {
        return Err(invalid_name());
    }
    // Authorisation before anything is looked up (authorize.rs), against the ARN the new
    // secret will have; the suffix is drawn once so every retry creates that same ARN.
    let suffix = arn_suffix();
    let new_arn = secret_arn(
        region.partition,
        &region.region,
        &caller.account_id,
        &name,
        &suffix,
    );
    let request_tags = input.tags.as_ref().map(|tags| {
        tags.iter()
            .filter_map(|t| Some((t.key.as_deref()?, t.value.as_deref().unwrap_or_default())))
            .collect::<Vec<_>>()
    });
    let mut access = Access::new(Operation::CreateSecret.action())
        .with("secretsmanager:Name", Some(name.as_str()))
        .with("secretsmanager:Description", input.description.clone())
        .with("secretsmanager:KmsKeyId", input.kms_key_id.clone())
        .with_all(
            "secretsmanager:AddReplicaRegions",
            input
                .add_replica_regions
                .as_ref()
                .map(|r| r.iter().filter_map(|r| r.region.clone()).collect()),
        )
        .with(
            "secretsmanager:ForceOverwriteReplicaSecret",
            input.force_overwrite_replica_secret.map(|b| b.to_string()),
        )
        .with_request_tags(request_tags.clone());
    // CreateSecret also supports secretsmanager:ResourceTag/<key>: the tags the new secret
    // is created with.
    for (key, value) in request_tags.iter().flatten() {
        access
            .context
            .set(&format!("secretsmanager:ResourceTag/{key}"), *value);
    }
    let target = Target::Named {
        arn: &new_arn,
        account: &caller.account_id,
    };
    authorize(region, caller, &access, target)?;
    let tags = input.tags.map(to_tags);
    if let Some(tags) = &tags {
        // Counted by distinct key, as the secret will hold them.
        let mut distinct = Vec::new();
        merge_tags(&mut distinct, tags.clone());
        check_tag_count(&distinct)?;
    }
    if let Some(tags) = tags.as_deref().filter(|t| !t.is_empty()) {
        // AWS: "If you include tags in the secret, you also need secretsmanager:TagResource."
        // Checked with the same request keys (aws:RequestTag/*, aws:TagKeys). An empty tag
        // list includes no tags and needs nothing more.
        let tag_access = Access {
            action: Operation::TagResource.action(),
            context: access.context.clone(),
        };
        authorize(region, caller, &tag_access, target)?;
        // ... and tags that would cost the creator a permission on the new secret are
        // refused, as for TagResource: the secret without tags against the secret with them.
        let tagged = |tags| Target::Tagged {
            arn: &new_arn,
            account: &caller.account_id,
            tags,
            policy: None,
        };
        ensure_tags_keep_access(region, caller, tag_access.action, tagged(&[]), tagged(tags))?;
    }
    let value = take_value(input.secret_string, input.secret_binary)?;
    let requested = input.add_replica_regions.unwrap_or_default();
    check_regions(region, &requested)?;
    let force = input.force_overwrite_replica_secret.unwrap_or(false);
    let mut replicas = Vec::new();
    let touched = merge(&mut replicas, &requested, region.now_ms(), force);
    let token = input
        .client_request_token
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let key = region
        .keys
        .resolve_key(&caller.account_id, input.kms_key_id.as_deref())
        .await?;

    with_retry(|| async {
        if let Some(existing) = region
            .store
            .load_secret_by_name(&caller.account_id, &name)
            .await?
        {
            return match existing_secret_error(region, caller, &existing, &token, value.as_ref())
                .await?
            {
                // [V] the same token and value again: answered like the original call.
                None => Ok(Output {
                    arn: existing.record.arn.clone(),
                    name: existing.record.name.clone(),
                    version_id: Some(token.clone()),
                    replication_status: None,
                }),
                Some(err) => Err(Failure::Api(err)),
            };
        }
        let now = region.now_ms();
        let arn = new_arn.clone();
        let mut versions = Vec::new();
        if let Some(value) = &value {
            let (wrapped, ciphertext) = region
                .keys
                .encrypt_value(caller, &key, &arn, &token, value)?;
            versions.push(VersionRecord {
                secret_arn: arn.clone(),
                version_id: token.clone(),
                stages: vec![AWSCURRENT.to_string()],
                created_ms: now,
                last_accessed_day: None,
                kms_key_arn: Some(key.arn.clone()),
                value_kind: value.kind(),
                wrapped_data_key: Some(wrapped),
                ciphertext: Some(ciphertext),
            });
        }
        let record = SecretRecord {
            arn: arn.clone(),
            account_id: caller.account_id.clone(),
            name: name.clone(),
            description: input.description.clone(),
            kms_key_id: input.kms_key_id.clone().filter(|k| !k.is_empty()),
            tags: tags.clone(),
            resource_policy: None,
            created_ms: now,
            last_changed_ms: now,
            last_accessed_day: None,
            deleted_ms: None,
            purge_at_ms: None,
            rotation: None,
            replication: None,
            row_version: 1,
        };
        let mut secret = Secret { record, versions };
        if !replicas.is_empty() {
            set_state(
                &mut secret,
                Some(&ReplicationState::Primary {
                    replicas: replicas.clone(),
                }),
            );
        }
        let forced: Vec<String> = if force { touched.clone() } else { Vec::new() };
        let outbox = sync_entries(&secret, &forced);
        let queued = !outbox.is_empty();
        region
            .store
            .commit_with(
                vec![SecretChange::Insert {
                    secret: secret.record,
                    versions: secret.versions,
                }],
                outbox,
            )
            .await?;
        if queued {
            region.notify_outbox();
        }
        Ok(Output {
            arn,
            name: name.clone(),
            version_id: value.is_some().then(|| token.clone()),
            replication_status: (!replicas.is_empty())
                .then(|| replicas.iter().map(|r| r.view()).collect()),
        })
    })
    .await
}

/// What CreateSecret says when the name is taken; `None` for an identical replay.
async fn existing_secret_error(
    region: &RegionService,
    caller: &Caller,
    existing: &Secret,
    token: &str,
    value: Option<&crate::model::SecretValue>,
) -> Result<Option<Error>> {
    if existing.record.deleted_ms.is_some() {
        // [S]
        return Ok(Some(Error::invalid_request(
            "You can't create this secret because a secret with this name is already scheduled for deletion.",
        )));
    }
    if let Some(version) = version_by_id(existing, token) {
        let same = match value {
            Some(value) if version.ciphertext.is_some() => {
                region
                    .keys
                    .decrypt_value(caller, &existing.record.arn, version)
                    .await?
                    == *value
            }
            _ => false,
        };
        if same {
            return Ok(None);
        }
        return Ok(Some(Error::token_in_use(token, &existing.record.arn)));
    }
    // [S][V]
    Ok(Some(Error::new(
        ErrorCode::ResourceExists,
        format!(
            "The operation failed because the secret {} already exists.",
            existing.record.name
        ),
    )))
}
