//! BatchGetSecretValue (spec §4.4): per-secret failures go into `Errors`, the call succeeds.

use serde::{Deserialize, Serialize};

use super::Operation;
use super::get_secret_value::{Output as SecretValueEntry, read};
use super::list_secrets::{Filter, Listing, check_filter_values, check_filters};
use crate::authorize::{Access, Target, authorize};
use crate::error::{Error, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::secret::load;
use crate::validate::Violations;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id_list: Option<Vec<String>>,
    pub filters: Option<Vec<Filter>>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiErrorEntry {
    pub secret_id: String,
    pub error_code: String,
    pub message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub secret_values: Vec<SecretValueEntry>,
    /// [D] present even when empty.
    pub errors: Vec<ApiErrorEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    if let Some(ids) = &input.secret_id_list {
        v.count_strings(Some(ids), "secretIdList", 1, 20);
        for (i, id) in ids.iter().enumerate() {
            v.length(Some(id), &format!("secretIdList.{}.member", i + 1), 1, 2048);
        }
    }
    check_filters(&mut v, &input.filters)?;
    v.range(input.max_results, "maxResults", 1, 20);
    v.length(input.next_token.as_deref(), "nextToken", 1, 4096);
    v.finish()?;
    // AWS checks BatchGetSecretValue (no resource), then GetSecretValue per secret; a secret
    // the caller may not read is an entry of Errors (AccessDeniedException).
    authorize(
        region,
        caller,
        &Access::new(Operation::BatchGetSecretValue.action()),
        Target::Everything,
    )?;
    let get = Access::new(Operation::GetSecretValue.action());
    let mut out = Output {
        secret_values: Vec::new(),
        errors: Vec::new(),
        next_token: None,
    };
    match (&input.secret_id_list, &input.filters) {
        (Some(ids), None) => {
            if input.max_results.is_some() || input.next_token.is_some() {
                // [E] moto's wording.
                return Err(Error::invalid_parameter(
                    "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is provided.",
                ));
            }
            for id in ids {
                let result = async {
                    let secret = load(region, caller, id, &get).await?;
                    read(region, caller, &secret, None, None).await
                }
                .await;
                match result {
                    Ok(entry) => out.secret_values.push(entry),
                    Err(e) => out.errors.push(ApiErrorEntry {
                        secret_id: id.clone(),
                        error_code: e.code.as_str().to_string(),
                        message: e.message,
                    }),
                }
            }
        }
        (None, Some(filters)) => {
            check_filter_values(&input.filters)?;
            // [E] secrets scheduled for deletion are not returned by filters.
            let listing = Listing {
                operation: "BatchGetSecretValue",
                account_id: &caller.account_id,
                filters,
                include_planned_deletion: false,
                sort_by: None,
                descending: false,
            };
            let (secrets, next) = listing
                .page(
                    region,
                    input.next_token.as_deref(),
                    input.max_results.unwrap_or(20) as usize,
                )
                .await?;
            out.next_token = next;
            for secret in &secrets {
                let result = match authorize(region, caller, &get, Target::Secret(secret)) {
                    Ok(()) => read(region, caller, secret, None, None).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(entry) => out.secret_values.push(entry),
                    Err(e) => out.errors.push(ApiErrorEntry {
                        secret_id: secret.record.arn.clone(),
                        error_code: e.code.as_str().to_string(),
                        message: e.message,
                    }),
                }
            }
        }
        // [E] moto's wording.
        _ => {
            return Err(Error::invalid_parameter(
                "Either 'SecretIdList' or 'Filters' must be provided, but not both.",
            ));
        }
    }
    Ok(out)
}
