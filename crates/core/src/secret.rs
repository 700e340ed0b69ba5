//! Loading a secret by `SecretId`, the staging-label rules, and the optimistic
//! load-modify-commit loop every write goes through.

use std::future::Future;
use std::time::Duration;

use coffer_retry::{Backoff, Jitter};
use coffer_store::{Secret, SecretChange, StoreError, VersionRecord, Versions};

use crate::authorize::{Access, Target, authorize, named_arn};
use crate::error::{Error, ErrorCode, Result};
use crate::model::Arn;
use crate::region::{Caller, RegionService};
use crate::validate::{Violations, invalid_name, is_valid_name};

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
pub const AWSPENDING: &str = "AWSPENDING";

/// Validates a `SecretId` member (1–2048 chars) under the given member path.
pub fn check_secret_id(v: &mut Violations, id: &Option<String>, path: &str) {
    if v.required(id, path) {
        v.length(id.as_deref(), path, 1, 2048);
    }
}

/// Resolves `SecretId` (spec §2.1) and checks that `caller` may do `access` on it
/// (authorize.rs: authorisation before existence, so a denied caller does not learn whether
/// the secret exists).
pub async fn load(
    region: &RegionService,
    caller: &Caller,
    secret_id: &str,
    access: &Access,
) -> Result<Secret> {
    load_versions(region, caller, secret_id, access, Versions::All).await
}

/// [`load`] for a read of a version by staging label: the secret may come with only its
/// versions that carry a label (`Store::load_by_name` with `Versions::Labelled`), so it must not be the base
/// of a write nor list or count versions.
pub async fn load_labelled(
    region: &RegionService,
    caller: &Caller,
    secret_id: &str,
    access: &Access,
) -> Result<Secret> {
    load_versions(region, caller, secret_id, access, Versions::Labelled).await
}

async fn load_versions(
    region: &RegionService,
    caller: &Caller,
    secret_id: &str,
    access: &Access,
    versions: Versions,
) -> Result<Secret> {
    match find(region, caller, secret_id, versions).await {
        Ok(secret) => {
            authorize(region, caller, access, Target::Secret(&secret))?;
            Ok(secret)
        }
        Err(e) if e.code == ErrorCode::ResourceNotFound => {
            let (arn, account) = named_arn(region, caller, secret_id);
            authorize(
                region,
                caller,
                access,
                Target::Named {
                    arn: &arn,
                    account: &account,
                },
            )?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Finds the secret a `SecretId` names: full ARN (exact match, no fallback), partial ARN (the
/// name), or a name (validated first). A full ARN of another account names that account's
/// secret (cross-account access; the policies decide); names and partial ARNs resolve in the
/// caller's account only, as on AWS, where cross-account access needs the full ARN.
async fn find(
    region: &RegionService,
    caller: &Caller,
    secret_id: &str,
    versions: Versions,
) -> Result<Secret> {
    let store = &region.store;
    let account_id = &caller.account_id;
    let found = if secret_id.starts_with("arn:") {
        let arn = Arn::parse(secret_id).ok_or_else(Error::not_found)?;
        let Some(name) = arn.resource.strip_prefix("secret:") else {
            return Err(Error::not_found());
        };
        // [E] an ARN of another Region or partition names a secret this Region does not hold.
        if arn.service != "secretsmanager"
            || arn.region != region.region
            || arn.partition != region.partition
        {
            return Err(Error::not_found());
        }
        if has_arn_suffix(name) {
            // [S] a complete ARN must match exactly; AWS does not fall back to the name.
            store
                .load_by_arn(secret_id, versions)
                .await?
                .filter(|s| s.record.account_id == arn.account)
        } else if arn.account == *account_id {
            store.load_by_name(account_id, name, versions).await?
        } else {
            None
        }
    } else {
        if !is_valid_name(secret_id) {
            return Err(invalid_name());
        }
        store.load_by_name(account_id, secret_id, versions).await?
    };
    found.ok_or_else(Error::not_found)
}

/// `name-xxxxxx`: ends with a hyphen and exactly six characters.
fn has_arn_suffix(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > 7 && bytes[bytes.len() - 7] == b'-'
}

/// Why an attempt stopped: an API error, or a lost race to retry.
pub enum Failure {
    Api(Error),
    Conflict,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Api(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            StoreError::Conflict => Failure::Conflict,
            other => Failure::Api(other.into()),
        }
    }
}

/// How a writer that lost a race tries again: the first two retries at once (after a yield),
/// then, for several writers of one secret, possibly on several nodes over one PostgreSQL
/// database, where every attempt costs round trips, 0.5 ms plus a random pause of up to 1, 2,
/// 4 ... 32 ms, so the losers stop colliding in lockstep and each gets a turn. 40 attempts.
const CONFLICT_RETRIES: Backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(32))
    .jitter(Jitter::Full)
    .immediate_retries(2)
    .plus(Duration::from_micros(500))
    .attempts(40);

/// Runs a load-modify-commit attempt until it does not lose a race (bounded).
pub async fn with_retry<T, F, Fut>(attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, Failure>>,
{
    let lost_a_race = |f: &Failure| matches!(f, Failure::Conflict);
    match coffer_retry::retry(&CONFLICT_RETRIES, attempt, lost_a_race).await {
        Ok(v) => Ok(v),
        Err(Failure::Api(e)) => Err(e),
        Err(Failure::Conflict) => Err(Error::internal("too many concurrent changes to one secret")),
    }
}

/// Commits an update of `secret` (already modified in memory) whose row was read at
/// `expected`; bumps the row version.
///
/// This is the one door for user writes: it refuses replicas (their content comes only from
/// the primary) and, on a primary, writes one outbox row per replica in the same transaction.
pub async fn commit_update(
    region: &RegionService,
    secret: Secret,
    expected: i64,
    changed_versions: Vec<VersionRecord>,
    delete_versions: Vec<String>,
) -> std::result::Result<Secret, Failure> {
    ensure_primary(&secret)?;
    let outbox = crate::replication::sync_entries(&secret, &[]);
    commit_update_with(
        region,
        secret,
        expected,
        changed_versions,
        delete_versions,
        outbox,
    )
    .await
}

/// [`commit_update`] with explicit outbox rows and no replica check.
pub async fn commit_update_with(
    region: &RegionService,
    mut secret: Secret,
    expected: i64,
    changed_versions: Vec<VersionRecord>,
    delete_versions: Vec<String>,
    outbox: Vec<coffer_store::OutboxEntry>,
) -> std::result::Result<Secret, Failure> {
    secret.record.row_version = expected + 1;
    let syncing: Vec<&str> = outbox
        .iter()
        .filter(|e| e.kind == crate::replication::KIND_SYNC && e.secret_arn == secret.record.arn)
        .map(|e| e.dest_region.as_str())
        .collect();
    if !syncing.is_empty() {
        crate::replication::mark_syncing(&mut secret, &syncing, expected + 1);
    }
    // Only a commit that queued rows wakes the replication lanes (each wake-up is a claim on
    // the Region's one writer).
    let queued = !outbox.is_empty();
    region
        .store
        .commit_with(
            vec![SecretChange::Update {
                secret: secret.record.clone(),
                expected_row_version: expected,
                upsert_versions: changed_versions,
                delete_versions,
            }],
            outbox,
        )
        .await?;
    if queued {
        region.notify_outbox();
    }
    Ok(secret)
}

/// Commits a secret's new record (no version changes) together with `extra` changes and
/// outbox rows, in one transaction.
pub async fn commit_update_and(
    region: &RegionService,
    mut secret: Secret,
    expected: i64,
    extra: Vec<SecretChange>,
    outbox: Vec<coffer_store::OutboxEntry>,
) -> std::result::Result<Secret, Failure> {
    secret.record.row_version = expected + 1;
    let mut changes = vec![SecretChange::Update {
        secret: secret.record.clone(),
        expected_row_version: expected,
        upsert_versions: Vec::new(),
        delete_versions: Vec::new(),
    }];
    changes.extend(extra);
    let queued = !outbox.is_empty();
    region.store.commit_with(changes, outbox).await?;
    if queued {
        region.notify_outbox();
    }
    Ok(secret)
}

/// [F] replicas are read-only: every write must be made in the primary's Region.
/// A secret whose replication state cannot be read is refused too (it may be a replica).
pub fn ensure_primary(secret: &Secret) -> Result<()> {
    match crate::replication::checked_state(secret)? {
        Some(crate::replication::ReplicationState::Replica { .. }) => {
            Err(Error::replica_read_only())
        }
        _ => Ok(()),
    }
}

pub fn is_deleted(secret: &Secret) -> bool {
    secret.record.deleted_ms.is_some()
}

/// The common guard of operations that a secret scheduled for deletion refuses.
pub fn ensure_not_deleted(secret: &Secret) -> Result<()> {
    if is_deleted(secret) {
        return Err(Error::marked_for_deletion());
    }
    Ok(())
}

pub fn version_with_stage<'a>(secret: &'a Secret, stage: &str) -> Option<&'a VersionRecord> {
    secret
        .versions
        .iter()
        .find(|v| v.stages.iter().any(|s| s == stage))
}

pub fn version_by_id<'a>(secret: &'a Secret, id: &str) -> Option<&'a VersionRecord> {
    secret.versions.iter().find(|v| v.version_id == id)
}

/// Staging-label rules of PutSecretValue/UpdateSecret (spec §4.5): attaches `stages` to the
/// version `new_id` (which must already be in `secret.versions`), moving each label away from
/// whatever version had it; moving AWSCURRENT leaves AWSPREVIOUS on the old current version.
/// Returns the ids of versions whose labels changed.
pub fn attach_stages(secret: &mut Secret, new_id: &str, stages: &[String]) -> Vec<String> {
    let mut touched = vec![new_id.to_string()];
    let old_current = if stages.iter().any(|s| s == AWSCURRENT) {
        version_with_stage(secret, AWSCURRENT)
            .map(|v| v.version_id.clone())
            .filter(|old| old != new_id)
    } else {
        None
    };
    for stage in stages {
        for v in secret.versions.iter_mut() {
            if v.version_id != new_id && v.stages.contains(stage) {
                v.stages.retain(|s| s != stage);
                touched.push(v.version_id.clone());
            }
        }
        if let Some(v) = secret.versions.iter_mut().find(|v| v.version_id == new_id)
            && !v.stages.contains(stage)
        {
            v.stages.push(stage.clone());
        }
    }
    // [S] The version AWSCURRENT left becomes AWSPREVIOUS, and no other version keeps it. This
    // comes after the labels asked for: [E] an AWSPREVIOUS asked for together with AWSCURRENT
    // cannot stay on the new current version, so it goes where a plain put puts it (before,
    // it ended up on no version at all).
    if let Some(old) = old_current {
        for v in secret.versions.iter_mut() {
            let has_previous = v.stages.iter().any(|s| s == AWSPREVIOUS);
            if v.version_id == old && !has_previous {
                v.stages.push(AWSPREVIOUS.to_string());
                touched.push(old.clone());
            } else if v.version_id != old && has_previous {
                v.stages.retain(|s| s != AWSPREVIOUS);
                touched.push(v.version_id.clone());
            }
        }
    }
    touched.sort();
    touched.dedup();
    touched
}

/// How many deprecated (label-less) versions AWS keeps; older ones beyond that are removed,
/// but never one younger than 24 hours (spec §2).
pub const MAX_DEPRECATED_VERSIONS: usize = 100;
const VERSION_MIN_AGE_MS: i64 = 24 * 3600 * 1000;

/// Picks deprecated versions to drop after a change. Errors with LimitExceededException when
/// the secret would hold more deprecated versions than allowed and none is old enough to drop.
pub fn prune_deprecated(secret: &mut Secret, now_ms: i64) -> Result<Vec<String>> {
    let deprecated: Vec<(i64, String)> = secret
        .versions
        .iter()
        .filter(|v| v.stages.is_empty())
        .map(|v| (v.created_ms, v.version_id.clone()))
        .collect();
    if deprecated.len() <= MAX_DEPRECATED_VERSIONS {
        return Ok(Vec::new());
    }
    let excess = deprecated.len() - MAX_DEPRECATED_VERSIONS;
    let removable: Vec<String> = deprecated
        .iter()
        .filter(|(created, _)| now_ms - created >= VERSION_MIN_AGE_MS)
        .take(excess)
        .map(|(_, id)| id.clone())
        .collect();
    if removable.len() < excess {
        // [E] AWS documents the quota but not the text; this says what to do.
        return Err(Error::new(
            crate::error::ErrorCode::LimitExceeded,
            "You can't create more versions of this secret: it already has 100 versions without staging labels that are less than 24 hours old. Try again later.",
        ));
    }
    secret
        .versions
        .retain(|v| !removable.contains(&v.version_id));
    Ok(removable)
}

/// Result of adding a value as a new version (PutSecretValue, UpdateSecret).
pub enum NewVersion {
    /// [V] the token names a version with the same value: nothing changes.
    Replay(Secret),
    /// The secret as committed.
    Added(Secret),
}

/// Adds `value` as version `token` with `stages` (AWSCURRENT when `None`), following the
/// idempotency rules [V]: the same token and value is a replay, the same token with another
/// value is an error, and the value-less AWSPENDING placeholder of a rotation is filled in.
pub async fn add_version(
    region: &RegionService,
    caller: &Caller,
    mut secret: Secret,
    token: &str,
    value: &crate::model::SecretValue,
    stages: Option<&[String]>,
) -> std::result::Result<NewVersion, Failure> {
    let expected = secret.record.row_version;
    let now = region.now_ms();
    let arn = secret.record.arn.clone();
    if let Some(existing) = version_by_id(&secret, token)
        && existing.ciphertext.is_some()
    {
        if region.keys.decrypt_value(caller, &arn, existing).await? == *value {
            return Ok(NewVersion::Replay(secret));
        }
        return Err(Error::token_in_use(token, &arn).into());
    }
    let key = region
        .keys
        .resolve_key(
            &secret.record.account_id,
            secret.record.kms_key_id.as_deref(),
        )
        .await?;
    let (wrapped, ciphertext) = region
        .keys
        .encrypt_value(caller, &key, &arn, token, value)?;
    match secret.versions.iter_mut().find(|v| v.version_id == token) {
        Some(placeholder) => {
            placeholder.kms_key_arn = Some(key.arn.clone());
            placeholder.value_kind = value.kind();
            placeholder.wrapped_data_key = Some(wrapped);
            placeholder.ciphertext = Some(ciphertext);
        }
        None => secret.versions.push(VersionRecord {
            secret_arn: arn.clone(),
            version_id: token.to_string(),
            stages: Vec::new(),
            created_ms: now,
            last_accessed_day: None,
            kms_key_arn: Some(key.arn.clone()),
            value_kind: value.kind(),
            wrapped_data_key: Some(wrapped),
            ciphertext: Some(ciphertext),
        }),
    }
    let mut stages: Vec<String> = stages
        .map(<[String]>::to_vec)
        .unwrap_or_else(|| vec![AWSCURRENT.to_string()]);
    // [D][S] the first value of a secret becomes AWSCURRENT even when not asked for.
    let has_current = secret
        .versions
        .iter()
        .any(|v| v.version_id != token && v.stages.iter().any(|s| s == AWSCURRENT));
    if !has_current && !stages.iter().any(|s| s == AWSCURRENT) {
        stages.push(AWSCURRENT.to_string());
    }
    let old_current = version_with_stage(&secret, AWSCURRENT).map(|v| v.version_id.clone());
    let mut touched = attach_stages(&mut secret, token, &stages);
    // [W] recorded on AWS: a new value that becomes AWSCURRENT takes AWSPENDING off the
    // version it replaces (which keeps only AWSPREVIOUS), unlike UpdateSecretVersionStage,
    // which leaves AWSPENDING where it is.
    if stages.iter().any(|s| s == AWSCURRENT)
        && let Some(old) = old_current.filter(|old| old != token)
        && let Some(v) = secret.versions.iter_mut().find(|v| v.version_id == old)
        && v.stages.iter().any(|s| s == AWSPENDING)
    {
        v.stages.retain(|s| s != AWSPENDING);
        touched.push(old);
    }
    let deleted = prune_deprecated(&mut secret, now)?;
    secret.record.last_changed_ms = now;
    let changed = secret
        .versions
        .iter()
        .filter(|v| touched.contains(&v.version_id))
        .cloned()
        .collect();
    Ok(NewVersion::Added(
        commit_update(region, secret, expected, changed, deleted).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_store::{SecretRecord, ValueKind};

    /// A writer that lost a race tries again twice at once, then after 0.5 ms plus a random
    /// pause of up to 1, 2, 4 ... 32 ms; 40 attempts in all.
    #[test]
    fn lost_races_are_retried_at_once_then_with_growing_jittered_pauses() {
        assert_eq!(CONFLICT_RETRIES.max_attempts(), 40);
        assert_eq!(CONFLICT_RETRIES.delay(1), Duration::ZERO);
        assert_eq!(CONFLICT_RETRIES.delay(2), Duration::ZERO);
        for retry in 3..40u32 {
            let cap = Duration::from_millis(1 << (retry - 3).min(5));
            let floor = Duration::from_micros(500);
            let p = CONFLICT_RETRIES.delay(retry);
            assert!(p >= floor && p <= floor + cap, "{retry}: {p:?}");
        }
    }

    #[test]
    fn an_unreadable_replication_state_refuses_writes_instead_of_passing_as_a_primary() {
        let mut s = secret(vec![version("v1", &["AWSCURRENT"])]);
        s.record.replication = Some(r#"{"Replica":{"primary_region":"#.into());
        let err = ensure_primary(&s).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::InternalServiceError);
        s.record.replication =
            Some(r#"{"replica":{"primary_region":"us-west-2","primary_arn":"a","seq":1}}"#.into());
        assert_eq!(
            ensure_primary(&s).unwrap_err().message,
            Error::replica_read_only().message
        );
        s.record.replication = None;
        assert!(ensure_primary(&s).is_ok());
    }

    fn version(id: &str, stages: &[&str]) -> VersionRecord {
        VersionRecord {
            secret_arn: "arn".into(),
            version_id: id.into(),
            stages: stages.iter().map(|s| s.to_string()).collect(),
            created_ms: 0,
            last_accessed_day: None,
            kms_key_arn: None,
            value_kind: ValueKind::String,
            wrapped_data_key: None,
            ciphertext: None,
        }
    }

    fn secret(versions: Vec<VersionRecord>) -> Secret {
        Secret {
            record: SecretRecord {
                arn: "arn".into(),
                account_id: "1".into(),
                name: "n".into(),
                description: None,
                kms_key_id: None,
                tags: None,
                resource_policy: None,
                created_ms: 0,
                last_changed_ms: 0,
                last_accessed_day: None,
                deleted_ms: None,
                purge_at_ms: None,
                rotation: None,
                replication: None,
                row_version: 1,
            },
            versions,
        }
    }

    fn stages_of(s: &Secret, id: &str) -> Vec<String> {
        let mut st = version_by_id(s, id).unwrap().stages.clone();
        st.sort();
        st
    }

    #[test]
    fn new_current_version_pushes_old_current_to_previous() {
        let mut s = secret(vec![
            version("v1", &["AWSPREVIOUS"]),
            version("v2", &["AWSCURRENT"]),
            version("v3", &[]),
        ]);
        attach_stages(&mut s, "v3", &["AWSCURRENT".into()]);
        assert!(stages_of(&s, "v1").is_empty());
        assert_eq!(stages_of(&s, "v2"), ["AWSPREVIOUS"]);
        assert_eq!(stages_of(&s, "v3"), ["AWSCURRENT"]);
    }

    #[test]
    fn awsprevious_asked_for_with_awscurrent_goes_to_the_old_current_version() {
        let mut s = secret(vec![
            version("v1", &["AWSPREVIOUS"]),
            version("v2", &["AWSCURRENT", "blue"]),
            version("v3", &[]),
        ]);
        attach_stages(&mut s, "v3", &["AWSCURRENT".into(), "AWSPREVIOUS".into()]);
        assert!(stages_of(&s, "v1").is_empty());
        assert_eq!(stages_of(&s, "v2"), ["AWSPREVIOUS", "blue"]);
        assert_eq!(stages_of(&s, "v3"), ["AWSCURRENT"]);
    }

    #[test]
    fn custom_labels_move_without_touching_current() {
        // [S] v2 [one,two,three], then v3 [one,two,four] -> v2 keeps [three].
        let mut s = secret(vec![
            version("v1", &["AWSCURRENT"]),
            version("v2", &["one", "two", "three"]),
            version("v3", &[]),
        ]);
        attach_stages(&mut s, "v3", &["one".into(), "two".into(), "four".into()]);
        assert_eq!(stages_of(&s, "v1"), ["AWSCURRENT"]);
        assert_eq!(stages_of(&s, "v2"), ["three"]);
        assert_eq!(stages_of(&s, "v3"), ["four", "one", "two"]);
    }

    #[test]
    fn pending_moves_away_from_current_leaving_current_in_place() {
        let mut s = secret(vec![
            version("v1", &["AWSCURRENT", "AWSPENDING"]),
            version("v2", &[]),
        ]);
        attach_stages(&mut s, "v2", &["AWSPENDING".into()]);
        assert_eq!(stages_of(&s, "v1"), ["AWSCURRENT"]);
        assert_eq!(stages_of(&s, "v2"), ["AWSPENDING"]);
    }

    #[test]
    fn complete_arn_suffix_is_recognised() {
        assert!(has_arn_suffix("Name-a1b2c3"));
        assert!(!has_arn_suffix("Name-a1b2"));
        assert!(!has_arn_suffix("s-c64bdc03"));
    }
}
