//! Operations whose features have not landed yet: rotation (RotateSecret,
//! CancelRotateSecret) and replication (ReplicateSecretToRegions, RemoveRegionsFromReplication,
//! StopReplicationToReplica). They are dispatched, validate the secret like the real
//! operation will, and answer with an error that says plainly what is missing, so a client
//! never mistakes them for success.

use crate::error::{Error, Result};
use crate::region::{Caller, RegionService};

pub fn replication_error() -> Error {
    Error::invalid_request(
        "Coffer does not replicate secrets across Regions yet: ReplicateSecretToRegions, \
         RemoveRegionsFromReplication, StopReplicationToReplica and AddReplicaRegions are not available in this version.",
    )
}

pub fn rotation_error() -> Error {
    Error::invalid_request(
        "Coffer does not rotate secrets yet: RotateSecret and CancelRotateSecret are not available in this version.",
    )
}

pub async fn run(
    operation: &str,
    _region: &RegionService,
    _caller: &Caller,
    body: &[u8],
) -> Result<Vec<u8>> {
    // Malformed bodies still get the same error as for every other operation.
    let _: serde_json::Map<String, serde_json::Value> = super::parse(body)?;
    Err(match operation {
        "RotateSecret" | "CancelRotateSecret" => rotation_error(),
        _ => replication_error(),
    })
}
