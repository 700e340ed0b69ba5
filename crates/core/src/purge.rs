//! The background purge: removes secrets whose recovery window has passed, and KMS keys whose
//! deletion window ended, with their aliases.

use coffer_store::SecretChange;

use crate::error::Result;
use crate::region::RegionService;

/// How many due secrets one batch of the purge reads.
const PURGE_BATCH: i64 = 1000;

/// Purges every secret of the Region whose window ended; returns how many were removed. Works
/// in batches of [`PURGE_BATCH`] ARNs, one commit per secret ([`PURGE_IN_FLIGHT`] at once), so
/// memory stays small and no transaction holds the writer for long, however many are due.
pub async fn purge_due(region: &RegionService) -> Result<usize> {
    let now = region.now_ms();
    // KMS keys whose waiting period ended go first (they are counted in their own log lines).
    purge_due_keys(region).await?;
    let mut purged = 0;
    loop {
        let batch = region.store.secrets_due_for_purge(now, PURGE_BATCH).await?;
        let full = batch.len() as i64 == PURGE_BATCH;
        let before = purged;
        purged += purge_batch(region, now, batch).await?;
        // A batch that removed nothing (each secret restored or changed meanwhile) ends the
        // run: the next one retries them.
        if !full || purged == before {
            return Ok(purged);
        }
    }
}

/// How many secrets of a batch are purged at once. Each purge is its own commit (a secret
/// restored meanwhile only fails its own), and on SQLite commits in flight together share one
/// transaction and fsync (group commit): one at a time, 100,000 due secrets took one fsync each.
const PURGE_IN_FLIGHT: usize = 64;

async fn purge_batch(region: &RegionService, now: i64, batch: Vec<String>) -> Result<usize> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    stream::iter(batch)
        .map(|arn| purge_one(region, now, arn))
        .buffer_unordered(PURGE_IN_FLIGHT)
        .try_fold(0, |purged, removed| async move {
            Ok(purged + usize::from(removed))
        })
        .await
}

/// Purges one secret if it is still due; whether it was removed.
async fn purge_one(region: &RegionService, now: i64, arn: String) -> Result<bool> {
    let Some(secret) = region.store.load_secret_by_arn(&arn).await? else {
        return Ok(false);
    };
    // Re-check on the loaded row: a RestoreSecret may have won the race.
    if secret.record.purge_at_ms.is_none_or(|t| t > now) {
        return Ok(false);
    }
    match region
        .store
        .commit(SecretChange::Delete {
            arn: arn.clone(),
            expected_row_version: secret.record.row_version,
        })
        .await
    {
        Ok(()) => {
            tracing::info!(region = %region.region, arn = %arn, "Purged secret after its recovery window");
            Ok(true)
        }
        Err(coffer_store::StoreError::Conflict) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Removes every key of the Region whose `DeletionDate` has passed; returns how many.
pub async fn purge_due_keys(region: &RegionService) -> Result<usize> {
    let now = region.now_ms();
    let mut purged = 0;
    for record in region.store.list_kms_keys(None).await? {
        let Ok(meta) = serde_json::from_str::<crate::keys::KeyMeta>(&record.metadata) else {
            continue;
        };
        if meta.key_state != "PendingDeletion" || meta.deletion_date_ms.is_none_or(|d| d > now) {
            continue;
        }
        // A multi-Region replica tells its primary's Region, in the same transaction, so the
        // primary stops listing it (and can then be deleted itself), as AWS does.
        let notices: Vec<_> = meta
            .primary_region
            .iter()
            .map(|primary| crate::outbox::OutboxMessage::KeyRemoved.entry(&record.key_arn, primary))
            .collect();
        let notify = !notices.is_empty();
        match region
            .store
            .commit_kms_with(
                coffer_store::KmsChange::DeleteKey {
                    key_arn: record.key_arn.clone(),
                },
                notices,
            )
            .await
        {
            Ok(()) if notify => region.notify_outbox(),
            Ok(()) | Err(coffer_store::StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        region.keys.forget_key(&record.key_arn);
        purged += 1;
        tracing::info!(region = %region.region, key = %record.key_arn, "Deleted KMS key after its waiting period");
    }
    Ok(purged)
}
