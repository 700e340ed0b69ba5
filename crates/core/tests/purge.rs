//! The deletion purge at more than one batch: every due secret goes, the others stay.

use std::sync::Arc;

use coffer_core::{RegionService, SystemClock};
use coffer_kms::RootKey;
use coffer_store::{SecretChange, SecretRecord, SqliteStore, Store};

fn record(i: usize, purge_at_ms: Option<i64>) -> SecretRecord {
    SecretRecord {
        arn: format!("arn:aws:secretsmanager:us-east-1:111122223333:secret:p{i}-AbCdEf"),
        account_id: "111122223333".into(),
        name: format!("p{i}"),
        description: None,
        kms_key_id: None,
        tags: None,
        resource_policy: None,
        created_ms: 1,
        last_changed_ms: 1,
        last_accessed_day: None,
        deleted_ms: purge_at_ms.map(|_| 1),
        purge_at_ms,
        rotation: None,
        replication: None,
        row_version: 1,
    }
}

#[tokio::test]
async fn every_due_secret_is_purged_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("r.db")).await.unwrap());
    let store: Arc<dyn Store> = sqlite.clone();
    // 1,000 ARNs per batch: 2,100 due secrets take three, and the live ones stay.
    let changes: Vec<SecretChange> = (0..2_150)
        .map(|i| SecretChange::Insert {
            secret: record(i, (i < 2_100).then_some(1_000 + i as i64)),
            versions: Vec::new(),
        })
        .collect();
    store.commit_with(changes, Vec::new()).await.unwrap();
    let region = RegionService::new(
        "us-east-1".into(),
        "aws",
        store.clone(),
        RootKey::from_hex(&"42".repeat(32)).unwrap(),
        Arc::new(SystemClock),
    );
    let (transactions_before, _) = sqlite.commit_counts();
    assert_eq!(coffer_core::purge::purge_due(&region).await.unwrap(), 2_100);
    // The purges of a batch run together and share transactions (one fsync each): one at a
    // time, 100,000 due secrets took 100,000 fsyncs.
    let (transactions_after, _) = sqlite.commit_counts();
    let transactions = transactions_after - transactions_before;
    assert!(
        transactions < 2_100 / 4,
        "2,100 purges took {transactions} transactions"
    );
    assert!(
        store
            .secrets_due_for_purge(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_secrets("111122223333").await.unwrap().len(), 50);
}
