//! KMS `GenerateRandom`: 1–1024 random bytes from the operating system's CSPRNG.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Operation;
use crate::error::{Error, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Input {
    pub number_of_bytes: Option<i64>,
    pub custom_key_store_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(serialize_with = "super::decrypt::plaintext")]
    pub plaintext: Zeroizing<Vec<u8>>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    // [L test_generate_random_invalid_number_of_bytes]
    let Some(n) = input.number_of_bytes else {
        return Err(Error::validation("NumberOfBytes is required."));
    };
    super::check_value_range(n, "numberOfBytes", 1, 1024)?;
    if input.custom_key_store_id.is_some() {
        return Err(Error::new(
            crate::error::ErrorCode::KmsUnsupportedOperation,
            "Coffer's KMS has no custom key stores.",
        ));
    }
    super::authorize_account(region, caller, Operation::GenerateRandom.action())?;
    let mut bytes = Zeroizing::new(vec![0u8; n as usize]);
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Ok(Output { plaintext: bytes })
}
