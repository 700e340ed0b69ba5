//! One module per AWS operation, each with its `Input`, `Output` and `run`. [`dispatch`] maps
//! the `X-Amz-Target` operation name to it and owns (de)serialization, so every operation
//! rejects malformed input the same way.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorCode, Result};
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
pub mod input;
pub mod list_secret_version_ids;
pub mod list_secrets;
pub mod put_resource_policy;
pub mod put_secret_value;
pub mod remove_regions_from_replication;
pub mod replica_regions;
pub mod replicate_secret_to_regions;
pub mod restore_secret;
pub mod rotate_secret;
pub mod stop_replication_to_replica;
pub mod tag_resource;
pub mod untag_resource;
pub mod update_secret;
pub mod update_secret_version_stage;
pub mod validate_resource_policy;

/// Every operation of the Secrets Manager API (botocore model 2017-10-17).
pub const OPERATIONS: &[&str] = &[
    "BatchGetSecretValue",
    "CancelRotateSecret",
    "CreateSecret",
    "DeleteResourcePolicy",
    "DeleteSecret",
    "DescribeSecret",
    "GetRandomPassword",
    "GetResourcePolicy",
    "GetSecretValue",
    "ListSecretVersionIds",
    "ListSecrets",
    "PutResourcePolicy",
    "PutSecretValue",
    "RemoveRegionsFromReplication",
    "ReplicateSecretToRegions",
    "RestoreSecret",
    "RotateSecret",
    "StopReplicationToReplica",
    "TagResource",
    "UntagResource",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "ValidateResourcePolicy",
];

/// Runs `operation` with a JSON request body and returns the JSON response body.
pub async fn dispatch(
    region: &RegionService,
    caller: &Caller,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>> {
    match operation {
        "BatchGetSecretValue" => call(batch_get_secret_value::run, region, caller, body).await,
        "CreateSecret" => call(create_secret::run, region, caller, body).await,
        "DeleteResourcePolicy" => call(delete_resource_policy::run, region, caller, body).await,
        "DeleteSecret" => call(delete_secret::run, region, caller, body).await,
        "DescribeSecret" => call(describe_secret::run, region, caller, body).await,
        "GetRandomPassword" => call(get_random_password::run, region, caller, body).await,
        "GetResourcePolicy" => call(get_resource_policy::run, region, caller, body).await,
        "GetSecretValue" => call(get_secret_value::run, region, caller, body).await,
        "ListSecretVersionIds" => call(list_secret_version_ids::run, region, caller, body).await,
        "ListSecrets" => call(list_secrets::run, region, caller, body).await,
        "PutResourcePolicy" => call(put_resource_policy::run, region, caller, body).await,
        "PutSecretValue" => call(put_secret_value::run, region, caller, body).await,
        "RestoreSecret" => call(restore_secret::run, region, caller, body).await,
        "TagResource" => call(tag_resource::run, region, caller, body).await,
        "UntagResource" => call(untag_resource::run, region, caller, body).await,
        "UpdateSecret" => call(update_secret::run, region, caller, body).await,
        "UpdateSecretVersionStage" => {
            call(update_secret_version_stage::run, region, caller, body).await
        }
        "ValidateResourcePolicy" => call(validate_resource_policy::run, region, caller, body).await,
        "ReplicateSecretToRegions" => {
            call(replicate_secret_to_regions::run, region, caller, body).await
        }
        "RemoveRegionsFromReplication" => {
            call(remove_regions_from_replication::run, region, caller, body).await
        }
        "StopReplicationToReplica" => {
            call(stop_replication_to_replica::run, region, caller, body).await
        }
        "RotateSecret" => call(rotate_secret::run, region, caller, body).await,
        "CancelRotateSecret" => call(cancel_rotate_secret::run, region, caller, body).await,
        _ => Err(Error::new(
            ErrorCode::UnknownOperation,
            format!("Operation {operation} is not supported by Secrets Manager."),
        )),
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
    let output = f(region, caller, input).await?;
    Ok(serde_json::to_vec(&output).expect("responses serialize"))
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
