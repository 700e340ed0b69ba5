//! StopReplicationToReplica (spec §5.8), called in the replica's Region: promotes the replica to
//! a standalone secret at once, whether or not the primary's Region is reachable. A `detach`
//! outbox row, written in the same transaction, tells the primary to drop this Region; until it
//! arrives, the primary's syncs are answered `Detached` and never applied. The promotion is also
//! recorded apart from the secret (`Store::load_detachment`), so the old primary's messages stay
//! refused after the promoted secret is deleted, however long that primary was down.

use coffer_store::{Detachment, OutboxEntry, Secret, SecretChange};
use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::Access;
use crate::error::{Error, Result};
use crate::operation::Operation as _;
use crate::outbox::OutboxMessage;
use crate::region::{Caller, RegionService};
use crate::replication::{ReplicationState, set_state, state};
use crate::secret::{Failure, check_secret_id, load, with_retry};
use crate::validate::Violations;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    v.finish()?;
    let secret_id = input.secret_id.unwrap_or_default();
    with_retry(|| async {
        let secret = load(
            region,
            caller,
            &secret_id,
            &Access::new(Operation::StopReplicationToReplica.action()),
        )
        .await?;
        Ok(Output {
            arn: promote(region, secret).await?,
        })
    })
    .await
}

/// Promotes the replica `secret` (as loaded) to a standalone secret and returns its ARN: one
/// attempt, which loses a race as [`Failure::Conflict`].
pub async fn promote(
    region: &RegionService,
    secret: Secret,
) -> std::result::Result<String, Failure> {
    let arn = secret.record.arn.clone();
    let (changes, outbox) = promotion(region, secret)?;
    region.store.commit_with(changes, outbox).await?;
    region.notify_outbox();
    // What the old primary announced about it no longer counts toward this Region's
    // replication point (docs/failover.md); a leftover head is ignored anyway, so a failure
    // here only leaves a row behind.
    if let Err(e) = region.store.delete_heads(std::slice::from_ref(&arn)).await {
        tracing::warn!(arn = %arn, error = %crate::error::Chain(&e), "Could not forget the promoted replica's announced head");
    }
    Ok(arn)
}

/// What promoting the replica `secret` (as loaded) commits, in one transaction: the secret
/// without its replication state, the recorded promotion, and the `detach` row to the
/// primary's Region. Region failover (`crate::failover`) commits exactly this per secret,
/// many secrets per transaction.
pub fn promotion(
    region: &RegionService,
    mut secret: Secret,
) -> Result<(Vec<SecretChange>, Vec<OutboxEntry>)> {
    let Some(ReplicationState::Replica {
        primary_region,
        primary_arn,
        epoch,
        ..
    }) = state(&secret)
    else {
        // [E] AWS's text is not recorded; this one says what the call is for.
        return Err(Error::invalid_request(format!(
            "Secret {} is not a replica. Call StopReplicationToReplica in the Region of a replica secret to promote it.",
            secret.record.name
        )));
    };
    let expected = secret.record.row_version;
    set_state(&mut secret, None);
    secret.record.last_changed_ms = region.now_ms();
    secret.record.row_version = expected + 1;
    let outbox = vec![
        OutboxMessage::Detach {
            region: region.region.clone(),
            epoch: Some(epoch),
        }
        .entry(&secret.record.arn, &primary_region),
    ];
    // The promotion is remembered apart from the secret, in the same transaction: a late
    // message of the old primary must not recreate it even after it has been deleted.
    let detachment = SecretChange::RecordDetachment(Detachment {
        arn: secret.record.arn.clone(),
        primary_arn,
        epoch,
        detached_ms: region.now_ms(),
    });
    let update = SecretChange::Update {
        secret: secret.record,
        expected_row_version: expected,
        upsert_versions: Vec::new(),
        delete_versions: Vec::new(),
    };
    Ok((vec![update, detachment], outbox))
}
