//! DeleteSecret (spec §4.10): a recovery window of 7–30 days (default 30), or
//! ForceDeleteWithoutRecovery. The background purge (`crate::purge`) removes secrets whose
//! window has passed.

use coffer_store::SecretChange;
use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::Access;
use crate::error::{Error, Result};
use crate::model::{MS_PER_DAY, Timestamp, secret_arn};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::secret::{Failure, check_secret_id, commit_update, ensure_primary, load, with_retry};
use crate::validate::Violations;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub recovery_window_in_days: Option<i64>,
    pub force_delete_without_recovery: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub deletion_date: Timestamp,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    v.finish()?;
    // Authorisation before existence (authorize.rs).
    let access = Access::new(Operation::DeleteSecret.action())
        .with(
            "secretsmanager:RecoveryWindowInDays",
            input.recovery_window_in_days.map(|d| d.to_string()),
        )
        .with(
            "secretsmanager:ForceDeleteWithoutRecovery",
            input.force_delete_without_recovery.map(|b| b.to_string()),
        );
    let force = input.force_delete_without_recovery.unwrap_or(false);
    if force && input.recovery_window_in_days.is_some() {
        // [E] moto's wording.
        return Err(Error::invalid_parameter(
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
        ));
    }
    let window = input.recovery_window_in_days.unwrap_or(30);
    if !(7..=30).contains(&window) {
        // [E] moto's wording.
        return Err(Error::invalid_parameter(
            "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
        ));
    }
    let secret_id = input.secret_id.unwrap_or_default();
    with_retry(|| async {
        let secret = match load(region, caller, &secret_id, &access).await {
            Ok(s) => s,
            // [S] force-deleting a secret that does not exist succeeds, echoing the id.
            Err(e) if force && e.code == crate::ErrorCode::ResourceNotFound => {
                let name = secret_id
                    .rsplit(':')
                    .next()
                    .unwrap_or(&secret_id)
                    .to_string();
                return Ok(Output {
                    arn: if secret_id.starts_with("arn:") {
                        secret_id.clone()
                    } else {
                        secret_arn(
                            region.partition,
                            &region.region,
                            &caller.account_id,
                            &name,
                            "000000",
                        )
                    },
                    name: secret_id.clone(),
                    deletion_date: Timestamp(region.now_ms()),
                });
            }
            Err(e) => return Err(Failure::Api(e)),
        };
        ensure_primary(&secret).map_err(Failure::Api)?;
        let replicas = crate::replication::replicas(&secret);
        if !replicas.is_empty() {
            // [F] x3: regions in the order they were added, comma+space, trailing period.
            let regions: Vec<&str> = replicas.iter().map(|r| r.region.as_str()).collect();
            return Err(Failure::Api(Error::invalid_parameter(format!(
                "You can't delete secret {} that still has replica regions [{}].",
                secret.record.arn,
                regions.join(", ")
            ))));
        }
        let now = region.now_ms();
        if force {
            region
                .store
                .commit(SecretChange::Delete {
                    arn: secret.record.arn.clone(),
                    expected_row_version: secret.record.row_version,
                })
                .await?;
            return Ok(Output {
                arn: secret.record.arn,
                name: secret.record.name,
                deletion_date: Timestamp(now),
            });
        }
        if secret.record.deleted_ms.is_some() {
            // [E] a second scheduled delete is refused; force still works.
            return Err(Failure::Api(Error::marked_for_deletion()));
        }
        let expected = secret.record.row_version;
        let mut secret = secret;
        let purge_at = now + window * MS_PER_DAY;
        secret.record.deleted_ms = Some(now);
        secret.record.purge_at_ms = Some(purge_at);
        let secret = commit_update(region, secret, expected, Vec::new(), Vec::new()).await?;
        Ok(Output {
            arn: secret.record.arn,
            name: secret.record.name,
            deletion_date: Timestamp(purge_at),
        })
    })
    .await
}
