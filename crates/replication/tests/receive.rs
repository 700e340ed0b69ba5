//! The receiving side of replication (`coffer_replication::receive`): what a Region refuses, so
//! that traffic forged or misdirected by anyone who can reach `/internal/replication` changes
//! nothing, and what it applies from the Region that sealed the message.
//!
//! us-east-1 (this node, a real SQLite store) hears from its peers us-west-2 and eu-west-1. A
//! refusal is checked by its exact status and by the store after it; `admit` sees only the
//! headers, `receive` the sealed body. Every message through `receive` is sealed here exactly as
//! the sender's transport seals it (`transport::request_aad`).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use coffer_core::failback::HandbackRequest;
use coffer_core::failover::Head;
use coffer_core::replication::{
    self, Answer, KIND_ACCESS, KIND_DETACH, KIND_HANDBACK, KIND_HEADS, KIND_REMOVE, KIND_SYNC,
    KIND_SYNC_BATCH, RegionPayload, ReplicaState, ReplicaStatus, ReplicationState, SyncMessage,
};
use coffer_core::{Caller, RegionService};
use coffer_kms::RootKey;
use coffer_replication::envelope::{self, RegionKeyPair};
use coffer_replication::metrics::Metrics;
use coffer_replication::receive::{self, Notice, Reply};
use coffer_replication::transport::{answer_aad, request_aad};
use coffer_replication::{Peer, Topology, proof};
use coffer_store::SecretChange;

const ACCOUNT: &str = "111122223333";
const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";
/// The largest message this node reads, small enough to go past in a test.
const MAX_BYTES: usize = 4096;
/// The day us-west-2's replica of an us-east-1 primary was last read, as the primary holds it.
const DAY: i64 = 20_000;
/// The epoch of the replication from us-east-1 to us-west-2.
const EPOCH: i64 = 5;

fn primary_arn(region: &str, name: &str) -> String {
    format!("arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{name}-AbCdEf")
}

fn keys(region: &str, root_byte: u8) -> RegionKeyPair {
    RegionKeyPair::derive(
        &RootKey::from_hex(&format!("{root_byte:02x}").repeat(32)).unwrap(),
        region,
    )
}

/// This node (serving us-east-1) and the key pairs of its two peers.
struct Node {
    _dir: tempfile::TempDir,
    east: Arc<RegionService>,
    topology: Topology,
    west: RegionKeyPair,
    eu: RegionKeyPair,
}

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let east = Arc::new(common::east(&dir).await.0);
    let (west, eu) = (keys(WEST, 0x11), keys(EU, 0x33));
    let peer = |region: &str, pair: &RegionKeyPair| {
        let peer = Peer {
            region: region.into(),
            url: "http://127.0.0.1:9".into(),
            public_key: pair.public_key(),
        };
        (region.to_string(), peer)
    };
    let topology = Topology {
        local: HashMap::from([(EAST.to_string(), east.clone())]),
        keys: HashMap::from([(EAST.to_string(), keys(EAST, 0x22))]),
        peers: HashMap::from([peer(WEST, &west), peer(EU, &eu)]),
        self_url: "http://127.0.0.1:8".into(),
        node_id: "east-node".into(),
        give_up_after_ms: 30_000,
        max_message_bytes: MAX_BYTES,
        links: Default::default(),
        metrics: Metrics::new(),
        rotation: None,
    };
    Node {
        _dir: dir,
        east,
        topology,
        west,
        eu,
    }
}

/// This node, its us-east-1 primary `app/east` replicated to us-west-2, and that primary's ARN.
async fn node_with_primary_replicated_to_west() -> (Node, String) {
    let node = node().await;
    let arn = node.primary_replicated_to_west().await;
    (node, arn)
}

impl Node {
    fn east_keys(&self) -> &RegionKeyPair {
        &self.topology.keys[EAST]
    }

    /// `plaintext` sealed by `sender` (claiming to be `source`) for us-east-1, as kind `kind`.
    fn sealed(
        &self,
        sender: &RegionKeyPair,
        source: &str,
        kind: &str,
        plaintext: &[u8],
    ) -> Vec<u8> {
        let east = self.east_keys().public_key();
        envelope::seal(sender, source, &east, EAST, &request_aad(kind), plaintext)
    }

    /// The sender's proof us-west-2 makes for these headers now.
    fn west_proof(&self, kind: &str, length: u64) -> String {
        let east = self.east_keys().public_key();
        proof::make(
            &self.west,
            &east,
            WEST,
            EAST,
            kind,
            length,
            proof::now_secs(),
        )
    }

    /// `admit`'s refusal status for a message from us-west-2 (`None`: admitted).
    fn admit(&self, dest: &str, kind: &str, length: Option<u64>, proof: &str) -> Option<u16> {
        receive::admit(
            &self.topology,
            WEST,
            dest,
            kind,
            length,
            proof,
            proof::now_secs(),
        )
        .map(|r| r.status)
    }

    /// A message from us-west-2, as it receives it.
    async fn receive_from_west(&self, kind: &str, message: &impl serde::Serialize) -> Reply {
        let body = self.sealed(
            &self.west,
            WEST,
            kind,
            &serde_json::to_vec(message).unwrap(),
        );
        receive::receive(&self.topology, WEST, EAST, kind, &body).await
    }

    /// The answer of a 200 reply to us-west-2, opened as us-west-2 opens it.
    fn answer<T: serde::de::DeserializeOwned>(&self, kind: &str, reply: &Reply) -> T {
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let east = self.east_keys().public_key();
        let json = envelope::open(
            &self.west,
            WEST,
            &east,
            EAST,
            &answer_aad(kind),
            &reply.body,
        )
        .expect("the answer is sealed by us-east-1 for us-west-2");
        serde_json::from_slice(&json).unwrap()
    }

    /// The replication state of the secret `name` of us-east-1 (`None` when there is none).
    async fn state_of(&self, name: &str) -> Option<Option<ReplicationState>> {
        let secret = self
            .east
            .store
            .load_secret_by_name(ACCOUNT, name)
            .await
            .unwrap()?;
        Some(replication::state(&secret))
    }

    /// us-east-1 holds no secret `name` (no replica was created).
    async fn assert_absent(&self, name: &str) {
        let state = self.state_of(name).await;
        assert_eq!(state, None, "{name} was created");
    }

    /// `message` from us-west-2 answers 500 (not applied) and creates none of `names`.
    async fn assert_not_applied_creating_none(
        &self,
        kind: &str,
        message: &impl serde::Serialize,
        names: &[&str],
    ) {
        assert_not_applied(&self.receive_from_west(kind, message).await);
        for name in names {
            self.assert_absent(name).await;
        }
    }

    /// Makes us-east-1 hold a replica of `name`, whose primary is in `primary_region`.
    async fn replica_of(&self, primary_region: &str, name: &str) {
        let answer = replication::apply_sync(&self.east, &sync(primary_region, name, 1))
            .await
            .unwrap();
        assert!(matches!(answer, Answer::Applied { .. }), "{answer:?}");
    }

    /// An us-east-1 primary `app/east`, replicated to us-west-2 (epoch [`EPOCH`], last read
    /// there on [`DAY`]); returns its ARN.
    async fn primary_replicated_to_west(&self) -> String {
        let admin = Caller::administrator(ACCOUNT, &format!("arn:aws:iam::{ACCOUNT}:user/admin"));
        let body = serde_json::json!({"Name": "app/east", "SecretString": "v", "ClientRequestToken": "00000000-0000-4000-8000-000000000001"});
        coffer_core::ops::dispatch(
            &self.east,
            &admin,
            "CreateSecret",
            body.to_string().as_bytes(),
        )
        .await
        .unwrap();
        let mut secret = self
            .east
            .store
            .load_secret_by_name(ACCOUNT, "app/east")
            .await
            .unwrap()
            .unwrap();
        let west = ReplicaStatus {
            target_seq: 0,
            region: WEST.into(),
            kms_key_id: None,
            status: ReplicaState::InSync,
            status_message: None,
            cause: None,
            last_accessed_day: Some(DAY),
            epoch: EPOCH,
            overwrite: false,
        };
        replication::set_state(
            &mut secret,
            Some(&ReplicationState::Primary {
                replicas: vec![west],
            }),
        );
        let expected = secret.record.row_version;
        secret.record.row_version += 1;
        self.east
            .store
            .commit(SecretChange::Update {
                secret: secret.record.clone(),
                expected_row_version: expected,
                upsert_versions: Vec::new(),
                delete_versions: Vec::new(),
            })
            .await
            .unwrap();
        secret.record.arn
    }

    /// A `kind` notice from us-west-2 about the copy in `named_region` of the us-east-1
    /// primary `primary_arn`: us-west-2's own replica, or a copy it does not speak for.
    async fn notice_from_west(
        &self,
        primary_arn: &str,
        named_region: &str,
        kind: &str,
        day: Option<i64>,
        epoch: Option<i64>,
    ) -> Reply {
        let arn = replication::arn_in_region(primary_arn, named_region);
        self.receive_from_west(kind, &notice(&arn, day, epoch))
            .await
    }

    /// The LastAccessedDate (a day) of us-west-2's replica, as us-east-1's `app/east` shows it.
    async fn west_day(&self) -> Option<i64> {
        self.west_status()
            .await
            .expect("us-west-2 is a replica Region")
            .last_accessed_day
    }

    /// us-west-2's entry in the ReplicationStatus of us-east-1's `app/east`.
    async fn west_status(&self) -> Option<ReplicaStatus> {
        let secret = self
            .east
            .store
            .load_secret_by_name(ACCOUNT, "app/east")
            .await
            .unwrap()
            .unwrap();
        replication::replicas(&secret)
            .into_iter()
            .find(|r| r.region == WEST)
    }
}

/// Sync 1 of `name`, whose primary is in `primary_region`.
fn sync(primary_region: &str, name: &str, seq: i64) -> SyncMessage {
    let mut msg = common::sync_message(&primary_arn(primary_region, name), name, seq, 1, "value");
    msg.primary_region = primary_region.into();
    msg
}

/// A `remove`, `detach` or `access` notice about `arn`.
fn notice(arn: &str, day: Option<i64>, epoch: Option<i64>) -> Notice {
    Notice {
        arn: arn.into(),
        payload: Some(RegionPayload {
            region: EAST.into(),
            day,
            epoch,
        }),
    }
}

fn assert_refused(reply: &Reply, status: u16) {
    let body = match reply.status {
        200 => "a sealed answer".into(),
        _ => String::from_utf8_lossy(&reply.body),
    };
    assert_eq!(reply.status, status, "answered {}: {body}", reply.status);
}

/// The message is refused as one that cannot be applied (the sender retries it later).
fn assert_not_applied(reply: &Reply) {
    assert_refused(reply, 500);
    assert_eq!(
        reply.body,
        b"the message could not be applied; it will be retried"
    );
}

fn is_replica_from(state: Option<Option<ReplicationState>>, region: &str) -> bool {
    matches!(state, Some(Some(ReplicationState::Replica { primary_region, .. })) if primary_region == region)
}

// ---- admit: the headers alone ----

#[tokio::test]
async fn genuine_headers_from_a_peer_are_admitted() {
    let node = node().await;
    let proof = node.west_proof(KIND_SYNC, 1000);
    assert_eq!(node.admit(EAST, KIND_SYNC, Some(1000), &proof), None);
}

#[tokio::test]
async fn a_message_for_a_region_this_node_does_not_serve_is_misdirected_421_and_not_applied() {
    let node = node().await;
    // eu-west-1 is a Region of the deployment, served by another node.
    let proof = node.west_proof(KIND_SYNC, 1000);
    assert_eq!(node.admit(EU, KIND_SYNC, Some(1000), &proof), Some(421));
    let msg = serde_json::to_vec(&sync(WEST, "app/db", 1)).unwrap();
    let body = node.sealed(&node.west, WEST, KIND_SYNC, &msg);
    let reply = receive::receive(&node.topology, WEST, EU, KIND_SYNC, &body).await;
    assert_refused(&reply, 421);
    node.assert_absent("app/db").await;
}

#[tokio::test]
async fn a_message_from_a_region_unknown_to_this_node_is_refused_403_and_not_applied() {
    let node = node().await;
    let stranger = keys("ap-south-1", 0x44);
    let east = node.east_keys().public_key();
    let length = 1000;
    let now = proof::now_secs();
    let proof = proof::make(&stranger, &east, "ap-south-1", EAST, KIND_SYNC, length, now);
    let admitted = receive::admit(
        &node.topology,
        "ap-south-1",
        EAST,
        KIND_SYNC,
        Some(length),
        &proof,
        now,
    );
    assert_eq!(admitted.map(|r| r.status), Some(403));

    let msg = sync("ap-south-1", "app/db", 1);
    let body = node.sealed(
        &stranger,
        "ap-south-1",
        KIND_SYNC,
        &serde_json::to_vec(&msg).unwrap(),
    );
    let reply = receive::receive(&node.topology, "ap-south-1", EAST, KIND_SYNC, &body).await;
    assert_refused(&reply, 403);
    node.assert_absent("app/db").await;
}

#[tokio::test]
async fn a_message_without_content_length_is_refused_411() {
    let node = node().await;
    let proof = node.west_proof(KIND_SYNC, 1000);
    assert_eq!(node.admit(EAST, KIND_SYNC, None, &proof), Some(411));
}

#[tokio::test]
async fn a_message_longer_than_replication_max_message_bytes_is_refused_413() {
    let node = node().await;
    let over = MAX_BYTES as u64 + 1;
    assert_eq!(
        node.admit(
            EAST,
            KIND_SYNC,
            Some(over),
            &node.west_proof(KIND_SYNC, over)
        ),
        Some(413)
    );
    // The bound itself is admitted.
    let max = MAX_BYTES as u64;
    assert_eq!(
        node.admit(EAST, KIND_SYNC, Some(max), &node.west_proof(KIND_SYNC, max)),
        None
    );
}

#[tokio::test]
async fn a_sender_proof_that_does_not_hold_is_refused_403() {
    let node = node().await;
    let east = node.east_keys().public_key();
    let now = proof::now_secs();
    let impostor = keys(WEST, 0x55);
    let cases = [
        ("another kind", node.west_proof(KIND_REMOVE, 1000)),
        ("another length", node.west_proof(KIND_SYNC, 999)),
        (
            "made by a key that is not us-west-2's",
            proof::make(&impostor, &east, WEST, EAST, KIND_SYNC, 1000, now),
        ),
        (
            "made by eu-west-1",
            proof::make(&node.eu, &east, EU, EAST, KIND_SYNC, 1000, now),
        ),
        (
            "too old",
            proof::make(
                &node.west,
                &east,
                WEST,
                EAST,
                KIND_SYNC,
                1000,
                now - proof::MAX_SKEW_SECS - 1,
            ),
        ),
        ("empty", String::new()),
        ("not a proof", format!("{now}.00")),
    ];
    for (what, proof) in cases {
        assert_eq!(
            node.admit(EAST, KIND_SYNC, Some(1000), &proof),
            Some(403),
            "{what}"
        );
    }
}

// ---- receive: the sealed body ----

#[tokio::test]
async fn a_body_not_sealed_for_this_region_by_the_source_region_is_refused_403_and_not_applied() {
    let node = node().await;
    let msg = serde_json::to_vec(&sync(WEST, "app/db", 1)).unwrap();
    let eu_public = node.eu.public_key();
    let mut tampered = node.sealed(&node.west, WEST, KIND_SYNC, &msg);
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let cases = [
        (
            "sealed by a key that is not us-west-2's",
            node.sealed(&keys(WEST, 0x55), WEST, KIND_SYNC, &msg),
        ),
        (
            "sealed by eu-west-1",
            node.sealed(&node.eu, EU, KIND_SYNC, &msg),
        ),
        (
            "sealed for eu-west-1",
            envelope::seal(
                &node.west,
                WEST,
                &eu_public,
                EU,
                &request_aad(KIND_SYNC),
                &msg,
            ),
        ),
        (
            "sealed as another kind",
            node.sealed(&node.west, WEST, KIND_REMOVE, &msg),
        ),
        ("tampered with", tampered),
        ("not sealed", msg.clone()),
    ];
    for (what, body) in cases {
        let reply = receive::receive(&node.topology, WEST, EAST, KIND_SYNC, &body).await;
        assert_eq!(reply.status, 403, "{what}");
        assert_eq!(
            reply.body, b"the message is not sealed for this Region by the source Region",
            "{what}"
        );
    }
    node.assert_absent("app/db").await;
}

#[tokio::test]
async fn a_sealed_body_that_is_not_a_message_of_its_kind_answers_500_and_changes_nothing() {
    let node = node().await;
    let not_a_sync = serde_json::json!({"name": "app/db"});
    node.assert_not_applied_creating_none(KIND_SYNC, &not_a_sync, &["app/db"])
        .await;
}

#[tokio::test]
async fn a_message_of_an_unknown_kind_answers_500_and_changes_nothing() {
    let node = node().await;
    node.assert_not_applied_creating_none("rotate", &sync(WEST, "app/db", 1), &["app/db"])
        .await;
}

// ---- a Region speaks only for its own secrets ----

#[tokio::test]
async fn a_sync_for_another_regions_secret_is_refused_and_no_replica_is_created() {
    let node = node().await;
    node.assert_not_applied_creating_none(KIND_SYNC, &sync(EU, "app/db", 1), &["app/db"])
        .await;
}

#[tokio::test]
async fn a_sync_batch_with_one_message_for_another_regions_secret_is_refused_whole() {
    let node = node().await;
    let batch = [sync(WEST, "app/own", 1), sync(EU, "app/forged", 1)];
    node.assert_not_applied_creating_none(KIND_SYNC_BATCH, &batch, &["app/own", "app/forged"])
        .await;
}

#[tokio::test]
async fn a_remove_notice_about_another_regions_secret_is_refused_and_the_replica_stays() {
    let node = node().await;
    node.replica_of(EU, "app/db").await;
    let reply = node
        .receive_from_west(KIND_REMOVE, &notice(&primary_arn(EU, "app/db"), None, None))
        .await;
    assert_not_applied(&reply);
    assert!(
        is_replica_from(node.state_of("app/db").await, EU),
        "the replica was removed"
    );
}

#[tokio::test]
async fn a_detach_notice_about_another_regions_secret_is_refused_and_the_replication_stays() {
    let (node, arn) = node_with_primary_replicated_to_west().await;
    let reply = node
        .notice_from_west(&arn, EU, KIND_DETACH, None, Some(EPOCH))
        .await;
    assert_not_applied(&reply);
    assert!(
        node.west_status().await.is_some(),
        "us-west-2's replication was ended"
    );
}

#[tokio::test]
async fn an_access_notice_about_another_regions_secret_is_refused_and_the_date_stays() {
    let (node, arn) = node_with_primary_replicated_to_west().await;
    let reply = node
        .notice_from_west(&arn, EU, KIND_ACCESS, Some(DAY + 1), None)
        .await;
    assert_not_applied(&reply);
    assert_eq!(node.west_day().await, Some(DAY));
}

#[tokio::test]
async fn heads_about_another_regions_secret_are_refused_and_none_is_recorded() {
    let node = node().await;
    let heads = [head(WEST, "app/own"), head(EU, "app/forged")];
    let reply = node.receive_from_west(KIND_HEADS, &heads).await;
    assert_not_applied(&reply);
    assert!(node.east.store.replica_heads().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_handback_of_another_regions_secret_is_refused_and_the_replica_stays_a_replica() {
    let node = node().await;
    node.replica_of(EU, "app/db").await;
    let request = HandbackRequest {
        primary_arn: primary_arn(EU, "app/db"),
        seq: 1,
        kms_key_id: None,
    };
    let reply = node.receive_from_west(KIND_HANDBACK, &request).await;
    assert_not_applied(&reply);
    assert!(
        is_replica_from(node.state_of("app/db").await, EU),
        "the replica was promoted"
    );
}

fn head(primary_region: &str, name: &str) -> Head {
    Head {
        primary_arn: primary_arn(primary_region, name),
        seq: 3,
        version_id: Some("v3".into()),
        changed_ms: 1,
    }
}

// ---- accepted messages ----

#[tokio::test]
async fn a_sync_from_the_primarys_region_creates_the_replica_and_answers_sealed() {
    let node = node().await;
    let reply = node
        .receive_from_west(KIND_SYNC, &sync(WEST, "app/db", 1))
        .await;
    let answer: Answer = node.answer(KIND_SYNC, &reply);
    assert!(matches!(answer, Answer::Applied { .. }), "{answer:?}");
    assert!(is_replica_from(node.state_of("app/db").await, WEST));
}

#[tokio::test]
async fn a_sync_batch_from_the_primarys_region_is_applied_and_answered_in_order() {
    let node = node().await;
    let batch = [sync(WEST, "app/a", 1), sync(WEST, "app/b", 1)];
    let reply = node.receive_from_west(KIND_SYNC_BATCH, &batch).await;
    let answers: Vec<Answer> = node.answer(KIND_SYNC_BATCH, &reply);
    assert_eq!(answers.len(), 2);
    assert!(
        answers.iter().all(|a| matches!(a, Answer::Applied { .. })),
        "{answers:?}"
    );
    assert!(is_replica_from(node.state_of("app/a").await, WEST));
    assert!(is_replica_from(node.state_of("app/b").await, WEST));
}

#[tokio::test]
async fn a_remove_notice_from_the_primarys_region_deletes_its_replica() {
    let node = node().await;
    node.replica_of(WEST, "app/db").await;
    let reply = node
        .receive_from_west(
            KIND_REMOVE,
            &notice(&primary_arn(WEST, "app/db"), None, Some(1)),
        )
        .await;
    assert_eq!(node.answer::<Answer>(KIND_REMOVE, &reply), Answer::Done);
    node.assert_absent("app/db").await;
}

#[tokio::test]
async fn heads_from_the_primarys_region_are_recorded() {
    let node = node().await;
    let reply = node
        .receive_from_west(KIND_HEADS, &[head(WEST, "app/db")])
        .await;
    assert_eq!(node.answer::<Answer>(KIND_HEADS, &reply), Answer::Done);
    let heads = node.east.store.replica_heads().await.unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(
        (
            heads[0].arn.as_str(),
            heads[0].primary_region.as_str(),
            heads[0].seq
        ),
        (primary_arn(EAST, "app/db").as_str(), WEST, 3)
    );
}

#[tokio::test]
async fn a_detach_notice_from_the_replicas_region_ends_that_replication() {
    let (node, arn) = node_with_primary_replicated_to_west().await;
    let reply = node
        .notice_from_west(&arn, WEST, KIND_DETACH, None, Some(EPOCH))
        .await;
    assert_eq!(node.answer::<Answer>(KIND_DETACH, &reply), Answer::Done);
    assert_eq!(
        node.west_status().await,
        None,
        "us-west-2 is still a replica Region"
    );
}

#[tokio::test]
async fn an_access_notice_moves_the_replicas_last_accessed_date_forward() {
    let (node, arn) = node_with_primary_replicated_to_west().await;
    let reply = node
        .notice_from_west(&arn, WEST, KIND_ACCESS, Some(DAY + 1), None)
        .await;
    assert_eq!(node.answer::<Answer>(KIND_ACCESS, &reply), Answer::Done);
    assert_eq!(node.west_day().await, Some(DAY + 1));
}

#[tokio::test]
async fn an_older_access_notice_never_moves_the_last_accessed_date_back() {
    let (node, arn) = node_with_primary_replicated_to_west().await;
    for day in [Some(DAY - 1), None] {
        let reply = node
            .notice_from_west(&arn, WEST, KIND_ACCESS, day, None)
            .await;
        assert_eq!(node.answer::<Answer>(KIND_ACCESS, &reply), Answer::Done);
        assert_eq!(node.west_day().await, Some(DAY), "moved back by {day:?}");
    }
}
