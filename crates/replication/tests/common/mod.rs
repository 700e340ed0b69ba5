//! What the replica-side tests share: a us-east-1 Region on a fresh SQLite store, and a sync
//! message from a primary in us-west-2.

use std::sync::Arc;

use base64::Engine;
use coffer_core::replication::{SyncMessage, VersionPayload};
use coffer_core::{RegionService, SystemClock};
use coffer_kms::RootKey;
use coffer_store::{SqliteStore, Store};
use zeroize::Zeroizing;

/// us-east-1 on a new store in `dir`, and that store as itself (for its commit counts).
pub async fn east(dir: &tempfile::TempDir) -> (RegionService, Arc<SqliteStore>) {
    let sqlite = Arc::new(
        SqliteStore::open(&dir.path().join("east.db"))
            .await
            .unwrap(),
    );
    let store: Arc<dyn Store> = sqlite.clone();
    let root = RootKey::from_hex(&"07".repeat(32)).unwrap();
    let region = RegionService::new(
        "us-east-1".into(),
        "aws",
        store,
        root,
        Arc::new(SystemClock),
    );
    (region, sqlite)
}

/// Sync number `seq` of replication `epoch` of the primary `primary_arn` (named `name`) in
/// us-west-2: one current version `v{seq}` holding `value`.
pub fn sync_message(
    primary_arn: &str,
    name: &str,
    seq: i64,
    epoch: i64,
    value: &str,
) -> SyncMessage {
    SyncMessage {
        primary_arn: primary_arn.into(),
        primary_region: "us-west-2".into(),
        seq,
        epoch,
        commit_ms: 1,
        sent_ms: 0,
        force: false,
        kms_key_id: None,
        name: name.into(),
        description: None,
        tags: None,
        resource_policy: None,
        created_ms: 1,
        last_changed_ms: 1,
        deleted_ms: None,
        purge_at_ms: None,
        versions: vec![VersionPayload {
            version_id: format!("v{seq}"),
            stages: vec!["AWSCURRENT".into()],
            created_ms: 1,
            value: Some(Zeroizing::new(
                base64::engine::general_purpose::STANDARD.encode(value),
            )),
            binary: false,
            omitted: false,
        }],
    }
}
