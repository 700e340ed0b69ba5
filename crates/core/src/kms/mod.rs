//! The KMS API (`X-Amz-Target: TrentService.<Op>`, signing name `kms`, JSON 1.1) on the same
//! endpoint as Secrets Manager: one file per operation, named after it (`create_key.rs`, ...);
//! [`dispatch`] maps the operation name to it. The keys are the same ones Secrets Manager
//! encrypts with: both reach them through [`crate::keys`] (`region.keys`), so a key created here
//! can be a secret's `KmsKeyId`, and disabling it or scheduling its deletion stops the secrets
//! under it.
//!
//! A key's state, policy, tags, multi-Region links and rotations are kept in its stored metadata
//! ([`KeyMeta`], from `crate::keys`, JSON in `kms_keys.metadata`); its current material only
//! wrapped by the Region's root key, its earlier materials (a rotated key) in the metadata,
//! sealed under the current one.
//! Errors go out with their text in `message` (KMS's error shapes), see `coffer_api`. See
//! `docs/keys.md`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::{Error, ErrorCode, Result};
use crate::keys::KeyHandle;
pub use crate::keys::{KeyMeta, KmsTag, PreviousMaterial, Rotation, fill_policy_context};
use crate::model::Arn;
use crate::operation::{named, operations};
use crate::ops::call;
use crate::region::{Caller, RegionService};

pub mod cancel_key_deletion;
pub mod create_alias;
pub mod create_key;
pub mod decrypt;
pub mod delete_alias;
pub mod describe_key;
pub mod disable_key;
pub mod disable_key_rotation;
pub mod enable_key;
pub mod enable_key_rotation;
pub mod encrypt;
pub mod generate_data_key;
pub mod generate_data_key_without_plaintext;
pub mod generate_random;
pub mod get_key_policy;
pub mod get_key_rotation_status;
pub mod list_aliases;
pub mod list_key_rotations;
pub mod list_keys;
pub mod list_resource_tags;
pub mod put_key_policy;
pub mod replicate_key;
pub mod rotate_key_on_demand;
pub mod schedule_key_deletion;
pub mod tag_resource;
pub mod untag_resource;
pub mod update_alias;
pub mod update_key_description;

operations! {
    /// Every KMS operation Coffer serves, each `kms/<snake_case_name>.rs`.
    pub enum Operation in "kms", "kms.amazonaws.com" {
        CancelKeyDeletion: change,
        CreateAlias: change,
        CreateKey: change,
        Decrypt: read,
        DeleteAlias: change,
        DescribeKey: read,
        DisableKey: change,
        DisableKeyRotation: change,
        EnableKey: change,
        EnableKeyRotation: change,
        Encrypt: read,
        GenerateDataKey: read,
        GenerateDataKeyWithoutPlaintext: read,
        GenerateRandom: read,
        GetKeyPolicy: read,
        GetKeyRotationStatus: read,
        ListAliases: read,
        ListKeyRotations: read,
        ListKeys: read,
        ListResourceTags: read,
        PutKeyPolicy: change,
        ReplicateKey: change,
        RotateKeyOnDemand: change,
        ScheduleKeyDeletion: change,
        TagResource: change,
        UntagResource: change,
        UpdateAlias: change,
        UpdateKeyDescription: change,
    }
}

/// The Regions of this node, for ReplicateKey.
pub type Regions = HashMap<String, Arc<RegionService>>;

/// The Regions a KMS request can name besides its own (ReplicateKey's `ReplicaRegion`): those
/// of this node, reached directly, and those served by peer nodes, reached through the
/// replication outbox (`coffer_replication::Topology` implements it).
pub trait RegionDirectory: Sync {
    /// A Region served by this node.
    fn local(&self, region: &str) -> Option<&Arc<RegionService>>;
    /// Whether another node of the deployment serves `region` (a `[[peers]]` entry).
    fn is_peer(&self, region: &str) -> bool;
}

/// Only this node's Regions: no peers.
impl RegionDirectory for Regions {
    fn local(&self, region: &str) -> Option<&Arc<RegionService>> {
        self.get(region)
    }

    fn is_peer(&self, _region: &str) -> bool {
        false
    }
}

/// Runs KMS `operation` with a JSON request body and returns the JSON response body.
pub async fn dispatch(
    region: &RegionService,
    caller: &Caller,
    operation: &str,
    body: &[u8],
    regions: &dyn RegionDirectory,
) -> Result<Vec<u8>> {
    let (r, c) = (region, caller);
    match named(operation, || {
        format!("Operation {operation} is not supported by Coffer's KMS.")
    })? {
        Operation::CancelKeyDeletion => call(cancel_key_deletion::run, r, c, body).await,
        Operation::CreateAlias => call(create_alias::run, r, c, body).await,
        Operation::CreateKey => call(create_key::run, r, c, body).await,
        Operation::Decrypt => call(decrypt::run, r, c, body).await,
        Operation::DeleteAlias => call(delete_alias::run, r, c, body).await,
        Operation::DescribeKey => call(describe_key::run, r, c, body).await,
        Operation::DisableKey => call(disable_key::run, r, c, body).await,
        Operation::DisableKeyRotation => call(disable_key_rotation::run, r, c, body).await,
        Operation::EnableKey => call(enable_key::run, r, c, body).await,
        Operation::EnableKeyRotation => call(enable_key_rotation::run, r, c, body).await,
        Operation::Encrypt => call(encrypt::run, r, c, body).await,
        Operation::GenerateDataKey => call(generate_data_key::run, r, c, body).await,
        Operation::GenerateDataKeyWithoutPlaintext => {
            call(generate_data_key_without_plaintext::run, r, c, body).await
        }
        Operation::GenerateRandom => call(generate_random::run, r, c, body).await,
        Operation::GetKeyPolicy => call(get_key_policy::run, r, c, body).await,
        Operation::GetKeyRotationStatus => call(get_key_rotation_status::run, r, c, body).await,
        Operation::ListAliases => call(list_aliases::run, r, c, body).await,
        Operation::ListKeyRotations => call(list_key_rotations::run, r, c, body).await,
        Operation::ListKeys => call(list_keys::run, r, c, body).await,
        Operation::ListResourceTags => call(list_resource_tags::run, r, c, body).await,
        Operation::PutKeyPolicy => call(put_key_policy::run, r, c, body).await,
        Operation::ReplicateKey => {
            let run = async |r: &RegionService, c: &Caller, input| {
                replicate_key::run(r, c, input, regions).await
            };
            call(run, r, c, body).await
        }
        Operation::RotateKeyOnDemand => {
            let run = async |r: &RegionService, c: &Caller, input| {
                rotate_key_on_demand::run(r, c, input, regions).await
            };
            call(run, r, c, body).await
        }
        Operation::ScheduleKeyDeletion => call(schedule_key_deletion::run, r, c, body).await,
        Operation::TagResource => call(tag_resource::run, r, c, body).await,
        Operation::UntagResource => call(untag_resource::run, r, c, body).await,
        Operation::UpdateAlias => call(update_alias::run, r, c, body).await,
        Operation::UpdateKeyDescription => call(update_key_description::run, r, c, body).await,
    }
}

pub(crate) fn not_found(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::KmsNotFound, message)
}

pub(crate) fn invalid_state(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::KmsInvalidState, message)
}

/// Resolves a `KeyId` as KMS accepts it: key id, key ARN, `alias/name` or alias ARN.
/// `alias/aws/secretsmanager` is created on first reference, as AWS creates AWS-managed keys.
pub async fn find_key(region: &RegionService, caller: &Caller, key_id: &str) -> Result<KeyHandle> {
    let key_id = key_id.trim();
    if key_id.is_empty() {
        return Err(Error::validation(
            "1 validation error detected: Value at 'keyId' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    let (account, alias) = if let Some(name) = key_id.strip_prefix("alias/") {
        (caller.account_id.clone(), Some(format!("alias/{name}")))
    } else if let Some(arn) = Arn::parse(key_id) {
        // [L test_get_key_in_different_region] AWS names the other Region only.
        if arn.service == "kms" && arn.region != region.region {
            return Err(not_found(format!("Invalid arn {}", arn.region)));
        }
        if arn.service != "kms" || arn.partition != region.partition {
            return Err(not_found(format!("Invalid arn {key_id}")));
        }
        if arn.resource.starts_with("alias/") {
            (arn.account.to_string(), Some(arn.resource.to_string()))
        } else {
            (arn.account.to_string(), None)
        }
    } else {
        (caller.account_id.clone(), None)
    };
    if let Some(alias) = alias {
        if alias == crate::keys::DEFAULT_KEY_ALIAS && account == caller.account_id {
            return region.keys.default_key(&account).await;
        }
        let found = region.store.load_kms_alias(&account, &alias).await?;
        if let Some(found) = found
            && let Some(key) = region.keys.key_by_arn(&found.target_key_arn).await?
        {
            return Ok(key);
        }
        return Err(not_found(format!(
            "Alias {} is not found.",
            region.keys.kms_arn(&account, &alias)
        )));
    }
    let key_arn = if key_id.starts_with("arn:") {
        key_id.to_string()
    } else {
        if !is_key_id(key_id) {
            return Err(invalid_key_id(key_id));
        }
        region.keys.kms_arn(&account, &format!("key/{key_id}"))
    };
    region
        .keys
        .key_by_arn(&key_arn)
        .await?
        .ok_or_else(|| not_found(format!("Key '{key_arn}' does not exist")))
}

/// Whether `key_id` has the form of a key id: a UUID (`8-4-4-4-12` hexadecimal digits) or
/// `mrk-` and 32 hexadecimal digits (a multi-Region key).
pub fn is_key_id(key_id: &str) -> bool {
    let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    if let Some(rest) = key_id.strip_prefix("mrk-") {
        return rest.len() == 32 && hex(rest);
    }
    let groups: Vec<&str> = key_id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| hex(g))
}

/// [L test_get_key_invalid_uuid] `NotFoundException: Invalid keyId '<id>'`.
fn invalid_key_id(key_id: &str) -> Error {
    not_found(format!("Invalid keyId '{key_id}'"))
}

/// [`find_authorized`] for the operations whose `KeyId` is a key id or key ARN only, as AWS
/// documents them (EnableKey, DisableKey, the deletion, tag, policy, rotation and replication
/// operations, UpdateKeyDescription). An alias or alias ARN is refused as a malformed key id
/// (`Invalid keyId 'alias/x'`): AWS's exact answer is not recorded, and this is the answer it
/// gives other identifiers that are not key ids.
pub async fn find_authorized_key(
    region: &RegionService,
    caller: &Caller,
    key_id: &str,
    action: &str,
) -> Result<KeyHandle> {
    let trimmed = key_id.trim();
    if trimmed.starts_with("alias/")
        || Arn::parse(trimmed).is_some_and(|a| a.resource.starts_with("alias/"))
    {
        return Err(invalid_key_id(trimmed));
    }
    find_authorized(region, caller, key_id, action).await
}

/// Checks `kms:<Op>` on `key` against its key policy and the caller's identity policies.
pub fn authorize(caller: &Caller, key: &KeyHandle, action: &str) -> Result<()> {
    let context = coffer_iam::context_read_by(crate::keys::key_policies(caller, key), |c| {
        fill_policy_context(caller, c)
    });
    crate::keys::evaluate_key_policy(caller, key, action, &context)
        .map_err(|message| Error::new(ErrorCode::AccessDenied, message))
}

/// Checks an action without a key (CreateKey, ListKeys, ListAliases) against the caller's
/// identity policies, on resource `*`.
pub fn authorize_account(region: &RegionService, caller: &Caller, action: &str) -> Result<()> {
    let context =
        coffer_iam::context_read_by(caller.policies.iter(), |c| fill_policy_context(caller, c));
    let principal = caller.principal();
    let _ = region;
    let request = coffer_iam::Request {
        principal: &principal,
        action,
        resource: "*",
        resource_account: &caller.account_id,
        context: &context,
    };
    match coffer_iam::evaluate(&request, &caller.policies, None) {
        coffer_iam::Decision::Allow => Ok(()),
        coffer_iam::Decision::Deny(denial) => Err(Error::new(
            ErrorCode::AccessDenied,
            coffer_iam::access_denied_message(&request, denial),
        )),
    }
}

/// Finds a key and checks `action` on it, in one step.
pub async fn find_authorized(
    region: &RegionService,
    caller: &Caller,
    key_id: &str,
    action: &str,
) -> Result<KeyHandle> {
    let key = find_key(region, caller, key_id).await?;
    authorize(caller, &key, action)?;
    Ok(key)
}

/// Keys used for cryptography must be Enabled: `DisabledException` / `KMSInvalidStateException`
/// with AWS's texts (`<arn> is disabled.`, `<arn> is pending deletion.`).
pub fn require_enabled(key: &KeyHandle) -> Result<()> {
    match key.meta.key_state.as_str() {
        "Enabled" => Ok(()),
        "PendingDeletion" | "PendingReplicaDeletion" => {
            Err(invalid_state(format!("{} is pending deletion.", key.arn)))
        }
        _ => Err(Error::new(
            ErrorCode::KmsDisabled,
            format!("{} is disabled.", key.arn),
        )),
    }
}

/// Management operations (Enable/Disable, aliases) refuse keys pending deletion.
pub fn require_not_pending_deletion(key: &KeyHandle) -> Result<()> {
    if is_pending_deletion(&key.meta) {
        return Err(invalid_state(format!("{} is pending deletion.", key.arn)));
    }
    Ok(())
}

/// `PendingDeletion`, or `PendingReplicaDeletion` (a primary waiting for its replicas to go).
pub fn is_pending_deletion(meta: &KeyMeta) -> bool {
    matches!(
        meta.key_state.as_str(),
        "PendingDeletion" | "PendingReplicaDeletion"
    )
}

/// Writes changed metadata of `key` and drops it from the cache.
pub async fn save_meta(region: &RegionService, key: &KeyHandle, meta: KeyMeta) -> Result<()> {
    save_key(region, key, meta, None).await
}

/// Writes changed metadata of `key`, and new current material when given (wrapped under the
/// Region's root key), and drops it from the cache. Written only over the state `key` was read
/// in (`UpdateKeyIf`): a concurrent change of the same key (another node's, or a rotation)
/// is never undone; the later writer gets `KMSInternalException` and may try again (the SDKs
/// retry it by themselves).
pub async fn save_key(
    region: &RegionService,
    key: &KeyHandle,
    meta: KeyMeta,
    material: Option<&coffer_kms::KeyMaterial>,
) -> Result<()> {
    let mut record = (*key.record).clone();
    record.metadata = meta.to_json();
    if let Some(material) = material {
        record.wrapped_material = region.keys.wrap_material(&key.arn, material);
    }
    commit_key(region, key, record, Vec::new()).await
}

/// Commits `record` (the new state of `key`) with `outbox` rows, only over the state `key` was
/// read in; see [`save_key`].
pub async fn commit_key(
    region: &RegionService,
    key: &KeyHandle,
    record: coffer_store::KmsKeyRecord,
    outbox: Vec<coffer_store::OutboxEntry>,
) -> Result<()> {
    let notify = !outbox.is_empty();
    let change = coffer_store::KmsChange::UpdateKeyIf {
        key: record,
        expected: (*key.record).clone(),
    };
    let result = region.store.commit_kms_with(change, outbox).await;
    region.keys.forget_key(&key.arn);
    match result {
        Ok(()) => {
            if notify {
                region.notify_outbox();
            }
            Ok(())
        }
        Err(coffer_store::StoreError::Conflict) => {
            if region.store.load_kms_key(&key.arn).await?.is_none() {
                return Err(not_found(format!("Key '{}' does not exist", key.arn)));
            }
            Err(Error::new(
                ErrorCode::KmsInternal,
                format!(
                    "{} was changed by another request at the same time; try again.",
                    key.arn
                ),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// The bound `n` crosses, as AWS's validation messages word it (`greater than or equal to 1`),
/// or `None` when `min <= n <= max`.
pub(crate) fn crossed_bound(n: i64, min: i64, max: i64) -> Option<String> {
    if n < min {
        Some(format!("greater than or equal to {min}"))
    } else if n > max {
        Some(format!("less than or equal to {max}"))
    } else {
        None
    }
}

/// `1 validation error detected: Value '<n>' at '<member>' ... Member must have value <bound>`
/// unless `min <= n <= max`.
pub(crate) fn check_value_range(n: i64, member: &str, min: i64, max: i64) -> Result<()> {
    match crossed_bound(n, min, max) {
        None => Ok(()),
        Some(bound) => Err(Error::validation(format!(
            "1 validation error detected: Value '{n}' at '{member}' failed to satisfy constraint: Member must have value {bound}"
        ))),
    }
}

/// Seconds since the epoch with milliseconds, as the AWS JSON protocol sends timestamps.
pub fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// AWS's `KeyMetadata` of a key.
pub fn key_metadata(key: &KeyHandle) -> Value {
    let r = &key.record;
    let mut out = metadata_of(&key.arn, &r.account_id, &r.key_id, r.created_ms, &key.meta);
    out["CurrentKeyMaterialId"] = json!(key.material_id);
    out
}

/// AWS's `KeyMetadata` of a key described by its parts, without `CurrentKeyMaterialId` (a
/// replica key being created has none yet, as in AWS's ReplicateKey answer).
pub fn metadata_of(
    arn: &str,
    account_id: &str,
    key_id: &str,
    created_ms: i64,
    m: &KeyMeta,
) -> Value {
    let mut out = json!({
        "AWSAccountId": account_id,
        "KeyId": key_id,
        "Arn": arn,
        "CreationDate": epoch_seconds(created_ms),
        "Enabled": m.key_state == "Enabled",
        "Description": m.description,
        "KeyUsage": m.key_usage,
        "KeyState": m.key_state,
        "Origin": m.origin,
        "KeyManager": m.key_manager,
        "CustomerMasterKeySpec": m.key_spec,
        "KeySpec": m.key_spec,
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": m.multi_region,
    });
    if let Some(ms) = m.deletion_date_ms {
        out["DeletionDate"] = json!(epoch_seconds(ms));
    }
    if m.multi_region {
        // ARNs of the same key id in other Regions of the partition.
        let arn_in = |region: &str| {
            let parsed = Arn::parse(arn).expect("stored key ARNs parse");
            format!(
                "arn:{}:kms:{region}:{}:{}",
                parsed.partition, parsed.account, parsed.resource
            )
        };
        let own_region = Arn::parse(arn)
            .map(|a| a.region.to_string())
            .unwrap_or_default();
        let (kind, primary_region, replicas): (&str, String, Vec<String>) = match &m.primary_region
        {
            None => ("PRIMARY", own_region.clone(), m.replica_regions.clone()),
            // A replica knows its primary; the primary's other replicas are listed there.
            Some(primary) => ("REPLICA", primary.clone(), vec![own_region.clone()]),
        };
        out["MultiRegionConfiguration"] = json!({
            "MultiRegionKeyType": kind,
            "PrimaryKey": {"Arn": arn_in(&primary_region), "Region": primary_region},
            "ReplicaKeys": replicas
                .iter()
                .map(|r| json!({"Arn": arn_in(r), "Region": r}))
                .collect::<Vec<_>>(),
        });
    }
    out
}

/// Validates a key policy document: JSON, parseable, at most 32 KiB
/// (`MalformedPolicyDocumentException` otherwise, as KMS).
pub fn check_policy(document: &str) -> Result<()> {
    let malformed = |why: &str| {
        Error::new(
            ErrorCode::MalformedPolicyDocument,
            format!("The key policy is not a valid policy document: {why}"),
        )
    };
    if document.len() > 32 * 1024 {
        return Err(Error::validation(
            "1 validation error detected: Value at 'policy' failed to satisfy constraint: Member must have length less than or equal to 32768",
        ));
    }
    let parsed: Value =
        serde_json::from_str(document).map_err(|_| malformed("The policy is not valid JSON."))?;
    if parsed.get("Statement").is_none() {
        return Err(malformed("The policy has no Statement."));
    }
    coffer_iam::Policy::parse(document).map_err(|e| malformed(&e.to_string()))?;
    Ok(())
}

/// The most tags a key can have.
pub const MAX_TAGS: usize = 50;

/// `TagException: Too many tags` [L test_create_key_with_too_many_tags_raises_error].
pub fn too_many_tags() -> Error {
    Error::new(ErrorCode::KmsTag, "Too many tags")
}

/// Checks the `Tags` of a request as AWS does [L test_kms.snapshot.json], in its order:
/// duplicate keys and more than 50 tags are `TagException`s, then each tag (numbered from 1)
/// must have a key of 1–128 and a value of at most 256 characters (`ValidationException`), and
/// no key may begin with `aws:` in any case (`TagException`).
pub fn check_tags(tags: &[KmsTag]) -> Result<()> {
    let keys: std::collections::HashSet<&str> = tags.iter().map(|t| t.key.as_str()).collect();
    if keys.len() < tags.len() {
        return Err(Error::new(ErrorCode::KmsTag, "Duplicate tag keys"));
    }
    if tags.len() > MAX_TAGS {
        return Err(too_many_tags());
    }
    for (i, t) in tags.iter().enumerate() {
        let at = |member: &str, value: &str, rule: &str| {
            Error::validation(format!(
                "1 validation error detected: Value '{value}' at 'tags.{}.member.{member}' failed to satisfy constraint: Member must have length {rule}",
                i + 1
            ))
        };
        if t.key.is_empty() {
            return Err(at("tagKey", &t.key, "greater than or equal to 1"));
        }
        if t.key.chars().count() > 128 {
            return Err(at("tagKey", &t.key, "less than or equal to 128"));
        }
        if t.value.chars().count() > 256 {
            return Err(at("tagValue", &t.value, "less than or equal to 256"));
        }
        if t.key
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
        {
            return Err(Error::new(
                ErrorCode::KmsTag,
                "Tags beginning with aws: are reserved",
            ));
        }
    }
    Ok(())
}

/// Merges tags: a new value replaces the old one of the same key.
pub fn merge_tags(existing: &mut Vec<KmsTag>, new: Vec<KmsTag>) {
    for tag in new {
        match existing.iter_mut().find(|t| t.key == tag.key) {
            Some(t) => t.value = tag.value,
            None => existing.push(tag),
        }
    }
}

/// Decodes the `EncryptionContext` member.
pub type Context = std::collections::BTreeMap<String, String>;

/// Base64 `Blob` members, as the AWS JSON protocol sends them.
pub mod blob {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(zeroize::Zeroizing::new)
            .map_err(|_| serde::de::Error::custom("a blob member is not valid base64"))
    }
}
