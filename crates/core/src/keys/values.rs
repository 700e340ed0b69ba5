//! Envelope encryption of secret values: a fresh data key per value, wrapped by the secret's KMS
//! key, the value sealed by it under AAD that binds Region, secret ARN and VersionId.

use coffer_kms::EncryptionContext;
use zeroize::Zeroizing;

use super::{KeyHandle, KeyUse, Keys};
use crate::caller::Caller;
use crate::error::{Error, ErrorCode, Result};
use crate::model::SecretValue;

impl Keys {
    /// AAD for the value: binds Region, secret ARN and VersionId, so a ciphertext copied to
    /// another secret, version or Region does not decrypt.
    fn value_aad(&self, arn: &str, version_id: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(self.region.len() + arn.len() + version_id.len() + 2);
        aad.extend_from_slice(self.region.as_bytes());
        aad.push(0);
        aad.extend_from_slice(arn.as_bytes());
        aad.push(0);
        aad.extend_from_slice(version_id.as_bytes());
        aad
    }

    fn context(arn: &str, version_id: &str) -> EncryptionContext {
        // The two pairs Secrets Manager sends to KMS (spec §7.1).
        let mut ctx = EncryptionContext::new();
        ctx.insert("SecretARN".into(), arn.into());
        ctx.insert("SecretVersionId".into(), version_id.into());
        ctx
    }

    /// Envelope-encrypts a value: a fresh data key wrapped by `key`, the value sealed by it.
    /// Returns (wrapped data key, ciphertext).
    pub fn encrypt_value(
        &self,
        caller: &Caller,
        key: &KeyHandle,
        arn: &str,
        version_id: &str,
        value: &SecretValue,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        self.authorize_key_use(caller, key, KeyUse::Encrypt)?;
        let (data_key, wrapped) =
            coffer_kms::generate_data_key(&key.material, &key.arn, &Self::context(arn, version_id))
                .map_err(|_| {
                    Error::new(
                        ErrorCode::EncryptionFailure,
                        "Secrets Manager can't encrypt the secret value.",
                    )
                })?;
        let ciphertext = data_key.seal(&self.value_aad(arn, version_id), value.as_bytes());
        Ok((wrapped, ciphertext))
    }

    pub async fn decrypt_value(
        &self,
        caller: &Caller,
        arn: &str,
        version: &coffer_store::VersionRecord,
    ) -> Result<SecretValue> {
        let failure = || {
            Error::new(
                ErrorCode::DecryptionFailure,
                "Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
            )
        };
        let (Some(wrapped), Some(ciphertext)) = (&version.wrapped_data_key, &version.ciphertext)
        else {
            return Err(failure());
        };
        let key_arn = coffer_kms::ciphertext_key_id(wrapped).map_err(|_| failure())?;
        let key = self.key_by_arn(key_arn).await?.ok_or_else(failure)?;
        self.authorize_key_use(caller, &key, KeyUse::Decrypt)?;
        let context = Self::context(arn, &version.version_id);
        let data_key = key
            .materials_for(wrapped)
            .into_iter()
            .find_map(|m| coffer_kms::decrypt_data_key(m, wrapped, &context).ok())
            .ok_or_else(failure)?;
        let plain = data_key
            .open(&self.value_aad(arn, &version.version_id), ciphertext)
            .map_err(|_| failure())?;
        Ok(match version.value_kind {
            coffer_store::ValueKind::String => SecretValue::String(Zeroizing::new(
                String::from_utf8(plain.to_vec()).map_err(|_| failure())?,
            )),
            _ => SecretValue::Binary(plain),
        })
    }
}
