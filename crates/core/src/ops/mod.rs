//! One module per AWS operation, each with its `Input`, `Output` and `run`. [`dispatch`] maps
//! the `X-Amz-Target` operation name to it and owns (de)serialization, so every operation
//! rejects malformed input the same way.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorCode, Result};
use crate::operation::{named, operations};
use crate::region::{Caller, RegionService};

pub mod batch_get_secret_value;
pub mod cancel_rotate_secret;
pub mod create_secret;
pub mod delete_resource_policy;
pub mod delete_secret;
pub mod describe_secret;
pub mod get_random_password;
pub mod get_resource_policy;
pub mod get_secret_value;
pub mod list_secret_version_ids;
pub mod list_secrets;
pub mod put_resource_policy;
pub mod put_secret_value;
pub mod remove_regions_from_replication;
pub mod replicate_secret_to_regions;
pub mod restore_secret;
pub mod rotate_secret;
pub mod stop_replication_to_replica;
pub mod tag_resource;
pub mod untag_resource;
pub mod update_secret;
pub mod update_secret_version_stage;
pub mod validate_resource_policy;

operations! {
    /// Every operation of the Secrets Manager API (botocore model 2017-10-17), each
    /// `ops/<snake_case_name>.rs`.
    pub enum Operation in "secretsmanager", "secretsmanager.amazonaws.com" {
        BatchGetSecretValue: read,
        CancelRotateSecret: change,
        CreateSecret: change,
        DeleteResourcePolicy: change,
        DeleteSecret: change,
        DescribeSecret: read,
        GetRandomPassword: read,
        GetResourcePolicy: read,
        GetSecretValue: read,
        ListSecretVersionIds: read,
        ListSecrets: read,
        PutResourcePolicy: change,
        PutSecretValue: change,
        RemoveRegionsFromReplication: change,
        ReplicateSecretToRegions: change,
        RestoreSecret: change,
        RotateSecret: change,
        StopReplicationToReplica: change,
        TagResource: change,
        UntagResource: change,
        UpdateSecret: change,
        UpdateSecretVersionStage: change,
        ValidateResourcePolicy: read,
    }
}

/// Runs `operation` with a JSON request body and returns the JSON response body.
pub async fn dispatch(
    region: &RegionService,
    caller: &Caller,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>> {
    let (r, c) = (region, caller);
    match named(operation, || {
        format!("Operation {operation} is not supported by Secrets Manager.")
    })? {
        Operation::BatchGetSecretValue => call(batch_get_secret_value::run, r, c, body).await,
        Operation::CancelRotateSecret => call(cancel_rotate_secret::run, r, c, body).await,
        Operation::CreateSecret => call(create_secret::run, r, c, body).await,
        Operation::DeleteResourcePolicy => call(delete_resource_policy::run, r, c, body).await,
        Operation::DeleteSecret => call(delete_secret::run, r, c, body).await,
        Operation::DescribeSecret => call(describe_secret::run, r, c, body).await,
        Operation::GetRandomPassword => call(get_random_password::run, r, c, body).await,
        Operation::GetResourcePolicy => call(get_resource_policy::run, r, c, body).await,
        Operation::GetSecretValue => call(get_secret_value::run, r, c, body).await,
        Operation::ListSecretVersionIds => call(list_secret_version_ids::run, r, c, body).await,
        Operation::ListSecrets => call(list_secrets::run, r, c, body).await,
        Operation::PutResourcePolicy => call(put_resource_policy::run, r, c, body).await,
        Operation::PutSecretValue => call(put_secret_value::run, r, c, body).await,
        Operation::RemoveRegionsFromReplication => {
            call(remove_regions_from_replication::run, r, c, body).await
        }
        Operation::ReplicateSecretToRegions => {
            call(replicate_secret_to_regions::run, r, c, body).await
        }
        Operation::RestoreSecret => call(restore_secret::run, r, c, body).await,
        Operation::RotateSecret => call(rotate_secret::run, r, c, body).await,
        Operation::StopReplicationToReplica => {
            call(stop_replication_to_replica::run, r, c, body).await
        }
        Operation::TagResource => call(tag_resource::run, r, c, body).await,
        Operation::UntagResource => call(untag_resource::run, r, c, body).await,
        Operation::UpdateSecret => call(update_secret::run, r, c, body).await,
        Operation::UpdateSecretVersionStage => {
            call(update_secret_version_stage::run, r, c, body).await
        }
        Operation::ValidateResourcePolicy => call(validate_resource_policy::run, r, c, body).await,
    }
}

/// Parses the input, runs the operation, serializes its output (also used by the KMS API).
pub(crate) async fn call<I, O, F>(
    f: F,
    region: &RegionService,
    caller: &Caller,
    body: &[u8],
) -> Result<Vec<u8>>
where
    I: DeserializeOwned,
    O: Serialize,
    F: AsyncFnOnce(&RegionService, &Caller, I) -> Result<O>,
{
    let input: I = parse(body)?;
    // Boxed: the operation's future lives on the heap, sized for this operation only, so the
    // futures of `dispatch` and of the HTTP handler above it stay small (moving a future
    // copies all of it, and without the box each would be as large as the largest operation).
    let output = Box::pin(f(region, caller, input)).await?;
    // Sized for a typical response (a GetSecretValue of a short secret is about 300 bytes),
    // so the buffer is not grown and copied on the way.
    let mut out = Vec::with_capacity(512);
    serde_json::to_writer(&mut out, &output).expect("responses serialize");
    Ok(out)
}

/// Parses a request body. The error names the problem and position but never echoes input,
/// which may hold a secret value.
pub fn parse<I: DeserializeOwned>(body: &[u8]) -> Result<I> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        let what = match e.classify() {
            Category::Data => "a member has the wrong type or an invalid value",
            Category::Syntax | Category::Eof => "the body is not valid JSON",
            Category::Io => "the body could not be read",
        };
        Error::new(
            ErrorCode::Serialization,
            format!(
                "Unable to parse request: {what} (line {}, column {}).",
                e.line(),
                e.column()
            ),
        )
    })
}
