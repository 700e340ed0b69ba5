//! What keeps a replication message that arrives late from undoing what the user did since, in
//! the replica's Region (`coffer_core::replication::{apply_sync, apply_remove}`):
//!
//! - A removal (RemoveRegionsFromReplication) is about one replication of a secret to a Region,
//!   named by its epoch: it deletes the replica of that epoch or an older one, never the replica
//!   of a replication asked for again since (a newer epoch), whatever order the two arrive in.
//!   End to end (a link that loses removals) in `tests/python/test_replication_faults.py`.
//! - A sync that replaces another secret (ForceOverwriteReplicaSecret) is applied only while its
//!   sender still waits for the answer (`FORCE_WINDOW_MS`); a late one leaves the secret as it is.
//!   One sent before the secret last changed is sent again, built anew (`Answer::Resend`).

mod common;

use coffer_core::replication::{self, Answer, FORCE_WINDOW_MS, SyncMessage};
use coffer_core::{Caller, Clock, RegionService, SystemClock};

const PRIMARY_ARN: &str = "arn:aws:secretsmanager:us-west-2:111122223333:secret:app/db-AbCdEf";
const REPLICA_ARN: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-AbCdEf";

async fn east(dir: &tempfile::TempDir) -> RegionService {
    common::east(dir).await.0
}

fn sync(seq: i64, epoch: i64) -> SyncMessage {
    common::sync_message(PRIMARY_ARN, "app/db", seq, epoch, &format!("value-{seq}"))
}

async fn replica_exists(region: &RegionService) -> bool {
    region
        .store
        .load_secret_by_arn(REPLICA_ARN)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_late_removal_of_an_ended_replication_leaves_the_replica_of_the_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let east = east(&dir).await;
    // The Region was removed at epoch 1 and added again at epoch 2; epoch 2's sync arrives
    // first, the removal of epoch 1 after it.
    let applied = replication::apply_sync(&east, &sync(5, 2)).await.unwrap();
    assert!(matches!(applied, Answer::Applied { .. }), "{applied:?}");
    assert_eq!(
        replication::apply_remove(&east, PRIMARY_ARN, Some(1))
            .await
            .unwrap(),
        Answer::Done
    );
    assert!(
        replica_exists(&east).await,
        "the newer replication's replica was deleted"
    );

    // The removal of the replication it belongs to deletes it.
    replication::apply_remove(&east, PRIMARY_ARN, Some(2))
        .await
        .unwrap();
    assert!(!replica_exists(&east).await);
}

#[tokio::test]
async fn a_removal_without_an_epoch_from_an_older_node_deletes_any_replica_of_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let east = east(&dir).await;
    replication::apply_sync(&east, &sync(3, 9)).await.unwrap();
    replication::apply_remove(&east, PRIMARY_ARN, None)
        .await
        .unwrap();
    assert!(!replica_exists(&east).await);
}

/// us-east-1 holds its own secret of the replicated name, with a value.
async fn east_with_own_secret(dir: &tempfile::TempDir) -> RegionService {
    let east = east(dir).await;
    let admin = Caller::administrator("111122223333", "arn:aws:iam::111122223333:user/admin");
    let body = serde_json::json!({"Name": "app/db", "SecretString": "east-own", "ClientRequestToken": "00000000-0000-4000-8000-000000000001"}).to_string();
    coffer_core::ops::dispatch(&east, &admin, "CreateSecret", body.as_bytes())
        .await
        .unwrap();
    east
}

/// `msg` is applied and its replica replaces the secret of that name.
async fn replaces(east: &RegionService, msg: &SyncMessage) {
    let answer = replication::apply_sync(east, msg).await.unwrap();
    assert!(matches!(answer, Answer::Applied { .. }), "{answer:?}");
    assert!(replica_exists(east).await);
    assert!(!is_standalone(east).await);
}

async fn is_standalone(region: &RegionService) -> bool {
    let secret = region
        .store
        .load_secret_by_name("111122223333", "app/db")
        .await
        .unwrap()
        .expect("the secret is there");
    replication::state(&secret).is_none()
}

#[tokio::test]
async fn a_forced_overwrite_that_arrives_after_its_sender_gave_up_leaves_the_secret_there() {
    let dir = tempfile::tempdir().unwrap();
    let east = east_with_own_secret(&dir).await;
    let mut msg = sync(4, 3);
    msg.force = true;
    msg.sent_ms = SystemClock.now_ms() - FORCE_WINDOW_MS - 1_000;
    let answer = replication::apply_sync(&east, &msg).await.unwrap();
    match answer {
        Answer::Failed { message, .. } => assert!(
            message.starts_with(
                "Replication failed: the request to overwrite secret app/db in region us-east-1 arrived more than 4 seconds after it was sent."
            ),
            "{message}"
        ),
        other => panic!("a late overwrite was answered {other:?}"),
    }
    assert!(
        is_standalone(&east).await,
        "the late overwrite replaced the secret"
    );
    assert!(!replica_exists(&east).await);

    // The same overwrite sent again (a fresh message) replaces it.
    msg.sent_ms = SystemClock.now_ms();
    replaces(&east, &msg).await;
}

#[tokio::test]
async fn a_forced_overwrite_from_a_node_without_send_times_still_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let east = east_with_own_secret(&dir).await;
    let mut msg = sync(4, 3);
    msg.force = true;
    replaces(&east, &msg).await;
}

#[tokio::test]
async fn a_forced_overwrite_sent_before_the_secret_last_changed_leaves_it_there() {
    let dir = tempfile::tempdir().unwrap();
    let east = east_with_own_secret(&dir).await;
    // Sent a second before the secret was created (its last change): within the window, but
    // the user who asked for it never saw this secret.
    let mut msg = sync(4, 3);
    msg.force = true;
    msg.sent_ms = SystemClock.now_ms() - 1_000;
    // The sender is asked to build the message again (and sends nothing if the Region was
    // removed meanwhile).
    assert_eq!(
        replication::apply_sync(&east, &msg).await.unwrap(),
        Answer::Resend
    );
    assert!(is_standalone(&east).await);
    msg.sent_ms = SystemClock.now_ms();
    replaces(&east, &msg).await;
}
