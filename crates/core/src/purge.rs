//! The background purge: removes secrets whose recovery window has passed.

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
    crate::kms::purge::purge_due_keys(region).await?;
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
