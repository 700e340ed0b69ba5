//! The key service with controlled time and root keys: a `RegionService` over a real SQLite
//! store, driven through `kms::dispatch` as the HTTP layer drives it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use coffer_core::kms::{self, KeyMeta};
use coffer_core::{Caller, Clock, ErrorCode, RegionService};
use coffer_kms::RootKey;
use coffer_store::{SqliteStore, Store};
use serde_json::{Value, json};

const ACCOUNT: &str = "111122223333";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn admin() -> Caller {
    Caller::administrator(ACCOUNT, &format!("arn:aws:iam::{ACCOUNT}:user/admin"))
}

struct Fixture {
    region: RegionService,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn fixture(root: RootKey) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("r.db")).await.unwrap());
    let clock = Arc::new(ManualClock(AtomicI64::new(1_700_000_000_000)));
    let region = RegionService::new("us-east-1".into(), "aws", store, root, clock.clone());
    Fixture {
        region,
        clock,
        _dir: dir,
    }
}

fn root(byte: u8) -> RootKey {
    RootKey::from_hex(&format!("{byte:02x}").repeat(32)).unwrap()
}

async fn call(region: &RegionService, op: &str, body: Value) -> coffer_core::Result<Value> {
    let out = kms::dispatch(
        region,
        &admin(),
        op,
        body.to_string().as_bytes(),
        &HashMap::new(),
    )
    .await?;
    Ok(serde_json::from_slice(&out).unwrap())
}

#[tokio::test]
async fn a_key_is_purged_with_its_aliases_when_its_waiting_period_ends() {
    let f = fixture(root(1)).await;
    let key = call(&f.region, "CreateKey", json!({})).await.unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &f.region,
        "CreateAlias",
        json!({"AliasName": "alias/doomed", "TargetKeyId": key}),
    )
    .await
    .unwrap();
    let scheduled = call(
        &f.region,
        "ScheduleKeyDeletion",
        json!({"KeyId": key, "PendingWindowInDays": 7}),
    )
    .await
    .unwrap();
    let deletion_ms = (scheduled["DeletionDate"].as_f64().unwrap() * 1000.0).round() as i64;
    assert_eq!(deletion_ms, f.clock.now_ms() + 7 * DAY_MS);

    // One millisecond early: still there.
    f.clock.0.store(deletion_ms - 1, Ordering::SeqCst);
    coffer_core::purge::purge_due(&f.region).await.unwrap();
    let meta = call(&f.region, "DescribeKey", json!({"KeyId": key}))
        .await
        .unwrap();
    assert_eq!(meta["KeyMetadata"]["KeyState"], "PendingDeletion");

    f.clock.0.store(deletion_ms, Ordering::SeqCst);
    coffer_core::purge::purge_due(&f.region).await.unwrap();
    let gone = call(&f.region, "DescribeKey", json!({"KeyId": key}))
        .await
        .unwrap_err();
    assert_eq!(gone.code, ErrorCode::KmsNotFound);
    let aliases = call(&f.region, "ListAliases", json!({})).await.unwrap();
    assert_eq!(aliases["Aliases"], json!([]));
}

#[tokio::test]
async fn a_cancelled_deletion_is_not_purged() {
    let f = fixture(root(1)).await;
    let key = call(&f.region, "CreateKey", json!({})).await.unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        &f.region,
        "ScheduleKeyDeletion",
        json!({"KeyId": key, "PendingWindowInDays": 7}),
    )
    .await
    .unwrap();
    call(&f.region, "CancelKeyDeletion", json!({"KeyId": key}))
        .await
        .unwrap();
    f.clock.0.fetch_add(30 * DAY_MS, Ordering::SeqCst);
    coffer_core::purge::purge_due(&f.region).await.unwrap();
    let meta = call(&f.region, "DescribeKey", json!({"KeyId": key}))
        .await
        .unwrap();
    assert_eq!(meta["KeyMetadata"]["KeyState"], "Disabled");
}

#[test]
fn metadata_written_before_the_kms_api_still_reads() {
    // What Keys::default_key stored before key states and policies existed.
    let old = r#"{"Description":"Default key that protects my Secrets Manager data when no other key is defined","KeyManager":"AWS","KeyState":"Enabled","KeyUsage":"ENCRYPT_DECRYPT","KeySpec":"SYMMETRIC_DEFAULT","Origin":"AWS_KMS","MultiRegion":false}"#;
    let meta: KeyMeta = serde_json::from_str(old).unwrap();
    assert_eq!(meta.key_manager, "AWS");
    assert_eq!(meta.key_state, "Enabled");
    assert!(meta.policy.is_none() && meta.tags.is_empty() && meta.replica_regions.is_empty());
}

#[tokio::test]
async fn material_wrapped_under_a_rotated_root_key_is_found_through_the_reloader() {
    let f = fixture(root(1)).await;
    let created = call(&f.region, "CreateKey", json!({})).await.unwrap();
    let arn = created["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    let blob = call(
        &f.region,
        "Encrypt",
        json!({"KeyId": arn, "Plaintext": "aGVsbG8="}),
    )
    .await
    .unwrap()["CiphertextBlob"]
        .clone();

    // Re-wrap the stored material under root key 2, as `coffer rotate-root-key` does.
    let mut record = f.region.store.load_kms_key(&arn).await.unwrap().unwrap();
    let material = root(1)
        .unwrap_key_material(&arn, &record.wrapped_material)
        .unwrap();
    record.wrapped_material = root(2).wrap_key_material(&arn, &material);
    f.region
        .store
        .commit_kms(coffer_store::KmsChange::UpdateKey(record))
        .await
        .unwrap();
    f.region.keys.forget_key(&arn);

    // Without a way to find the new key, the material cannot be opened.
    assert!(f.region.keys.key_by_arn(&arn).await.is_err());
    f.region
        .keys
        .set_root_key_reloader(Box::new(|| vec![root(2), root(1)]));
    let back = call(&f.region, "Decrypt", json!({"CiphertextBlob": blob}))
        .await
        .unwrap();
    assert_eq!(back["Plaintext"], "aGVsbG8=");
    // The rotated key is now the one new material is wrapped under.
    assert_eq!(
        f.region.keys.root_key().fingerprint(),
        root(2).fingerprint()
    );
    let later = call(&f.region, "CreateKey", json!({})).await.unwrap();
    let later_arn = later["KeyMetadata"]["Arn"].as_str().unwrap();
    let stored = f
        .region
        .store
        .load_kms_key(later_arn)
        .await
        .unwrap()
        .unwrap();
    assert!(
        root(2)
            .unwrap_key_material(later_arn, &stored.wrapped_material)
            .is_ok()
    );
}

#[tokio::test]
async fn a_key_with_rotation_enabled_gets_new_material_when_its_period_ends_and_old_blobs_still_open()
 {
    let f = fixture(root(1)).await;
    let created = call(&f.region, "CreateKey", json!({})).await.unwrap();
    let key = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let first = created["KeyMetadata"]["CurrentKeyMaterialId"].clone();
    let blob = call(
        &f.region,
        "Encrypt",
        json!({"KeyId": key, "Plaintext": "b2xk"}),
    )
    .await
    .unwrap()["CiphertextBlob"]
        .clone();
    call(
        &f.region,
        "EnableKeyRotation",
        json!({"KeyId": key, "RotationPeriodInDays": 90}),
    )
    .await
    .unwrap();
    let none: HashMap<String, Arc<RegionService>> = HashMap::new();
    f.clock.0.fetch_add(90 * DAY_MS - 1, Ordering::SeqCst);
    assert_eq!(
        coffer_core::key_rotation::rotate_due_keys(&f.region, &none)
            .await
            .unwrap(),
        0
    );
    f.clock.0.fetch_add(1, Ordering::SeqCst);
    assert_eq!(
        coffer_core::key_rotation::rotate_due_keys(&f.region, &none)
            .await
            .unwrap(),
        1
    );
    let described = call(&f.region, "DescribeKey", json!({"KeyId": key}))
        .await
        .unwrap();
    let second = described["KeyMetadata"]["CurrentKeyMaterialId"].clone();
    assert_ne!(second, first);
    let rotations = call(&f.region, "ListKeyRotations", json!({"KeyId": key}))
        .await
        .unwrap();
    assert_eq!(rotations["Rotations"][0]["RotationType"], "AUTOMATIC");
    assert_eq!(rotations["Rotations"][0]["KeyMaterialId"], second);
    // The next rotation is a period after this one.
    let status = call(&f.region, "GetKeyRotationStatus", json!({"KeyId": key}))
        .await
        .unwrap();
    let next = status["NextRotationDate"].as_f64().unwrap();
    assert_eq!(next, (f.clock.now_ms() + 90 * DAY_MS) as f64 / 1000.0);
    let opened = call(&f.region, "Decrypt", json!({"CiphertextBlob": blob}))
        .await
        .unwrap();
    assert_eq!(
        (&opened["Plaintext"], &opened["KeyMaterialId"]),
        (&json!("b2xk"), &first)
    );
    // A disabled key is not rotated.
    call(&f.region, "DisableKey", json!({"KeyId": key}))
        .await
        .unwrap();
    f.clock.0.fetch_add(91 * DAY_MS, Ordering::SeqCst);
    assert_eq!(
        coffer_core::key_rotation::rotate_due_keys(&f.region, &none)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_change_made_from_a_key_read_before_a_rotation_does_not_undo_the_rotation() {
    let f = fixture(root(1)).await;
    let created = call(&f.region, "CreateKey", json!({})).await.unwrap();
    let arn = created["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    // A request that read the key (a TagResource, say, on this or another node) ...
    let stale = f.region.keys.key_by_arn(&arn).await.unwrap().unwrap();
    // ... while the key is rotated and the new material encrypts.
    call(&f.region, "RotateKeyOnDemand", json!({"KeyId": arn}))
        .await
        .unwrap();
    let blob = call(
        &f.region,
        "Encrypt",
        json!({"KeyId": arn, "Plaintext": "bmV3"}),
    )
    .await
    .unwrap()["CiphertextBlob"]
        .clone();
    let mut meta = (*stale.meta).clone();
    meta.description = "from a stale read".into();
    let refused = kms::save_meta(&f.region, &stale, meta).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::KmsInternal);
    assert!(refused.message.contains("try again"), "{}", refused.message);
    let opened = call(&f.region, "Decrypt", json!({"CiphertextBlob": blob}))
        .await
        .unwrap();
    assert_eq!(opened["Plaintext"], "bmV3");
    let described = call(&f.region, "DescribeKey", json!({"KeyId": arn}))
        .await
        .unwrap();
    assert_eq!(described["KeyMetadata"]["Description"], "");
}
