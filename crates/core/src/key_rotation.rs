//! KMS key rotation: a key gets new material (`CurrentKeyMaterialId` changes) and keeps its earlier
//! materials, sealed under the new one, so everything encrypted before still decrypts (every
//! blob names the material it was made with). Used by `RotateKeyOnDemand` and by the automatic
//! rotation of keys whose `EnableKeyRotation` period has passed ([`rotate_due_keys`], run with
//! the background purge).
//!
//! A multi-Region primary rotates with its replicas, which share its material: replicas in this
//! node's Regions get the new material in the same call. Replicas in Regions of other nodes are
//! not reached: such a key is not rotated (`UnsupportedOperationException` on demand; the
//! automatic rotation waits, with a warning in the log). See docs/keys.md.

use base64::Engine;
use coffer_kms::KeyMaterial;

use crate::error::{Error, ErrorCode, Result};
use crate::keys::KeyHandle;
use crate::keys::{KeyMeta, PreviousMaterial, Rotation};
use crate::kms::{RegionDirectory, save_key};
use crate::region::RegionService;

pub(crate) const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The period of AWS-managed keys (`aws/secretsmanager`), which rotate every year, always.
const AWS_MANAGED_PERIOD_DAYS: i64 = 365;

/// A key's automatic rotation: `(period in days, next rotation in Unix milliseconds)`, or `None`
/// when it is off.
pub fn schedule(meta: &KeyMeta, created_ms: i64) -> Option<(i64, i64)> {
    match meta.rotation_period_days {
        Some(days) => Some((
            days,
            meta.next_rotation_ms.unwrap_or(created_ms + days * DAY_MS),
        )),
        None if meta.key_manager == "AWS" => {
            let last = meta
                .rotations
                .iter()
                .rev()
                .find(|r| r.rotation_type == "AUTOMATIC")
                .map_or(created_ms, |r| r.rotation_date_ms);
            Some((
                AWS_MANAGED_PERIOD_DAYS,
                last + AWS_MANAGED_PERIOD_DAYS * DAY_MS,
            ))
        }
        None => None,
    }
}

fn unsupported(message: String) -> Error {
    Error::new(ErrorCode::KmsUnsupportedOperation, message)
}

/// Refuses a multi-Region replica: rotation is a property of the primary key.
pub fn require_not_replica(key: &KeyHandle) -> Result<()> {
    if key.meta.primary_region.is_some() {
        return Err(unsupported(format!(
            "{} is a multi-Region replica key: rotate its primary key.",
            key.arn
        )));
    }
    Ok(())
}

/// `meta` after a rotation to `new` made at `now_ms`: every earlier material (and the one that
/// was current) sealed under the new one, and the rotation recorded.
fn rotated_meta(key: &KeyHandle, new: &KeyMaterial, rotation_type: &str, now_ms: i64) -> KeyMeta {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut meta = (*key.meta).clone();
    meta.previous_materials = key
        .previous
        .iter()
        .chain(std::iter::once(&*key.material))
        .map(|m| PreviousMaterial {
            key_material_id: m.id(),
            sealed: b64.encode(new.seal_previous(&key.record.key_id, m)),
        })
        .collect();
    meta.rotations.push(Rotation {
        key_material_id: new.id(),
        rotation_date_ms: now_ms,
        rotation_type: rotation_type.to_string(),
    });
    // [D "Rotating keys on demand"] on-demand rotation does not change the automatic schedule.
    if rotation_type == "AUTOMATIC"
        && let Some(days) = meta.rotation_period_days
    {
        meta.next_rotation_ms = Some(now_ms + days * DAY_MS);
    }
    meta
}

/// Rotates `key` (and the replicas of a multi-Region primary) to fresh material. The primary's
/// write decides: it is conditional on the key as read, so of two concurrent rotations one
/// wins and the other changes nothing (`KMSInternalException`, try again). The replicas then
/// take the winner's material, each written over its own latest state.
pub async fn rotate(
    region: &RegionService,
    key: &KeyHandle,
    rotation_type: &str,
    regions: &dyn RegionDirectory,
) -> Result<()> {
    require_not_replica(key)?;
    let mut replicas = Vec::new();
    for name in &key.meta.replica_regions {
        let Some(dest) = regions.local(name) else {
            return Err(unsupported(format!(
                "{} has a replica in {name}, a Region of another Coffer node: Coffer rotates multi-Region keys only when all their replicas are in Regions of this node.",
                key.arn
            )));
        };
        replicas.push((dest, crate::replication::arn_in_region(&key.arn, name)));
    }
    let new = KeyMaterial::generate();
    let now = region.now_ms();
    let meta = rotated_meta(key, &new, rotation_type, now);
    save_key(region, key, meta, Some(&new)).await?;
    for (dest, arn) in replicas {
        // A replica changed meanwhile (its tags, its state) is read again.
        for attempt in 1.. {
            dest.keys.forget_key(&arn);
            let Some(replica) = dest.keys.key_by_arn(&arn).await? else {
                break;
            };
            let meta = rotated_meta(&replica, &new, rotation_type, now);
            match save_key(dest, &replica, meta, Some(&new)).await {
                Ok(()) => break,
                Err(e) if e.code == ErrorCode::KmsInternal && attempt < 5 => continue,
                Err(e) => return Err(e),
            }
        }
    }
    tracing::info!(region = %region.region, key = %key.arn, rotation_type, "Rotated KMS key material");
    Ok(())
}

/// Rotates every Enabled key of the Region whose automatic rotation is due; returns how many.
pub async fn rotate_due_keys(
    region: &RegionService,
    regions: &dyn RegionDirectory,
) -> Result<usize> {
    let now = region.now_ms();
    let mut rotated = 0;
    for record in region.store.list_kms_keys(None).await? {
        let Ok(meta) = serde_json::from_str::<KeyMeta>(&record.metadata) else {
            continue;
        };
        let due = schedule(&meta, record.created_ms).is_some_and(|(_, next)| next <= now);
        if !due || meta.key_state != "Enabled" || meta.primary_region.is_some() {
            continue;
        }
        let Some(key) = region.keys.key_by_arn(&record.key_arn).await? else {
            continue;
        };
        match rotate(region, &key, "AUTOMATIC", regions).await {
            Ok(()) => rotated += 1,
            Err(e) if e.code == ErrorCode::KmsUnsupportedOperation => {
                tracing::warn!(region = %region.region, key = %record.key_arn, reason = %e.message, "Automatic rotation of a KMS key postponed");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(rotated)
}
