//! Multi-Region KMS replica keys for a Region of another node (`coffer_replication::keys`):
//! ReplicateKey in the primary's Region writes the outbox row, `build` turns it into the
//! message, `apply` creates the key in the destination Region. Two `RegionService`s over real
//! SQLite stores with their own root keys; the sealed transport between them is tested in
//! `envelope.rs` and end to end in `tests/python/test_kms_replicate_peers.py`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine;
use coffer_core::kms::{self, RegionDirectory};
use coffer_core::replication::{Answer, KIND_KEY, KIND_KEY_REMOVED};
use coffer_core::{Caller, Clock, RegionService, SystemClock};
use coffer_kms::RootKey;
use coffer_replication::keys;
use coffer_store::{OutboxRow, SqliteStore, Store};
use serde_json::{Value, json};

const ACCOUNT: &str = "111122223333";
const WEST: &str = "us-west-2";
const EAST: &str = "us-east-1";

fn admin() -> Caller {
    Caller::administrator(ACCOUNT, &format!("arn:aws:iam::{ACCOUNT}:user/admin"))
}

async fn region(dir: &tempfile::TempDir, name: &str, root_byte: u8) -> RegionService {
    region_with_clock(dir, name, root_byte, Arc::new(SystemClock)).await
}

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

async fn region_with_clock(
    dir: &tempfile::TempDir,
    name: &str,
    root_byte: u8,
    clock: Arc<dyn Clock>,
) -> RegionService {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join(format!("{name}.db")))
            .await
            .unwrap(),
    );
    let root = RootKey::from_hex(&format!("{root_byte:02x}").repeat(32)).unwrap();
    RegionService::new(name.into(), "aws", store, root, clock)
}

/// The primary's node: it serves us-west-2 only and knows us-east-1 as a peer.
struct WestNode;

impl RegionDirectory for WestNode {
    fn local(&self, _region: &str) -> Option<&Arc<RegionService>> {
        None
    }

    fn is_peer(&self, region: &str) -> bool {
        region == EAST
    }
}

async fn call(
    region: &RegionService,
    directory: &dyn RegionDirectory,
    op: &str,
    body: Value,
) -> coffer_core::Result<Value> {
    let out = kms::dispatch(region, &admin(), op, body.to_string().as_bytes(), directory).await?;
    Ok(serde_json::from_slice(&out).unwrap())
}

async fn claim(region: &RegionService) -> Vec<OutboxRow> {
    region
        .store
        .claim_outbox(region.now_ms(), "test", 30_000, 10)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_replica_key_for_a_peer_is_queued_built_and_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let west = region(&dir, WEST, 0x11).await;
    let east = region(&dir, EAST, 0x22).await;
    let none: HashMap<String, Arc<RegionService>> = HashMap::new();

    let key_id = call(&west, &none, "CreateKey", json!({"MultiRegion": true}))
        .await
        .unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    // Without the peer, the Region is not enabled: nothing is queued.
    let refused = call(
        &west,
        &none,
        "ReplicateKey",
        json!({"KeyId": key_id, "ReplicaRegion": EAST}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused.code,
        coffer_core::ErrorCode::KmsUnsupportedOperation
    );
    assert!(claim(&west).await.is_empty());

    let out = call(
        &west,
        &WestNode,
        "ReplicateKey",
        json!({"KeyId": key_id, "ReplicaRegion": EAST, "Description": "east copy"}),
    )
    .await
    .unwrap();
    assert_eq!(out["ReplicaKeyMetadata"]["KeyState"], "Creating");
    let rows = claim(&west).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (
            row.entry.kind.as_str(),
            row.entry.dest_region.as_str(),
            row.entry.secret_arn.as_str()
        ),
        (
            KIND_KEY,
            EAST,
            format!("arn:aws:kms:{WEST}:{ACCOUNT}:key/{key_id}").as_str()
        )
    );
    // The row holds no key material, only the replica's own settings.
    let primary = west
        .keys
        .key_by_arn(&row.entry.secret_arn)
        .await
        .unwrap()
        .unwrap();
    let material_b64 =
        base64::engine::general_purpose::STANDARD.encode(primary.material.expose_bytes());
    assert!(!row.entry.payload.contains(&material_b64));

    let message = keys::build(&west, EAST, row).await.unwrap().unwrap();
    // Only us-west-2 may speak for a key whose primary is there.
    assert!(keys::apply(&east, "eu-west-1", &message).await.is_err());
    assert!(
        east.keys
            .key_by_arn(&format!("arn:aws:kms:{EAST}:{ACCOUNT}:key/{key_id}"))
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        keys::apply(&east, WEST, &message).await.unwrap(),
        Answer::Done
    );
    // A redelivery (the answer was lost) is a success that changes nothing.
    assert_eq!(
        keys::apply(&east, WEST, &message).await.unwrap(),
        Answer::Done
    );

    let replica = call(&east, &none, "DescribeKey", json!({"KeyId": key_id}))
        .await
        .unwrap()["KeyMetadata"]
        .clone();
    assert_eq!(replica["KeyState"], "Enabled");
    assert_eq!(replica["Description"], "east copy");
    assert_eq!(
        replica["MultiRegionConfiguration"]["PrimaryKey"]["Region"],
        WEST
    );
    // The same material, wrapped under us-east-1's own root key.
    let blob = call(
        &west,
        &none,
        "Encrypt",
        json!({"KeyId": key_id, "Plaintext": base64::engine::general_purpose::STANDARD.encode(b"hello")}),
    )
    .await
    .unwrap()["CiphertextBlob"]
        .clone();
    let plain = call(&east, &none, "Decrypt", json!({"CiphertextBlob": blob}))
        .await
        .unwrap()["Plaintext"]
        .clone();
    assert_eq!(
        plain,
        base64::engine::general_purpose::STANDARD.encode(b"hello")
    );

    // Another key of the same id (other material) is not this key's replica: refused, and the
    // existing key stays as it is.
    let mut forged: Value = serde_json::from_slice(&message).unwrap();
    forged["material"] = json!(base64::engine::general_purpose::STANDARD.encode([9u8; 32]));
    let answer = keys::apply(&east, WEST, forged.to_string().as_bytes())
        .await
        .unwrap();
    assert!(
        matches!(&answer, Answer::Failed { message, .. } if message.contains("already exists")),
        "{answer:?}"
    );
    let plain = call(&east, &none, "Decrypt", json!({"CiphertextBlob": blob}))
        .await
        .unwrap()["Plaintext"]
        .clone();
    assert_eq!(
        plain,
        base64::engine::general_purpose::STANDARD.encode(b"hello")
    );

    // Material of the wrong length is refused.
    forged["material"] = json!(base64::engine::general_purpose::STANDARD.encode([9u8; 16]));
    assert!(
        keys::apply(&east, WEST, forged.to_string().as_bytes())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn nothing_is_sent_for_a_key_that_no_longer_lists_the_region() {
    let dir = tempfile::tempdir().unwrap();
    let west = region(&dir, WEST, 0x11).await;
    let none: HashMap<String, Arc<RegionService>> = HashMap::new();
    let key_id = call(&west, &none, "CreateKey", json!({"MultiRegion": true}))
        .await
        .unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &west,
        &WestNode,
        "ReplicateKey",
        json!({"KeyId": key_id, "ReplicaRegion": EAST}),
    )
    .await
    .unwrap();
    let rows = claim(&west).await;
    let mut row = rows[0].clone();
    row.entry.dest_region = "eu-west-1".into();
    assert!(
        keys::build(&west, "eu-west-1", &row)
            .await
            .unwrap()
            .is_none()
    );
    row.entry.secret_arn =
        format!("arn:aws:kms:{WEST}:{ACCOUNT}:key/mrk-00000000000000000000000000000000");
    assert!(keys::build(&west, EAST, &row).await.unwrap().is_none());
}

#[tokio::test]
async fn a_deleted_replica_leaves_its_primarys_replicas_and_a_primary_waiting_for_it_starts_its_deletion_window()
 {
    const DAY_MS: i64 = 24 * 60 * 60 * 1000;
    let dir = tempfile::tempdir().unwrap();
    let west = region(&dir, WEST, 0x11).await;
    let clock = Arc::new(ManualClock(AtomicI64::new(SystemClock.now_ms())));
    let east = region_with_clock(&dir, EAST, 0x22, clock.clone()).await;
    let none: HashMap<String, Arc<RegionService>> = HashMap::new();
    let key_id = call(&west, &none, "CreateKey", json!({"MultiRegion": true}))
        .await
        .unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &west,
        &WestNode,
        "ReplicateKey",
        json!({"KeyId": key_id, "ReplicaRegion": EAST}),
    )
    .await
    .unwrap();
    let row = claim(&west).await.remove(0);
    let message = keys::build(&west, EAST, &row).await.unwrap().unwrap();
    assert_eq!(
        keys::apply(&east, WEST, &message).await.unwrap(),
        Answer::Done
    );

    // A primary with a replica waits for it (as AWS): no deletion date yet.
    let waiting = call(
        &west,
        &none,
        "ScheduleKeyDeletion",
        json!({"KeyId": key_id, "PendingWindowInDays": 7}),
    )
    .await
    .unwrap();
    assert_eq!(waiting["KeyState"], "PendingReplicaDeletion");
    assert!(waiting.get("DeletionDate").is_none());

    call(
        &east,
        &none,
        "ScheduleKeyDeletion",
        json!({"KeyId": key_id, "PendingWindowInDays": 7}),
    )
    .await
    .unwrap();
    // Pending deletion is not deleted: the primary hears nothing yet.
    clock.0.fetch_add(7 * DAY_MS - 1, Ordering::SeqCst);
    assert_eq!(coffer_core::purge::purge_due_keys(&east).await.unwrap(), 0);
    assert!(claim(&east).await.is_empty());
    clock.0.fetch_add(1, Ordering::SeqCst);
    assert_eq!(coffer_core::purge::purge_due_keys(&east).await.unwrap(), 1);
    let rows = claim(&east).await;
    assert_eq!(rows.len(), 1);
    let replica_arn = format!("arn:aws:kms:{EAST}:{ACCOUNT}:key/{key_id}");
    assert_eq!(
        (
            rows[0].entry.kind.as_str(),
            rows[0].entry.dest_region.as_str(),
            rows[0].entry.secret_arn.as_str()
        ),
        (KIND_KEY_REMOVED, WEST, replica_arn.as_str())
    );

    let notice = serde_json::to_vec(&keys::KeyRemoved { arn: replica_arn }).unwrap();
    // Only the replica's own Region may say it is gone.
    assert!(
        keys::apply_removed(&west, "eu-west-1", &notice)
            .await
            .is_err()
    );
    assert_eq!(
        keys::apply_removed(&west, EAST, &notice).await.unwrap(),
        Answer::Done
    );
    // A redelivery changes nothing.
    assert_eq!(
        keys::apply_removed(&west, EAST, &notice).await.unwrap(),
        Answer::Done
    );
    let primary = call(&west, &none, "DescribeKey", json!({"KeyId": key_id}))
        .await
        .unwrap();
    assert_eq!(
        primary["KeyMetadata"]["MultiRegionConfiguration"]["ReplicaKeys"],
        json!([])
    );
    // Its last replica gone, the primary's 7-day window starts.
    assert_eq!(primary["KeyMetadata"]["KeyState"], "PendingDeletion");
    let deletion = primary["KeyMetadata"]["DeletionDate"].as_f64().unwrap();
    let expected = (SystemClock.now_ms() + 7 * DAY_MS) as f64 / 1000.0;
    assert!(
        (deletion - expected).abs() < 60.0,
        "{deletion} vs {expected}"
    );
}
