//! KMS `GenerateDataKeyWithoutPlaintext`: `GenerateDataKey` without the plaintext key.

use serde::Serialize;

use super::Operation;
use crate::error::Result;
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

pub use super::generate_data_key::Input;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(with = "super::blob")]
    pub ciphertext_blob: Vec<u8>,
    pub key_id: String,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let out = super::generate_data_key::generate(
        region,
        caller,
        input,
        Operation::GenerateDataKeyWithoutPlaintext.action(),
    )
    .await?;
    Ok(Output {
        ciphertext_blob: out.ciphertext_blob,
        key_id: out.key_id,
    })
}
