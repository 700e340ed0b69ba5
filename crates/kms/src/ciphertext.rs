//! KMS `Encrypt` / `Decrypt` / `GenerateDataKey`: self-describing ciphertext blobs under a KMS
//! key, bound to an encryption context. The layout is described in the crate docs.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::aead;
use crate::error::KmsError;
use crate::keys::{DataKey, KeyMaterial, MATERIAL_ID_LEN};
use crate::secret::{KEY_LEN, Key32};

/// KMS encryption context: non-secret string pairs that must be presented again to decrypt.
/// A `BTreeMap`, so iteration is already in the canonical (byte-wise sorted) key order.
pub type EncryptionContext = BTreeMap<String, String>;

/// Largest plaintext KMS `Encrypt` accepts.
pub const MAX_PLAINTEXT_LEN: usize = 4096;
/// Longest key id a blob can name. Key ARNs are under 100 bytes; with the 4096-byte plaintext
/// limit the blob stays under the 6144 bytes KMS allows for `CiphertextBlob`.
pub const MAX_KEY_ID_LEN: usize = 1024;

/// First byte of the blobs made before keys could be rotated: they name only the key, and were
/// all made with its first material. Still opened, never written.
const BLOB_VERSION_1: u8 = 1;
/// First byte of every blob made now: it also names the key material it was made with.
const BLOB_VERSION: u8 = 2;
/// Domain separation for the blob AAD.
const BLOB_AAD_LABEL: &[u8] = b"coffer-kms ciphertext blob\0";
/// `version (1) || key id length (2)`.
const HEADER_FIXED_LEN: usize = 3;

/// A parsed blob, borrowing from the input.
struct Blob<'a> {
    /// `version || key id length || key id [|| material id]`: authenticated as part of the AAD.
    header: &'a [u8],
    key_id: &'a str,
    /// The material the blob was made with (`None` in a version 1 blob).
    material_id: Option<&'a [u8; MATERIAL_ID_LEN]>,
    /// `nonce || ciphertext || tag`.
    sealed: &'a [u8],
}

fn parse(blob: &[u8]) -> Result<Blob<'_>, KmsError> {
    let malformed = KmsError::InvalidCiphertext;
    let Some((fixed, rest)) = blob.split_first_chunk::<HEADER_FIXED_LEN>() else {
        return Err(malformed);
    };
    let [version, len_hi, len_lo] = *fixed;
    let id_len = match version {
        BLOB_VERSION_1 => 0,
        BLOB_VERSION => MATERIAL_ID_LEN,
        _ => return Err(malformed),
    };
    let key_id_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if key_id_len == 0 || key_id_len > MAX_KEY_ID_LEN || rest.len() < key_id_len + id_len {
        return Err(malformed);
    }
    let (key_id, rest) = rest.split_at(key_id_len);
    let (material_id, sealed) = rest.split_at(id_len);
    let key_id = std::str::from_utf8(key_id).map_err(|_| KmsError::InvalidCiphertext)?;
    if aead::plaintext_len(sealed).is_none() {
        return Err(KmsError::InvalidCiphertext);
    }
    Ok(Blob {
        header: &blob[..HEADER_FIXED_LEN + key_id_len + id_len],
        key_id,
        material_id: material_id.try_into().ok(),
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

/// KMS `Encrypt`: seals `plaintext` (1 to 4096 bytes) under the KMS key material `key` into a
/// blob that names `key_id` (normally the key ARN, so `Decrypt` needs no `KeyId`) and the
/// material's id (so `Decrypt` finds it after the key was rotated), bound to `context`.
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
    let header_len = HEADER_FIXED_LEN + key_id.len() + MATERIAL_ID_LEN;
    let mut blob =
        Vec::with_capacity(header_len + aead::NONCE_LEN + plaintext.len() + aead::TAG_LEN);
    blob.push(BLOB_VERSION);
    blob.extend_from_slice(&key_id_len.to_be_bytes());
    blob.extend_from_slice(key_id.as_bytes());
    blob.extend_from_slice(&key.id_bytes());
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

/// The id of the key material a blob was made with ([`KeyMaterial::id`]), or `None` for a blob
/// made before keys could be rotated (with the key's first material). Not authenticated until
/// [`decrypt`] succeeds, like [`ciphertext_key_id`].
pub fn ciphertext_material_id(blob: &[u8]) -> Result<Option<String>, KmsError> {
    parse(blob).map(|blob| blob.material_id.map(hex::encode))
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
    fn blob_layout_is_version_key_id_material_id_nonce_ciphertext_tag() {
        let key = KeyMaterial::generate();
        let blob = encrypt(&key, "key-1", b"abc", &EncryptionContext::new()).unwrap();
        assert_eq!(blob[0], BLOB_VERSION);
        assert_eq!(&blob[1..3], &[0, 5]);
        assert_eq!(&blob[3..8], b"key-1");
        assert_eq!(&blob[8..40], &key.id_bytes());
        assert_eq!(blob.len(), 40 + aead::NONCE_LEN + 3 + aead::TAG_LEN);
        assert_eq!(ciphertext_material_id(&blob).unwrap(), Some(key.id()));
    }

    /// A blob as Coffer wrote them before keys could be rotated (version 1: no material id).
    fn version_1_blob(key: &KeyMaterial, key_id: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut blob = vec![BLOB_VERSION_1];
        blob.extend_from_slice(&(key_id.len() as u16).to_be_bytes());
        blob.extend_from_slice(key_id.as_bytes());
        let aad = blob_aad(&blob, &EncryptionContext::new());
        aead::seal_into(key.0.bytes(), &aad, plaintext, &mut blob);
        blob
    }

    #[test]
    fn blobs_written_before_rotation_existed_still_decrypt() {
        let key = KeyMaterial::generate();
        let blob = version_1_blob(&key, "key-1", b"old");
        assert_eq!(ciphertext_key_id(&blob).unwrap(), "key-1");
        assert_eq!(ciphertext_material_id(&blob).unwrap(), None);
        let plain = decrypt(&key, &blob, &EncryptionContext::new()).unwrap();
        assert_eq!(&plain[..], b"old");
    }

    #[test]
    fn a_rewritten_material_id_makes_decryption_fail() {
        let key = KeyMaterial::generate();
        let mut blob = encrypt(&key, "key-1", b"abc", &EncryptionContext::new()).unwrap();
        blob[8] ^= 1;
        assert!(decrypt(&key, &blob, &EncryptionContext::new()).is_err());
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
