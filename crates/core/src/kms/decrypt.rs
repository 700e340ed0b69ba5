//! KMS `Decrypt`: opens a blob made by `Encrypt` / `GenerateDataKey` with the same encryption
//! context. The blob names its key; a `KeyId` given must be that key (`IncorrectKeyException`).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Context;
use super::Operation;
use crate::error::{Error, ErrorCode, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    #[serde(with = "super::blob")]
    pub ciphertext_blob: Zeroizing<Vec<u8>>,
    #[serde(default)]
    pub encryption_context: Option<Context>,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub encryption_algorithm: Option<String>,
    #[serde(default)]
    pub grant_tokens: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub key_id: String,
    /// The key material that made the blob (AWS answers it for symmetric keys).
    pub key_material_id: String,
    #[serde(serialize_with = "plaintext")]
    pub plaintext: Zeroizing<Vec<u8>>,
    pub encryption_algorithm: &'static str,
}

pub(super) fn plaintext<S: serde::Serializer>(
    p: &Zeroizing<Vec<u8>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    super::blob::serialize(p, s)
}

fn invalid_ciphertext() -> Error {
    // One answer for every malformed, altered or mismatched blob, as KMS.
    Error::new(ErrorCode::KmsInvalidCiphertext, "")
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    super::encrypt::check_algorithm(input.encryption_algorithm.as_deref())?;
    let key_arn = coffer_kms::ciphertext_key_id(&input.ciphertext_blob)
        .map_err(|_| invalid_ciphertext())?
        .to_string();
    // A multi-Region key's blob names the key in the Region that made it; every replica shares
    // the material, so the same key id in this Region opens it (as AWS's multi-Region keys).
    let local_arn = match crate::model::Arn::parse(&key_arn) {
        Some(arn) if arn.resource.starts_with("key/mrk-") && arn.region != region.region => {
            region.keys.kms_arn(arn.account, arn.resource)
        }
        _ => key_arn.clone(),
    };
    let key = match region.keys.key_by_arn(&local_arn).await? {
        Some(k) => k,
        None => return Err(invalid_ciphertext()),
    };
    if let Some(wanted) = input.key_id.as_deref() {
        let named = super::find_key(region, caller, wanted).await?;
        if named.arn != key.arn {
            return Err(Error::new(
                ErrorCode::KmsIncorrectKey,
                "The key ID in the request does not identify a CMK that can perform this operation.",
            ));
        }
    }
    super::authorize(caller, &key, Operation::Decrypt.action())?;
    super::require_enabled(&key)?;
    let context = input.encryption_context.unwrap_or_default();
    // The blob names the material it was made with; a key rotated since still has it.
    let (plain, material_id) = key
        .materials_for(&input.ciphertext_blob)
        .into_iter()
        .find_map(|m| {
            coffer_kms::decrypt(m, &input.ciphertext_blob, &context)
                .ok()
                .map(|p| (p, m.id()))
        })
        .ok_or_else(invalid_ciphertext)?;
    Ok(Output {
        key_id: key.arn.clone(),
        key_material_id: material_id,
        plaintext: plain,
        encryption_algorithm: "SYMMETRIC_DEFAULT",
    })
}
