//! Operations whose feature has not landed yet: rotation (RotateSecret, CancelRotateSecret).
//! They are dispatched and answer with an error that says plainly what is missing, so a client
//! never mistakes them for success.

use crate::error::{Error, Result};
use crate::region::{Caller, RegionService};

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
    let _ = operation;
    Err(rotation_error())
}
