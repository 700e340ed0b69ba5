//! Rotation state of a secret and the bookkeeping around one rotation run. The four steps
//! themselves are run by `coffer-rotation`, which calls the rotation function (a built-in
//! rotator or a configured HTTP function) and, through it, the ordinary API.
//!
//! Due rotations are rows of the outbox addressed to the secret's own Region (kind `rotate`,
//! due at the window's start): they survive restarts, are claimed under a lease so two nodes
//! never run one at once, and are retried with backoff — the same machinery as replication.

use coffer_store::{OutboxEntry, OutboxRow, Secret, VersionRecord};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Timestamp;
use crate::region::RegionService;
use crate::schedule::{Schedule, Window};
use crate::secret::{
    AWSCURRENT, AWSPENDING, Failure, attach_stages, commit_update_with, with_retry,
};

pub use crate::outbox::KIND_ROTATE;

/// The rules as the user gave them (and as DescribeSecret shows them).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RotationRules {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatically_after_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
}

impl RotationRules {
    pub fn schedule(&self) -> crate::Result<Schedule> {
        Schedule::parse(
            self.automatically_after_days,
            self.schedule_expression.as_deref(),
            self.duration.as_deref(),
        )
    }
}

/// A rotation in progress: the AWSPENDING version `token`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Pending {
    pub token: String,
    pub started_ms: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The node running the steps now, and until when its run lease holds. A run can outlast
    /// the outbox row's lease (four steps of up to a minute each); this lease keeps a second
    /// node from starting the same steps meanwhile.
    #[serde(default)]
    pub running: Option<(String, i64)>,
}

/// How long a node may run the four steps before another may take over.
pub const RUN_LEASE_MS: i64 = 5 * 60 * 1000;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct RotationState {
    pub enabled: bool,
    pub lambda_arn: Option<String>,
    pub rules: Option<RotationRules>,
    pub last_rotated_ms: Option<i64>,
    pub next_window: Option<(i64, i64)>,
    /// Bumped by every RotateSecret/CancelRotateSecret: queued runs of an older generation
    /// are stale and dropped.
    pub generation: i64,
    pub pending: Option<Pending>,
}

pub fn state(secret: &Secret) -> Option<RotationState> {
    let json = secret.record.rotation.as_deref()?;
    match serde_json::from_str(json) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(arn = %secret.record.arn, error = %e, "Unreadable rotation state");
            None
        }
    }
}

pub fn set_state(secret: &mut Secret, state: &RotationState) {
    secret.record.rotation = Some(serde_json::to_string(state).expect("rotation state"));
}

impl RotationState {
    /// Plans the next scheduled window after `after_ms`; `None` without rules.
    pub fn plan(&mut self, after_ms: i64) -> Option<Window> {
        let window = self.rules.as_ref()?.schedule().ok()?.next_window(after_ms);
        self.next_window = Some((window.start_ms, window.end_ms));
        Some(window)
    }

    /// `NextRotationDate`: the end of the next window, while rotation is enabled [D].
    pub fn next_rotation_date(&self) -> Option<Timestamp> {
        self.next_window
            .filter(|_| self.enabled)
            .map(|(_, end)| Timestamp(end))
    }
}

/// The queued run of `secret`'s rotation. It is queued due now; when the runner finds the
/// window has not started it reschedules the row for the window's start.
pub fn run_entry(secret: &Secret, region: &str, generation: i64) -> OutboxEntry {
    crate::outbox::OutboxMessage::Rotate { generation }.entry(&secret.record.arn, region)
}

/// Which rotation functions exist (built-in names and configured ones). RotateSecret refuses a
/// function that does not, as AWS refuses a Lambda it cannot invoke.
pub trait RotationFunctions: Send + Sync {
    fn exists(&self, lambda_arn: &str) -> bool;
}

/// What became of one claimed `rotate` row.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// Finished, or nothing left to do: drop the row.
    Done,
    /// Not due yet: run again at `at_ms`.
    Later { at_ms: i64 },
    /// A step failed: try again with backoff (AWSCURRENT untouched).
    Retry { error: String },
}

/// Runs the rotation a `rotate` row asks for (implemented by `coffer-rotation`).
#[async_trait::async_trait]
pub trait RotationRunner: Send + Sync {
    async fn run(&self, region: &RegionService, row: &OutboxRow) -> RunOutcome;
}

/// The start of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// Run the steps for the AWSPENDING version `token` with function `lambda_arn`.
    Run {
        token: String,
        lambda_arn: String,
    },
    Later {
        at_ms: i64,
    },
    /// Stale row, rotation disabled or secret gone.
    Nothing,
}

/// Starts (or resumes) the rotation a row of generation `generation` asks for: creates the
/// value-less AWSPENDING version when the window has come, and takes the run lease for `node`.
pub async fn begin(
    region: &RegionService,
    arn: &str,
    generation: i64,
    node: &str,
) -> Result<Begin> {
    with_retry(|| async {
        let Some(mut secret) = region.store.load_secret_by_arn(arn).await? else {
            return Ok(Begin::Nothing);
        };
        let Some(mut st) = state(&secret) else {
            return Ok(Begin::Nothing);
        };
        if st.generation != generation
            || secret.record.deleted_ms.is_some()
            || crate::replication::is_replica(&secret)
        {
            return Ok(Begin::Nothing);
        }
        let Some(lambda_arn) = st.lambda_arn.clone() else {
            return Ok(Begin::Nothing);
        };
        let now = region.now_ms();
        if let Some(p) = &mut st.pending {
            if let Some((owner, until)) = &p.running
                && owner != node
                && *until > now
            {
                return Ok(Begin::Later { at_ms: *until });
            }
            p.running = Some((node.to_string(), now + RUN_LEASE_MS));
            let token = p.token.clone();
            let expected = secret.record.row_version;
            set_state(&mut secret, &st);
            commit_update_with(region, secret, expected, Vec::new(), Vec::new(), Vec::new())
                .await?;
            return Ok(Begin::Run { token, lambda_arn });
        }
        if !st.enabled {
            return Ok(Begin::Nothing);
        }
        match st.next_window {
            Some((start, _)) if now < start => return Ok(Begin::Later { at_ms: start }),
            Some(_) => {}
            None => return Ok(Begin::Nothing),
        }
        let token = uuid::Uuid::new_v4().to_string();
        let expected = secret.record.row_version;
        let changed = add_placeholder(&mut secret, &token, now);
        st.pending = Some(Pending {
            token: token.clone(),
            started_ms: now,
            attempts: 0,
            last_error: None,
            running: Some((node.to_string(), now + RUN_LEASE_MS)),
        });
        set_state(&mut secret, &st);
        let outbox = crate::replication::sync_entries(&secret, &[]);
        commit_update_with(region, secret, expected, changed, Vec::new(), outbox).await?;
        Ok(Begin::Run { token, lambda_arn })
    })
    .await
}

/// Adds the value-less AWSPENDING version `token`; returns the versions whose labels changed.
pub fn add_placeholder(secret: &mut Secret, token: &str, now: i64) -> Vec<VersionRecord> {
    if !secret.versions.iter().any(|v| v.version_id == token) {
        secret.versions.push(VersionRecord {
            secret_arn: secret.record.arn.clone(),
            version_id: token.to_string(),
            stages: Vec::new(),
            created_ms: now,
            last_accessed_day: None,
            kms_key_arn: None,
            value_kind: coffer_store::ValueKind::None,
            wrapped_data_key: None,
            ciphertext: None,
        });
    }
    let touched = attach_stages(secret, token, &[AWSPENDING.to_string()]);
    secret
        .versions
        .iter()
        .filter(|v| touched.contains(&v.version_id))
        .cloned()
        .collect()
}

/// Records a successful run: the new version must hold AWSCURRENT (finishSecret moved it);
/// AWSPENDING is removed, LastRotatedDate set, and the next window queued.
pub async fn complete(region: &RegionService, arn: &str, token: &str) -> Result<()> {
    with_retry(|| async {
        let Some(mut secret) = region.store.load_secret_by_arn(arn).await? else {
            return Ok(());
        };
        let Some(mut st) = state(&secret) else {
            return Ok(());
        };
        let is_current = secret
            .versions
            .iter()
            .any(|v| v.version_id == token && v.stages.iter().any(|s| s == AWSCURRENT));
        if !is_current {
            return Err(Failure::Api(Error::invalid_request(
                "finishSecret did not move AWSCURRENT to the new version",
            )));
        }
        let expected = secret.record.row_version;
        let now = region.now_ms();
        let mut changed = Vec::new();
        for v in secret.versions.iter_mut().filter(|v| v.version_id == token) {
            if v.stages.iter().any(|s| s == AWSPENDING) {
                v.stages.retain(|s| s != AWSPENDING);
                changed.push(v.clone());
            }
        }
        st.pending = None;
        st.last_rotated_ms = Some(now);
        st.next_window = None;
        let mut outbox = crate::replication::sync_entries(&secret, &[]);
        if st.enabled && st.plan(now).is_some() {
            outbox.push(run_entry(&secret, &region.region, st.generation));
        }
        set_state(&mut secret, &st);
        commit_update_with(region, secret, expected, changed, Vec::new(), outbox).await?;
        Ok(())
    })
    .await
}

/// Records a failed attempt (AWSCURRENT untouched); returns the number of attempts so far.
pub async fn fail(region: &RegionService, arn: &str, error: &str) -> Result<i64> {
    with_retry(|| async {
        let Some(mut secret) = region.store.load_secret_by_arn(arn).await? else {
            return Ok(0);
        };
        let Some(mut st) = state(&secret) else {
            return Ok(0);
        };
        let Some(p) = st.pending.as_mut() else {
            return Ok(0);
        };
        p.attempts += 1;
        p.last_error = Some(error.to_string());
        p.running = None;
        let attempts = p.attempts;
        let expected = secret.record.row_version;
        set_state(&mut secret, &st);
        commit_update_with(region, secret, expected, Vec::new(), Vec::new(), Vec::new()).await?;
        Ok(attempts)
    })
    .await
}
