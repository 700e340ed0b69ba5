//! KMS `GenerateDataKey`: a fresh data key (`KeySpec` AES_256 / AES_128 or `NumberOfBytes`
//! 1–1024), returned in plaintext and as a blob under the KMS key.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Context;
use super::Operation;
use crate::error::{Error, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub key_id: String,
    #[serde(default)]
    pub encryption_context: Option<Context>,
    #[serde(default)]
    pub key_spec: Option<String>,
    #[serde(default)]
    pub number_of_bytes: Option<i64>,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(with = "super::blob")]
    pub ciphertext_blob: Vec<u8>,
    #[serde(serialize_with = "plaintext")]
    pub plaintext: Zeroizing<Vec<u8>>,
    pub key_id: String,
}

fn plaintext<S: serde::Serializer>(
    p: &Zeroizing<Vec<u8>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    super::blob::serialize(p, s)
}

/// Makes the data key and its blob; shared with GenerateDataKeyWithoutPlaintext.
pub(crate) async fn generate(
    region: &RegionService,
    caller: &Caller,
    input: Input,
    action: &str,
) -> Result<Output> {
    let len = match (input.key_spec.as_deref(), input.number_of_bytes) {
        (Some(_), Some(_)) => {
            return Err(Error::validation(
                "Please specify either number of bytes or key spec.",
            ));
        }
        (None, None) => {
            return Err(Error::validation(
                "Please specify either number of bytes or key spec.",
            ));
        }
        (Some("AES_256"), None) => 32,
        (Some("AES_128"), None) => 16,
        (Some(other), None) => {
            return Err(Error::validation(format!(
                "1 validation error detected: Value '{other}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
            )));
        }
        (None, Some(n)) if (1..=1024).contains(&n) => n as usize,
        (None, Some(n)) => {
            return Err(Error::validation(format!(
                "1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024"
            )));
        }
    };
    let key = super::find_authorized(region, caller, &input.key_id, action).await?;
    super::require_enabled(&key)?;
    let mut data = Zeroizing::new(vec![0u8; len]);
    rand::rngs::OsRng.fill_bytes(&mut data);
    let context = input.encryption_context.unwrap_or_default();
    let blob = coffer_kms::encrypt(&key.material, &key.arn, &data, &context)
        .map_err(|e| Error::internal_from("KMS encrypt failed", e))?;
    Ok(Output {
        ciphertext_blob: blob,
        plaintext: data,
        key_id: key.arn.clone(),
    })
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    generate(region, caller, input, Operation::GenerateDataKey.action()).await
}
