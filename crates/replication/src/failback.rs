//! `Coffer.FailbackRegion` (docs/failover.md), run on the node of the failed-over Region R once
//! the old primary Region P is reachable again. It covers the secrets R promoted in its last
//! failover from P.
//!
//! - **Dry run**: asks P what its copies hold (`inspect`: versions and labels, never values)
//!   and lists, per secret, P's versions that R's promoted secret does not have (the diverged
//!   writes: made in P after the promotion, or made before it and never arrived) and whether
//!   P changed the copy at all since.
//! - **Overwrite**: P's copies become replicas of R's promoted secrets: R replicates each to P
//!   with ForceOverwriteReplicaSecret (ReplicateSecretToRegions, as the caller).
//! - **SwapRoles**: as Overwrite, then, once P holds R's latest state (`InSync`), R hands each
//!   secret back (`handback`): P's copy becomes the primary again and overwrites R's, which
//!   becomes its replica. Writes made in R between the two steps are lost: stop writers first.
//!
//! The diverged writes are in the answer, so in the audit log with it; nothing is discarded
//! before the operator has seen them in a dry run.

use std::time::Duration;

use coffer_core::failback::{
    DivergedVersion, HandbackRequest, InspectRequest, Inspected, diverged,
};
use coffer_core::failover::{EntryState, Failover};
use coffer_core::ops::replicate_secret_to_regions;
use coffer_core::replica_regions::ReplicaRegionType;
use coffer_core::replication::{Answer, KIND_HANDBACK, KIND_INSPECT, ReplicaState, replicas};
use coffer_core::{Caller, Error, ErrorCode, RegionService, Result};
use serde::{Deserialize, Serialize};

use crate::topology::Topology;
use crate::transport::{SendError, Transport};

/// ARNs per `inspect` message (bounds the message and the answer).
const INSPECT_BATCH: usize = 100;
/// How long SwapRoles waits for P to hold R's latest state before handing secrets back.
const SWAP_WAIT: Duration = Duration::from_secs(60);

#[derive(Deserialize, Serialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub to_region: Option<String>,
    /// `Overwrite` or `SwapRoles`; not needed for a dry run.
    pub mode: Option<String>,
    pub dry_run: Option<bool>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    pub region: String,
    pub to_region: String,
    pub failover_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    pub dry_run: bool,
    pub diverged_version_count: usize,
    pub secrets: Vec<SecretReport>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct SecretReport {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    /// The copy in the old primary Region.
    #[serde(rename = "PrimaryCopyARN")]
    pub copy_arn: String,
    /// What was (or, in a dry run, would be) done: `Replicating`, `AlreadyReplica`,
    /// `HandedBack`, `Waiting`, `Refused`, `Failed`, `DeletedHere`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub diverged_versions: Vec<DivergedVersion>,
    /// The old primary changed its copy (a new version or not) after the promotion.
    pub changed_in_primary_after_promotion: bool,
}

fn invalid(message: String) -> Error {
    Error::new(ErrorCode::InvalidRequest, message)
}

async fn ask<T: for<'de> Deserialize<'de>>(
    topology: &Topology,
    transport: &Transport,
    region: &RegionService,
    to: &str,
    kind: &str,
    body: &impl Serialize,
) -> Result<T> {
    let plaintext = serde_json::to_vec(body).expect("request serializes");
    let answer = transport
        .send(topology, &region.region, to, kind, &plaintext)
        .await
        .map_err(|e| {
            let (SendError::Network(m) | SendError::NotEnabled(m)) = e;
            invalid(format!(
                "{to} cannot be reached, and failback needs it ({m}). Run it again once {to} is back."
            ))
        })?;
    serde_json::from_slice(&answer).map_err(|e| {
        Error::internal_from(
            "the old primary Region answered with something unreadable",
            e,
        )
    })
}

pub async fn run(
    topology: &Topology,
    region: &RegionService,
    caller: &Caller,
    body: &[u8],
) -> Result<Vec<u8>> {
    let input: Input = coffer_core::ops::parse(body)?;
    let mut v = coffer_core::validate::Violations::new();
    v.required(&input.to_region, "toRegion");
    let dry_run = input.dry_run.unwrap_or(false);
    if !dry_run {
        v.required(&input.mode, "mode");
    }
    v.one_of(input.mode.as_deref(), "mode", &["Overwrite", "SwapRoles"]);
    v.finish()?;
    let to = input.to_region.clone().unwrap_or_default();
    // The same permission as the failover it undoes, and each secret's ReplicateSecretToRegions
    // is checked again when it runs.
    coffer_core::authorize::authorize(
        region,
        caller,
        &coffer_core::authorize::Access::new("secretsmanager:ReplicateSecretToRegions"),
        coffer_core::authorize::Target::Everything,
    )?;
    let failover: Failover = coffer_core::failover::saved(region)
        .await?
        .into_iter()
        .rev()
        .find(|f| f.from_region == to && f.finished_ms.is_some())
        .ok_or_else(|| {
            invalid(format!(
                "{} has no completed failover from {to} to fail back. Run `coffer region failover` first.",
                region.region
            ))
        })?;
    let transport = Transport::new();
    let entries: Vec<_> = failover
        .entries
        .iter()
        .filter(|e| e.state == EntryState::Promoted)
        .collect();
    let mut copies: Vec<Inspected> = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(INSPECT_BATCH) {
        let request = InspectRequest {
            arns: chunk.iter().map(|e| e.primary_arn.clone()).collect(),
        };
        let answer: Vec<Inspected> =
            ask(topology, &transport, region, &to, KIND_INSPECT, &request).await?;
        if answer.len() != request.arns.len() {
            return Err(Error::internal(
                "the old primary Region answered inspect incompletely",
            ));
        }
        copies.extend(answer);
    }
    let mode = input.mode.clone();
    let mut secrets = Vec::with_capacity(entries.len());
    for (entry, copy) in entries.iter().zip(&copies) {
        let mut report = SecretReport {
            arn: entry.arn.clone(),
            name: entry.name.clone(),
            copy_arn: entry.primary_arn.clone(),
            status: "Replicating",
            message: None,
            diverged_versions: Vec::new(),
            changed_in_primary_after_promotion: false,
        };
        let Some(promoted) = region.store.load_secret_by_arn(&entry.arn).await? else {
            report.status = "DeletedHere";
            secrets.push(report);
            continue;
        };
        let (versions, changed) = diverged(&promoted, copy, failover.started_ms);
        report.diverged_versions = versions;
        report.changed_in_primary_after_promotion = changed;
        let replicated_to_copy = replicas(&promoted).iter().any(|r| r.region == to);
        let handed_back = matches!(
            coffer_core::replication::state(&promoted),
            Some(coffer_core::replication::ReplicationState::Replica { primary_arn, .. })
                if primary_arn == entry.primary_arn
        );
        if handed_back {
            report.status = "HandedBack";
        } else if copy.primary_arn.as_deref() == Some(entry.arn.as_str()) || replicated_to_copy {
            report.status = "AlreadyReplica";
        } else if copy.replica_regions.contains(&region.region) {
            report.status = "Waiting";
            report.message = Some(format!(
                "{to} has not yet heard of the promotion (it still lists {} as a replica); run the failback again in a few seconds.",
                region.region
            ));
        } else if !copy.replica_regions.is_empty() || copy.primary_region.is_some() {
            report.status = "Refused";
            report.message = Some(format!(
                "The copy in {to} is itself replicated ({}); remove those replicas in {to} first (RemoveRegionsFromReplication).",
                if copy.replica_regions.is_empty() {
                    format!("from {}", copy.primary_region.clone().unwrap_or_default())
                } else {
                    format!("to {}", copy.replica_regions.join(", "))
                }
            ));
        }
        secrets.push(report);
    }
    if !dry_run {
        for s in secrets.iter_mut().filter(|s| s.status == "Replicating") {
            let done = replicate_secret_to_regions::run(
                region,
                caller,
                replicate_secret_to_regions::Input {
                    secret_id: Some(s.arn.clone()),
                    add_replica_regions: Some(vec![ReplicaRegionType {
                        region: Some(to.clone()),
                        kms_key_id: None,
                    }]),
                    force_overwrite_replica_secret: Some(true),
                },
            )
            .await;
            if let Err(e) = done {
                // The report carries the message; a failure of this node is logged here, once.
                if e.is_server_error() {
                    tracing::error!(arn = %s.arn, error = %coffer_core::error::Chain(&e), "Failback could not replicate a secret back");
                }
                s.status = "Failed";
                s.message = Some(e.message);
            }
        }
        if mode.as_deref() == Some("SwapRoles") {
            swap(topology, &transport, region, &to, &mut secrets).await?;
        }
    }
    let diverged_version_count = secrets.iter().map(|s| s.diverged_versions.len()).sum();
    tracing::warn!(region = %region.region, to, dry_run, mode = ?mode, secrets = secrets.len(), diverged_version_count, "Region failback");
    let report = Report {
        region: region.region.clone(),
        to_region: to,
        failover_id: failover.id,
        mode,
        dry_run,
        diverged_version_count,
        secrets,
    };
    Ok(serde_json::to_vec(&report).expect("report serializes"))
}

/// Hands each secret P now replicates back to P, once P holds its latest state.
async fn swap(
    topology: &Topology,
    transport: &Transport,
    region: &RegionService,
    to: &str,
    secrets: &mut [SecretReport],
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + SWAP_WAIT;
    for s in secrets
        .iter_mut()
        .filter(|s| matches!(s.status, "Replicating" | "AlreadyReplica"))
    {
        // P's copy must hold R's latest state: its entry InSync at the state it was asked for.
        let ready = loop {
            let secret = region.store.load_secret_by_arn(&s.arn).await?;
            let entry = secret
                .as_ref()
                .and_then(|x| replicas(x).into_iter().find(|r| r.region == to));
            match (secret, entry) {
                (Some(secret), Some(e)) if e.status == ReplicaState::InSync => {
                    break Some((secret, e.target_seq));
                }
                // Already handed back (this secret is a replica of P's copy now).
                (Some(secret), None) if coffer_core::replication::is_replica(&secret) => {
                    break None;
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    s.status = "Waiting";
                    s.message = Some(format!(
                        "{to} did not hold the latest state within {} s; run the failback again.",
                        SWAP_WAIT.as_secs()
                    ));
                    break None;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let Some((secret, seq)) = ready else {
            if s.status != "Waiting" {
                s.status = "HandedBack";
            }
            continue;
        };
        let request = HandbackRequest {
            primary_arn: secret.record.arn.clone(),
            seq,
            kms_key_id: secret.record.kms_key_id.clone(),
        };
        let answer: Answer = ask(topology, transport, region, to, KIND_HANDBACK, &request).await?;
        match answer {
            Answer::Done => s.status = "HandedBack",
            Answer::Failed { message, .. } => {
                s.status = "Failed";
                s.message = Some(message);
            }
            other => {
                s.status = "Failed";
                s.message = Some(format!("unexpected answer {other:?}"));
            }
        }
    }
    Ok(())
}
