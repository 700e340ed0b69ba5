//! Multi-Region KMS keys across nodes: delivering a replica key (KMS `ReplicateKey` to a Region
//! of another node) and creating it on arrival.
//!
//! The primary's Region commits an outbox row of kind [`KIND_KEY`] with the primary key's ARN
//! in the row's `secret_arn` column (see `coffer_core::kms::replicate_key`). [`deliver`] reads
//! the primary key when the row is due — its material (unwrapped with the Region's root key)
//! and the replica's metadata — and sends them as one [`KeyMessage`] over the sealed transport:
//! HPKE to the destination Region's public key, authenticated by the source Region's key, so
//! only the destination can open it and it knows which Region sent it. The plaintext is
//! zeroized after sealing. [`apply`] creates the key in the destination Region, wrapped under
//! that Region's root key; a redelivery of the same key is a success.
//!
//! Answers: `Done` (created, or already there with the same material) settles the row;
//! `Failed` (a different key of that id exists there) drops the Region from the primary's
//! replicas, so DescribeKey does not list a replica that will never exist and ReplicateKey can
//! be called again; a network failure is retried with the usual backoff, for as long as it
//! takes (the replica stays `Creating`, i.e. absent in its Region, until then).

use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use coffer_core::RegionService;
use coffer_core::kms::KeyMeta;
use coffer_core::kms::replicate_key::replica_meta;
use coffer_core::replication::{Answer, KIND_KEY, KIND_KEY_REMOVED};
use coffer_store::OutboxRow;

use crate::topology::Topology;
use crate::transport::Transport;

/// A replica key as it travels, inside a sealed message only (no `Debug`: it holds material).
#[derive(Serialize, Deserialize)]
pub struct KeyMessage {
    pub account_id: String,
    pub key_id: String,
    /// The replica's stored metadata (`primary_region` is the sending Region).
    pub metadata: KeyMeta,
    /// base64 of the 32 bytes of key material.
    pub material: Zeroizing<String>,
}

/// The message that creates `row`'s replica key in `dest`, or `None` when there is nothing to
/// send any more (the primary key is gone, or no longer lists `dest` among its replicas).
pub async fn build(
    region: &RegionService,
    dest: &str,
    row: &OutboxRow,
) -> coffer_core::Result<Option<Zeroizing<Vec<u8>>>> {
    // Read the key from the store, not the cache: with several nodes per Region, this node may
    // hold the key as it was before another node's ReplicateKey added `dest`.
    region.keys.forget_key(&row.entry.secret_arn);
    let Some(key) = region.keys.key_by_arn(&row.entry.secret_arn).await? else {
        return Ok(None);
    };
    if key.meta.primary_region.is_some() || !key.meta.replica_regions.iter().any(|r| r == dest) {
        return Ok(None);
    }
    let Ok(coffer_core::outbox::OutboxMessage::Key(payload)) =
        coffer_core::outbox::OutboxMessage::from_entry(&row.entry)
    else {
        return Err(coffer_core::Error::internal(
            "unreadable replica key payload",
        ));
    };
    let message = KeyMessage {
        account_id: key.record.account_id.clone(),
        key_id: key.record.key_id.clone(),
        metadata: replica_meta(&key, &region.region, payload),
        material: Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(key.material.expose_bytes()),
        ),
    };
    Ok(Some(Zeroizing::new(
        serde_json::to_vec(&message).expect("key message serializes"),
    )))
}

/// A deleted replica key, for its primary's Region ([`KIND_KEY_REMOVED`]).
#[derive(Serialize, Deserialize)]
pub struct KeyRemoved {
    /// The replica key's ARN (in the sending Region).
    pub arn: String,
}

/// Delivers one `key` or `key-removed` row to `dest` and settles it.
pub async fn deliver(
    topology: &Topology,
    region: &RegionService,
    transport: &Transport,
    dest: &str,
    row: &OutboxRow,
) -> coffer_core::Result<()> {
    let source = region.region.as_str();
    let arn = row.entry.secret_arn.as_str();
    let kind = if row.entry.kind == KIND_KEY_REMOVED {
        KIND_KEY_REMOVED
    } else {
        KIND_KEY
    };
    let finish = || region.store.finish_outbox(arn, dest, kind, row.id);
    let plaintext = if kind == KIND_KEY {
        let Some(plaintext) = build(region, dest, row).await? else {
            return finish().await.map_err(Into::into);
        };
        plaintext
    } else {
        Zeroizing::new(
            serde_json::to_vec(&KeyRemoved {
                arn: arn.to_string(),
            })
            .expect("notice serializes"),
        )
    };
    let answer = match transport
        .send(topology, source, dest, kind, &plaintext)
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            crate::worker::settle_send_error(topology, region, dest, row, e).await?;
            return Ok(());
        }
    };
    drop(plaintext);
    match serde_json::from_slice::<Answer>(&answer) {
        Ok(Answer::Done | Answer::Applied { .. }) if kind == KIND_KEY => {
            topology.metrics.count(source, dest, "key_created");
            tracing::info!(source, dest, key = arn, "Multi-Region replica key created");
        }
        Ok(Answer::Done | Answer::Applied { .. }) => topology.metrics.count(source, dest, "done"),
        Ok(Answer::Failed { message, .. }) => {
            topology.metrics.count(source, dest, "failed");
            tracing::warn!(source, dest, key = arn, kind, reason = %message, "Multi-Region key message refused");
            if kind == KIND_KEY {
                // The replica will never exist: the primary stops listing it.
                drop_replica_region(region, arn, dest).await?;
            }
        }
        // Nothing else answers a key message: try again later.
        _ => {
            return crate::worker::retry(
                topology,
                region,
                dest,
                row,
                "the answer was unreadable".into(),
            )
            .await;
        }
    }
    finish().await.map_err(Into::into)
}

/// Takes `dest` off the primary key's replicas (a replica that could not be created).
async fn drop_replica_region(
    region: &RegionService,
    key_arn: &str,
    dest: &str,
) -> coffer_core::Result<()> {
    region.keys.forget_key(key_arn);
    let Some(key) = region.keys.key_by_arn(key_arn).await? else {
        return Ok(());
    };
    let mut meta = (*key.meta).clone();
    meta.replica_regions.retain(|r| r != dest);
    coffer_core::kms::schedule_key_deletion::replicas_gone(&mut meta, region.now_ms());
    coffer_core::kms::save_meta(region, &key, meta).await
}

fn malformed() -> coffer_core::Error {
    coffer_core::Error::internal("malformed replica key message")
}

/// Creates the replica key a [`KeyMessage`] from `source` carries, in `region`.
pub async fn apply(
    region: &RegionService,
    source: &str,
    plaintext: &[u8],
) -> coffer_core::Result<Answer> {
    let msg: KeyMessage = serde_json::from_slice(plaintext).map_err(|_| malformed())?;
    // The sealed envelope proves the source Region; the message must agree with it, and name a
    // multi-Region key id of an account.
    let well_formed = msg.metadata.primary_region.as_deref() == Some(source)
        && msg.metadata.multi_region
        && msg.key_id.starts_with("mrk-")
        && msg.key_id.len() == 36
        && msg.key_id[4..].bytes().all(|b| b.is_ascii_hexdigit())
        && msg.account_id.len() == 12
        && msg.account_id.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err(malformed());
    }
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(msg.material.as_bytes())
            .map_err(|_| malformed())?,
    );
    let material = coffer_kms::KeyMaterial::from_bytes(&bytes).ok_or_else(malformed)?;
    match region
        .keys
        .create_key(&msg.account_id, &msg.key_id, msg.metadata, material)
        .await
    {
        Ok(_) => Ok(Answer::Done),
        Err(e) if e.code == coffer_core::ErrorCode::KmsAlreadyExists => {
            // A redelivery (the answer was lost) finds its own key: success. Anything else of
            // that id is not this key's replica, and stays untouched.
            let arn = format!(
                "arn:{}:kms:{}:{}:key/{}",
                region.partition, region.region, msg.account_id, msg.key_id
            );
            let existing = region.keys.key_by_arn(&arn).await?;
            let same = existing.as_ref().is_some_and(|k| {
                k.meta.primary_region.as_deref() == Some(source)
                    && k.material.expose_bytes()[..] == bytes[..]
            });
            if same {
                Ok(Answer::Done)
            } else {
                Ok(Answer::Failed {
                    message: format!(
                        "Key {arn} already exists in {} and is not a replica of the key in {source}.",
                        region.region
                    ),
                    cause: coffer_core::replication::FailureCause::NameClash,
                })
            }
        }
        Err(e) => Err(e),
    }
}

/// Drops the sending Region from the replicas of the primary key a [`KeyRemoved`] names (the
/// replica there was deleted). Unknown keys and Regions are a success: nothing to drop.
pub async fn apply_removed(
    region: &RegionService,
    source: &str,
    plaintext: &[u8],
) -> coffer_core::Result<Answer> {
    let msg: KeyRemoved = serde_json::from_slice(plaintext).map_err(|_| malformed())?;
    // Only the replica's own Region may say it is gone.
    match coffer_core::model::Arn::parse(&msg.arn) {
        Some(a)
            if a.service == "kms" && a.region == source && a.resource.starts_with("key/mrk-") => {}
        _ => return Err(malformed()),
    }
    let primary_arn = coffer_core::replication::arn_in_region(&msg.arn, &region.region);
    region.keys.forget_key(&primary_arn);
    let Some(key) = region.keys.key_by_arn(&primary_arn).await? else {
        return Ok(Answer::Done);
    };
    if key.meta.primary_region.is_some() || !key.meta.replica_regions.iter().any(|r| r == source) {
        return Ok(Answer::Done);
    }
    let mut meta = (*key.meta).clone();
    meta.replica_regions.retain(|r| r != source);
    coffer_core::kms::schedule_key_deletion::replicas_gone(&mut meta, region.now_ms());
    coffer_core::kms::save_meta(region, &key, meta).await?;
    tracing::info!(region = %region.region, key = %primary_arn, replica_region = source, "Multi-Region replica key deleted; dropped from the primary's replicas");
    Ok(Answer::Done)
}
