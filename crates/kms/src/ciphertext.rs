//! KMS `Encrypt` / `Decrypt` / `GenerateDataKey`: self-describing ciphertext blobs under a KMS
//! key, bound to an encryption context. The layout is described in the crate docs.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::aead;
use crate::error::KmsError;
use crate::keys::{DataKey, KeyMaterial};
use crate::secret::{KEY_LEN, Key32};

/// KMS encryption context: non-secret string pairs that must be presented again to decrypt.
/// A `BTreeMap`, so iteration is already in the canonical (byte-wise sorted) key order.
pub type EncryptionContext = BTreeMap<String, String>;

/// Largest plaintext KMS `Encrypt` accepts.
pub const MAX_PLAINTEXT_LEN: usize = 4096;
/// Longest key id a blob can name. Key ARNs are under 100 bytes; with the 4096-byte plaintext
/// limit the blob stays under the 6144 bytes KMS allows for `CiphertextBlob`.
pub const MAX_KEY_ID_LEN: usize = 1024;

/// First byte of every blob.
const BLOB_VERSION: u8 = 1;
/// Domain separation for the blob AAD.
const BLOB_AAD_LABEL: &[u8] = b"coffer-kms ciphertext blob\0";
/// `version (1) || key id length (2)`.
const HEADER_FIXED_LEN: usize = 3;

/// A parsed blob, borrowing from the input.
struct Blob<'a> {
    /// `version || key id length || key id`: authenticated as part of the AAD.
    header: &'a [u8],
    key_id: &'a str,
    /// `nonce || ciphertext || tag`.
    sealed: &'a [u8],
}

fn parse(blob: &[u8]) -> Result<Blob<'_>, KmsError> {
    let malformed = KmsError::InvalidCiphertext;
    let Some((fixed, rest)) = blob.split_first_chunk::<HEADER_FIXED_LEN>() else {
        return Err(malformed);
    };
    let [version, len_hi, len_lo] = *fixed;
    if version != BLOB_VERSION {
        return Err(malformed);
    }
    let key_id_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if key_id_len == 0 || key_id_len > MAX_KEY_ID_LEN || rest.len() < key_id_len {
        return Err(malformed);
    }
    let (key_id, sealed) = rest.split_at(key_id_len);
    let key_id = std::str::from_utf8(key_id).map_err(|_| KmsError::InvalidCiphertext)?;
    if aead::plaintext_len(sealed).is_none() {
        return Err(KmsError::InvalidCiphertext);
    }
    Ok(Blob {
        header: &blob[..HEADER_FIXED_LEN + key_id_len],
        key_id,
        sealed,
    })
}

/// `label || header || canonical context`. The header is self-delimiting and the context encoding
/// is length-prefixed, so no two (key id, context) pairs give the same AAD.
fn blob_aad(header: &[u8], context: &EncryptionContext) -> Vec<u8> {
    let mut aad = Vec::with_capacity(BLOB_AAD_LABEL.len() + header.len() + 64);
    aad.extend_from_slice(BLOB_AAD_LABEL);
    aad.extend_from_slice(header);
    canonical_context_into(context, &mut aad);
    aad
}

/// Canonical encryption context: `count (u64 BE)`, then for each pair in byte-wise key order
/// `len(key) (u64 BE) || key || len(value) (u64 BE) || value`. Unlike a `k=v&k=v` string it
/// cannot be confused by `=` or `&` inside keys or values.
pub(crate) fn canonical_context_into(context: &EncryptionContext, out: &mut Vec<u8>) {
    let field = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    out.extend_from_slice(&(context.len() as u64).to_be_bytes());
    for (key, value) in context {
        field(out, key.as_bytes());
        field(out, value.as_bytes());
    }
}

/// KMS `Encrypt`: seals `plaintext` (1 to 4096 bytes) under the KMS key `key` into a blob that
/// names `key_id` (normally the key ARN, so `Decrypt` needs no `KeyId`) and is bound to
/// `context`.
pub fn encrypt(
    key: &KeyMaterial,
    key_id: &str,
    plaintext: &[u8],
    context: &EncryptionContext,
) -> Result<Vec<u8>, KmsError> {
    if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(KmsError::InvalidPlaintextLength {
            len: plaintext.len(),
        });
    }
    let key_id_len = u16::try_from(key_id.len())
        .ok()
        .filter(|&len| len > 0 && usize::from(len) <= MAX_KEY_ID_LEN)
        .ok_or(KmsError::InvalidKeyId { len: key_id.len() })?;
    let header_len = HEADER_FIXED_LEN + key_id.len();
    let mut blob =
        Vec::with_capacity(header_len + aead::NONCE_LEN + plaintext.len() + aead::TAG_LEN);
    blob.push(BLOB_VERSION);
    blob.extend_from_slice(&key_id_len.to_be_bytes());
    blob.extend_from_slice(key_id.as_bytes());
    let aad = blob_aad(&blob, context);
    aead::seal_into(key.0.bytes(), &aad, plaintext, &mut blob);
    Ok(blob)
}

/// The key id a blob names, so `Decrypt` can find the KMS key without a `KeyId` parameter.
/// Not authenticated until [`decrypt`] succeeds (the key id is part of the AAD, so a rewritten
/// id makes decryption fail). Malformed blobs are [`KmsError::InvalidCiphertext`].
pub fn ciphertext_key_id(blob: &[u8]) -> Result<&str, KmsError> {
    parse(blob).map(|blob| blob.key_id)
}

/// KMS `Decrypt`. A blob made under another key, altered in any byte, or presented with a
/// different encryption context is [`KmsError::InvalidCiphertext`].
pub fn decrypt(
    key: &KeyMaterial,
    blob: &[u8],
    context: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let blob = parse(blob)?;
    aead::open(key.0.bytes(), &blob_aad(blob.header, context), blob.sealed)
        .map_err(|_| KmsError::InvalidCiphertext)
}

/// KMS `GenerateDataKey` with `KeySpec=AES_256`: a fresh data key and its blob under `key`.
/// The blob is an ordinary `Encrypt` blob, so KMS `Decrypt` also opens it, as in AWS.
pub fn generate_data_key(
    key: &KeyMaterial,
    key_id: &str,
    context: &EncryptionContext,
) -> Result<(DataKey, Vec<u8>), KmsError> {
    let data_key = DataKey::generate();
    let blob = encrypt(key, key_id, data_key.0.bytes(), context)?;
    Ok((data_key, blob))
}

/// Recovers the data key of a [`generate_data_key`] blob. Also fails with
/// [`KmsError::InvalidCiphertext`] for a valid blob whose plaintext is not 32 bytes.
pub fn decrypt_data_key(
    key: &KeyMaterial,
    blob: &[u8],
    context: &EncryptionContext,
) -> Result<DataKey, KmsError> {
    let blob = parse(blob)?;
    if aead::plaintext_len(blob.sealed) != Some(KEY_LEN) {
        return Err(KmsError::InvalidCiphertext);
    }
    let mut data_key = Key32::zeroed();
    aead::open_into(
        key.0.bytes(),
        &blob_aad(blob.header, context),
        blob.sealed,
        data_key.bytes_mut(),
    )
    .map_err(|_| KmsError::InvalidCiphertext)?;
    Ok(DataKey(data_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(pairs: &[(&str, &str)]) -> Vec<u8> {
        let context = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut out = Vec::new();
        canonical_context_into(&context, &mut out);
        out
    }

    #[test]
    fn canonical_context_does_not_depend_on_insertion_order() {
        assert_eq!(
            canonical(&[("b", "2"), ("a", "1")]),
            canonical(&[("a", "1"), ("b", "2")])
        );
    }

    #[test]
    fn canonical_context_cannot_be_confused_by_separators_inside_values() {
        assert_ne!(
            canonical(&[("a", "1&b=2")]),
            canonical(&[("a", "1"), ("b", "2")])
        );
        assert_ne!(canonical(&[("a=1", "")]), canonical(&[("a", "=1")]));
        assert_ne!(canonical(&[]), canonical(&[("", "")]));
    }

    #[test]
    fn blob_layout_is_version_key_id_nonce_ciphertext_tag() {
        let key = KeyMaterial::generate();
        let blob = encrypt(&key, "key-1", b"abc", &EncryptionContext::new()).unwrap();
        assert_eq!(blob[0], BLOB_VERSION);
        assert_eq!(&blob[1..3], &[0, 5]);
        assert_eq!(&blob[3..8], b"key-1");
        assert_eq!(blob.len(), 8 + aead::NONCE_LEN + 3 + aead::TAG_LEN);
    }

    #[test]
    fn largest_blob_fits_the_kms_ciphertext_limit() {
        let key = KeyMaterial::generate();
        let key_id = "k".repeat(MAX_KEY_ID_LEN);
        let plaintext = vec![7u8; MAX_PLAINTEXT_LEN];
        let blob = encrypt(&key, &key_id, &plaintext, &EncryptionContext::new()).unwrap();
        assert!(blob.len() <= 6144, "{} bytes", blob.len());
    }
}
