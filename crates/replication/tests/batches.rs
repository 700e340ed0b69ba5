//! How a replica's Region applies a batch of syncs (`coffer_core::replication::apply_sync_batch`,
//! what the receiving side of `POST /replication/sync-batch` calls): one store transaction for
//! the whole batch when it can commit, each message on its own when it cannot, every message
//! answered in the order sent, and one secret's refusal never holding back the others.
//! End to end, across processes: `tests/python/test_replication_processes.py`.

mod common;

use coffer_core::replication::{self, Answer, FailureCause, SyncMessage};
use coffer_core::{Caller, RegionService};
use common::east;

const ACCOUNT: &str = "111122223333";

fn primary_arn(name: &str, suffix: &str) -> String {
    format!("arn:aws:secretsmanager:us-west-2:{ACCOUNT}:secret:{name}-{suffix}")
}

fn replica_arn(name: &str, suffix: &str) -> String {
    format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}-{suffix}")
}

/// Sync number `seq` of the primary `name`-`suffix` in us-west-2, with value `value`.
fn sync(name: &str, suffix: &str, seq: i64, value: &str) -> SyncMessage {
    common::sync_message(&primary_arn(name, suffix), name, seq, 1, value)
}

/// The value GetSecretValue returns for `name` in us-east-1.
async fn value_of(region: &RegionService, name: &str) -> String {
    let admin = Caller::administrator(ACCOUNT, &format!("arn:aws:iam::{ACCOUNT}:user/admin"));
    let body = serde_json::json!({ "SecretId": name }).to_string();
    let out = coffer_core::ops::dispatch(region, &admin, "GetSecretValue", body.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("GetSecretValue {name}: {}", e.message));
    let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
    out["SecretString"].as_str().unwrap().to_string()
}

async fn arn_of(region: &RegionService, name: &str) -> Option<String> {
    region
        .store
        .load_secret_by_name(ACCOUNT, name)
        .await
        .unwrap()
        .map(|s| s.record.arn)
}

fn assert_applied(answer: &Answer, what: &str) {
    assert!(
        matches!(answer, Answer::Applied { .. }),
        "{what} was answered {answer:?}"
    );
}

/// A batch of new replicas commits as one transaction (one fsync for the batch, not one per
/// secret), and each replica then reads as its primary's value.
#[tokio::test]
async fn a_batch_commits_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (east, sqlite) = east(&dir).await;
    // The Region's first replica also creates its default key (a transaction of its own).
    let first = [sync("app/first", "AbCdEf", 1, "value")];
    replication::apply_sync_batch(&east, &first).await.unwrap();
    let msgs: Vec<SyncMessage> = (0..20)
        .map(|i| sync(&format!("app/s{i}"), "AbCdEf", 1, &format!("value-{i}")))
        .collect();
    let (transactions_before, _) = sqlite.commit_counts();
    let answers = replication::apply_sync_batch(&east, &msgs).await.unwrap();
    let (transactions_after, _) = sqlite.commit_counts();
    assert_eq!(answers.len(), 20);
    for (i, answer) in answers.iter().enumerate() {
        assert_applied(answer, &format!("sync {i}"));
    }
    assert_eq!(
        transactions_after - transactions_before,
        1,
        "20 replicas took {} transactions",
        transactions_after - transactions_before
    );
    for i in [0, 7, 19] {
        assert_eq!(
            value_of(&east, &format!("app/s{i}")).await,
            format!("value-{i}")
        );
        assert_eq!(
            arn_of(&east, &format!("app/s{i}")).await.unwrap(),
            replica_arn(&format!("app/s{i}"), "AbCdEf")
        );
    }
}

/// A message the replica's Region refuses (a secret of its own has the name) is answered with
/// its failure and cause, in its place; the others of the batch are applied, and the refused
/// secret is left as it was.
#[tokio::test]
async fn a_refused_message_is_answered_in_place_and_the_rest_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (east, _) = east(&dir).await;
    let admin = Caller::administrator(ACCOUNT, &format!("arn:aws:iam::{ACCOUNT}:user/admin"));
    let body = serde_json::json!({
        "Name": "app/taken",
        "SecretString": "east-own",
        "ClientRequestToken": "00000000-0000-4000-8000-000000000001"
    })
    .to_string();
    coffer_core::ops::dispatch(&east, &admin, "CreateSecret", body.as_bytes())
        .await
        .unwrap();
    let msgs = vec![
        sync("app/a", "AbCdEf", 1, "a"),
        sync("app/taken", "AbCdEf", 1, "primary's"),
        sync("app/b", "AbCdEf", 1, "b"),
    ];
    let answers = replication::apply_sync_batch(&east, &msgs).await.unwrap();
    assert_applied(&answers[0], "app/a");
    match &answers[1] {
        Answer::Failed { message, cause } => {
            assert_eq!(*cause, FailureCause::NameClash);
            assert_eq!(
                message,
                "Replication failed: Secret name app/taken already exists in region us-east-1."
            );
        }
        other => panic!("the clashing sync was answered {other:?}"),
    }
    assert_applied(&answers[2], "app/b");
    assert_eq!(value_of(&east, "app/taken").await, "east-own");
    assert_eq!(value_of(&east, "app/a").await, "a");
    assert_eq!(value_of(&east, "app/b").await, "b");
}

/// A batch that cannot commit as a whole (here two primaries of the same name, which only the
/// commit finds out) is applied message by message: the first of that name becomes the
/// replica, the second is refused because the name is now replicated from elsewhere, and the
/// unrelated message of the batch is applied all the same.
#[tokio::test]
async fn a_batch_that_cannot_commit_whole_is_applied_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let (east, sqlite) = east(&dir).await;
    let msgs = vec![
        sync("app/same", "AAAAAA", 1, "first"),
        sync("app/other", "CcCcCc", 1, "other"),
        sync("app/same", "BBBBBB", 1, "second"),
    ];
    let (before, _) = sqlite.commit_counts();
    let answers = replication::apply_sync_batch(&east, &msgs).await.unwrap();
    let (after, _) = sqlite.commit_counts();
    assert!(
        after - before >= 2,
        "the failed batch was not retried on its own"
    );
    assert_applied(&answers[1], "app/other");
    let applied: Vec<usize> = [0, 2]
        .into_iter()
        .filter(|i| matches!(answers[*i], Answer::Applied { .. }))
        .collect();
    assert_eq!(applied.len(), 1, "answers: {answers:?}");
    let (winner, loser) = if applied[0] == 0 { (0, 2) } else { (2, 0) };
    match &answers[loser] {
        Answer::Failed { message, cause } => {
            assert_eq!(*cause, FailureCause::NameReplicated);
            assert_eq!(
                message,
                "Replication failed: Can't overwrite secret app/same that is currently replicated from us-west-2."
            );
        }
        other => panic!("the second primary of the name was answered {other:?}"),
    }
    let expected_value = if winner == 0 { "first" } else { "second" };
    assert_eq!(value_of(&east, "app/same").await, expected_value);
    assert_eq!(value_of(&east, "app/other").await, "other");
}

/// A message the replica already applied (redelivered, or overtaken by a newer one) is
/// answered Applied without writing, and does not undo the newer state.
#[tokio::test]
async fn a_redelivered_message_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (east, sqlite) = east(&dir).await;
    let answers = replication::apply_sync_batch(&east, &[sync("app/db", "AbCdEf", 2, "new")])
        .await
        .unwrap();
    assert_applied(&answers[0], "sync 2");
    let (before, _) = sqlite.commit_counts();
    let answers = replication::apply_sync_batch(
        &east,
        &[
            sync("app/db", "AbCdEf", 1, "old"),
            sync("app/db", "AbCdEf", 2, "new"),
        ],
    )
    .await
    .unwrap();
    let (after, _) = sqlite.commit_counts();
    assert_applied(&answers[0], "the older sync");
    assert_applied(&answers[1], "the redelivered sync");
    assert_eq!(after, before, "applying what was already applied wrote");
    assert_eq!(value_of(&east, "app/db").await, "new");
}
