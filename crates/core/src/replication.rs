//! Replication state of a secret and the two halves of a delivery: building the message at the
//! primary (values decrypted there) and applying it at the replica (values re-encrypted under
//! the replica Region's key). Transport, sealing and workers live in `coffer-replication`.
//!
//! A message always carries the primary's whole current state, stamped with its `row_version`
//! as sequence number, so delivery is idempotent: a replica applies a message only when its
//! sequence is newer than what it holds, and redelivery or reordering is harmless.

use base64::Engine;
use coffer_store::{
    OutboxEntry, Secret, SecretChange, SecretRecord, Tag, ValueKind, VersionRecord,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::DEFAULT_KEY_ALIAS;
use crate::model::{Arn, SecretValue, Timestamp};
use crate::region::RegionService;

/// A replica's `Status` in the primary's ReplicationStatus (stored and sent as AWS's words).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaState {
    InProgress,
    InSync,
    Failed,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::InProgress => "InProgress",
            ReplicaState::InSync => "InSync",
            ReplicaState::Failed => "Failed",
        }
    }
}

/// Why a replica is `Failed`, stored with the status so that the console (and anyone reading
/// the state) explains a failure from its cause, not by searching the message.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    /// Another secret of that name exists in the replica's Region.
    NameClash,
    /// The name there is a replica of another primary, or a primary with replicas of its own.
    NameReplicated,
    /// A KMS key (of the primary or the replica Region) cannot be used.
    Key,
    /// The replica's Region could not be reached.
    Network,
    /// No node of the deployment serves the replica's Region.
    RegionNotEnabled,
    /// Anything else (and failures recorded before causes were).
    #[default]
    Other,
}

// The outbox kinds and their payloads are `crate::outbox` (one place); re-exported for the
// wire, where a message's kind names it.
pub use crate::outbox::{
    KIND_ACCESS, KIND_DETACH, KIND_HANDBACK, KIND_HEADS, KIND_INSPECT, KIND_KEY, KIND_KEY_REMOVED,
    KIND_REMOVE, KIND_SYNC, KIND_SYNC_BATCH, RegionPayload,
};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationState {
    /// A primary and its replicas, in the order they were added (AWS lists them so).
    Primary { replicas: Vec<ReplicaStatus> },
    /// A read-only replica of `primary_arn`; `seq` is the newest primary state applied.
    Replica {
        primary_region: String,
        primary_arn: String,
        seq: i64,
        /// The primary's epoch of this replication (see [`ReplicaStatus::epoch`]); 0 for
        /// replicas made before epochs existed.
        #[serde(default)]
        epoch: i64,
        /// When this Region applied that state (its clock, ms); 0 for replicas written
        /// before it was kept. Region failover reports it, and the replication point is
        /// measured from the newest one of each primary Region.
        #[serde(default)]
        applied_ms: i64,
    },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ReplicaStatus {
    /// The primary's `row_version` this replica must reach to be `InSync` again.
    #[serde(default)]
    pub target_seq: i64,
    pub region: String,
    pub kms_key_id: Option<String>,
    pub status: ReplicaState,
    pub status_message: Option<String>,
    /// Why it is `Failed` (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<FailureCause>,
    pub last_accessed_day: Option<i64>,
    /// Which replication to this Region this is: the primary Region's clock (ms) when the
    /// Region was asked for (so a Region asked for again after a promotion has a higher one).
    /// Not the secret's `row_version`: an ARN can come back as a new secret (a replica of it,
    /// promoted, after the original was deleted) whose `row_version` starts again at 1, while
    /// its old replications' promotions are still remembered. A promoted
    /// replica remembers the epoch it was promoted at (`Store::load_detachment`) and answers
    /// the messages of that epoch or older `Detached`, whatever order they arrive in; a
    /// message of a newer epoch is a new replication, which meets the promoted secret as a
    /// name clash. 0 for Regions added before epochs existed.
    #[serde(default)]
    pub epoch: i64,
    /// ForceOverwriteReplicaSecret was asked for this replication and no delivery has been
    /// answered since: every sync carries it until one is, so a later write's sync that
    /// overtakes the forced one (which was waiting out a network failure) still overwrites.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overwrite: bool,
}

/// `ReplicationStatusType` on the wire.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicationStatusView {
    pub region: String,
    pub kms_key_id: String,
    pub status: ReplicaState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<Timestamp>,
    /// Why it failed, for Coffer's own readers (the console); not part of AWS's shape.
    #[serde(skip)]
    pub cause: Option<FailureCause>,
}

impl ReplicaStatus {
    pub fn view(&self) -> ReplicationStatusView {
        ReplicationStatusView {
            region: self.region.clone(),
            // [D] the default key shows as alias/aws/secretsmanager here.
            kms_key_id: self
                .kms_key_id
                .clone()
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| DEFAULT_KEY_ALIAS.to_string()),
            status: self.status,
            // [D] no message while InProgress.
            status_message: self
                .status_message
                .clone()
                .filter(|_| self.status != ReplicaState::InProgress),
            last_accessed_date: self.last_accessed_day.map(Timestamp::from_day),
            cause: self.cause.filter(|_| self.status == ReplicaState::Failed),
        }
    }
}

pub fn state(secret: &Secret) -> Option<ReplicationState> {
    let json = secret.record.replication.as_deref()?;
    match serde_json::from_str(json) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(arn = %secret.record.arn, error = %e, "Unreadable replication state");
            None
        }
    }
}

/// The replication state, or an error when it cannot be read. Writes use this: a secret whose
/// state is unreadable may be a replica, so it is never treated as "not a replica".
pub fn checked_state(secret: &Secret) -> Result<Option<ReplicationState>> {
    let Some(json) = secret.record.replication.as_deref() else {
        return Ok(None);
    };
    serde_json::from_str(json).map(Some).map_err(|e| {
        Error::internal_from(
            format!(
                "unreadable replication state of {}; writes to the secret are refused",
                secret.record.arn
            ),
            e,
        )
    })
}

pub fn set_state(secret: &mut Secret, state: Option<&ReplicationState>) {
    secret.record.replication = state.map(|s| serde_json::to_string(s).expect("state serializes"));
}

pub fn is_replica(secret: &Secret) -> bool {
    matches!(state(secret), Some(ReplicationState::Replica { .. }))
}

/// Replicas of a primary, in the order they were added; empty for anything else.
pub fn replicas(secret: &Secret) -> Vec<ReplicaStatus> {
    match state(secret) {
        Some(ReplicationState::Primary { replicas }) => replicas,
        _ => Vec::new(),
    }
}

/// The secret's ARN in another Region (same name, same suffix).
pub fn arn_in_region(arn: &str, region: &str) -> String {
    match Arn::parse(arn) {
        Some(a) => format!(
            "arn:{}:{}:{region}:{}:{}",
            a.partition, a.service, a.account, a.resource
        ),
        None => arn.to_string(),
    }
}

/// Outbox rows announcing the secret's new state to each of its replicas. `forced` lists the
/// Regions for which the user asked ForceOverwriteReplicaSecret.
pub fn sync_entries(secret: &Secret, forced: &[String]) -> Vec<OutboxEntry> {
    replicas(secret)
        .into_iter()
        .map(|r| {
            crate::outbox::OutboxMessage::Sync {
                force: forced.contains(&r.region),
            }
            .entry(&secret.record.arn, &r.region)
        })
        .collect()
}

/// One version as it travels: the value in plaintext, inside a sealed message only.
#[derive(Serialize, Deserialize)]
pub struct VersionPayload {
    pub version_id: String,
    pub stages: Vec<String>,
    pub created_ms: i64,
    /// base64 of the value; absent for the value-less rotation placeholder, and when
    /// `omitted`.
    pub value: Option<Zeroizing<String>>,
    pub binary: bool,
    /// The value is left out because the destination already holds it (a version's value
    /// never changes): the replica reuses its own ciphertext, or answers [`Answer::Resend`]
    /// if it does not have one under the right key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub omitted: bool,
}

/// The primary's whole state, for one destination Region.
#[derive(Serialize, Deserialize)]
pub struct SyncMessage {
    pub primary_arn: String,
    pub primary_region: String,
    pub seq: i64,
    /// The primary's epoch of the replication to this Region ([`ReplicaStatus::epoch`]).
    #[serde(default)]
    pub epoch: i64,
    pub commit_ms: i64,
    /// The primary Region's clock (ms) when the message was built, just before it was sent;
    /// 0 from nodes older than this (see [`FORCE_WINDOW_MS`]).
    #[serde(default)]
    pub sent_ms: i64,
    pub force: bool,
    /// The key the replica must use (`None`: its Region's aws/secretsmanager).
    pub kms_key_id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub tags: Option<Vec<Tag>>,
    pub resource_policy: Option<String>,
    pub created_ms: i64,
    pub last_changed_ms: i64,
    pub deleted_ms: Option<i64>,
    pub purge_at_ms: Option<i64>,
    pub versions: Vec<VersionPayload>,
}

/// What the replica's Region answers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Answer {
    Applied {
        applied_ms: i64,
        last_accessed_day: Option<i64>,
    },
    /// The replica cannot be created or updated; the message is the StatusMessage.
    Failed {
        message: String,
        /// Absent from nodes older than causes: `Other`.
        #[serde(default)]
        cause: FailureCause,
    },
    /// The secret there was promoted to a standalone secret: stop replicating to it.
    Detached,
    Done,
    /// The message left out a value the replica does not hold (under the replica's key), or
    /// would replace a secret that changed after it was sent: nothing was applied; build the
    /// whole state again, values included, and send it.
    Resend,
}

/// Builds the message that brings `dest` up to date with `secret` (a primary).
///
/// `held`: versions whose values `dest` is known to hold already (under the key it uses for
/// this secret); their values are left out (`omitted`), so a sync costs one decryption per
/// new version instead of one per version the secret has.
pub async fn build_sync(
    region: &RegionService,
    secret: &Secret,
    dest: &str,
    force: bool,
    commit_ms: i64,
    held: &(dyn Fn(&str) -> bool + Sync),
) -> Result<SyncMessage> {
    let status = replicas(secret).into_iter().find(|r| r.region == dest);
    let mut versions = Vec::with_capacity(secret.versions.len());
    for v in &secret.versions {
        let omitted = v.ciphertext.is_some() && held(&v.version_id);
        let value = if v.ciphertext.is_some() && !omitted {
            let worker = worker_caller(region, &secret.record.account_id);
            let plain = region
                .keys
                .decrypt_value(&worker, &secret.record.arn, v)
                .await?;
            Some(Zeroizing::new(
                base64::engine::general_purpose::STANDARD.encode(plain.as_bytes()),
            ))
        } else {
            None
        };
        versions.push(VersionPayload {
            version_id: v.version_id.clone(),
            stages: v.stages.clone(),
            created_ms: v.created_ms,
            value,
            binary: v.value_kind == ValueKind::Binary,
            omitted,
        });
    }
    let r = &secret.record;
    let epoch = status.as_ref().map_or(0, |s| s.epoch);
    Ok(SyncMessage {
        primary_arn: r.arn.clone(),
        primary_region: region.region.clone(),
        seq: r.row_version,
        epoch,
        commit_ms,
        sent_ms: region.now_ms(),
        force,
        kms_key_id: status.and_then(|s| s.kms_key_id),
        name: r.name.clone(),
        description: r.description.clone(),
        tags: r.tags.clone(),
        resource_policy: r.resource_policy.clone(),
        created_ms: r.created_ms,
        last_changed_ms: r.last_changed_ms,
        deleted_ms: r.deleted_ms,
        purge_at_ms: r.purge_at_ms,
        versions,
    })
}

/// Why the replication worker cannot read `secret`'s values in its (the primary's) Region, as
/// a replica's StatusMessage: a key whose policy does not let the account root `kms:Decrypt`,
/// or a disabled or pending-deletion key. `None` when nothing about the keys stops it (the
/// caller then treats a failed [`build_sync`] as an internal error, retried). The mirror of
/// the destination-side check in the replica's Region.
pub async fn source_key_problem(region: &RegionService, secret: &Secret) -> Result<Option<String>> {
    let worker = worker_caller(region, &secret.record.account_id);
    let mut checked: Vec<&str> = Vec::new();
    for v in &secret.versions {
        let Some(key_arn) = v
            .wrapped_data_key
            .as_deref()
            .and_then(|w| coffer_kms::ciphertext_key_id(w).ok())
        else {
            continue;
        };
        if checked.contains(&key_arn) {
            continue;
        }
        checked.push(key_arn);
        let Some(key) = region.keys.key_by_arn(key_arn).await? else {
            continue;
        };
        if let Err(denied) = region
            .keys
            .check_key_use(&worker, &key, crate::keys::KeyUse::Decrypt)
        {
            return Ok(Some(format!("Replication failed: {}", denied.describe())));
        }
    }
    Ok(None)
}

/// Replication workers act for the secret's account as its root principal, so the account's
/// key policies decide what they may encrypt and decrypt.
fn worker_caller(region: &RegionService, account: &str) -> crate::region::Caller {
    crate::region::Caller::administrator(
        account,
        &format!("arn:{}:iam::{account}:root", region.partition),
    )
}

fn failed(cause: FailureCause, message: String) -> Answer {
    Answer::Failed { message, cause }
}

/// What applying one message would change, worked out from the replica's current state.
enum Plan {
    /// Nothing to write (already applied, or refused): the answer as it is.
    Answer(Answer),
    /// These changes, committed, make the replica equal to the message.
    Commit {
        changes: Vec<SecretChange>,
        last_accessed_day: Option<i64>,
        planned_ms: i64,
        /// The commit replaces another secret (ForceOverwriteReplicaSecret) and must happen
        /// by this time of this Region's clock ([`FORCE_WINDOW_MS`]).
        replace_by_ms: Option<i64>,
    },
}

/// How long after it was sent (`SyncMessage::sent_ms`) a sync may still replace another secret
/// of the same name (ForceOverwriteReplicaSecret). Replacing destroys that secret, so it is
/// done only while the sender still waits for the answer (the transport waits 5 s; 1 s is left
/// for the clocks of the two Regions to differ). Once the sender has given up, the user may
/// have removed the Region from the replication, and the removal, sent after, would then
/// delete the replica that destroyed the secret (model seed 7): a late overwrite is refused,
/// and a sender that still wants it sends it again (a retry is a new message).
pub const FORCE_WINDOW_MS: i64 = 4_000;

fn too_late_to_replace(region: &RegionService, msg: &SyncMessage) -> Answer {
    failed(
        FailureCause::Other,
        format!(
            "Replication failed: the request to overwrite secret {} in region {} arrived more than {} seconds after it was sent. Check that the clocks of {} and {} agree, then retry with ForceOverwriteReplicaSecret.",
            msg.name,
            region.region,
            FORCE_WINDOW_MS / 1000,
            msg.primary_region,
            region.region
        ),
    )
}

/// Whether `msg` may no longer replace another secret (see [`FORCE_WINDOW_MS`]); a message of
/// a node older than `sent_ms` may.
fn replace_expired(region: &RegionService, msg: &SyncMessage) -> bool {
    msg.sent_ms > 0 && region.now_ms() > msg.sent_ms + FORCE_WINDOW_MS
}

/// Applies a primary's state in this (the replica's) Region.
pub async fn apply_sync(region: &RegionService, msg: &SyncMessage) -> Result<Answer> {
    for _ in 0..20 {
        let (changes, last_accessed_day, planned_ms) = match plan_sync(region, msg).await? {
            Plan::Answer(answer) => return Ok(answer),
            Plan::Commit {
                replace_by_ms: Some(by),
                ..
            } if region.now_ms() > by => return Ok(too_late_to_replace(region, msg)),
            Plan::Commit {
                changes,
                last_accessed_day,
                planned_ms,
                ..
            } => (changes, last_accessed_day, planned_ms),
        };
        match region.store.commit_with(changes, Vec::new()).await {
            Ok(()) => {
                return Ok(Answer::Applied {
                    applied_ms: region.now_ms().max(planned_ms),
                    last_accessed_day,
                });
            }
            Err(coffer_store::StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::internal("replica kept changing while applying"))
}

/// Applies the states of several secrets (one message per secret) in one store transaction,
/// so a batch costs the replica's store one durable commit instead of one per secret. When the
/// batch cannot commit as a whole (a replica changed meanwhile, a name was taken), each message
/// is applied on its own, so one secret never holds back the others. Answers are in the order
/// of `msgs`.
pub async fn apply_sync_batch(region: &RegionService, msgs: &[SyncMessage]) -> Result<Vec<Answer>> {
    let mut answers: Vec<Option<Answer>> = vec![None; msgs.len()];
    let mut changes = Vec::new();
    let mut pending = Vec::new();
    let mut latest_plan_ms = 0;
    for (i, msg) in msgs.iter().enumerate() {
        match plan_sync(region, msg).await? {
            Plan::Answer(answer) => answers[i] = Some(answer),
            Plan::Commit {
                replace_by_ms: Some(by),
                ..
            } if region.now_ms() > by => answers[i] = Some(too_late_to_replace(region, msg)),
            Plan::Commit {
                changes: c,
                last_accessed_day,
                planned_ms,
                ..
            } => {
                changes.extend(c);
                pending.push((i, last_accessed_day));
                latest_plan_ms = latest_plan_ms.max(planned_ms);
            }
        }
    }
    if !pending.is_empty() {
        match region.store.commit_with(changes, Vec::new()).await {
            Ok(()) => {
                let applied_ms = region.now_ms().max(latest_plan_ms);
                for (i, last_accessed_day) in pending {
                    answers[i] = Some(Answer::Applied {
                        applied_ms,
                        last_accessed_day,
                    });
                }
            }
            Err(_) => {
                // Each on its own, all at once (distinct secrets; on SQLite one transaction).
                let each = pending.iter().map(|(i, _)| apply_sync(region, &msgs[*i]));
                for ((i, _), answer) in pending
                    .iter()
                    .zip(futures_util::future::join_all(each).await)
                {
                    answers[*i] = Some(answer?);
                }
            }
        }
    }
    Ok(answers
        .into_iter()
        .map(|a| a.expect("every message answered"))
        .collect())
}

/// Works out what applying `msg` changes (nothing is written here).
async fn plan_sync(region: &RegionService, msg: &SyncMessage) -> Result<Plan> {
    let Some(primary) = Arn::parse(&msg.primary_arn) else {
        return Ok(Plan::Answer(failed(
            FailureCause::Other,
            "Replication failed: malformed primary ARN.".into(),
        )));
    };
    let account = primary.account.to_string();
    let replica_arn = arn_in_region(&msg.primary_arn, &region.region);
    let existing = region
        .store
        .load_secret_by_name(&account, &msg.name)
        .await?;
    let ours = |s: &Secret| matches!(state(s), Some(ReplicationState::Replica { primary_arn, .. }) if primary_arn == msg.primary_arn);
    if !existing.as_ref().is_some_and(ours) {
        // This copy was promoted at some epoch: that replication, and every older message of
        // it, is over, even if the promoted secret has since been deleted. The primary drops
        // the Region when it hears so.
        if let Some(d) = region.store.load_detachment(&replica_arn).await?
            && d.primary_arn == msg.primary_arn
            && msg.epoch <= d.epoch
        {
            return Ok(Plan::Answer(Answer::Detached));
        }
    }
    let mut replace: Option<&Secret> = None;
    let mut current: Option<&Secret> = None;
    if let Some(s) = &existing {
        match state(s) {
            Some(ReplicationState::Replica {
                primary_arn, seq, ..
            }) if primary_arn == msg.primary_arn => {
                if msg.seq <= seq {
                    // Redelivered or overtaken: already applied.
                    return Ok(Plan::Answer(Answer::Applied {
                        applied_ms: region.now_ms(),
                        last_accessed_day: s.record.last_accessed_day,
                    }));
                }
                current = Some(s);
            }
            // A promoted copy from before epochs existed (no record of the promotion).
            _ if s.record.arn == replica_arn && msg.epoch == 0 => {
                return Ok(Plan::Answer(Answer::Detached));
            }
            Some(ReplicationState::Replica { primary_region, .. }) => {
                // [W] wording recorded in a draft of real AWS output.
                return Ok(Plan::Answer(failed(
                    FailureCause::NameReplicated,
                    format!(
                        "Replication failed: Can't overwrite secret {} that is currently replicated from {primary_region}.",
                        msg.name
                    ),
                )));
            }
            Some(ReplicationState::Primary { replicas }) if !replicas.is_empty() => {
                return Ok(Plan::Answer(failed(
                    FailureCause::NameReplicated,
                    format!(
                        "Replication failed: Can't overwrite secret {} that is currently replicated to other region(s).",
                        msg.name
                    ),
                )));
            }
            _ if !msg.force => {
                // [W] the existing secret stays untouched.
                return Ok(Plan::Answer(failed(
                    FailureCause::NameClash,
                    format!(
                        "Replication failed: Secret name {} already exists in region {}.",
                        msg.name, region.region
                    ),
                )));
            }
            _ if replace_expired(region, msg) => {
                return Ok(Plan::Answer(too_late_to_replace(region, msg)));
            }
            // The secret changed after the overwrite was sent (a write, or its own replicas
            // removed, which is what made it overwritable): the sender is asked to send the
            // state again, built now. If the overwrite is still wanted (the primary still lists
            // this Region), the new message replaces the secret; if the user removed this
            // Region meanwhile, nothing is sent and the secret stays as it is, instead of being
            // replaced here and then deleted by the removal that follows.
            _ if msg.sent_ms > 0 && s.record.last_changed_ms > msg.sent_ms => {
                return Ok(Plan::Answer(Answer::Resend));
            }
            _ => replace = Some(s),
        }
    }
    let key = match region
        .keys
        .resolve_key(&account, msg.kms_key_id.as_deref())
        .await
    {
        Ok(k) => k,
        Err(e) => {
            // The primary learns only the message; a failure of this node is logged here, once.
            if e.is_server_error() {
                tracing::error!(arn = %replica_arn, error = %crate::error::Chain(&e), "The replica's KMS key could not be resolved");
            }
            return Ok(Plan::Answer(failed(
                FailureCause::Key,
                format!("Replication failed: {}", e.message),
            )));
        }
    };
    // The replica Region's key must let the account use it (the worker acts as the account's
    // root); a policy denial or a disabled key fails the replica with a message that names the
    // missing permission, and a later ReplicateSecretToRegions retries it.
    let worker = worker_caller(region, &account);
    if let Err(denied) = region
        .keys
        .check_key_use(&worker, &key, crate::keys::KeyUse::Encrypt)
    {
        return Ok(Plan::Answer(failed(
            FailureCause::Key,
            format!("Replication failed: {}", denied.describe()),
        )));
    }
    let now = region.now_ms();
    let mut versions = Vec::with_capacity(msg.versions.len());
    for v in &msg.versions {
        let old = current.and_then(|c| c.versions.iter().find(|o| o.version_id == v.version_id));
        let mut record = VersionRecord {
            secret_arn: replica_arn.clone(),
            version_id: v.version_id.clone(),
            stages: v.stages.clone(),
            created_ms: v.created_ms,
            last_accessed_day: old.and_then(|o| o.last_accessed_day),
            kms_key_arn: None,
            value_kind: ValueKind::None,
            wrapped_data_key: None,
            ciphertext: None,
        };
        // Values of a version never change: the replica's own ciphertext of a version stands
        // when it has one under the key this replica uses; only new or re-keyed values are
        // encrypted. A value the message left out (`omitted`) must be one the replica has.
        let reuse = old.filter(|o| {
            o.ciphertext.is_some() && o.kms_key_arn.as_deref() == Some(key.arn.as_str())
        });
        if v.omitted || v.value.is_some() {
            if let Some(o) = reuse {
                record.kms_key_arn = o.kms_key_arn.clone();
                record.value_kind = o.value_kind;
                record.wrapped_data_key = o.wrapped_data_key.clone();
                record.ciphertext = o.ciphertext.clone();
            } else if let Some(b64) = &v.value {
                let bytes = Zeroizing::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64.as_bytes())
                        // The decoder's error is not kept: it quotes the offending byte.
                        .map_err(|_| Error::internal("replication message carries bad base64"))?,
                );
                let value = if v.binary {
                    SecretValue::Binary(bytes)
                } else {
                    SecretValue::String(Zeroizing::new(
                        String::from_utf8(bytes.to_vec())
                            // Not kept either: the UTF-8 error holds the value's bytes.
                            .map_err(|_| Error::internal("replicated string is not UTF-8"))?,
                    ))
                };
                let (wrapped, ciphertext) = region.keys.encrypt_value(
                    &worker,
                    &key,
                    &replica_arn,
                    &v.version_id,
                    &value,
                )?;
                record.kms_key_arn = Some(key.arn.clone());
                record.value_kind = value.kind();
                record.wrapped_data_key = Some(wrapped);
                record.ciphertext = Some(ciphertext);
            } else {
                return Ok(Plan::Answer(Answer::Resend));
            }
        }
        versions.push(record);
    }
    let state = ReplicationState::Replica {
        primary_region: msg.primary_region.clone(),
        primary_arn: msg.primary_arn.clone(),
        seq: msg.seq,
        epoch: msg.epoch,
        applied_ms: now,
    };
    let record = SecretRecord {
        arn: replica_arn.clone(),
        account_id: account.clone(),
        name: msg.name.clone(),
        description: msg.description.clone(),
        kms_key_id: msg.kms_key_id.clone().filter(|k| !k.is_empty()),
        tags: msg.tags.clone(),
        resource_policy: msg.resource_policy.clone(),
        created_ms: current.map_or(msg.created_ms, |c| c.record.created_ms),
        last_changed_ms: msg.last_changed_ms,
        last_accessed_day: current.and_then(|c| c.record.last_accessed_day),
        deleted_ms: msg.deleted_ms,
        purge_at_ms: msg.purge_at_ms,
        rotation: None,
        replication: Some(serde_json::to_string(&state).expect("state")),
        row_version: current.map_or(1, |c| c.record.row_version + 1),
    };
    let last_accessed_day = record.last_accessed_day;
    let mut changes = Vec::new();
    if let Some(old) = replace {
        changes.push(SecretChange::Delete {
            arn: old.record.arn.clone(),
            expected_row_version: old.record.row_version,
        });
    }
    match current {
        Some(c) => {
            let gone: Vec<String> = c
                .versions
                .iter()
                .filter(|o| !versions.iter().any(|v| v.version_id == o.version_id))
                .map(|o| o.version_id.clone())
                .collect();
            // Only what differs is written: a sync usually adds one version and moves labels.
            let versions: Vec<VersionRecord> = versions
                .into_iter()
                .filter(|v| !c.versions.contains(v))
                .collect();
            changes.push(SecretChange::Update {
                secret: record,
                expected_row_version: c.record.row_version,
                upsert_versions: versions,
                delete_versions: gone,
            });
        }
        None => changes.push(SecretChange::Insert {
            secret: record,
            versions,
        }),
    }
    Ok(Plan::Commit {
        changes,
        last_accessed_day,
        planned_ms: now,
        replace_by_ms: replace
            .filter(|_| msg.sent_ms > 0)
            .map(|_| msg.sent_ms + FORCE_WINDOW_MS),
    })
}

/// Deletes this Region's replica of `primary_arn` made by the replication of `epoch` or an
/// older one. A replica of a newer epoch (the Region was added again after the removal) stays:
/// the removal is about a replication that has ended, whatever order the messages arrive in.
/// `epoch: None` (a node older than epochs on removals) deletes any replica of the secret.
pub async fn apply_remove(
    region: &RegionService,
    primary_arn: &str,
    epoch: Option<i64>,
) -> Result<Answer> {
    let replica_arn = arn_in_region(primary_arn, &region.region);
    for _ in 0..20 {
        let Some(s) = region.store.load_secret_by_arn(&replica_arn).await? else {
            return Ok(Answer::Done);
        };
        let ours = matches!(state(&s), Some(ReplicationState::Replica { primary_arn: p, epoch: e, .. })
            if p == primary_arn && epoch.is_none_or(|removed| e <= removed));
        if !ours {
            return Ok(Answer::Done);
        }
        match region
            .store
            .commit(SecretChange::Delete {
                arn: replica_arn.clone(),
                expected_row_version: s.record.row_version,
            })
            .await
        {
            Ok(()) => {
                // What the primary announced about it no longer matters.
                region.store.delete_heads(&[replica_arn]).await?;
                return Ok(Answer::Done);
            }
            Err(coffer_store::StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::internal("replica kept changing while removing"))
}

/// Changes the primary's status entry for `replica_region`; `None` from `edit` drops it.
/// Returns whether anything changed.
pub async fn edit_status(
    region: &RegionService,
    primary_arn: &str,
    replica_region: &str,
    edit: impl Fn(ReplicaStatus) -> Option<ReplicaStatus>,
) -> Result<bool> {
    edit_status_and_finish(region, primary_arn, replica_region, edit, None).await
}

/// Outbox rows to settle together with a status change: (ARN, destination, kind, up to id).
pub type Finish<'a> = Option<(&'a str, &'a str, &'a str, i64)>;

/// [`edit_status`] that also settles outbox rows, in the same transaction.
pub async fn edit_status_and_finish(
    region: &RegionService,
    primary_arn: &str,
    replica_region: &str,
    edit: impl Fn(ReplicaStatus) -> Option<ReplicaStatus>,
    finish: Finish<'_>,
) -> Result<bool> {
    let finish: Vec<_> = finish.into_iter().collect();
    for _ in 0..20 {
        let change = status_change(region, primary_arn, replica_region, &edit).await?;
        let changed = change.is_some();
        let committed = match (change, finish.is_empty()) {
            (None, true) => return Ok(false),
            (None, false) => region.store.commit_and_finish(Vec::new(), &finish).await,
            (Some(change), true) => region.store.commit(change).await,
            (Some(change), false) => region.store.commit_and_finish(vec![change], &finish).await,
        };
        match committed {
            Ok(()) => return Ok(changed),
            Err(coffer_store::StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::internal(
        "primary kept changing while recording replica status",
    ))
}

/// The change that applies `edit` to `replica_region`'s entry in the primary's
/// ReplicationStatus, or `None` when there is nothing to change (no such secret, entry, or the
/// edit leaves it as it is).
async fn status_change(
    region: &RegionService,
    primary_arn: &str,
    replica_region: &str,
    edit: &impl Fn(ReplicaStatus) -> Option<ReplicaStatus>,
) -> Result<Option<SecretChange>> {
    let Some(mut secret) = region.store.load_secret_settled(primary_arn).await? else {
        return Ok(None);
    };
    let Some(ReplicationState::Primary { mut replicas }) = state(&secret) else {
        return Ok(None);
    };
    let Some(pos) = replicas.iter().position(|r| r.region == replica_region) else {
        return Ok(None);
    };
    match edit(replicas[pos].clone()) {
        Some(new) if new == replicas[pos] => return Ok(None),
        Some(new) => replicas[pos] = new,
        None => {
            replicas.remove(pos);
        }
    }
    let new_state = (!replicas.is_empty()).then_some(ReplicationState::Primary { replicas });
    let expected = secret.record.row_version;
    set_state(&mut secret, new_state.as_ref());
    secret.record.row_version = expected + 1;
    // A status change is local bookkeeping: no outbox rows, no LastChangedDate.
    Ok(Some(SecretChange::Update {
        secret: secret.record,
        expected_row_version: expected,
        upsert_versions: Vec::new(),
        delete_versions: Vec::new(),
    }))
}

/// Marks the replicas a write announces as `InProgress` until they have applied it: an
/// acknowledged write that has not reached a replica never shows `InSync`.
pub fn mark_syncing(secret: &mut Secret, dests: &[&str], new_seq: i64) {
    let Some(ReplicationState::Primary { mut replicas }) = state(secret) else {
        return;
    };
    for r in replicas
        .iter_mut()
        .filter(|r| dests.contains(&r.region.as_str()))
    {
        r.target_seq = new_seq;
        if r.status == ReplicaState::InSync {
            r.status = ReplicaState::InProgress;
            r.status_message = None;
        }
    }
    set_state(secret, Some(&ReplicationState::Primary { replicas }));
}

/// How an answer changes the replica's status entry (`None`: the answer changes nothing, it
/// only settles the rows). `sent_seq` is the primary's row_version the delivered state had.
fn answer_edit(
    answer: &Answer,
    sent_seq: i64,
    sent_epoch: i64,
) -> Option<Box<dyn Fn(ReplicaStatus) -> Option<ReplicaStatus> + Send + Sync + '_>> {
    match answer {
        Answer::Applied {
            last_accessed_day, ..
        } => {
            let day = *last_accessed_day;
            Some(Box::new(move |mut s: ReplicaStatus| {
                if day.is_some() {
                    s.last_accessed_day = day;
                }
                // An older state arriving after a newer write keeps the replica InProgress.
                if sent_seq < s.target_seq {
                    return Some(s);
                }
                s.status = ReplicaState::InSync;
                s.status_message = Some("Replication succeeded".into());
                s.cause = None;
                s.overwrite = false;
                Some(s)
            }))
        }
        Answer::Failed { message, cause } => Some(Box::new(move |mut s: ReplicaStatus| {
            s.status = ReplicaState::Failed;
            s.status_message = Some(message.clone());
            s.cause = Some(*cause);
            // The overwrite that was asked has had its answer (an older epoch's has not).
            if sent_epoch >= s.epoch {
                s.overwrite = false;
            }
            Some(s)
        })),
        // Only the replication the message belonged to is over: a Region added again since
        // (a newer epoch) stays.
        Answer::Detached => Some(Box::new(move |s: ReplicaStatus| {
            (s.epoch > sent_epoch).then_some(s)
        })),
        Answer::Done | Answer::Resend => None,
    }
}

/// Records a destination's answer in the primary's ReplicationStatus and settles the delivered
/// outbox rows (`finish`) in the same transaction.
pub async fn record_answer(
    region: &RegionService,
    primary_arn: &str,
    dest: &str,
    answer: &Answer,
    sent: (i64, i64),
    finish: Finish<'_>,
) -> Result<bool> {
    let (sent_seq, sent_epoch) = sent;
    match answer_edit(answer, sent_seq, sent_epoch) {
        Some(edit) => edit_status_and_finish(region, primary_arn, dest, edit, finish).await,
        None => {
            if let Some(f) = finish {
                region.store.commit_and_finish(Vec::new(), &[f]).await?;
            }
            Ok(false)
        }
    }
}

/// One delivered message's answer, for [`record_answers`].
pub struct Settlement<'a> {
    pub primary_arn: &'a str,
    pub kind: &'a str,
    pub row_id: i64,
    pub sent_seq: i64,
    pub sent_epoch: i64,
    pub answer: &'a Answer,
}

/// [`record_answer`] for the answers of a batch (distinct secrets, one destination): every
/// status change and every settled row in one transaction. A user write to one of the secrets
/// in between makes the batch conflict: each answer is then recorded on its own, all at once
/// (on SQLite they share one transaction again, by group commit, each in its own savepoint, so
/// only the secrets that changed are worked out again; retrying the whole batch conflicted
/// again and again under a steady write load).
pub async fn record_answers(
    region: &RegionService,
    dest: &str,
    batch: &[Settlement<'_>],
) -> Result<()> {
    let finish: Vec<_> = batch
        .iter()
        .map(|i| (i.primary_arn, dest, i.kind, i.row_id))
        .collect();
    let mut changes = Vec::new();
    for item in batch {
        if let Some(edit) = answer_edit(item.answer, item.sent_seq, item.sent_epoch)
            && let Some(change) = status_change(region, item.primary_arn, dest, &edit).await?
        {
            changes.push(change);
        }
    }
    match region.store.commit_and_finish(changes, &finish).await {
        Ok(()) => return Ok(()),
        Err(coffer_store::StoreError::Conflict) => {}
        Err(e) => return Err(e.into()),
    }
    let each = batch.iter().zip(finish).map(|(item, f)| {
        record_answer(
            region,
            item.primary_arn,
            dest,
            item.answer,
            (item.sent_seq, item.sent_epoch),
            Some(f),
        )
    });
    for recorded in futures_util::future::join_all(each).await {
        recorded?;
    }
    Ok(())
}

/// Marks a replica `Failed` without changing anything else (transport gave up).
pub async fn mark_failed(
    region: &RegionService,
    primary_arn: &str,
    dest: &str,
    cause: FailureCause,
    message: &str,
) -> Result<bool> {
    record_answer(
        region,
        primary_arn,
        dest,
        &Answer::Failed {
            message: message.to_string(),
            cause,
        },
        (0, 0),
        None,
    )
    .await
}
