//! RotateSecret (spec §6.1): stores the rotation configuration and, unless
//! `RotateImmediately=false`, starts a rotation now: a value-less AWSPENDING version whose id is
//! the ClientRequestToken, and a queued run of the four steps.

use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::Access;
use crate::error::{Error, ErrorCode, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::rotation::{
    Pending, RotationRules, RotationState, add_placeholder, run_entry, set_state, state,
};
use crate::secret::{
    AWSCURRENT, AWSPENDING, check_secret_id, commit_update_with, ensure_not_deleted,
    ensure_primary, load, with_retry,
};
use crate::validate::Violations;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub client_request_token: Option<String>,
    #[serde(rename = "RotationLambdaARN")]
    pub rotation_lambda_arn: Option<String>,
    pub rotation_rules: Option<RotationRules>,
    pub rotate_immediately: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

/// [S] AWS's answer for a function it cannot invoke (including one that does not exist).
fn cannot_invoke() -> Error {
    Error::new(
        ErrorCode::AccessDenied,
        "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.",
    )
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    v.length(
        input.client_request_token.as_deref(),
        "clientRequestToken",
        32,
        64,
    );
    v.length(
        input.rotation_lambda_arn.as_deref(),
        "rotationLambdaARN",
        0,
        2048,
    );
    if let Some(r) = &input.rotation_rules {
        v.range(
            r.automatically_after_days,
            "rotationRules.automaticallyAfterDays",
            1,
            1000,
        );
        v.length(
            r.schedule_expression.as_deref(),
            "rotationRules.scheduleExpression",
            1,
            256,
        );
        v.length(r.duration.as_deref(), "rotationRules.duration", 2, 3);
    }
    v.finish()?;
    // Authorisation before existence (authorize.rs).
    let access = Access::new(Operation::RotateSecret.action())
        .with(
            "secretsmanager:RotationLambdaARN",
            input.rotation_lambda_arn.clone(),
        )
        .with(
            "secretsmanager:RotateImmediately",
            input.rotate_immediately.map(|b| b.to_string()),
        )
        .with(
            "secretsmanager:ModifyRotationRules",
            input.rotation_rules.as_ref().map(|_| "true"),
        );
    // [S] for this operation AWS says InvalidParameterException (not InvalidRequest).
    let Some(token) = input.client_request_token else {
        return Err(Error::invalid_parameter(
            "You must provide a ClientRequestToken value. We recommend a UUID-type value.",
        ));
    };
    let rules = input.rotation_rules;
    if let Some(r) = &rules {
        r.schedule()?;
    }
    let immediately = input.rotate_immediately.unwrap_or(true);
    let secret_id = input.secret_id.unwrap_or_default();
    let lambda_in = input.rotation_lambda_arn.filter(|l| !l.is_empty());
    with_retry(|| async {
        let mut secret = load(region, caller, &secret_id, &access).await?;
        ensure_primary(&secret)?;
        ensure_not_deleted(&secret)?;
        let mut st: RotationState = state(&secret).unwrap_or_default();
        let Some(lambda) = lambda_in.clone().or_else(|| st.lambda_arn.clone()) else {
            // [S] nothing is saved.
            return Err(Error::invalid_request(
                "No Lambda rotation function ARN is associated with this secret.",
            )
            .into());
        };
        if !region.rotation_function_exists(&lambda) {
            return Err(cannot_invoke().into());
        }
        // [F] a version with AWSPENDING but not AWSCURRENT: the last rotation did not finish.
        let unfinished = secret.versions.iter().any(|v| {
            v.stages.iter().any(|s| s == AWSPENDING) && !v.stages.iter().any(|s| s == AWSCURRENT)
        });
        if unfinished && immediately {
            return Err(Error::invalid_request(
                "A previous rotation isn't complete. That rotation will be reattempted.",
            )
            .into());
        }
        let expected = secret.record.row_version;
        let now = region.now_ms();
        st.enabled = true;
        st.lambda_arn = Some(lambda);
        if let Some(r) = &rules {
            st.rules = Some(r.clone());
        }
        st.generation += 1;
        st.next_window = None;
        let mut changed = Vec::new();
        let mut outbox = crate::replication::sync_entries(&secret, &[]);
        if immediately {
            changed = add_placeholder(&mut secret, &token, now);
            st.pending = Some(Pending {
                token: token.clone(),
                started_ms: now,
                attempts: 0,
                last_error: None,
                running: None,
            });
            outbox.push(run_entry(&secret, &region.region, st.generation));
        } else if st.plan(st.last_rotated_ms.unwrap_or(now)).is_some() {
            // [E] RotateImmediately=false only schedules the next window; AWS's one-off
            // testSecret run against the current value is not performed.
            outbox.push(run_entry(&secret, &region.region, st.generation));
        }
        if immediately && st.rules.is_some() {
            // NextRotationDate while the immediate rotation runs: one period from now.
            let pending = st.pending.take();
            st.plan(now);
            st.pending = pending;
        }
        set_state(&mut secret, &st);
        secret.record.last_changed_ms = now;
        let secret =
            commit_update_with(region, secret, expected, changed, Vec::new(), outbox).await?;
        Ok(Output {
            arn: secret.record.arn,
            name: secret.record.name,
            version_id: immediately.then(|| token.clone()),
        })
    })
    .await
}
