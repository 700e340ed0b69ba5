//! The background purge: removes secrets whose recovery window has passed.

use coffer_store::SecretChange;

use crate::error::Result;
use crate::region::RegionService;

/// How many due secrets one batch of the purge reads.
const PURGE_BATCH: i64 = 1000;

/// Purges every secret of the Region whose window ended; returns how many were removed. Works
/// in batches of [`PURGE_BATCH`] ARNs, one transaction per secret, so memory stays small and
/// no transaction holds the writer for long, however many secrets are due.
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

async fn purge_batch(region: &RegionService, now: i64, batch: Vec<String>) -> Result<usize> {
    let mut purged = 0;
    for arn in batch {
        let Some(secret) = region.store.load_secret_by_arn(&arn).await? else {
            continue;
        };
        // Re-check on the loaded row: a RestoreSecret may have won the race.
        if secret.record.purge_at_ms.is_none_or(|t| t > now) {
            continue;
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
                purged += 1;
                tracing::info!(region = %region.region, arn = %arn, "Purged secret after its recovery window");
            }
            Err(coffer_store::StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(purged)
}
