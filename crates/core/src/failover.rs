//! Region failover (docs/failover.md): the replication point of each (primary Region → this
//! Region) link, and the promotion of every replica of one primary Region in one operation.
//!
//! **Heads.** A primary's syncs carry their own state (`seq`, the primary's `row_version`),
//! but a sync that does not arrive says nothing. So when a delivery of syncs fails, the lane
//! sends a small `heads` message ([`Head`]: sequence, AWSCURRENT version and LastChangedDate
//! of each secret it could not deliver); the replica Region keeps the newest head of each
//! replica (`Store::record_heads`). A replica whose head changed after the state it holds
//! (`changed_ms` newer than its LastChangedDate) lags: the primary is known to have had a
//! newer version. The replica Region cannot know of writes whose announcement never reached
//! it either; the report says "known", never "all".
//!
//! **Failover.** `Coffer.FailoverRegion` (or `coffer region failover`) in Region R from P plans
//! first (every replica in R whose primary is in P, with what R holds and what P announced),
//! saves the plan (`Store::save_document`), then promotes in chunks, each chunk one store
//! transaction of exactly what StopReplicationToReplica commits per secret, and saves the
//! report at the end. A node killed halfway resumes the saved failover at start ([`resume`]);
//! a secret already promoted is found promoted (its recorded promotion) and reported so.
//! Nothing here needs P.

use std::collections::HashMap;

use coffer_store::{ReplicaHead, Secret};
use serde::{Deserialize, Serialize};

use crate::authorize::{Access, Target, authorize};
use crate::error::{Error, Result};
use crate::model::Timestamp;
use crate::operation::Operation as _;
use crate::operation::{named, operations};
use crate::ops::Operation as SecretsManager;
use crate::region::{Caller, RegionService};
use crate::replication::{Answer, ReplicationState, arn_in_region, state};

/// Promotions committed per store transaction.
const CHUNK: usize = 100;
const DOC_PREFIX: &str = "failover/";

/// What a primary announces about one of its secrets: its newest state, which may not have
/// reached the replica.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Head {
    pub primary_arn: String,
    pub seq: i64,
    /// The primary's AWSCURRENT version then.
    pub version_id: Option<String>,
    /// The primary's LastChangedDate then (ms): what a replica that applied it holds too.
    pub changed_ms: i64,
}

impl From<&coffer_store::Secret> for Head {
    /// The head a sync of `secret` as stored now would carry.
    fn from(secret: &coffer_store::Secret) -> Head {
        Head {
            primary_arn: secret.record.arn.clone(),
            seq: secret.record.row_version,
            version_id: crate::secret::version_with_stage(secret, crate::secret::AWSCURRENT)
                .map(|v| v.version_id.clone()),
            changed_ms: secret.record.last_changed_ms,
        }
    }
}

impl From<&crate::replication::SyncMessage> for Head {
    fn from(m: &crate::replication::SyncMessage) -> Head {
        Head {
            primary_arn: m.primary_arn.clone(),
            seq: m.seq,
            version_id: m
                .versions
                .iter()
                .find(|v| v.stages.iter().any(|s| s == crate::secret::AWSCURRENT))
                .map(|v| v.version_id.clone()),
            changed_ms: m.last_changed_ms,
        }
    }
}

/// Records the heads `source` announced (each must be a secret of `source`, checked by the
/// receiver) for the replicas in this Region.
pub async fn apply_heads(region: &RegionService, source: &str, heads: &[Head]) -> Result<Answer> {
    let now = region.now_ms();
    let rows: Vec<ReplicaHead> = heads
        .iter()
        .map(|h| ReplicaHead {
            arn: arn_in_region(&h.primary_arn, &region.region),
            primary_region: source.to_string(),
            seq: h.seq,
            version_id: h.version_id.clone(),
            commit_ms: h.changed_ms,
            heard_ms: now,
        })
        .collect();
    region.store.record_heads(&rows).await?;
    Ok(Answer::Done)
}

/// The replication point of one link (primary Region → this Region).
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct LinkPoint {
    pub primary_region: String,
    pub replica_region: String,
    /// Replicas of that primary Region here.
    pub replica_count: usize,
    /// When the newest state from that primary Region was applied here (none yet: absent).
    pub last_applied_date: Option<Timestamp>,
    /// Seconds since then (the replication point in time).
    pub seconds_since_last_applied: Option<f64>,
    /// Secrets whose newest announced primary state is not applied here.
    pub unapplied_secret_count: usize,
}

/// One replica's view for the failover plan: what it holds and what its primary announced.
struct ReplicaView {
    primary_region: String,
    primary_arn: String,
    seq: i64,
    applied_ms: i64,
}

fn replica_views(states: &[(String, String)]) -> Vec<(String, ReplicaView)> {
    states
        .iter()
        .filter_map(|(arn, json)| match serde_json::from_str(json) {
            Ok(ReplicationState::Replica {
                primary_region,
                primary_arn,
                seq,
                applied_ms,
                ..
            }) => Some((
                arn.clone(),
                ReplicaView {
                    primary_region,
                    primary_arn,
                    seq,
                    applied_ms,
                },
            )),
            _ => None,
        })
        .collect()
}

/// Whether `head` is newer than what the replica `arn` holds: `Some(secret)` (the replica as
/// loaded, `None` when it never arrived) when it is.
async fn lagging(
    region: &RegionService,
    head: &ReplicaHead,
    held_seq: Option<i64>,
) -> Result<Option<Option<Secret>>> {
    if held_seq.is_some_and(|seq| head.seq <= seq) {
        return Ok(None);
    }
    let secret = region.store.load_secret_by_arn(&head.arn).await?;
    match &secret {
        // Held: newer only if the primary changed it after the state held (a `row_version`
        // also moves for the primary's own bookkeeping, LastChangedDate does not).
        Some(s) if held_seq.is_some() => {
            Ok((head.commit_ms > s.record.last_changed_ms).then_some(secret))
        }
        // Some other secret (promoted, or another primary's): not this link's any more.
        Some(_) => Ok(None),
        // Never arrived, unless it was promoted and then deleted here.
        None => Ok(region
            .store
            .load_detachment(&head.arn)
            .await?
            .is_none()
            .then_some(None)),
    }
}

/// The replication point of every link into this Region.
pub async fn replication_points(region: &RegionService) -> Result<Vec<LinkPoint>> {
    let views = replica_views(&region.store.replica_states().await?);
    let heads = region.store.replica_heads().await?;
    let now = region.now_ms();
    let mut links: std::collections::BTreeMap<String, LinkPoint> = Default::default();
    let mut seqs: HashMap<&str, i64> = HashMap::new();
    for (arn, v) in &views {
        seqs.insert(arn.as_str(), v.seq);
        let link = links
            .entry(v.primary_region.clone())
            .or_insert_with(|| LinkPoint {
                primary_region: v.primary_region.clone(),
                replica_region: region.region.clone(),
                replica_count: 0,
                last_applied_date: None,
                seconds_since_last_applied: None,
                unapplied_secret_count: 0,
            });
        link.replica_count += 1;
        if v.applied_ms > 0 && link.last_applied_date.is_none_or(|t| t.0 < v.applied_ms) {
            link.last_applied_date = Some(Timestamp(v.applied_ms));
        }
    }
    for h in &heads {
        if lagging(region, h, seqs.get(h.arn.as_str()).copied())
            .await?
            .is_some()
        {
            links
                .entry(h.primary_region.clone())
                .or_insert_with(|| LinkPoint {
                    primary_region: h.primary_region.clone(),
                    replica_region: region.region.clone(),
                    replica_count: 0,
                    last_applied_date: None,
                    seconds_since_last_applied: None,
                    unapplied_secret_count: 0,
                })
                .unapplied_secret_count += 1;
        }
    }
    Ok(links
        .into_values()
        .map(|mut l| {
            l.seconds_since_last_applied = l
                .last_applied_date
                .map(|t| ((now - t.0).max(0)) as f64 / 1000.0);
            l
        })
        .collect())
}

/// One secret of a failover, as saved and as reported.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Entry {
    pub arn: String,
    pub name: String,
    pub primary_arn: String,
    /// The AWSCURRENT version the replica held when planned (and holds once promoted).
    pub version_id: Option<String>,
    /// The primary's state it held (`seq`) and when it was applied here.
    pub held_seq: i64,
    pub applied_ms: i64,
    /// The newest state the primary announced, when newer than what is held: the writes that
    /// may be lost.
    pub newer: Option<NewerHead>,
    pub state: EntryState,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NewerHead {
    pub seq: i64,
    pub version_id: Option<String>,
    pub changed_ms: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Planned, not yet promoted.
    Planned,
    Promoted,
    /// The caller may not StopReplicationToReplica this secret (its resource policy).
    Denied {
        message: String,
    },
    /// When its turn came it was no longer a replica of that primary (deleted by the primary,
    /// or promoted by someone else).
    NotReplica,
}

/// A failover of one Region from one primary Region, as saved (its progress) and reported.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Failover {
    pub id: String,
    pub region: String,
    pub from_region: String,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub entries: Vec<Entry>,
}

impl Failover {
    fn key(&self) -> String {
        format!(
            "{DOC_PREFIX}{}/{}/{:015}",
            self.region, self.from_region, self.started_ms
        )
    }

    pub fn report(&self) -> Report {
        let secrets: Vec<ReportEntry> = self
            .entries
            .iter()
            .map(|e| ReportEntry {
                arn: e.arn.clone(),
                name: e.name.clone(),
                primary_arn: e.primary_arn.clone(),
                status: match &e.state {
                    EntryState::Planned => "Pending",
                    EntryState::Promoted => "Promoted",
                    EntryState::Denied { .. } => "AccessDenied",
                    EntryState::NotReplica => "NotReplica",
                },
                message: match &e.state {
                    EntryState::Denied { message } => Some(message.clone()),
                    _ => None,
                },
                version_id: e.version_id.clone(),
                applied_date: (e.applied_ms > 0).then_some(Timestamp(e.applied_ms)),
                primary_had_newer_version: e.newer.is_some(),
                primary_newer_version_id: e.newer.as_ref().and_then(|n| n.version_id.clone()),
                primary_newer_changed_date: e.newer.as_ref().map(|n| Timestamp(n.changed_ms)),
            })
            .collect();
        Report {
            failover_id: self.id.clone(),
            region: self.region.clone(),
            from_region: self.from_region.clone(),
            status: if self.finished_ms.is_some() {
                "Complete"
            } else {
                "InProgress"
            },
            started_date: Timestamp(self.started_ms),
            completed_date: self.finished_ms.map(Timestamp),
            promoted_count: self
                .entries
                .iter()
                .filter(|e| e.state == EntryState::Promoted)
                .count(),
            possibly_lost_count: self.entries.iter().filter(|e| e.newer.is_some()).count(),
            secrets,
        }
    }
}

/// The answer of `Coffer.FailoverRegion`.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    pub failover_id: String,
    pub region: String,
    pub from_region: String,
    /// `Complete`, or `InProgress` (a failover resumed elsewhere still running).
    pub status: &'static str,
    pub started_date: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_date: Option<Timestamp>,
    pub promoted_count: usize,
    /// Secrets whose primary is known to have had a newer version than the one promoted.
    pub possibly_lost_count: usize,
    pub secrets: Vec<ReportEntry>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct ReportEntry {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(rename = "PrimaryARN")]
    pub primary_arn: String,
    /// `Promoted`, `AccessDenied`, `NotReplica` (or `Pending` while running).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_date: Option<Timestamp>,
    pub primary_had_newer_version: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_newer_version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_newer_changed_date: Option<Timestamp>,
}

async fn save(region: &RegionService, f: &Failover) -> Result<()> {
    let body = serde_json::to_string(f).expect("failover serializes");
    region
        .store
        .save_document(&f.key(), &body, region.now_ms())
        .await?;
    Ok(())
}

/// Every failover saved in this Region, oldest first (an unreadable document is reported and
/// skipped).
pub async fn saved(region: &RegionService) -> Result<Vec<Failover>> {
    let docs = region
        .store
        .load_documents(&format!("{DOC_PREFIX}{}/", region.region))
        .await?;
    let mut out: Vec<Failover> = docs
        .iter()
        .filter_map(|(key, body)| match serde_json::from_str(body) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(key, error = %e, "Unreadable failover document; skipped");
                None
            }
        })
        .collect();
    out.sort_by_key(|f: &Failover| f.started_ms);
    Ok(out)
}

/// Promotes every replica in `region` whose primary is in `from_region`; see the module
/// documentation. Idempotent: a failover of the pair that is under way is resumed; when
/// nothing is left to promote, the last failover of the pair is reported again.
pub async fn run(region: &RegionService, caller: &Caller, from_region: &str) -> Result<Report> {
    if from_region == region.region {
        return Err(Error::invalid_parameter(format!(
            "FromRegion must be another Region than the one failed over to ({from_region})."
        )));
    }
    // The whole Region's promotion: the caller must be allowed StopReplicationToReplica on
    // every secret (Resource "*"); each secret's resource policy is checked again below.
    authorize(
        region,
        caller,
        &Access::new(SecretsManager::StopReplicationToReplica.action()),
        Target::Everything,
    )?;
    let all = saved(region).await?;
    let pair: Vec<&Failover> = all
        .iter()
        .filter(|f| f.from_region == from_region)
        .collect();
    if let Some(f) = pair.iter().find(|f| f.finished_ms.is_none()) {
        let mut f = (*f).clone();
        finish(region, &mut f).await?;
        return Ok(f.report());
    }
    let mut f = plan(region, caller, from_region).await?;
    if f.entries.is_empty()
        && let Some(last) = pair.last()
    {
        return Ok(last.report());
    }
    save(region, &f).await?;
    tracing::warn!(region = %region.region, from = from_region, secrets = f.entries.len(), "Region failover started");
    finish(region, &mut f).await?;
    Ok(f.report())
}

/// Finishes every failover of this Region left unfinished (a node killed halfway); at start.
pub async fn resume(region: &RegionService) -> Result<usize> {
    let mut n = 0;
    for mut f in saved(region).await? {
        if f.finished_ms.is_none() {
            tracing::warn!(region = %region.region, from = %f.from_region, id = %f.id, "Resuming an unfinished Region failover");
            finish(region, &mut f).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Every replica of `from_region` here, with what it holds and what its primary announced.
async fn plan(region: &RegionService, caller: &Caller, from_region: &str) -> Result<Failover> {
    let views = replica_views(&region.store.replica_states().await?);
    let heads: HashMap<String, ReplicaHead> = region
        .store
        .replica_heads()
        .await?
        .into_iter()
        .map(|h| (h.arn.clone(), h))
        .collect();
    let started_ms = region.now_ms();
    let mut entries = Vec::new();
    for (arn, v) in views
        .into_iter()
        .filter(|(_, v)| v.primary_region == from_region)
    {
        let Some(secret) = region.store.load_secret_by_arn(&arn).await? else {
            continue;
        };
        let newer = match heads.get(&arn) {
            Some(h) if lagging(region, h, Some(v.seq)).await?.is_some() => Some(NewerHead {
                seq: h.seq,
                version_id: h.version_id.clone(),
                changed_ms: h.commit_ms,
            }),
            _ => None,
        };
        let state = match authorize(
            region,
            caller,
            &Access::new(SecretsManager::StopReplicationToReplica.action()),
            Target::Secret(&secret),
        ) {
            Ok(()) => EntryState::Planned,
            Err(e) => EntryState::Denied { message: e.message },
        };
        entries.push(Entry {
            arn,
            name: secret.record.name.clone(),
            primary_arn: v.primary_arn,
            version_id: crate::secret::version_with_stage(&secret, crate::secret::AWSCURRENT)
                .map(|x| x.version_id.clone()),
            held_seq: v.seq,
            applied_ms: v.applied_ms,
            newer,
            state,
        });
    }
    Ok(Failover {
        id: uuid::Uuid::new_v4().to_string(),
        region: region.region.clone(),
        from_region: from_region.to_string(),
        started_ms,
        finished_ms: None,
        entries,
    })
}

/// Promotes what is still planned, a chunk per transaction, saving progress after each.
async fn finish(region: &RegionService, f: &mut Failover) -> Result<()> {
    let planned: Vec<usize> = (0..f.entries.len())
        .filter(|&i| f.entries[i].state == EntryState::Planned)
        .collect();
    // Progress is not saved per chunk: after a crash, a planned secret that is no longer a
    // replica and whose promotion was recorded since the failover started is found promoted
    // (`promote_chunk`), so the saved plan is all a resume needs.
    let mut done = f.entries.len() - planned.len();
    for chunk in planned.chunks(CHUNK) {
        promote_chunk(region, f, chunk).await?;
        done += chunk.len();
        tracing::info!(region = %region.region, from = %f.from_region, done, of = f.entries.len(), "Region failover progress");
    }
    let promoted: Vec<String> = f
        .entries
        .iter()
        .filter(|e| e.state == EntryState::Promoted)
        .map(|e| e.arn.clone())
        .collect();
    // What the old primary announced about them is in the report now.
    region.store.delete_heads(&promoted).await?;
    f.finished_ms = Some(region.now_ms());
    save(region, f).await?;
    tracing::warn!(region = %region.region, from = %f.from_region, promoted = promoted.len(), "Region failover complete");
    Ok(())
}

/// One transaction promoting every secret of `chunk` still a replica of its planned primary;
/// when it loses a race (a sync applied meanwhile), each is promoted on its own.
async fn promote_chunk(region: &RegionService, f: &mut Failover, chunk: &[usize]) -> Result<()> {
    for attempt in 0..3 {
        let mut changes = Vec::new();
        let mut outbox = Vec::new();
        let mut promoting = Vec::new();
        for &i in chunk {
            let e = &f.entries[i];
            match region.store.load_secret_by_arn(&e.arn).await? {
                Some(s) if is_replica_of(&s, &e.primary_arn) => {
                    let (c, o) = crate::ops::stop_replication_to_replica::promotion(region, s)?;
                    changes.extend(c);
                    outbox.extend(o);
                    promoting.push(i);
                }
                // Promoted before a crash (the detachment is recorded) or by someone else.
                Some(_) | None => {
                    let promoted = region
                        .store
                        .load_detachment(&e.arn)
                        .await?
                        .is_some_and(|d| {
                            d.primary_arn == e.primary_arn && d.detached_ms >= f.started_ms
                        });
                    f.entries[i].state = if promoted {
                        EntryState::Promoted
                    } else {
                        EntryState::NotReplica
                    };
                }
            }
        }
        if promoting.is_empty() {
            return Ok(());
        }
        match region.store.commit_with(changes, outbox).await {
            Ok(()) => {
                region.notify_outbox();
                for i in promoting {
                    f.entries[i].state = EntryState::Promoted;
                }
                return Ok(());
            }
            Err(coffer_store::StoreError::Conflict) if attempt < 2 => continue,
            Err(coffer_store::StoreError::Conflict) => {
                for i in promoting {
                    let e = f.entries[i].clone();
                    f.entries[i].state = promote_one(region, &e).await?;
                }
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn promote_one(region: &RegionService, e: &Entry) -> Result<EntryState> {
    crate::secret::with_retry(|| async {
        match region.store.load_secret_by_arn(&e.arn).await? {
            Some(s) if is_replica_of(&s, &e.primary_arn) => {
                crate::ops::stop_replication_to_replica::promote(region, s).await?;
                Ok(EntryState::Promoted)
            }
            _ => Ok(EntryState::NotReplica),
        }
    })
    .await
}

fn is_replica_of(secret: &Secret, primary_arn: &str) -> bool {
    matches!(state(secret), Some(ReplicationState::Replica { primary_arn: p, .. }) if p == primary_arn)
}

/// The input of `Coffer.FailoverRegion`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct FailoverInput {
    pub from_region: Option<String>,
}

/// `Coffer.FailoverRegion` (the API, the CLI and the console's "Fail over" all run this).
pub async fn failover_region(
    region: &RegionService,
    caller: &Caller,
    input: FailoverInput,
) -> Result<Report> {
    let mut v = crate::validate::Violations::new();
    v.required(&input.from_region, "fromRegion");
    v.finish()?;
    run(region, caller, &input.from_region.unwrap_or_default()).await
}

operations! {
    /// `X-Amz-Target: Coffer.<operation>`: Coffer's own operations (not part of AWS's API),
    /// signed with SigV4 like any call (credential scope service `secretsmanager`, so their
    /// audit records are Secrets Manager's). Their `coffer:` actions are names only: each is
    /// authorized by the Secrets Manager actions of what it does.
    pub enum Operation in "coffer", "secretsmanager.amazonaws.com" {
        GetReplicationPoint: read,
        FailoverRegion: change,
        FailbackRegion: change,
    }
}

/// Runs Coffer's operation `operation`. FailbackRegion talks to the old primary Region's node
/// through the replication transport, which core does not know: the caller passes it as
/// `failback` (not polled unless the operation is FailbackRegion).
pub async fn dispatch(
    region: &RegionService,
    caller: &Caller,
    operation: &str,
    body: &[u8],
    failback: impl Future<Output = Result<Vec<u8>>>,
) -> Result<Vec<u8>> {
    match named(operation, || {
        format!(
            "Operation {operation} is not one of Coffer's operations (GetReplicationPoint, FailoverRegion)."
        )
    })? {
        Operation::GetReplicationPoint => {
            authorize(
                region,
                caller,
                &Access::new(SecretsManager::ListSecrets.action()),
                Target::Everything,
            )?;
            let links = replication_points(region).await?;
            Ok(serde_json::to_vec(&serde_json::json!({
                "Region": region.region,
                "Links": links,
            }))
            .expect("serializes"))
        }
        Operation::FailoverRegion => {
            let report = failover_region(region, caller, crate::ops::parse(body)?).await?;
            Ok(serde_json::to_vec(&report).expect("serializes"))
        }
        Operation::FailbackRegion => failback.await,
    }
}
