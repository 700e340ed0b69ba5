//! The receiving side: opens a sealed message addressed to one of this node's Regions, applies
//! it, and seals the answer back to the sender.

use serde::{Deserialize, Serialize};

use coffer_core::error::Chain;
use coffer_core::replication::{
    self, Answer, KIND_ACCESS, KIND_DETACH, KIND_HANDBACK, KIND_HEADS, KIND_INSPECT, KIND_KEY,
    KIND_KEY_REMOVED, KIND_REMOVE, KIND_SYNC, KIND_SYNC_BATCH, RegionPayload, SyncMessage,
};

use crate::envelope;
use crate::topology::Topology;
use crate::transport::{answer_aad, request_aad};

/// `remove`, `detach` and `access` messages.
#[derive(Serialize, Deserialize)]
pub struct Notice {
    /// The secret's ARN in the sending Region.
    pub arn: String,
    #[serde(default)]
    pub payload: Option<RegionPayload>,
}

/// An HTTP answer: status and body.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

fn plain(status: u16, text: &str) -> Reply {
    Reply {
        status,
        body: text.as_bytes().to_vec(),
    }
}

/// Decides on the headers alone, before any of the body is read, whether a message may come
/// in: the destination is served here, the source is a known Region, the announced length is
/// within the deployment's bound, and the sender's proof ([`crate::proof`]) is valid. `None`
/// admits it; otherwise the refusal to send.
pub fn admit(
    topology: &Topology,
    source: &str,
    dest: &str,
    kind: &str,
    length: Option<u64>,
    proof: &str,
    now_secs: i64,
) -> Option<Reply> {
    let Some(keys) = topology.keys.get(dest) else {
        return Some(plain(
            421,
            "this node does not serve the destination Region",
        ));
    };
    let Some(sender) = topology.public_key(source) else {
        return Some(plain(403, "unknown source Region"));
    };
    let Some(length) = length else {
        return Some(plain(411, "a replication message needs a Content-Length"));
    };
    if length > topology.max_message_bytes as u64 {
        return Some(plain(
            413,
            "the message is larger than replication_max_message_bytes",
        ));
    }
    if !crate::proof::check(keys, &sender, source, dest, kind, length, proof, now_secs) {
        return Some(plain(
            403,
            "the sender's proof does not hold for these Regions, kind, length and time",
        ));
    }
    None
}

pub async fn receive(
    topology: &Topology,
    source: &str,
    dest: &str,
    kind: &str,
    body: &[u8],
) -> Reply {
    let (Some(region), Some(keys)) = (topology.local.get(dest), topology.keys.get(dest)) else {
        return plain(421, "this node does not serve the destination Region");
    };
    let Some(sender) = topology.public_key(source) else {
        return plain(403, "unknown source Region");
    };
    let Ok(plaintext) = envelope::open(keys, dest, &sender, source, &request_aad(kind), body)
    else {
        return plain(
            403,
            "the message is not sealed for this Region by the source Region",
        );
    };
    let json = match apply(region, source, kind, &plaintext).await {
        Ok(json) => json,
        Err(e) => {
            tracing::warn!(source, dest, kind, error = %Chain(&e), "Replication message could not be applied");
            return plain(500, "the message could not be applied; it will be retried");
        }
    };
    Reply {
        status: 200,
        body: envelope::seal(keys, dest, &sender, source, &answer_aad(kind), &json),
    }
}

/// Applies a message and returns its answer as JSON: one [`Answer`], or a list of them (in
/// message order) for a batch.
async fn apply(
    region: &coffer_core::RegionService,
    source: &str,
    kind: &str,
    plaintext: &[u8],
) -> coffer_core::Result<Vec<u8>> {
    if kind == KIND_SYNC_BATCH {
        let msgs: Vec<SyncMessage> = serde_json::from_slice(plaintext).map_err(|_| malformed())?;
        // The sealed envelope proves the source Region; every message must agree with it.
        if msgs.iter().any(|m| m.primary_region != source) {
            return Err(malformed());
        }
        let answers = replication::apply_sync_batch(region, &msgs).await?;
        return Ok(serde_json::to_vec(&answers).expect("answers serialize"));
    }
    if kind == KIND_INSPECT {
        let request: coffer_core::failback::InspectRequest =
            serde_json::from_slice(plaintext).map_err(|_| malformed())?;
        let copies = coffer_core::failback::inspect(region, &request).await?;
        return Ok(serde_json::to_vec(&copies).expect("copies serialize"));
    }
    apply_one(region, source, kind, plaintext)
        .await
        .map(|answer| serde_json::to_vec(&answer).expect("answer serializes"))
}

fn malformed() -> coffer_core::Error {
    coffer_core::Error::internal("malformed replication message")
}

async fn apply_one(
    region: &coffer_core::RegionService,
    source: &str,
    kind: &str,
    plaintext: &[u8],
) -> coffer_core::Result<Answer> {
    let bad = malformed;
    // A notice may only speak for a secret of the Region that sealed it.
    let notice = |plaintext: &[u8]| -> coffer_core::Result<Notice> {
        let n: Notice = serde_json::from_slice(plaintext).map_err(|_| bad())?;
        match coffer_core::model::Arn::parse(&n.arn) {
            Some(a) if a.region == source => Ok(n),
            _ => Err(bad()),
        }
    };
    match kind {
        KIND_SYNC => {
            let msg: SyncMessage = serde_json::from_slice(plaintext).map_err(|_| bad())?;
            // The sealed envelope proves the source Region; the message must agree with it.
            if msg.primary_region != source {
                return Err(bad());
            }
            replication::apply_sync(region, &msg).await
        }
        KIND_HEADS => {
            let heads: Vec<coffer_core::failover::Head> =
                serde_json::from_slice(plaintext).map_err(|_| bad())?;
            // Like a notice, a head may only speak for a secret of the Region that sealed it.
            let own = |h: &coffer_core::failover::Head| {
                coffer_core::model::Arn::parse(&h.primary_arn).is_some_and(|a| a.region == source)
            };
            if !heads.iter().all(own) {
                return Err(bad());
            }
            coffer_core::failover::apply_heads(region, source, &heads).await
        }
        KIND_HANDBACK => {
            let request: coffer_core::failback::HandbackRequest =
                serde_json::from_slice(plaintext).map_err(|_| bad())?;
            // Only the Region of the promoted secret may hand it back.
            match coffer_core::model::Arn::parse(&request.primary_arn) {
                Some(a) if a.region == source => {}
                _ => return Err(bad()),
            }
            coffer_core::failback::handback(region, source, &request).await
        }
        KIND_KEY => crate::keys::apply(region, source, plaintext).await,
        KIND_KEY_REMOVED => crate::keys::apply_removed(region, source, plaintext).await,
        KIND_REMOVE => {
            let n = notice(plaintext)?;
            let epoch = n.payload.and_then(|p| p.epoch);
            replication::apply_remove(region, &n.arn, epoch).await
        }
        KIND_DETACH => {
            let n = notice(plaintext)?;
            let primary_arn = replication::arn_in_region(&n.arn, &region.region);
            // Only the replication that was stopped ends: a Region added again since (a newer
            // epoch) stays. A notice without an epoch (an older node) ends any.
            let stopped = n.payload.and_then(|p| p.epoch).unwrap_or(i64::MAX);
            replication::edit_status(region, &primary_arn, source, |s| {
                (s.epoch > stopped).then_some(s)
            })
            .await?;
            Ok(Answer::Done)
        }
        KIND_ACCESS => {
            let n = notice(plaintext)?;
            let primary_arn = replication::arn_in_region(&n.arn, &region.region);
            let day = n.payload.and_then(|p| p.day);
            replication::edit_status(region, &primary_arn, source, |mut s| {
                if day > s.last_accessed_day {
                    s.last_accessed_day = day;
                }
                Some(s)
            })
            .await?;
            Ok(Answer::Done)
        }
        _ => Err(bad()),
    }
}
