//! KMS `Encrypt`: 1–4096 bytes under a key, bound to an encryption context. The blob names the
//! key, so `Decrypt` needs no `KeyId`.

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
    #[serde(with = "super::blob")]
    pub plaintext: Zeroizing<Vec<u8>>,
    #[serde(default)]
    pub encryption_context: Option<Context>,
    #[serde(default)]
    pub encryption_algorithm: Option<String>,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(with = "super::blob")]
    pub ciphertext_blob: Vec<u8>,
    pub key_id: String,
    pub encryption_algorithm: &'static str,
}

pub(crate) fn check_algorithm(algorithm: Option<&str>) -> Result<()> {
    match algorithm {
        None | Some("SYMMETRIC_DEFAULT") => Ok(()),
        Some(other) => Err(Error::new(
            crate::error::ErrorCode::KmsIncorrectKey,
            format!("The key is a SYMMETRIC_DEFAULT key; it does not support {other}."),
        )),
    }
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    // [L test_plaintext_size_for_encrypt] AWS names the bound that was crossed.
    let len = input.plaintext.len() as i64;
    if let Some(bound) = super::crossed_bound(len, 1, coffer_kms::MAX_PLAINTEXT_LEN as i64) {
        return Err(Error::validation(format!(
            "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length {bound}"
        )));
    }
    check_algorithm(input.encryption_algorithm.as_deref())?;
    let key =
        super::find_authorized(region, caller, &input.key_id, Operation::Encrypt.action()).await?;
    super::require_enabled(&key)?;
    let context = input.encryption_context.unwrap_or_default();
    let blob = coffer_kms::encrypt(&key.material, &key.arn, &input.plaintext, &context)
        .map_err(|e| Error::internal_from("KMS encrypt failed", e))?;
    Ok(Output {
        ciphertext_blob: blob,
        key_id: key.arn.clone(),
        encryption_algorithm: "SYMMETRIC_DEFAULT",
    })
}
