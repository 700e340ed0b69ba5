//! Keys whose deletion window ended are removed with their aliases (run by the background purge
//! with the secrets' purge, `crate::purge::purge_due`).

use crate::error::Result;
use crate::region::RegionService;

/// Removes every key of the Region whose `DeletionDate` has passed; returns how many.
pub async fn purge_due_keys(region: &RegionService) -> Result<usize> {
    let now = region.now_ms();
    let mut purged = 0;
    for record in region.store.list_kms_keys(None).await? {
        let Ok(meta) = serde_json::from_str::<super::KeyMeta>(&record.metadata) else {
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
