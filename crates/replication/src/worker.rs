//! Drains a Region's outbox: claims due rows under a lease, delivers them per destination
//! (destinations progress independently, so one unreachable Region never delays another),
//! records the answer in the primary's ReplicationStatus, and backs off on network failures.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coffer_core::RegionService;
use coffer_core::error::Chain;
use coffer_core::outbox::OutboxMessage;
use coffer_core::replication::{
    self, Answer, FailureCause, KIND_ACCESS, KIND_HEADS, KIND_SYNC, KIND_SYNC_BATCH, SyncMessage,
};
use coffer_core::rotation::{KIND_ROTATE, RunOutcome};
use coffer_retry::Backoff;
use coffer_store::OutboxRow;
use futures_util::future::join_all;

use crate::receive::Notice;
use crate::topology::Topology;
use crate::transport::{SendError, Transport};

const POLL: Duration = Duration::from_millis(500);
const LEASE_MS: i64 = 30_000;
/// A failed delivery's next attempt: 200 ms after the first failure, doubling, at most 5 s, the
/// longest wait between two attempts of one row: a link that heals is used again within this
/// time (each lane's attempts are its own, so retrying costs the other Regions nothing). No
/// jitter: the pause is written into the row, and rows fail at their own moments.
const DELIVERY_RETRIES: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
/// A failed rotation's next attempt: 2 s after the first failure, doubling, then settling at
/// five minutes.
const ROTATION_RETRIES: Backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
/// Secrets per `sync-batch` message (bounds the message size and the replica transaction).
const MAX_BATCH: usize = 64;
/// Deliveries of one Region in flight at once: while one is on the wire the next claim goes
/// out, so a new write never waits for a whole earlier batch to be applied and recorded.
const MAX_IN_FLIGHT: usize = 4;
/// How often the queue-depth gauges are refreshed while claims keep finding rows.
const DEPTH_EVERY: Duration = Duration::from_millis(250);

/// Runs until `stop` turns true: for each Region of this node, one lane per destination Region.
pub async fn run(topology: Arc<Topology>, stop: tokio::sync::watch::Receiver<bool>) {
    let transport = Arc::new(Transport::new());
    let mut tasks = Vec::new();
    for region in topology.local.values() {
        tasks.push(tokio::spawn(region_loop(
            topology.clone(),
            region.clone(),
            transport.clone(),
            stop.clone(),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Wakes a Region's lanes when it commits rows, starts a lane for each destination that has
/// rows (Regions of the deployment get theirs at once; a Region no node serves gets one when
/// rows for it appear, to fail them as "not enabled"), and keeps the queue-depth gauges.
async fn region_loop(
    topology: Arc<Topology>,
    region: Arc<RegionService>,
    transport: Arc<Transport>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let notify = region.outbox_notifier();
    // A lane that found nothing to claim asks for the gauges at once (a drained queue shows 0).
    let drained = Arc::new(tokio::sync::Notify::new());
    let lane_stop = stop.clone();
    let mut lanes: BTreeMap<String, Lane> = BTreeMap::new();
    let start = |dest: &str, lanes: &mut BTreeMap<String, Lane>| {
        match lanes.get(dest) {
            Some(lane) if !lane.task.is_finished() => return,
            // A lane ends only when the node stops, or by a panic: then it starts again (its
            // rows' leases run out and they are claimed anew), and the panic is in the log.
            Some(_) => tracing::error!(
                region = %region.region,
                dest,
                "The replication lane to {dest} stopped unexpectedly; restarting it"
            ),
            None => {}
        }
        let wake = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(lane_loop(
            topology.clone(),
            region.clone(),
            transport.clone(),
            dest.to_string(),
            wake.clone(),
            drained.clone(),
            lane_stop.clone(),
        ));
        lanes.insert(dest.to_string(), Lane { wake, task });
    };
    let mut known: Vec<&String> = topology.local.keys().chain(topology.peers.keys()).collect();
    known.sort();
    for dest in known {
        start(dest, &mut lanes);
    }
    let mut depths_at: Option<std::time::Instant> = None;
    let mut refresh = true;
    loop {
        if *stop.borrow() {
            break;
        }
        if refresh || depths_at.is_none_or(|at| at.elapsed() >= DEPTH_EVERY) {
            depths_at = Some(std::time::Instant::now());
            match region.store.replication_depth(&region.region).await {
                Ok(depths) => {
                    topology.metrics.set_depths(&region.region, &depths);
                    for (dest, n) in &depths {
                        if *n > 0 {
                            start(dest, &mut lanes);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(region = %region.region, error = %Chain(&e), "Replication queue depth could not be read; will retry");
                }
            }
        }
        // A commit (or the poll) wakes every lane; a lane that drained its queue only asks for
        // the gauges (waking the lanes then would make them claim again, find nothing, and
        // report drained again: a loop).
        refresh = tokio::select! {
            _ = notify.notified() => false,
            _ = drained.notified() => true,
            _ = tokio::time::sleep(POLL) => false,
            _ = stop.changed() => break,
        };
        let ended: Vec<String> = lanes
            .iter()
            .filter(|(_, lane)| lane.task.is_finished())
            .map(|(dest, _)| dest.clone())
            .collect();
        if !ended.is_empty() && !*stop.borrow() {
            for dest in &ended {
                start(dest, &mut lanes);
            }
        }
        if !refresh {
            for lane in lanes.values() {
                lane.wake.notify_one();
            }
        }
    }
    for lane in lanes.into_values() {
        let _ = lane.task.await;
    }
}

struct Lane {
    wake: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// Drains the rows of one (source Region, destination Region): its own claims, its own
/// deliveries in flight, its own backoff. A destination that refuses, black-holes or crawls
/// holds up only its own lane (the transport's connection pool is per destination too).
async fn lane_loop(
    topology: Arc<Topology>,
    region: Arc<RegionService>,
    transport: Arc<Transport>,
    dest: String,
    wake: Arc<tokio::sync::Notify>,
    drained: Arc<tokio::sync::Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Whether the last claim found rows: the first empty claim after some reports the queue
    // drained (once, not on every idle wake-up).
    let mut had_rows = false;
    loop {
        if *stop.borrow() {
            break;
        }
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = stop.changed() => break,
        };
        let rows = match claim(&topology, &region, Some(&dest)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(region = %region.region, dest, error = %Chain(&e), "Replication outbox could not be read; will retry");
                Vec::new()
            }
        };
        if rows.is_empty() && std::mem::take(&mut had_rows) {
            drained.notify_one();
        }
        had_rows |= !rows.is_empty();
        // A secret with a delivery in flight waits for it, so one secret's messages stay in
        // order; its rows are leased by this node, so a later claim (woken when the delivery
        // in flight ends) picks them up again.
        let keys: HashSet<String> = {
            let mut busy = busy.lock().unwrap_or_else(|e| e.into_inner());
            let free: HashSet<String> = rows
                .iter()
                .map(|r| r.entry.secret_arn.clone())
                .filter(|k| !busy.contains(k))
                .collect();
            busy.extend(free.iter().cloned());
            free
        };
        let rows: Vec<OutboxRow> = rows
            .into_iter()
            .filter(|r| keys.contains(&r.entry.secret_arn))
            .collect();
        if rows.is_empty() {
            drop(slot);
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => break,
            }
            continue;
        }
        let (topology, region, transport) = (topology.clone(), region.clone(), transport.clone());
        let in_flight = InFlight {
            busy: busy.clone(),
            keys,
            wake: wake.clone(),
            dest: dest.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = deliver_rows(&topology, &region, &transport, rows).await {
                tracing::warn!(region = %region.region, error = %Chain(&e), "Replication bookkeeping failed; the rows will be delivered again");
            }
            drop(in_flight);
            drop(slot);
        });
    }
    // Let the deliveries in flight finish before the stores close.
    let _ = slots.acquire_many(MAX_IN_FLIGHT as u32).await;
}

/// The secrets of one delivery in flight. Dropped when the delivery ends, however it ends
/// (a panic included): the secrets leave the lane's busy set and the lane claims again, so a
/// delivery that panicked does not keep its secrets from ever being delivered (their rows are
/// claimed again once their lease ends). A panic is logged.
struct InFlight {
    busy: Arc<Mutex<HashSet<String>>>,
    keys: HashSet<String>,
    wake: Arc<tokio::sync::Notify>,
    dest: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(
                dest = %self.dest,
                secrets = self.keys.len(),
                "A replication delivery panicked; its rows will be delivered again when their lease ends"
            );
        }
        // A poisoned lock only means another delivery panicked while holding it; the set is
        // still a set.
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.retain(|k| !self.keys.contains(k));
        drop(busy);
        self.wake.notify_one();
    }
}

async fn claim(
    topology: &Topology,
    region: &RegionService,
    dest: Option<&str>,
) -> coffer_core::Result<Vec<OutboxRow>> {
    let now = region.now_ms();
    Ok(region
        .store
        .claim_outbox_to(now, &topology.node_id, LEASE_MS, 200, dest)
        .await?)
}

/// Claims and delivers one batch (every destination); returns how many rows were handled.
pub async fn drain_once(
    topology: &Topology,
    region: &RegionService,
    transport: &Transport,
) -> coffer_core::Result<usize> {
    let rows = claim(topology, region, None).await?;
    let depths = region.store.replication_depth(&region.region).await?;
    topology.metrics.set_depths(&region.region, &depths);
    let handled = rows.len();
    deliver_rows(topology, region, transport, rows).await?;
    Ok(handled)
}

/// Delivers claimed rows: each destination's on its own, due rotations alongside.
async fn deliver_rows(
    topology: &Topology,
    region: &RegionService,
    transport: &Transport,
    rows: Vec<OutboxRow>,
) -> coffer_core::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let (rotations, rows): (Vec<OutboxRow>, Vec<OutboxRow>) = rows
        .into_iter()
        .partition(|r| r.entry.kind == KIND_ROTATE && r.entry.dest_region == region.region);
    let mut by_dest: BTreeMap<String, Vec<OutboxRow>> = BTreeMap::new();
    for row in rows {
        by_dest
            .entry(row.entry.dest_region.clone())
            .or_default()
            .push(row);
    }
    let deliveries = by_dest
        .into_iter()
        .map(|(dest, rows)| deliver_all(topology, region, transport, dest, rows));
    let runs = rotations.iter().map(|row| rotate(topology, region, row));
    let (delivered, ran) = tokio::join!(join_all(deliveries), join_all(runs));
    for result in delivered.into_iter().chain(ran) {
        result?;
    }
    Ok(())
}

/// Runs one due rotation and settles its row.
async fn rotate(
    topology: &Topology,
    region: &RegionService,
    row: &OutboxRow,
) -> coffer_core::Result<()> {
    let arn = row.entry.secret_arn.as_str();
    let finish = || {
        region
            .store
            .finish_outbox(arn, &region.region, KIND_ROTATE, row.id)
    };
    let Some(runner) = &topology.rotation else {
        finish().await?;
        return Ok(());
    };
    match runner.run(region, row).await {
        RunOutcome::Done => finish().await?,
        RunOutcome::Later { at_ms } => {
            region
                .store
                .retry_outbox(row.id, row.attempts, at_ms, row.first_failure_ms)
                .await?
        }
        RunOutcome::Retry { error } => {
            let now = region.now_ms();
            let attempts = row.attempts + 1;
            let backoff = pause_ms(&ROTATION_RETRIES, attempts);
            tracing::warn!(region = %region.region, arn, attempts, reason = %error, "Rotation failed; AWSCURRENT is unchanged and the rotation will be retried");
            region
                .store
                .retry_outbox(
                    row.id,
                    attempts,
                    now + backoff,
                    row.first_failure_ms.or(Some(now)),
                )
                .await?;
        }
    }
    Ok(())
}

/// How one destination's claimed rows go out (see [`plan_delivery`]); each row with its
/// `force` (ForceOverwriteReplicaSecret).
#[derive(Debug, Default)]
struct DeliveryPlan {
    /// A secret's rows in order, when it has several (delivered one after another).
    chains: Vec<Vec<(OutboxRow, bool)>>,
    /// Single syncs of different secrets, at most [`MAX_BATCH`] per `sync-batch` message.
    batches: Vec<Vec<(OutboxRow, bool)>>,
    /// Single syncs held back while the link is down (all but one, the probe).
    deferred: Vec<Vec<(OutboxRow, bool)>>,
}

/// Plans the delivery of one destination's rows, in claim order. Rows of the same secret and
/// kind collapse into one delivery of the current state (the newest row settles the older
/// ones).
fn plan_delivery(rows: Vec<OutboxRow>, link_down: bool) -> DeliveryPlan {
    let mut merged: Vec<(OutboxRow, bool)> = Vec::new();
    for row in rows {
        let force = matches!(
            OutboxMessage::from_entry(&row.entry),
            Ok(OutboxMessage::Sync { force: true })
        );
        // Merge only into the latest row of the same secret, and only when it is of the same
        // kind: a removal between two syncs must stay between them.
        let last_of_secret = merged
            .iter_mut()
            .rev()
            .find(|(m, _)| m.entry.secret_arn == row.entry.secret_arn)
            .filter(|(m, _)| m.entry.kind == row.entry.kind && row.entry.kind != KIND_ACCESS);
        match last_of_secret {
            Some((m, f)) => {
                *f |= force;
                if row.id > m.id {
                    let first_failure = m.first_failure_ms.or(row.first_failure_ms);
                    let attempts = m.attempts.max(row.attempts);
                    let enqueued = m.enqueued_ms.min(row.enqueued_ms);
                    *m = row;
                    m.first_failure_ms = first_failure;
                    m.attempts = attempts;
                    m.enqueued_ms = enqueued;
                }
            }
            None => merged.push((row, force)),
        }
    }
    // Secrets progress independently: deliveries of different secrets are in flight together
    // (the destination applies them concurrently); one secret's rows stay in order.
    let mut per_secret: Vec<Vec<(OutboxRow, bool)>> = Vec::new();
    for item in merged {
        match per_secret
            .iter_mut()
            .find(|g| g[0].0.entry.secret_arn == item.0.entry.secret_arn)
        {
            Some(g) => g.push(item),
            None => per_secret.push(vec![item]),
        }
    }
    // Secrets with a single sync to deliver (the steady state under write load) travel
    // together: one sealed message and one replica transaction per batch, so the replica's
    // store makes one durable commit for many secrets.
    let (mut single_syncs, chains): (Vec<_>, Vec<_>) = per_secret
        .into_iter()
        .partition(|group| group.len() == 1 && group[0].0.entry.kind == KIND_SYNC);
    // While the link is down, one sync goes out as a probe and the others are scheduled again
    // as if they had failed with the link's last error, which they would have: building,
    // sealing and sending each (every value, since the destination acknowledged none) only to
    // time out took the primary CPU that the other Regions' deliveries needed. They turn
    // `Failed` on time all the same (`retry` counts from when the link went down), and the
    // probe that gets through brings the link back: the rows are due again within their
    // backoff, as after any failure.
    let deferred = if link_down && single_syncs.len() > 1 {
        single_syncs.split_off(1)
    } else {
        Vec::new()
    };
    let mut batches: Vec<Vec<(OutboxRow, bool)>> = Vec::new();
    for (i, group) in single_syncs.into_iter().enumerate() {
        if i % MAX_BATCH == 0 {
            batches.push(Vec::new());
        }
        batches.last_mut().expect("batch").extend(group);
    }
    DeliveryPlan {
        chains,
        batches,
        deferred,
    }
}

/// Delivers one destination's rows in order, as [`plan_delivery`] plans them.
async fn deliver_all(
    topology: &Topology,
    region: &RegionService,
    transport: &Transport,
    dest: String,
    rows: Vec<OutboxRow>,
) -> coffer_core::Result<()> {
    let down = topology.links.down(&region.region, &dest);
    let DeliveryPlan {
        chains,
        batches,
        deferred,
    } = plan_delivery(rows, down.is_some());
    // A sync sent over a link that is down waits out the send timeout before its failure is
    // recorded: one whose failure timeout has already passed shows `Failed` now, not up to 5 s
    // late (it is still sent, and heals the replica if the link answers).
    if let Some((_, error)) = &down {
        let sent: Vec<&OutboxRow> = batches
            .iter()
            .chain(&chains)
            .flatten()
            .map(|(row, _)| row)
            .collect();
        let overdue = sent
            .into_iter()
            .map(|row| fail_if_overdue(topology, region, &dest, row, error));
        for marked in join_all(overdue).await {
            marked?;
        }
    }
    let dest = dest.as_str();
    // A row that was not settled (it waits out a backoff, or is due again) holds back the later
    // rows of its secret: they stay leased here and are claimed again behind it, so a sync never
    // reaches a Region before the removal queued ahead of it (which would then delete the
    // replica the sync made).
    let chains = chains.into_iter().map(|group| async move {
        for (row, force) in group {
            if !deliver(topology, region, transport, dest, &row, force).await? {
                break;
            }
        }
        Ok::<(), coffer_core::Error>(())
    });
    let batches = batches
        .into_iter()
        .map(|batch| deliver_batch(topology, region, transport, dest, batch));
    let error = down.map(|(_, error)| error).unwrap_or_default();
    let deferred_arns: Vec<String> = deferred
        .iter()
        .flatten()
        .map(|(row, _)| row.entry.secret_arn.clone())
        .collect();
    let deferrals = deferred.into_iter().flatten().map(|(row, _)| {
        let error = error.clone();
        async move {
            topology
                .metrics
                .count(&region.region, dest, "deferred_link_down");
            retry(topology, region, dest, &row, error).await
        }
    });
    // The deferred syncs did not arrive either: the destination still learns their heads, as
    // it does for syncs that failed on the wire (from the stored secrets: nothing is sealed).
    let deferred_heads = async {
        let loads = deferred_arns
            .iter()
            .map(|arn| region.store.load_secret_by_arn(arn));
        let heads: Vec<coffer_core::failover::Head> = join_all(loads)
            .await
            .into_iter()
            .filter_map(|loaded| Some(coffer_core::failover::Head::from(&loaded.ok()??)))
            .collect();
        announce_heads(topology, region, transport, dest, &heads).await;
    };
    let (chains, batches, deferrals, ()) = tokio::join!(
        join_all(chains),
        join_all(batches),
        join_all(deferrals),
        deferred_heads
    );
    for result in chains.into_iter().chain(batches).chain(deferrals) {
        result?;
    }
    Ok(())
}

fn heads_of(msgs: &[SyncMessage]) -> Vec<coffer_core::failover::Head> {
    msgs.iter().map(Into::into).collect()
}

/// Delivers the syncs of several secrets in one `sync-batch` message.
async fn deliver_batch(
    topology: &Topology,
    region: &RegionService,
    transport: &Transport,
    dest: &str,
    batch: Vec<(OutboxRow, bool)>,
) -> coffer_core::Result<()> {
    let source = region.region.as_str();
    let mut rows = Vec::with_capacity(batch.len());
    let mut msgs = Vec::with_capacity(batch.len());
    for (row, force) in batch {
        let arn = row.entry.secret_arn.as_str();
        match sync_message(region, transport, dest, &row, force).await? {
            Some(msg) => {
                msgs.push(msg);
                rows.push(row);
            }
            None => {
                region
                    .store
                    .finish_outbox(arn, dest, KIND_SYNC, row.id)
                    .await?
            }
        }
    }
    if msgs.is_empty() {
        return Ok(());
    }
    let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(&msgs).expect("batch serializes"));
    let sent = transport
        .send(topology, source, dest, KIND_SYNC_BATCH, &plaintext)
        .await;
    let answers = match sent {
        Ok(answer) => match serde_json::from_slice::<Vec<Answer>>(&answer) {
            Ok(answers) if answers.len() == rows.len() => answers,
            _ => {
                let each = rows.iter().map(|row| {
                    retry(
                        topology,
                        region,
                        dest,
                        row,
                        "the answer was unreadable".into(),
                    )
                });
                for retried in join_all(each).await {
                    retried?;
                }
                return Ok(());
            }
        },
        Err(e) => {
            // All at once: their retry schedules then share one transaction of the group
            // commit (one after another, a black-holed Region's failed batches took the writer
            // for a round each and slowed every other Region's deliveries).
            let each = rows
                .iter()
                .map(|row| settle_send_error(topology, region, dest, row, e.clone()));
            for settled in join_all(each).await {
                settled?;
            }
            if matches!(e, SendError::Network(_)) {
                announce_heads(topology, region, transport, dest, &heads_of(&msgs)).await;
            }
            return Ok(());
        }
    };
    for ((row, msg), answer) in rows.iter().zip(&msgs).zip(&answers) {
        remember(transport, dest, &row.entry.secret_arn, msg, answer);
    }
    let settlements: Vec<_> = rows
        .iter()
        .zip(&msgs)
        .zip(&answers)
        .filter(|(_, answer)| **answer != Answer::Resend)
        .map(|((row, msg), answer)| replication::Settlement {
            primary_arn: &row.entry.secret_arn,
            kind: KIND_SYNC,
            row_id: row.id,
            sent_seq: msg.seq,
            sent_epoch: msg.epoch,
            answer,
        })
        .collect();
    replication::record_answers(region, dest, &settlements).await?;
    for (row, answer) in rows.iter().zip(&answers) {
        if *answer == Answer::Resend {
            resend(region, row).await?;
        }
        observe(topology, source, dest, row, answer);
    }
    Ok(())
}

/// Keeps [`Held`](crate::held::Held) up to date with a sync's answer.
fn remember(transport: &Transport, dest: &str, arn: &str, msg: &SyncMessage, answer: &Answer) {
    match answer {
        Answer::Applied { .. } => transport.held.applied(dest, msg),
        _ => transport.held.forget(arn, dest),
    }
}

/// The replica lacked a value the sync left out: the row is due again at once (not a failure:
/// no backoff, no attempt counted), and with the destination's versions forgotten the next
/// sync carries every value.
async fn resend(region: &RegionService, row: &OutboxRow) -> coffer_core::Result<()> {
    region
        .store
        .retry_outbox(row.id, row.attempts, region.now_ms(), row.first_failure_ms)
        .await?;
    Ok(())
}

/// The sync message for `row`, or `None` when there is nothing to send any more (the secret
/// is gone, or `dest` is no longer one of its replicas).
async fn sync_message(
    region: &RegionService,
    transport: &Transport,
    dest: &str,
    row: &OutboxRow,
    force: bool,
) -> coffer_core::Result<Option<SyncMessage>> {
    // The committed state, also when the claimed row's commit has not yet returned to its
    // writer (the cache serves no secret of a commit in flight: `coffer_store::CachedStore`).
    let Some(secret) = region
        .store
        .load_secret_settled(&row.entry.secret_arn)
        .await?
    else {
        return Ok(None);
    };
    let Some(status) = replication::replicas(&secret)
        .into_iter()
        .find(|r| r.region == dest)
    else {
        return Ok(None);
    };
    // An overwrite asked for and not yet answered travels with every sync (see
    // `ReplicaStatus::overwrite`).
    let force = force || status.overwrite;
    // A forced sync (overwrite an existing secret there) carries every value.
    let held = if force {
        Default::default()
    } else {
        transport
            .held
            .versions(&secret.record.arn, dest, status.kms_key_id.as_deref())
    };
    let built = replication::build_sync(region, &secret, dest, force, row.enqueued_ms, &|id| {
        held.contains(id)
    })
    .await;
    match built {
        Ok(msg) => Ok(Some(msg)),
        // The primary's key stops the worker from reading the values: the replica shows
        // `Failed` with the missing permission (a later write or ReplicateSecretToRegions retries).
        Err(e) => match replication::source_key_problem(region, &secret).await? {
            Some(message) => {
                replication::mark_failed(
                    region,
                    &secret.record.arn,
                    dest,
                    FailureCause::Key,
                    &message,
                )
                .await?;
                Ok(None)
            }
            None => Err(e),
        },
    }
}

/// Delivers one row; `Ok(true)` when the row is settled, `Ok(false)` when it is to be tried
/// again (a failed send, an unreadable answer, a resend).
async fn deliver(
    topology: &Topology,
    region: &RegionService,
    transport: &Transport,
    dest: &str,
    row: &OutboxRow,
    force: bool,
) -> coffer_core::Result<bool> {
    let source = region.region.as_str();
    let arn = row.entry.secret_arn.as_str();
    let kind = row.entry.kind.as_str();
    let finish = || region.store.finish_outbox(arn, dest, kind, row.id);
    let mut sent: Option<SyncMessage> = None;
    let message = match OutboxMessage::from_entry(&row.entry) {
        Ok(message) => message,
        Err(e) => {
            // Written by a newer or broken node: reported, and dropped rather than retried
            // forever (or delivered with a guessed payload).
            tracing::error!(source, dest, arn, error = %Chain(&e), "Dropping an unreadable outbox row");
            topology.metrics.count(source, dest, "unreadable");
            finish().await?;
            return Ok(true);
        }
    };
    let plaintext = match &message {
        OutboxMessage::Sync { .. } => {
            let Some(msg) = sync_message(region, transport, dest, row, force).await? else {
                finish().await?;
                return Ok(true);
            };
            let plaintext =
                zeroize::Zeroizing::new(serde_json::to_vec(&msg).expect("message serializes"));
            sent = Some(msg);
            plaintext
        }
        // Multi-Region KMS keys have their own delivery (keys.rs).
        OutboxMessage::Key(_) | OutboxMessage::KeyRemoved => {
            crate::keys::deliver(topology, region, transport, dest, row).await?;
            return Ok(true);
        }
        OutboxMessage::Remove { .. }
        | OutboxMessage::Detach { .. }
        | OutboxMessage::Access { .. } => zeroize::Zeroizing::new(
            serde_json::to_vec(&Notice {
                arn: arn.to_string(),
                payload: message.region_payload(dest),
            })
            .expect("notice serializes"),
        ),
        // Rotations run where they are queued (deliver_rows); one addressed elsewhere is stale.
        OutboxMessage::Rotate { .. } => {
            finish().await?;
            return Ok(true);
        }
    };
    match transport
        .send(topology, source, dest, kind, &plaintext)
        .await
    {
        Ok(answer) => match serde_json::from_slice::<Answer>(&answer) {
            Ok(answer) => {
                if let Some(msg) = &sent {
                    remember(transport, dest, arn, msg, &answer);
                    if answer == Answer::Resend {
                        observe(topology, source, dest, row, &answer);
                        resend(region, row).await?;
                        return Ok(false);
                    }
                }
                let sent_seq = sent.as_ref().map_or((0, 0), |m| (m.seq, m.epoch));
                settle(topology, region, dest, row, sent_seq, &answer).await?;
                Ok(true)
            }
            Err(_) => {
                retry(
                    topology,
                    region,
                    dest,
                    row,
                    "the answer was unreadable".into(),
                )
                .await?;
                Ok(false)
            }
        },
        Err(e) => {
            let network = matches!(e, SendError::Network(_));
            let settled = settle_send_error(topology, region, dest, row, e).await?;
            if let (true, Some(msg)) = (network, &sent) {
                announce_heads(
                    topology,
                    region,
                    transport,
                    dest,
                    &heads_of(std::slice::from_ref(msg)),
                )
                .await;
            }
            Ok(settled)
        }
    }
}

/// How long a `heads` message may take: it is a hint, never worth holding a lane up for.
const HEADS_TIMEOUT: Duration = Duration::from_secs(1);

/// After syncs did not arrive: tells `dest` what it is missing (each secret's sequence,
/// AWSCURRENT version and LastChangedDate) in a small message of its own, so the replica
/// Region knows which replicas lag and a failover there reports the writes that may be lost
/// (docs/failover.md). Best effort: a link that carries nothing learns nothing. Its success
/// does not count as the link answering (the syncs still fail).
async fn announce_heads(
    topology: &Topology,
    region: &RegionService,
    transport: &Transport,
    dest: &str,
    heads: &[coffer_core::failover::Head],
) {
    if heads.is_empty() {
        return;
    }
    let source = region.region.as_str();
    let plaintext = serde_json::to_vec(&heads).expect("heads serialize");
    let sent = tokio::time::timeout(
        HEADS_TIMEOUT,
        transport.send(topology, source, dest, KIND_HEADS, &plaintext),
    )
    .await;
    let outcome = match sent {
        Ok(Ok(_)) => "heads_announced",
        _ => "heads_lost",
    };
    topology.metrics.count(source, dest, outcome);
}

/// Records the destination's answer for `row`: the replica's status and the settling of the
/// row commit together.
async fn settle(
    topology: &Topology,
    region: &RegionService,
    dest: &str,
    row: &OutboxRow,
    sent: (i64, i64),
    answer: &Answer,
) -> coffer_core::Result<()> {
    let source = region.region.as_str();
    let arn = row.entry.secret_arn.as_str();
    let kind = row.entry.kind.as_str();
    replication::record_answer(
        region,
        arn,
        dest,
        answer,
        sent,
        Some((arn, dest, kind, row.id)),
    )
    .await?;
    observe(topology, source, dest, row, answer);
    Ok(())
}

/// Metrics and the failure log line of one answer.
fn observe(topology: &Topology, source: &str, dest: &str, row: &OutboxRow, answer: &Answer) {
    topology.links.answered(source, dest);
    let arn = row.entry.secret_arn.as_str();
    match answer {
        Answer::Applied { applied_ms, .. } => {
            topology.metrics.count(source, dest, "applied");
            topology
                .metrics
                .lag(source, dest, (applied_ms - row.enqueued_ms) as f64 / 1000.0);
        }
        Answer::Failed { message, .. } => {
            topology.metrics.count(source, dest, "failed");
            tracing::warn!(source, dest, arn, reason = %message, "Replication failed");
        }
        Answer::Detached => topology.metrics.count(source, dest, "detached"),
        Answer::Done => topology.metrics.count(source, dest, "done"),
        Answer::Resend => topology.metrics.count(source, dest, "resend"),
    }
}

/// A delivery that did not reach the destination: a Region that is not enabled fails a sync at
/// once (settled: `true`); everything else is retried with backoff (`false`).
pub(crate) async fn settle_send_error(
    topology: &Topology,
    region: &RegionService,
    dest: &str,
    row: &OutboxRow,
    error: SendError,
) -> coffer_core::Result<bool> {
    let source = region.region.as_str();
    let arn = row.entry.secret_arn.as_str();
    let kind = row.entry.kind.as_str();
    match error {
        SendError::NotEnabled(message) => {
            topology.metrics.count(source, dest, "not_enabled");
            tracing::warn!(source, dest, arn, kind, reason = %message, "Replication failed");
            if kind == KIND_SYNC {
                replication::mark_failed(
                    region,
                    arn,
                    dest,
                    FailureCause::RegionNotEnabled,
                    &message,
                )
                .await?;
                region.store.finish_outbox(arn, dest, kind, row.id).await?;
                Ok(true)
            } else {
                // Removals and notices must not be lost: keep them until the Region returns.
                retry(topology, region, dest, row, message).await?;
                Ok(false)
            }
        }
        SendError::Network(message) => {
            topology.metrics.count(source, dest, "network_error");
            topology
                .links
                .failed(source, dest, region.now_ms(), &message);
            retry(topology, region, dest, row, message).await?;
            Ok(false)
        }
    }
}

/// Backs off (`DELIVERY_RETRIES`: 200 ms doubling, at most 5 s) and, once the failure has
/// lasted longer than the deployment allows, shows the replica as `Failed` with the network
/// error — while still retrying, so the replica heals by itself when the network returns.
pub(crate) async fn retry(
    topology: &Topology,
    region: &RegionService,
    dest: &str,
    row: &OutboxRow,
    message: String,
) -> coffer_core::Result<()> {
    let now = region.now_ms();
    let attempts = row.attempts + 1;
    let first_failure = failure_started(topology, region, dest, row, now);
    let mut next = now + pause_ms(&DELIVERY_RETRIES, attempts);
    // The attempt after the failure timeout comes right at it, so `Failed` shows within the
    // configured time rather than at the end of a long backoff.
    let deadline = first_failure + topology.give_up_after_ms;
    if now < deadline {
        next = next.min(deadline);
    }
    if attempts == 1 {
        tracing::warn!(source = %region.region, dest, arn = %row.entry.secret_arn, kind = %row.entry.kind, reason = %message, "Replication delivery failed; retrying with backoff");
    }
    fail_if_overdue(topology, region, dest, row, &message).await?;
    region
        .store
        .retry_outbox(row.id, attempts, next, Some(first_failure))
        .await?;
    Ok(())
}

/// The pause before attempt number `attempts` + 1 of an outbox row, in milliseconds.
fn pause_ms(policy: &Backoff, attempts: i64) -> i64 {
    let retry = u32::try_from(attempts.max(1)).unwrap_or(u32::MAX);
    i64::try_from(policy.delay(retry).as_millis()).unwrap_or(i64::MAX)
}

/// When the failure of `row` started: when the row first failed, or when its link went down,
/// whichever was first; but never before the row was written. A row written during an outage
/// (a replica added while its Region is unreachable) has its own full timeout, so it shows
/// `InProgress` first and `Failed` once the timeout passed since it was written, as a row
/// written before the outage does since the link went down.
fn failure_started(
    topology: &Topology,
    region: &RegionService,
    dest: &str,
    row: &OutboxRow,
    now: i64,
) -> i64 {
    let link_down = topology
        .links
        .down_since(&region.region, dest)
        .map(|since| since.max(row.enqueued_ms));
    [row.first_failure_ms, link_down]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now)
}

/// Shows the replica of a sync `row` as `Failed` with `message` once its failure has lasted
/// longer than the deployment allows (the row itself keeps being retried).
async fn fail_if_overdue(
    topology: &Topology,
    region: &RegionService,
    dest: &str,
    row: &OutboxRow,
    message: &str,
) -> coffer_core::Result<()> {
    let now = region.now_ms();
    if now - failure_started(topology, region, dest, row, now) >= topology.give_up_after_ms
        && row.entry.kind == KIND_SYNC
        && replication::mark_failed(
            region,
            &row.entry.secret_arn,
            dest,
            FailureCause::Network,
            message,
        )
        .await?
    {
        tracing::warn!(source = %region.region, dest, arn = %row.entry.secret_arn, reason = %message, "Replication failed; replica marked Failed, delivery keeps retrying");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next attempt of a failed delivery comes 200 ms after the first failure, doubling to
    /// 5 s; of a failed rotation, 2 s after, doubling to five minutes; no jitter in either.
    #[test]
    fn outbox_rows_back_off_by_their_attempts() {
        let delivery: Vec<i64> = (1..9).map(|a| pause_ms(&DELIVERY_RETRIES, a)).collect();
        assert_eq!(delivery, [200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        let rotation: Vec<i64> = (1..10).map(|a| pause_ms(&ROTATION_RETRIES, a)).collect();
        assert_eq!(
            rotation,
            [
                2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000
            ]
        );
        assert_eq!(pause_ms(&DELIVERY_RETRIES, i64::MAX), 5000);
    }

    /// A delivery task that panics still frees its secrets and wakes its lane; otherwise those
    /// secrets would be skipped by every later claim of the node.
    #[tokio::test]
    async fn a_delivery_that_panics_frees_its_secrets_and_wakes_the_lane() {
        let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
        let wake = Arc::new(tokio::sync::Notify::new());
        let keys: HashSet<String> = ["arn:a".to_string(), "arn:b".to_string()].into();
        busy.lock().unwrap().extend(keys.iter().cloned());
        busy.lock().unwrap().insert("arn:other".into());
        let in_flight = InFlight {
            busy: busy.clone(),
            keys,
            wake: wake.clone(),
            dest: "us-east-1".into(),
        };
        let task = tokio::spawn(async move {
            let _in_flight = in_flight;
            panic!("a delivery bug");
        });
        assert!(task.await.unwrap_err().is_panic());
        let left: Vec<String> = busy.lock().unwrap().iter().cloned().collect();
        assert_eq!(left, vec!["arn:other".to_string()]);
        // The lane was told to claim again.
        tokio::time::timeout(Duration::from_secs(1), wake.notified())
            .await
            .expect("the lane is woken");
    }
    fn row(id: i64, arn: &str, message: OutboxMessage) -> OutboxRow {
        OutboxRow {
            id,
            entry: message.entry(arn, "eu-west-1"),
            enqueued_ms: 1_000 + id,
            attempts: 0,
            next_attempt_ms: 0,
            first_failure_ms: None,
        }
    }

    fn sync(id: i64, arn: &str) -> OutboxRow {
        row(id, arn, OutboxMessage::Sync { force: false })
    }

    /// `(id, kind)` of each delivery of each group.
    fn shape(groups: &[Vec<(OutboxRow, bool)>]) -> Vec<Vec<(i64, String)>> {
        groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|(r, _)| (r.id, r.entry.kind.clone()))
                    .collect()
            })
            .collect()
    }

    /// Several syncs of one secret are one delivery of its current state: the newest row,
    /// keeping the oldest enqueue time, the first failure and the most attempts, and forced if
    /// any of them was.
    #[test]
    fn syncs_of_one_secret_collapse_into_the_newest() {
        let mut first = row(1, "arn:a", OutboxMessage::Sync { force: true });
        first.first_failure_ms = Some(500);
        first.attempts = 3;
        let plan = plan_delivery(vec![first, sync(2, "arn:a"), sync(3, "arn:a")], false);
        assert!(plan.chains.is_empty() && plan.deferred.is_empty());
        assert_eq!(plan.batches.len(), 1);
        let (merged, force) = &plan.batches[0][0];
        assert_eq!((merged.id, *force), (3, true));
        assert_eq!(merged.enqueued_ms, 1_001);
        assert_eq!(merged.first_failure_ms, Some(500));
        assert_eq!(merged.attempts, 3);
    }

    /// A removal queued between two syncs stays between them (the replica it deletes must not
    /// be the one the later sync makes), and access reports never merge.
    #[test]
    fn a_secrets_rows_of_other_kinds_stay_in_order() {
        let rows = vec![
            sync(1, "arn:a"),
            row(2, "arn:a", OutboxMessage::Remove { epoch: Some(1) }),
            sync(3, "arn:a"),
            sync(4, "arn:b"),
            row(
                5,
                "arn:c",
                OutboxMessage::Access {
                    region: "us-east-1".into(),
                    day: Some(1),
                },
            ),
            row(
                6,
                "arn:c",
                OutboxMessage::Access {
                    region: "us-east-1".into(),
                    day: Some(2),
                },
            ),
        ];
        let plan = plan_delivery(rows, false);
        let kinds = |ids: &[(i64, &str)]| -> Vec<(i64, String)> {
            ids.iter().map(|(i, k)| (*i, k.to_string())).collect()
        };
        assert_eq!(
            shape(&plan.chains),
            vec![
                kinds(&[(1, KIND_SYNC), (2, "remove"), (3, KIND_SYNC)]),
                kinds(&[(5, KIND_ACCESS), (6, KIND_ACCESS)]),
            ]
        );
        assert_eq!(shape(&plan.batches), vec![kinds(&[(4, KIND_SYNC)])]);
    }

    /// Single syncs of different secrets travel in batches of at most `MAX_BATCH`, in claim
    /// order; while the link is down only the first goes out (the probe) and the others wait.
    #[test]
    fn single_syncs_are_batched_and_held_back_while_the_link_is_down() {
        let rows = |n: i64| {
            (0..n)
                .map(|i| sync(i, &format!("arn:{i}")))
                .collect::<Vec<_>>()
        };
        let n = 2 * MAX_BATCH as i64 + 2;
        let plan = plan_delivery(rows(n), false);
        let sizes: Vec<usize> = plan.batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![MAX_BATCH, MAX_BATCH, 2]);
        let ids: Vec<i64> = plan.batches.iter().flatten().map(|(r, _)| r.id).collect();
        assert_eq!(ids, (0..n).collect::<Vec<_>>());

        let mut with_chain = rows(5);
        with_chain.push(row(9, "arn:0", OutboxMessage::Remove { epoch: None }));
        let plan = plan_delivery(with_chain, true);
        assert_eq!(shape(&plan.batches), vec![vec![(1, KIND_SYNC.to_string())]]);
        assert_eq!(
            plan.deferred.len(),
            3,
            "all single syncs but the probe wait"
        );
        assert_eq!(
            plan.chains.len(),
            1,
            "a chain still goes: its removal must not wait"
        );
    }
}
