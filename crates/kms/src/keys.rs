//! KMS key material and data keys.

use std::fmt;

use zeroize::{ZeroizeOnDrop, Zeroizing};

use hkdf::Hkdf;
use sha2::Sha256;

use crate::aead;
use crate::error::KmsError;
use crate::secret::{KEY_LEN, Key32};

/// HKDF `info` of a material's id (see [`KeyMaterial::id`]).
const MATERIAL_ID_INFO: &[u8] = b"coffer-kms key material id\0";
/// Domain separation for [`KeyMaterial::seal_previous`].
const PREVIOUS_AAD_LABEL: &[u8] = b"coffer-kms previous key material\0";
/// First byte of a sealed previous material.
const PREVIOUS_VERSION: u8 = 1;
/// Length of a material id in bytes (64 hexadecimal digits as AWS shows it).
pub const MATERIAL_ID_LEN: usize = 32;

/// The 32-byte AES-256 material of a KMS key (a customer key or an AWS-managed key such as
/// `aws/secretsmanager`). At rest it exists only wrapped by the region's root key
/// ([`crate::RootKey::wrap_key_material`]). Wiped on drop; `Debug` shows nothing.
/// The second field is the material's id ([`KeyMaterial::id`]), derived once when the
/// material is made: every decrypt picks the material a blob names by it.
#[derive(Clone)]
pub struct KeyMaterial(pub(crate) Key32, [u8; MATERIAL_ID_LEN]);

impl ZeroizeOnDrop for KeyMaterial {}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(..)")
    }
}

impl KeyMaterial {
    /// Fresh material from the operating system's CSPRNG, for a new KMS key.
    pub fn generate() -> Self {
        Self::from_key(Key32::random())
    }

    pub(crate) fn from_key(key: Key32) -> Self {
        let mut id = [0u8; MATERIAL_ID_LEN];
        Hkdf::<Sha256>::new(None, key.bytes())
            .expand(MATERIAL_ID_INFO, &mut id)
            .expect("32 bytes is within HKDF-SHA256's output limit");
        Self(key, id)
    }

    /// The raw material, only for sending a multi-Region key to a replica Region inside a
    /// sealed replication message (and checking that a redelivered one is the same key).
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        self.0.bytes()
    }

    /// Material received from another Region (a multi-Region replica key, out of a sealed
    /// replication message); `None` unless `bytes` is exactly 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        let mut key = Key32::zeroed();
        key.bytes_mut().copy_from_slice(bytes);
        Some(Self::from_key(key))
    }

    /// The id of this material (AWS's `KeyMaterialId`, `CurrentKeyMaterialId`): 64 hexadecimal
    /// digits. HKDF-SHA256 of the material with a fixed label, so it is the same wherever the
    /// material is (the Regions of a multi-Region key) and reveals nothing about it.
    pub fn id(&self) -> String {
        hex::encode(self.id_bytes())
    }

    pub(crate) fn id_bytes(&self) -> [u8; MATERIAL_ID_LEN] {
        self.1
    }

    /// Seals `previous` (an earlier material of a rotated key) under this, the key's current
    /// material, bound to the key id: `version (1) || nonce (12) || ciphertext (32) || tag (16)`.
    /// A key's earlier materials are kept this way, so they are as safe as the current one (which
    /// the root key wraps) and a root key rotation re-wraps nothing more.
    pub fn seal_previous(&self, key_id: &str, previous: &KeyMaterial) -> Vec<u8> {
        let mut out = vec![PREVIOUS_VERSION];
        aead::seal_into(
            self.0.bytes(),
            &previous_aad(key_id),
            previous.0.bytes(),
            &mut out,
        );
        out
    }

    /// Reverses [`KeyMaterial::seal_previous`] ([`KmsError::InvalidCiphertext`] otherwise).
    pub fn open_previous(&self, key_id: &str, sealed: &[u8]) -> Result<KeyMaterial, KmsError> {
        let Some((&PREVIOUS_VERSION, sealed)) = sealed.split_first() else {
            return Err(KmsError::InvalidCiphertext);
        };
        if aead::plaintext_len(sealed) != Some(KEY_LEN) {
            return Err(KmsError::InvalidCiphertext);
        }
        let mut material = Key32::zeroed();
        aead::open_into(
            self.0.bytes(),
            &previous_aad(key_id),
            sealed,
            material.bytes_mut(),
        )
        .map_err(|_| KmsError::InvalidCiphertext)?;
        Ok(KeyMaterial::from_key(material))
    }
}

fn previous_aad(key_id: &str) -> Vec<u8> {
    let mut aad = PREVIOUS_AAD_LABEL.to_vec();
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

/// A 32-byte AES-256 data key: one per secret version, carried at rest only as a ciphertext
/// blob under a KMS key ([`crate::generate_data_key`]). Wiped on drop; `Debug` shows nothing.
pub struct DataKey(pub(crate) Key32);

impl ZeroizeOnDrop for DataKey {}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub(crate) fn generate() -> Self {
        Self(Key32::random())
    }

    /// Seals a secret value under this data key with AES-256-GCM. `aad` must bind where the
    /// value belongs (region, secret ARN, version id) so a sealed value moved to another secret
    /// or version does not open. Output: `nonce (12, random) || ciphertext || tag (16)`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        aead::seal_into(self.0.bytes(), aad, plaintext, &mut out);
        out
    }

    /// Opens what [`DataKey::seal`] produced with the same `aad`. Anything else (other key, other
    /// aad, altered bytes) is [`KmsError::InvalidCiphertext`].
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        aead::open(self.0.bytes(), aad, sealed).map_err(|_| KmsError::InvalidCiphertext)
    }

    /// The raw key bytes, only for answering a KMS `GenerateDataKey` API call, whose response
    /// carries the plaintext key to the client. Secrets Manager code uses `seal` / `open`.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        self.0.bytes()
    }
}
